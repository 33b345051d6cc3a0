from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from kcrush_feeds.crontab import parse_schedule
from kcrush_feeds.weeks import period_bounds, period_of

LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("mon 09:00", ("0", "9", "*", "*", "mon")),
        ("Monday 9:30", ("30", "9", "*", "*", "mon")),
        ("0 9 * * mon", ("0", "9", "*", "*", "mon")),
        # crontab counts from Sunday = 0; APScheduler 3.x from Monday = 0: names avoid the trap
        ("0 9 * * 1", ("0", "9", "*", "*", "mon")),
        ("0 9 * * 0", ("0", "9", "*", "*", "sun")),
        ("30 7 * * 1-5", ("30", "7", "*", "*", "mon,tue,wed,thu,fri")),
        # A range through Sunday = 0 comes out as the days it means (it used to be reversed).
        ("0 9 * * 0-3", ("0", "9", "*", "*", "mon,tue,wed,sun")),
        ("0 9 * * sun-wed", ("0", "9", "*", "*", "mon,tue,wed,sun")),
        ("0 9 * * 0-6", ("0", "9", "*", "*", "*")),
        ("30 8 * * 0-5", ("30", "8", "*", "*", "mon,tue,wed,thu,fri,sun")),
        ("0 9 * * 5-7", ("0", "9", "*", "*", "fri,sat,sun")),
        ("0 9 * * fri-mon", ("0", "9", "*", "*", "mon,fri,sat,sun")),
        ("*/100 */99999999999 * * *", ("0", "0", "*", "*", "*")),  # a step past the range
    ],
)
def test_parse_schedule(text: str, fields: tuple[str, ...]) -> None:
    s = parse_schedule(text)
    assert (s.minute, s.hour, s.day, s.month, s.day_of_week) == fields


@pytest.mark.parametrize(
    "text",
    [
        "someday",
        "mon 25:00",
        "0 9 * *",
        "61 9 * * mon",
        "0 9 * * funday",
        "*/0 * * * *",
        "0 9 * * 1/0",
        "0 9 * * 8",
        "5-2 * * * *",
        "0 9 0 * *",
        "0 9 * 13 *",
        "0 9 * * mon,",
        "0 " + "9" * 5000 + " * * *",
    ],
)
def test_bad_schedules(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def test_period_is_the_iso_week_in_the_site_zone() -> None:
    # Monday 2024-02-26 05:00 UTC is still Sunday evening in Los Angeles.
    moment = datetime(2024, 2, 26, 5, 0, tzinfo=UTC)
    assert period_of(moment, LA) == "2024-W08"
    assert period_of(moment, UTC) == "2024-W09"
    start, end = period_bounds("2024-W09", LA)
    assert start == datetime(2024, 2, 26, tzinfo=LA) and (end - start).days == 7
