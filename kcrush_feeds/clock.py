"""The one place that reads the wall clock.

``KCRUSH_FEEDS_NOW`` (an ISO 8601 date-time) pins "now" for demos and for tests that run
the real commands in a subprocess; nothing below the CLI reads the clock itself.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from kcrush_feeds.errors import UsageError

ENV_NOW = "KCRUSH_FEEDS_NOW"


def now() -> datetime:
    pinned = os.environ.get(ENV_NOW)
    if not pinned:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(pinned)
    except ValueError as e:
        raise UsageError(f"{ENV_NOW}={pinned!r} is not an ISO 8601 date-time") from e
    if moment.tzinfo is None:
        raise UsageError(f"{ENV_NOW}={pinned!r} needs an offset, such as +00:00")
    return moment.astimezone(UTC)
