"""What ``build`` (and ``schedule``'s build job) runs: the feeds, the archive, the hub pings.

Plain values in and out (no click): the command prints the result, the scheduler logs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from kcrush_feeds.archive.build import ArchiveReport, build_archive
from kcrush_feeds.config import Config
from kcrush_feeds.feeds.build import FILE_NAMES, BuildReport, build_feeds
from kcrush_feeds.feeds.websub import PENDING_NAME, PingReport, ping_hub
from kcrush_feeds.store.db import Store

_FEED_FILES = frozenset(FILE_NAMES.values())


@dataclass(frozen=True, slots=True)
class Published:
    feeds: BuildReport
    archive: ArchiveReport | None  # None without [archive]
    pings: PingReport | None  # None without feeds.websub_hub

    def summary(self) -> str:
        parts = [self.feeds.summary()]
        if self.archive is not None:
            parts.append(self.archive.summary())
        if self.pings is not None:
            parts.append(self.pings.summary())
        return "; ".join(parts)


def changed_feed_urls(config: Config, report: BuildReport) -> list[str]:
    """The public URLs of the feed files (not pages) a feeds build wrote."""
    base = config.feeds.base_url.rstrip("/")
    return [
        f"{base}/{name}"
        for name in report.written
        if name.count("/") == 1 and name.rpartition("/")[2] in _FEED_FILES
    ]


def publish(config: Config, store: Store, now: datetime, *, prune: bool = False) -> Published:
    """Build the feeds, then the archive (with ``[archive]``), then ping the WebSub hub
    (with ``feeds.websub_hub``) once for every feed either build changed."""
    feeds = build_feeds(config, store, now, prune=prune)
    archive = build_archive(config, store, now) if config.archive is not None else None
    pings = None
    hub = config.feeds.websub_hub
    if hub is not None:
        changed = changed_feed_urls(config, feeds)
        if archive is not None:
            changed += archive.changed_feeds
        pings = ping_hub(hub, changed, config.output_dir / PENDING_NAME)
    return Published(feeds, archive, pings)
