"""What an import of a WordPress site asks for, and the cursor it keeps (pure functions).

An incremental run makes two listings from the cursor minus ``CURSOR_OVERLAP``:

- ``modified_after``: every post edited since (including unpublished and trashed ones
  when credentials let us see them);
- ``after``: every post *published* since. When wp-cron publishes a scheduled post,
  WordPress changes its status only: its modified date stays the moment the editor
  pressed "Schedule", often days before, and ``modified_after`` never lists it. Its
  publish date is the scheduled time, after the last import.

The cursor is the newest ``modified_gmt`` seen, but never later than the time the site
answered (its ``Date`` header, else our clock): a post created scheduled carries its
future publish date as its modified date, and a cursor taken from it would skip every
change until then. It advances only after listings read whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# WordPress compares ``modified_after`` and ``after`` with the site-local post_modified and
# post_date columns. 6.1 converts the time asked into the site's zone first; not every
# version did, and local times repeat when daylight saving ends or the site's zone is
# changed. So we ask from this much before the cursor: nothing is missed whatever the
# site's zone (UTC-12 to UTC+14), and a cron run up to that late still reaches the next
# import. The overlap costs a few unchanged posts, recognised by their fingerprint.
CURSOR_OVERLAP = timedelta(hours=14)


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """The listings of one run: keyword arguments of ``WordPressSite.posts``."""

    listings: tuple[dict[str, datetime | None], ...]


def sync_plan(cursor: datetime | None) -> SyncPlan:
    """Everything when there is no cursor; else what was edited or published since."""
    if cursor is None:
        return SyncPlan(({},))
    since = cursor - CURSOR_OVERLAP
    return SyncPlan(({"modified_after": since}, {"published_after": since}))


def next_cursor(
    saved: datetime | None, newest: datetime | None, answered: datetime, *, complete: bool
) -> datetime | None:
    """The cursor to keep after a run.

    ``newest`` is the newest modified date seen that is not after ``answered`` (the reply's
    ``Date``, or now). An incomplete run keeps ``saved``: what it missed is read again.
    The result is never later than ``answered``.
    """
    if not complete:
        return saved
    candidates = [c for c in (saved, newest) if c is not None]
    if not candidates:
        return None
    return min(max(candidates), answered)
