"""The digest's period: the ISO week in the site's time zone.

Pure functions: ``now`` always comes in from the caller.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo


def period_of(moment: datetime, tz: tzinfo) -> str:
    """The digest period a moment falls in: its ISO week in the site's zone, "2024-W09"."""
    year, week, _ = moment.astimezone(tz).isocalendar()
    return f"{year}-W{week:02d}"


def period_bounds(period: str, tz: tzinfo) -> tuple[datetime, datetime]:
    """Start (Monday 00:00 local) and end (next Monday) of a period such as "2024-W09"."""
    match = re.fullmatch(r"(\d{4})-W(\d{2})", period)
    if not match:
        raise ValueError(f"{period!r} is not a week such as 2024-W09")
    start = datetime.fromisocalendar(int(match[1]), int(match[2]), 1).replace(tzinfo=tz)
    return start, (start + timedelta(days=7)).replace(tzinfo=tz)
