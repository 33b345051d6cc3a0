"""When the jobs fire: the digest's cron schedule across DST changes, and the build interval.

Pure arithmetic on aware datetimes, no scheduler: ``schedule.service`` hands these to
APScheduler through a thin adapter, and ``--print``, the catch-up and the tests ask them
directly. Both triggers answer ``get_next_fire_time(previous, now)``, APScheduler's
contract, and fire exactly when APScheduler 3.x's own triggers would, except where the
wall-clock rules below differ on purpose.

Cron fields mean what they mean to APScheduler 3.x's ``CronTrigger`` (``crontab.py``
translates a crontab line to them): day and day of week must both match; a step counts
from the start of its range; days of the week count from Monday = 0.

Daylight saving time: on the day the clocks go back, APScheduler fires a 01:30 job twice
(01:30 PDT and 01:30 PST); on the day they go forward it returns a local time that does
not exist. ``WallClockCronTrigger`` follows Vixie cron instead: a time in the repeated
hour runs once (the first time the clock shows it), and a time the clock skips runs at
the moment of the jump.
"""

from __future__ import annotations

import math
import re
from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from kcrush_feeds.crontab import parse_schedule

_MAX_STEPS = 100_000  # a cron expression matches at most this often in a search
_LAST_YEAR = 9999  # as APScheduler: a schedule that never matches gives up here

# The fields, most significant first, with their bounds (APScheduler's MIN/MAX_VALUES).
_BOUNDS = {
    "month": (1, 12),
    "day": (1, 31),
    "day_of_week": (0, 6),
    "hour": (0, 23),
    "minute": (0, 59),
}
# A field left out after the least significant one given takes its first value, before it
# every value (APScheduler's rule: {"hour": "9"} fires at 09:00 every day).
_FIRST = {"month": "1", "day": "1", "day_of_week": "*", "hour": "0", "minute": "0"}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEPARATOR = re.compile(" *, *")
_ALL_RE = re.compile(r"\*(?:/(?P<step>\d+))?$")
_RANGE_RE = re.compile(r"(?P<first>\d+)(?:-(?P<last>\d+))?(?:/(?P<step>\d+))?$")
# As APScheduler: a weekday range takes no step, and anything after the names is ignored.
_WEEKDAY_RE = re.compile(r"(?P<first>[a-z]+)(?:-(?P<last>[a-z]+))?", re.IGNORECASE)


class FireTimes(Protocol):
    """A trigger: APScheduler's ``get_next_fire_time`` contract."""

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire time after ``previous_fire_time`` (if any) and at or after ``now``."""
        ...


# --- cron fields --------------------------------------------------------------------------


def _field_values(name: str, text: str) -> frozenset[int]:
    """The values one cron field allows; ValueError where APScheduler's CronTrigger raises."""
    low, high = _BOUNDS[name]
    values: set[int] = set()
    for expr in _SEPARATOR.split(text.strip()):
        values |= _expression_values(name, expr, low, high)
    return frozenset(values)


def _expression_values(name: str, expr: str, low: int, high: int) -> set[int]:
    every = _ALL_RE.match(expr)
    if every:
        step = _step(name, expr, every["step"], high - low)
        return set(range(low, high + 1, step))
    ranged = _RANGE_RE.match(expr)
    if ranged:
        first = int(ranged["first"])
        last = int(ranged["last"]) if ranged["last"] is not None else None
        if ranged["step"] is not None and int(ranged["step"]) == 0:
            raise ValueError(f"{name} field {expr!r}: the step must be higher than 0")
        if last is None and ranged["step"] is None:
            last = first
        if last is not None and first > last:
            raise ValueError(f"{name} field {expr!r}: the range goes down")
        if first < low or (last is not None and last > high):
            raise ValueError(f"{name} field {expr!r}: values are {low}-{high}")
        # APScheduler measures the range with ``last or high`` (so a last of 0 counts as high).
        step = _step(name, expr, ranged["step"], (last or high) - first)
        return set(range(first, (high if last is None else last) + 1, step))
    named = _WEEKDAY_RE.match(expr) if name == "day_of_week" else None
    if named:
        first = _weekday(named["first"])
        last = _weekday(named["last"]) if named["last"] else first
        if first > last:
            raise ValueError(f"{name} field {expr!r}: the range goes down")
        return set(range(first, last + 1))
    raise ValueError(f"{name} field: unrecognized expression {expr!r}")


