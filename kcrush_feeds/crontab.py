"""The digest's schedule: "mon 09:00" or a five-field crontab line, checked and parsed.

Pure functions; ``config`` imports this for validation, so it imports nothing from the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SIMPLE_RE = re.compile(r"(?P<day>[a-z]{3})[a-z]*\s+(?P<hour>\d{1,2}):(?P<minute>\d{2})")
# crontab counts days of the week from Sunday (0 and 7), APScheduler 3.x from Monday:
# numbers are translated to names so "0 9 * * 1" means Monday in both.
_CRON_DOW_NAMES = {
    "0": "sun",
    "1": "mon",
    "2": "tue",
    "3": "wed",
    "4": "thu",
    "5": "fri",
    "6": "sat",
    "7": "sun",
}


@dataclass(frozen=True, slots=True)
class Schedule:
    """Cron fields for the digest, in the site's time zone."""

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
    """``"mon 09:00"`` or a five-field crontab line (``"0 9 * * mon"``)."""
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
    for name, field, low, high in (
        ("minute", minute, 0, 59),
        ("hour", hour, 0, 23),
        ("day", day, 1, 31),
        ("month", month, 1, 12),
    ):
        _check_cron_field(text, name, field, low, high)
    return Schedule(minute, hour, day, month, _cron_days(text, dow))


def _check_cron_field(text: str, name: str, field: str, low: int, high: int) -> None:
    for part in field.split(","):
        base, _, step = part.partition("/")
        if step and not step.isdigit():
            raise ValueError(f"{text!r}: the {name} field has a bad step {step!r}")
        if base == "*":
            continue
        bounds = base.split("-")
        if len(bounds) > 2 or not all(b.isdigit() and low <= int(b) <= high for b in bounds):
            raise ValueError(f"{text!r}: the {name} field must be {low}-{high}, got {part!r}")


def _cron_days(text: str, field: str) -> str:
    out = []
    for part in field.split(","):
        base, slash, step = part.partition("/")
        names = []
        for bound in base.split("-"):
            if bound == "*" or bound in DAYS:
                names.append(bound)
            elif bound in _CRON_DOW_NAMES:
                names.append(_CRON_DOW_NAMES[bound])
            else:
                raise ValueError(f"{text!r}: the day-of-week field has {bound!r}")
        out.append("-".join(names) + slash + step)
    return ",".join(out)
