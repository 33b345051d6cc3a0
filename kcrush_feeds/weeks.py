"""The digest's period: the ISO week in the site's time zone.

Pure functions: ``now`` always comes in from the caller.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, tzinfo


def period_of(moment: datetime, tz: tzinfo) -> str:
    """The digest period a moment falls in: its ISO week in the site's zone, "2024-W09"."""
    year, week, _ = moment.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def period_bounds(period: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start (Monday 00:00 local) and end (next Monday) of a period such as "2024-W09"."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", check_period(period))
    assert match is not None  # check_period matched it
    start = datetime.fromisocalendar(int(match[1]), int(match[2]), 1).replace(tzinfo=tz)
    return start, (start + timedelta(days=7)).replace(tzinfo=tz)


def weeks_in_year(year: int) -> int:
    """52 or 53: the ISO week of 28 December is always the year's last."""
    return date(year, 12, 28).isocalendar()[1]


def check_period(text: str) -> str:
    """``text`` if it names an ISO week that exists, else ValueError giving the valid range."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", text)
    if not match:
        raise ValueError(f"{text!r} is not an ISO week such as 2024-W09 (YYYY-Www)")
    year, week = int(match[1]), int(match[2])
    if not 1 <= year <= 9998:  # 9999-W52 ends past datetime.max
        raise ValueError(f"{text!r}: the year must be 0001 to 9998")
    last = weeks_in_year(year)
    if not 1 <= week <= last:
        raise ValueError(f"{text!r}: {year} has the weeks {year}-W01 to {year}-W{last}")
    return text