def _step(name: str, expr: str, text: str | None, span: int) -> int:
    if text is None:
        return 1
    step = int(text)
    if step == 0:
        raise ValueError(f"{name} field {expr!r}: the step must be higher than 0")
    if step > span:
        raise ValueError(f"{name} field {expr!r}: the step is larger than the range ({span})")
    return step


def _weekday(text: str) -> int:
    try:
        return _WEEKDAYS.index(text.lower())
    except ValueError:
        raise ValueError(f"invalid weekday name {text!r}") from None


@dataclass(frozen=True, slots=True)
class CronFields:
    """The wall-clock times cron fields match (second 0 of each matching minute)."""

    months: frozenset[int]
    days: frozenset[int]
    weekdays: frozenset[int]
    hours: tuple[int, ...]
    minutes: tuple[int, ...]

    @classmethod
    def compile(cls, fields: Mapping[str, str]) -> CronFields:
        """Fields as ``CronTrigger`` takes them: minute, hour, day, month, day_of_week."""
        unknown = set(fields) - set(_BOUNDS)
        if unknown:
            raise ValueError(f"unknown cron fields: {', '.join(sorted(unknown))}")
        order = list(_BOUNDS)
        given = [order.index(name) for name in fields]
        last = max(given, default=-1)
        text = {
            name: fields.get(name, "*" if i < last else _FIRST[name])
            for i, name in enumerate(order)
        }
        values = {name: _field_values(name, text[name]) for name in order}
        return cls(
            months=values["month"],
            days=values["day"],
            weekdays=values["day_of_week"],
            hours=tuple(sorted(values["hour"])),
            minutes=tuple(sorted(values["minute"])),
        )

    def next_wall(self, moment: datetime) -> datetime | None:
        """The first matching wall-clock time at or after ``moment`` (aware), in its zone.

        As ``CronTrigger``: ``moment`` is rounded up to the second, the search runs on the
        wall clock, and the result keeps ``moment``'s ``fold`` (a repeated hour's second
        pass stays the second pass). It may name a time the clock skips.
        """
        tz = moment.tzinfo
        if moment.microsecond:
            moment = (
                moment.astimezone(UTC) + timedelta(microseconds=1_000_000 - moment.microsecond)
            ).astimezone(tz)
        start = moment.replace(tzinfo=None)
        if start.second:
            start = start.replace(second=0) + timedelta(minutes=1)
        year, month = start.year, start.month
        while year <= _LAST_YEAR:
            if month in self.months:
                for day in range(1, monthrange(year, month)[1] + 1):
                    date = datetime(year, month, day)
                    if date < start.replace(hour=0, minute=0, second=0, microsecond=0):
                        continue
                    if day not in self.days or date.weekday() not in self.weekdays:
                        continue
                    found = self._time_in(date, start)
                    if found is not None:
                        if found == moment.replace(tzinfo=None):
                            return moment
                        return found.replace(tzinfo=tz, fold=moment.fold)
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return None

    def _time_in(self, date: datetime, start: datetime) -> datetime | None:
        for hour in self.hours:
            for minute in self.minutes:
                candidate = date.replace(hour=hour, minute=minute)
                if candidate >= start:
                    return candidate
        return None


# --- the triggers ---------------------------------------------------------------------------


