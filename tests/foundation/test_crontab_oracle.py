"""The digest's crontab lines against ``croniter``, the field's reference reading of cron.

Thousands of random lines (numbers and names, Sunday as 0 and as 7, ranges, wrapping
weekday ranges, steps larger than their range, lists) and random instants: our parser
plus ``schedule.triggers`` must fire exactly when croniter says. croniter is told that day
and weekday must both match (``day_or=False``), the rule this product documents.
Then the lines of issue 18 through the real ``schedule --print`` and the config check.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from kcrush_feeds.crontab import parse_schedule
from kcrush_feeds.schedule.triggers import WallClockCronTrigger
from tests.support.project import Project

UTC_ZONE = ZoneInfo("UTC")
DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]


def _part(rng: random.Random, low: int, high: int, names: list[str], offset: int) -> str:
    def value(v: int) -> str:
        if names and rng.random() < 0.4 and v - offset < len(names):
            name = names[v - offset]
            return name.upper() if rng.random() < 0.2 else name
        return str(v)

    kind = rng.random()
    if kind < 0.15:
        return f"*/{rng.randint(1, (high - low) + 15)}"  # also steps past the range
    first = rng.randint(low, high)
    if kind < 0.45:
        return value(first)
    last = rng.randint(first, high)
    if last == first:
        return value(first)  # croniter 7 reads "58-58" as every minute: not a fair question
    if kind < 0.8:
        return f"{value(first)}-{value(last)}"
    return f"{first}-{last}/{rng.randint(1, (high - low) + 5)}"


def _field(rng: random.Random, low: int, high: int, names: list[str] = (), offset: int = 0) -> str:  # type: ignore[assignment]
    if rng.random() < 0.25:
        return "*"
    return ",".join(_part(rng, low, high, list(names), offset) for _ in range(rng.randint(1, 3)))


def _weekdays(rng: random.Random) -> str:
    if rng.random() < 0.1:
        # Wrapping ranges, by name or number: fri-mon, 6-2, 3-0 (to Sunday).
        first = rng.randint(1, 6)
        last = rng.randint(0, first - 1)
        if rng.random() < 0.5:
            return f"{DAY_NAMES[first]}-{DAY_NAMES[last]}"
        return f"{first}-{last}"
    return _field(rng, 0, 7, DAY_NAMES)  # 7 is Sunday too; names count sun = 0


def _line(rng: random.Random) -> str:
    minute = _field(rng, 0, 59)
    hour = _field(rng, 0, 23)
    # Mostly every day of the month: a restricted day and weekday rarely meet.
    day = "*" if rng.random() < 0.8 else _field(rng, 1, 28)
    month = _field(rng, 1, 12, MONTH_NAMES, 1)
    weekday = "*" if day != "*" and rng.random() < 0.7 else _weekdays(rng)
    return f"{minute} {hour} {day} {month} {weekday}"


def test_crontab_lines_fire_when_croniter_says() -> None:
    rng = random.Random(18)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    checked = 0
    for _ in range(3000):
        line = _line(rng)
        trigger = WallClockCronTrigger(parse_schedule(line).cron_fields(), UTC_ZONE)
        for _ in range(2):
            # Never on a whole minute, so "after" (croniter) and "at or after" agree.
            instant = start + timedelta(seconds=rng.randrange(3 * 365 * 24 * 60) * 60 + 17)
            expected = croniter(line, instant, day_or=False).get_next(datetime)
            assert expected.tzinfo is not None
            ours = trigger.get_next_fire_time(None, instant)
            assert ours == expected, f"{line!r} after {instant}: {ours} != {expected}"
            checked += 1
    assert checked == 6000


@pytest.mark.parametrize(
    ("line", "monday_9"),
    [
        ("0 9 * * 0-3", True),
        ("0 9 * * 0-6", True),
        ("0 9 * * sun-wed", True),
        ("30 8 * * 0-5", False),
        ("0 9 * * 7", False),
    ],
)
def test_schedule_print_runs_lines_with_sunday_as_zero(
    project: Project, line: str, monday_9: bool
) -> None:
    project.append_config('[smtp]\nhost = "127.0.0.1"\nport = 2525\ntls = "none"\n')
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace('schedule = "mon 09:00"', f'schedule = "{line}"'), encoding="utf-8"
    )
    # Monday 2026-11-23 08:59 in Los Angeles (the site's zone).
    result = project.run(
        "schedule", "--print", "--count", "3", env={"KCRUSH_FEEDS_NOW": "2026-11-23T16:59:00Z"}
    )
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert ("2026-11-23T09:00:00-08:00" in result.output) == monday_9, result.output


@pytest.mark.parametrize(
    "line",
    ["*/0 * * * *", "0 9 * * 8", "0 9 * * 1/0", "5-2 9 * * *", "0 9 * * funday"],
)
def test_a_bad_crontab_line_is_a_config_error(project: Project, line: str) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace('schedule = "mon 09:00"', f'schedule = "{line}"'), encoding="utf-8"
    )
    result = project.run("schedule", "--print")
    assert result.exit_code == 2, result.output
    assert f"{project.config_path}: digest.schedule: " in result.output
