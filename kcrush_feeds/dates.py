"""Dates shown to people: one format, in ``site.timezone``, everywhere (feed pages, the
archive, the email). Feeds themselves carry machine dates (RFC 822 / RFC 3339, UTC).

English month names from a table, not ``strftime("%b")``: the bytes of a page must not
depend on the locale of the machine that built it.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def local_date(moment: datetime, tz: tzinfo) -> str:
    """``Apr 25, 2026``: the day ``moment`` falls on in ``tz``, as every page shows it."""
    local = moment.astimezone(tz)
    return f"{MONTHS[local.month - 1][:3]} {local.day}, {local.year}"


def long_date(moment: datetime, tz: tzinfo) -> str:
    """``April 25, 2026`` (headings: "Week of ...")."""
    local = moment.astimezone(tz)
    return f"{MONTHS[local.month - 1]} {local.day}, {local.year}"


def iso_date(moment: datetime, tz: tzinfo) -> str:
    """``2026-04-25``, the local day for a ``<time datetime>`` attribute."""
    return moment.astimezone(tz).date().isoformat()