class WallClockCronTrigger:
    """Cron fields in ``tz`` that run each wall-clock time once, across DST changes.

    - A time in the hour that is repeated when the clocks go back runs once, the first time
      the clock shows it (the second occurrence is skipped).
    - A time that does not exist because the clocks go forward runs at the moment of the
      jump (02:30 on the spring-forward day in Los Angeles runs at 03:00 PDT).

    Comparisons are made in UTC: aware datetimes in one zone compare without ``fold``, the
    root of several APScheduler DST bugs.
    """

    def __init__(self, fields: Mapping[str, str], tz: ZoneInfo) -> None:
        self.tz = tz
        self.fields = dict(fields)
        self._cron = CronFields.compile(self.fields)

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """APScheduler's entry point: the first fire time after the previous one and >= now."""
        after = now.astimezone(UTC)
        if previous_fire_time is not None:
            after = max(after, previous_fire_time.astimezone(UTC) + timedelta(microseconds=1))
        return self.first_at_or_after(after)

    def first_at_or_after(self, moment: datetime) -> datetime | None:
        """The first fire time at or after ``moment`` (aware), in ``tz``."""
        moment = moment.astimezone(UTC)
        probe = moment
        for _ in range(_MAX_STEPS):
            wall = self._cron.next_wall(probe.astimezone(self.tz))
            if wall is None:
                return None
            fire = self._resolve(wall)
            if fire is not None and fire >= moment:
                return fire
            # Always move forward, whatever instant the wall time mapped to.
            probe = max(probe, wall.astimezone(UTC)) + timedelta(seconds=1)
        raise RuntimeError(f"no fire time found for {self} after {moment.isoformat()}")

    def _resolve(self, wall: datetime) -> datetime | None:
        """The instant a wall-clock time ``wall`` fires at, or None for a repeat."""
        naive = wall.replace(tzinfo=None)
        first = naive.replace(tzinfo=self.tz, fold=0)
        second = naive.replace(tzinfo=self.tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return first  # an ordinary time: one instant
        if first.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None) == naive:
            # The repeated hour: both instants show this time; only the first one runs.
            return first if wall.fold == 0 else None
        return self._jump_over(naive, second.astimezone(UTC), first.astimezone(UTC))

    def _jump_over(self, naive: datetime, low: datetime, high: datetime) -> datetime:
        """The instant the clock jumps over the missing wall time ``naive``.

        ``low`` (the time read with the later offset) is before the jump and ``high`` (read
        with the earlier offset) after it; bisect to the second.
        """
        while high - low > timedelta(seconds=1):
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).replace(tzinfo=None) > naive:
                high = middle
            else:
                low = middle
        return high.replace(microsecond=0).astimezone(self.tz)

    def __str__(self) -> str:
        return "wall-clock cron[{}] in {}".format(
            ", ".join(f"{k}='{v}'" for k, v in self.fields.items()), self.tz.key
        )


class EveryTrigger:
    """Every ``seconds`` from ``start`` (the first run at start), counted in UTC.

    The arithmetic of APScheduler 3.x's ``IntervalTrigger`` (on POSIX timestamps).
    """

    def __init__(self, seconds: int, start: datetime) -> None:
        self.seconds = seconds
        self.start = start.astimezone(UTC)

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        """The next run: one interval after the previous, else the first at or after now."""
        start = self.start.timestamp()
        if previous_fire_time is not None:
            fire = previous_fire_time.timestamp() + self.seconds
        elif self.start > now:
            fire = start
        else:
            fire = start + self.seconds * math.ceil((now.timestamp() - start) / self.seconds)
        return datetime.fromtimestamp(fire, tz=UTC)

    def __str__(self) -> str:
        return f"every {self.seconds}s from {self.start.isoformat()}"


def digest_trigger(schedule: str, tz: ZoneInfo) -> WallClockCronTrigger:
    """The trigger for ``digest.schedule`` ("mon 09:00" or a crontab line) in ``tz``."""
    return WallClockCronTrigger(parse_schedule(schedule).cron_fields(), tz)


def build_trigger(every: timedelta, start: datetime) -> EveryTrigger:
    """Every ``every`` from ``start`` (the first build runs at start), counted in UTC."""
    return EveryTrigger(max(1, int(every.total_seconds())), start)


def next_fire_times(trigger: FireTimes, now: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times of ``trigger`` at or after ``now``."""
    times: list[datetime] = []
    previous: datetime | None = None
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire)
        previous = fire
    return times


def last_fire_time(
    trigger: WallClockCronTrigger, now: datetime, lookback: timedelta
) -> datetime | None:
    """The last fire time of ``trigger`` in ``[now - lookback, now]``, or None."""
    now = now.astimezone(UTC)
    span = min(timedelta(hours=1), lookback)
    while True:
        fire = trigger.first_at_or_after(now - span)
        if fire is not None and fire <= now:
            last = fire
            while True:
                after = trigger.first_at_or_after(last + timedelta(microseconds=1))
                if after is None or after > now:
                    return last
                last = after
        if span >= lookback:
            return None
        span = min(span * 2, lookback)
