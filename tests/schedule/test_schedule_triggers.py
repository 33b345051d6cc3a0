"""``schedule.triggers``: the pure cron and interval arithmetic against APScheduler 3.x's own
``CronTrigger`` and ``IntervalTrigger`` (the triggers the service handed to APScheduler
before), and against a minute-by-minute walk of the wall clock across DST changes."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from kcrush_feeds.crontab import parse_schedule
from kcrush_feeds.schedule.triggers import CronFields, EveryTrigger, build_trigger

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Zones without DST: there APScheduler's search is exact and ours must give the same answer.
STEADY = [ZoneInfo("UTC"), ZoneInfo("Asia/Kolkata"), ZoneInfo("Etc/GMT+5")]
CHANGING = [
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Europe/Berlin"),
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute change
]


def numeric(rng: random.Random, low: int, high: int) -> str:
    a, b, step = rng.randint(low, high), rng.randint(low, high), rng.randint(0, 12)
    forms = ["*", f"*/{step}", f"{a}", f"{a}-{b}", f"{a}-{b}/{step}", f"{a}/{step}"]
    forms.append(f"{min(a, b)}-{max(a, b)}")
    return ",".join(rng.choice(forms) for _ in range(rng.randint(1, 2)))


def weekdays(rng: random.Random) -> str:
    a, b = rng.choice(WEEKDAYS), rng.choice(WEEKDAYS)
    forms = ["*", f"*/{rng.randint(0, 7)}", a, f"{a}-{b}", f"{a}-{b}/2", str(rng.randint(0, 6))]
    return ",".join(rng.choice(forms) for _ in range(rng.randint(1, 2)))


def random_fields(rng: random.Random, *, drop: float = 0.15) -> dict[str, str]:
    fields = {
        "minute": numeric(rng, 0, 59),
        "hour": numeric(rng, 0, 23),
        "day": numeric(rng, 1, 31),
        "month": numeric(rng, 1, 12),
        "day_of_week": weekdays(rng),
    }
    return {k: v for k, v in fields.items() if rng.random() >= drop}


def compile_both(fields: dict[str, str], tz: ZoneInfo) -> tuple[CronFields, CronTrigger] | None:
    """Both compiled, or None when both reject ``fields`` (one rejecting alone fails)."""
    try:
        theirs: CronTrigger | None = CronTrigger(timezone=tz, **fields)
    except ValueError:
        theirs = None
    try:
        ours: CronFields | None = CronFields.compile(fields)
    except ValueError:
        ours = None
    assert (ours is None) == (theirs is None), fields
    return None if ours is None or theirs is None else (ours, theirs)


@pytest.mark.parametrize("seed", range(4))
def test_cron_fields_match_apscheduler_where_the_clock_does_not_change(seed: int) -> None:
    rng = random.Random(seed)
    compared = rejected = 0
    for _ in range(1000):
        tz = rng.choice(STEADY)
        fields = random_fields(rng)
        both = compile_both(fields, tz)
        if both is None:
            rejected += 1
            continue
        ours, theirs = both
        for _ in range(5):
            probe = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(
                seconds=rng.randint(0, 366 * 86400), microseconds=rng.choice([0, 1, 999_999])
            )
            probe = probe.astimezone(tz)
            assert ours.next_wall(probe) == theirs.get_next_fire_time(None, probe), (fields, probe)
            compared += 1
    assert compared > 500 and rejected > 100  # both kinds were exercised


@pytest.mark.parametrize("tz", CHANGING, ids=lambda tz: tz.key)
def test_cron_fields_reject_what_apscheduler_rejects(tz: ZoneInfo) -> None:
    rng = random.Random(tz.key)
    rejected = 0
    for _ in range(600):
        fields = random_fields(rng)
        if compile_both(fields, tz) is None:
            rejected += 1
    assert rejected > 50


def walk(fields: CronFields, probe: datetime, horizon: timedelta) -> datetime | None:
    """The first wall-clock minute at or after ``probe`` the fields match, minute by minute."""
    start = probe.replace(tzinfo=None)
    wall = start.replace(second=0, microsecond=0)
    if wall < start:
        wall += timedelta(minutes=1)
    while wall - start <= horizon:
        if (
            wall.month in fields.months
            and wall.day in fields.days
            and wall.weekday() in fields.weekdays
            and wall.hour in fields.hours
            and wall.minute in fields.minutes
        ):
            return wall
        wall += timedelta(minutes=1)
    return None


@pytest.mark.parametrize("tz", CHANGING, ids=lambda tz: tz.key)
def test_next_wall_is_the_first_matching_wall_time_across_dst_changes(tz: ZoneInfo) -> None:
    # The days the clocks change in 2026, and the hours around the change.
    changes = [
        datetime(*when, tzinfo=UTC)
        for when in {
            "America/Los_Angeles": [(2026, 3, 8, 10), (2026, 11, 1, 9)],
            "Europe/Berlin": [(2026, 3, 29, 1), (2026, 10, 25, 1)],
            "Australia/Lord_Howe": [(2026, 4, 4, 15), (2026, 10, 3, 16)],
        }[tz.key]
    ]
    rng = random.Random(tz.key)
    checked = 0
    for _ in range(60):
        # Every day and month, so a match is always within a day or so of the probe.
        fields = {
            "minute": numeric(rng, 0, 59),
            "hour": numeric(rng, 0, 23),
            "day_of_week": rng.choice(["*", "sun", "sat-sun", "mon"]),
        }
        try:
            cron = CronFields.compile(fields)
        except ValueError:
            continue
        for change in changes:
            for minutes in range(-150, 150, 11):
                probe = (change + timedelta(minutes=minutes)).astimezone(tz)
                found = cron.next_wall(probe)
                assert found is not None
                assert found.replace(tzinfo=None) == walk(cron, probe, timedelta(days=8))
                # The wall time keeps the probe's fold: the hour repeated is told apart.
                assert found.fold == probe.fold
                checked += 1
    assert checked > 1000


@pytest.mark.parametrize(
    "schedule", ["mon 09:00", "sun 02:30", "30 1 * * *", "0 9 * * 1-5", "*/20 1-3 * * *"]
)
def test_digest_schedules_match_apscheduler_on_ordinary_days(schedule: str) -> None:
    fields = parse_schedule(schedule).cron_fields()
    la = ZoneInfo("America/Los_Angeles")
    ours, theirs = CronFields.compile(fields), CronTrigger(timezone=la, **fields)
    probe = datetime(2026, 4, 1, 0, 0, 30, tzinfo=la)
    for _ in range(100):  # April to October: no change of the clocks in between
        mine = ours.next_wall(probe)
        assert mine is not None and mine == theirs.get_next_fire_time(None, probe)
        probe = mine + timedelta(seconds=1)
        if probe.month > 10:
            break


@pytest.mark.parametrize("seconds", [1, 7, 60, 900, 3600, 86400])
def test_every_trigger_is_apschedulers_interval_arithmetic(seconds: int) -> None:
    start = datetime(2026, 3, 8, 9, 59, 58, 250_000, tzinfo=UTC)
    ours = build_trigger(timedelta(seconds=seconds), start)
    assert isinstance(ours, EveryTrigger)
    theirs = IntervalTrigger(seconds=seconds, start_date=start, timezone=UTC)
    for offset in (-5000.5, -1, 0, 0.25, 1, 59.999, 3600, 86400 * 3 + 0.5):
        now = start + timedelta(seconds=offset)
        assert ours.get_next_fire_time(None, now) == theirs.get_next_fire_time(None, now)
        previous = ours.get_next_fire_time(None, now)
        assert ours.get_next_fire_time(previous, now) == theirs.get_next_fire_time(previous, now)
