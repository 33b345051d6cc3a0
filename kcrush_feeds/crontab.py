"""The digest's schedule: "mon 09:00" or a five-field crontab line, checked and parsed.

A crontab line means what it means to cron: days of the week count from Sunday = 0 (and
7 = Sunday too), so ``0 9 * * 0-3`` is Sunday to Wednesday; names (``sun``-``sat``,
``jan``-``dec``) work in any case; ``*/N`` and ``A-B/N`` step from the start of their range,
and a step larger than the range just keeps its first value, as cron does; a weekday range
may wrap (``fri-mon``). Each field is expanded here to the exact list of values it allows
and handed on in APScheduler 3.x's terms (days of the week from Monday = 0, as names), so
no line that passes this check can mean something else, or fail, further on.

Day of month and day of week, when both are restricted, must both match (APScheduler's
rule, kept by ``schedule.triggers``).

Pure functions; ``config`` imports this for validation, so it imports nothing from the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SIMPLE_RE = re.compile(r"(?P<day>[a-z]{3})[a-z]*\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})")
# crontab's numbering of the days of the week: 0 and 7 are Sunday.
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_PART_RE = re.compile(r"(?P<base>\*|[a-z0-9]+(?:-[a-z0-9]+)?)(?:/(?P<step>[0-9]+))?")
_MAX_DIGITS = 9  # a longer number is no minute, hour, day or month (and no step either)
_HUGE_STEP = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Schedule:
    """Cron fields for the digest, in the site's time zone, as APScheduler 3.x reads them."""

    minute: str
    hour: str
    day: str
    month: str
    day_of_week: str

    def cron_fields(self) -> dict[str, str]:
        return {
            "minute": self.minute,
            "hour": self.hour,
            "day": self.day,
            "month": self.month,
            "day_of_week": self.day_of_week,
        }


def parse_schedule(text: str) -> Schedule:
    """``"mon 09:00"`` or a five-field crontab line (``"0 9 * * mon"``); ValueError saying
    what is wrong with anything else."""
    value = text.strip().lower()
    simple = _SIMPLE_RE.fullmatch(value)
    if simple:
        weekday, hh, mm = simple["day"], int(simple["hour"]), int(simple["minute"])
        if weekday not in DAYS or hh > 23 or mm > 59:
            raise ValueError(f"{text!r}: expected a day and a time such as 'mon 09:00'")
        return Schedule(str(mm), str(hh), "*", "*", weekday)
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"{text!r} is neither 'DAY HH:MM' (such as 'mon 09:00') "
            "nor a five-field crontab line (such as '0 9 * * mon')"
        )
    minute, hour, day, month, dow = fields
    weekdays = _values(text, "day-of-week", dow, 0, 7, _CRON_DAYS, wrap=True)
    # 7 is Sunday as 0 is; APScheduler counts from Monday.
    days = sorted({(v - 1) % 7 for v in weekdays}) if weekdays is not None else None
    return Schedule(
        minute=_listed(_values(text, "minute", minute, 0, 59)),
        hour=_listed(_values(text, "hour", hour, 0, 23)),
        day=_listed(_values(text, "day", day, 1, 31)),
        month=_listed(_values(text, "month", month, 1, 12, _MONTHS, offset=1)),
        day_of_week="*" if days is None or len(days) == 7 else ",".join(DAYS[d] for d in days),
    )


def _listed(values: list[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in values)


def _values(
    text: str,
    name: str,
    field: str,
    low: int,
    high: int,
    names: tuple[str, ...] = (),
    *,
    offset: int = 0,
    wrap: bool = False,
) -> list[int] | None:
    """The sorted values one field allows; None for a bare ``*`` (every value)."""
    if field == "*":
        return None
    out: set[int] = set()
    for part in field.split(","):
        match = _PART_RE.fullmatch(part)
        if match is None:
            raise ValueError(f"{text!r}: the {name} field has {part!r}")
        step = _step(text, name, part, match["step"])
        if match["base"] == "*":
            first, last = low, high
        else:
            first_text, _, last_text = match["base"].partition("-")
            first = _value(text, name, first_text, low, high, names, offset)
            if last_text:
                last = _value(text, name, last_text, low, high, names, offset)
                if wrap and last == 0 and first > 0:
                    last = 7  # "fri-sun": Sunday as 7, the end of the week
            else:
                # "5/15" steps from 5 to the end of the range, as cron does.
                last = high if match["step"] else first
        if first <= last:
            span = list(range(first, last + 1))
        elif wrap:  # "fri-mon": to the end of the week and round again
            span = list(range(first, high + 1)) + list(range(low, last + 1))
        else:
            raise ValueError(
                f"{text!r}: the {name} range {part!r} goes down (values are {low}-{high})"
            )
        out.update(span[::step])
    return sorted(out)


def _step(text: str, name: str, part: str, step: str | None) -> int:
    if step is None:
        return 1
    if len(step) > _MAX_DIGITS:
        return _HUGE_STEP  # larger than any range: the first value only
    value = int(step)
    if value == 0:
        raise ValueError(f"{text!r}: the {name} field {part!r} has a step of 0")
    return value


def _value(
    text: str, name: str, token: str, low: int, high: int, names: tuple[str, ...], offset: int
) -> int:
    if token in names:
        return names.index(token) + offset
    if token.isdigit() and len(token) <= _MAX_DIGITS and low <= int(token) <= high:
        return int(token)
    allowed = f"{low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    raise ValueError(f"{text!r}: the {name} field must be {allowed}, got {token!r}")
