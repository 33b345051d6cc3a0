"""``build``: plan the feeds from the config and the store, and write the files that changed.

Layout under ``feeds.output_dir`` (public at ``feeds.base_url``)::

    {slug}/rss.xml  {slug}/atom.xml  {slug}/feed.json    one directory per feed
    all/rss.xml ...                                      every record
    {slug}/index.html                                    the feed as a page for people
    feeds.opml  index.html  style.css
    .build-state.json                                    what the last build wrote

A rebuild with nothing changed must stay cheap whatever the store size, so every feed first
gets a fingerprint of its inputs (the channel as configured, plus the ids and record
fingerprints of its newest ``items_per_feed`` entries, read off the indexes without loading
any record). When a file's fingerprint, size and mtime match what ``.build-state.json``
remembers, the file is left alone without generating anything. Otherwise the feed is
rendered; identical bytes are still not rewritten (the mtime stays), and different bytes go
to a temporary file in the same directory, fsynced, then ``os.replace``d: a reader never
sees half a file.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kcrush_feeds.config import Config
from kcrush_feeds.errors import ConfigError, FeedError, StoreError
from kcrush_feeds.feeds.entries import Channel, Entry, Listing, prepare_entry
from kcrush_feeds.feeds.files import (
    STALE_TEMP_AGE,
    BuildState,
    fingerprint_of,
    remove_stale_temp_files,
    write_if_changed,
)
from kcrush_feeds.feeds.formats import FORMAT_VERSION, RENDERERS
from kcrush_feeds.feeds.opml import render_opml
from kcrush_feeds.feeds.pages import (
    render_feed_page,
    render_index,
    render_stylesheet,
    templates_key,
)
from kcrush_feeds.feeds.slugs import (
    CLASH_HINT,
    check_unique,
    clash_message,
    clashing_slugs,
    name_key,
    slugify,
)
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store, to_timestamp

ALL_SLUG = "all"
FILE_NAMES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}
OPML_NAME = "feeds.opml"
INDEX_NAME = "index.html"
STYLE_NAME = "style.css"  # the digest's stylesheet plus page.css, for the pages
PAGE_FORMAT = "page"  # the pseudo-format of {slug}/index.html in the state file
STATE_NAME = ".build-state.json"
_CACHE_ENTRIES = 20_000  # prepared entries kept for the feeds that share them
_WRITERS = 4  # threads writing files
_IN_FLIGHT = 32  # rendered files waiting to be written, at most
_FEED_FILE_RE = re.compile(
    r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?/(?:rss\.xml|atom\.xml|feed\.json|index\.html)"
)


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """One planned feed. ``keys`` are case-folded record category names; None means all."""

    slug: str
    title: str
    description: str
    keys: tuple[str, ...] | None
    configured: bool  # from [[feeds.categories]] (or "all"), not discovered in the records


@dataclass(slots=True)
class BuildReport:
    """What ``build_feeds`` did. Paths are relative to ``output_dir``."""

    output_dir: Path
    feeds: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # of feeds gone from the plan, kept
    # Record categories whose feed was not built: their slug clashes (the rest is built).
    clashes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)

    def summary(self) -> str:
        text = (
            f"{self.feeds} feeds: {len(self.written)} files written, "
            f"{len(self.unchanged)} unchanged, {len(self.removed)} removed"
        )
        if self.stale:
            text += f", {len(self.stale)} left over (build --prune removes them)"
        if self.clashes:
            text += f", {len(self.clashes)} not built (two categories share a slug)"
        return text


# --- planning ------------------------------------------------------------------------------


def plan_feeds(config: Config, store: Store, clashes: list[str] | None = None) -> list[FeedSpec]:
    """The feeds to build: "all", the configured categories, then (with
    ``feeds.auto_categories``) one per record category no configured feed gathers.

    Raises ``FeedError`` when two configured feeds would share a directory. A record
    category whose slug another feed has (``K Drama`` next to ``K-Drama``) gets no feed;
    with ``clashes`` the reason is added there and every other feed is planned, without
    it ``FeedError`` is raised.
    """
    feeds_cfg = config.feeds
    site = config.site
    specs = [
        FeedSpec(
            slug=ALL_SLUG,
            title=feeds_cfg.all_title or site.title,
            description=site.description or f"Everything new on {site.title}",
            keys=None,
            configured=True,
        )
    ]
    claimed: dict[str, str] = {}
    for category in feeds_cfg.categories:
        keys = tuple(dict.fromkeys(name_key(m) for m in category.matches))
        for key in keys:
            claimed.setdefault(key, category.slug)
        specs.append(
            FeedSpec(
                slug=category.slug,
                title=category.title,
                description=category.description or f"{category.title} from {site.title}",
                keys=keys,
                configured=True,
            )
        )
    check_unique((spec.slug, f"the feed {spec.title!r}") for spec in specs)
    if feeds_cfg.auto_categories:
        # Withdrawn and future records count too: their category keeps a (possibly empty)
        # feed rather than leaving stale files behind.
        unclaimed = [(k, n) for k, n in store_records.category_keys(store) if k not in claimed]
        titles = {spec.slug: spec.title for spec in specs}
        clashing = clashing_slugs((n for _, n in unclaimed), taken=titles)
        for slug, names in clashing.items():
            whats = [f"the feed {n!r} (an unconfigured record category)" for n in names]
            if slug in titles:
                whats.append(f"the feed {titles[slug]!r}")
            message = clash_message(slug, whats)
            if clashes is None:
                raise FeedError(message, hint=CLASH_HINT)
            clashes.append(message)
        for key, name in unclaimed:
            slug = slugify(name)
            if slug in clashing:
                continue
            specs.append(
                FeedSpec(
                    slug=slug,
                    title=name,
                    description=f"{name} from {site.title}",
                    keys=(key,),
                    configured=False,
                )
            )
    return specs


# --- selecting entries ---------------------------------------------------------------------


def _newest(store: Store, spec: FeedSpec, now: int, limit: int) -> list[tuple[str, str]]:
    """(id, fingerprint) of the feed's newest visible records, newest first."""
    if spec.keys is None:
        return store_records.newest_fingerprints(store, now, limit)
    found: dict[str, tuple[int, str, str]] = {}
    for key in spec.keys:
        # Each key's query stops after ``limit`` visible rows; several keys are merged here.
        for rid, fingerprint, published in store_records.newest_in_category(store, key, now, limit):
            found[rid] = (published, rid, fingerprint)
    ordered = sorted(found.values(), key=lambda t: (-t[0], t[1]))[:limit]
    return [(rid, fingerprint) for _, rid, fingerprint in ordered]


# --- writing -------------------------------------------------------------------------------


def _inside(output_dir: Path, target: Path) -> Path:
    # Slugs are safe by construction; this guards against a symlinked directory too.
    resolved = target.resolve()
    if not resolved.is_relative_to(output_dir.resolve()):
        raise FeedError(f"{target}: refusing to write outside the output directory {output_dir}")
    return target


# --- the build -----------------------------------------------------------------------------


def _channel(config: Config, spec: FeedSpec) -> Channel:
    base = config.feeds.base_url.rstrip("/")
    return Channel(
        slug=spec.slug,
        title=spec.title,
        description=spec.description,
        site_url=config.site.url,
        site_title=config.site.title,
        language=config.site.language,
        urls={fmt: f"{base}/{spec.slug}/{FILE_NAMES[fmt]}" for fmt in config.feeds.formats},
        image=config.site.image,
        # No <?xml-stylesheet?>: browsers are removing XSLT; {slug}/index.html is the page.
        stylesheet=None,
        hub=config.feeds.websub_hub,
    )


def build_feeds(config: Config, store: Store, now: datetime, *, prune: bool = False) -> BuildReport:
    """Write every feed (and its page), the OPML file, index.html and style.css under
    ``config.output_dir``.

    Records that are withdrawn or published after ``now`` are left out. Files whose bytes
    would not change are not touched. Files of feeds no longer planned are removed only
    with ``prune``; otherwise they are listed in ``BuildReport.stale``.
    """
    output_dir = config.output_dir
    report = BuildReport(output_dir=output_dir)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FeedError(f"{output_dir}: cannot create the output directory: {e.strerror}") from e
    # File times are wall-clock times, whatever ``now`` is pinned to.
    remove_stale_temp_files(output_dir, older_than=time.time() - STALE_TEMP_AGE)
    try:
        specs = plan_feeds(config, store, report.clashes)
        report.feeds = len(specs)
        # Only names of our layout: --prune deletes what is listed here.
        state = BuildState.load(output_dir / STATE_NAME, _FEED_FILE_RE.fullmatch)
        planned: set[str] = set()
        listings: list[Listing] = []
        entries: dict[tuple[str, str], Entry] = {}  # (id, fingerprint): each record once
        cutoff = to_timestamp(now)
        overrides = page_template_dirs(config)
        pages_key = templates_key(overrides)
        with _Writer(report, state) as writer:
            for spec in specs:
                channel = _channel(config, spec)
                listings.append(
                    Listing(
                        title=spec.title,
                        description=spec.description,
                        urls=dict(channel.urls),
                        paths={f: f"{spec.slug}/{FILE_NAMES[f]}" for f in channel.urls},
                        page=f"{spec.slug}/",
                    )
                )
                newest = _newest(store, spec, cutoff, config.feeds.items_per_feed)
                # The zone and the page templates too: the feed's page shows local dates.
                inputs = fingerprint_of(
                    FORMAT_VERSION, _channel_key(channel), config.site.timezone, pages_key, newest
                )
                pending: list[tuple[str, str, Path]] = []
                for fmt in (*config.feeds.formats, PAGE_FORMAT):
                    name = f"{spec.slug}/{FILE_NAMES.get(fmt, INDEX_NAME)}"
                    planned.add(name)
                    target = _inside(output_dir, output_dir / name)
                    if state.fresh(name, f"{fmt}:{inputs}", target):
                        report.unchanged.append(name)
                    else:
                        pending.append((fmt, name, target))
                if not pending:
                    continue
                feed_entries = _entries(store, config, newest, entries)
                for kind, name, target in pending:
                    if kind == PAGE_FORMAT:
                        data = render_feed_page(
                            channel, feed_entries, config.site.tz, overrides, pages_key
                        )
                    else:
                        data = RENDERERS[kind](channel, feed_entries)
                    writer.put(name, target, data, inputs=f"{kind}:{inputs}")
            _write_pages(config, listings, writer, overrides, pages_key)
        _stale(output_dir, state, planned, prune, report)
        state.save()
    except sqlite3.Error as e:
        raise StoreError(f"{store.path}: cannot read the records: {e}") from e
    except OSError as e:
        raise FeedError(f"{e.filename or output_dir}: cannot write: {e.strerror}") from e
    return report


def page_template_dirs(config: Config) -> tuple[Path, ...]:
    """``feeds.templates_dir`` (the editor's copies of the page templates), if set."""
    if config.feeds.templates_dir is None:
        return ()
    directory = config.resolve(config.feeds.templates_dir)
    if not directory.is_dir():
        raise ConfigError(
            f"{config.path}: feeds.templates_dir: {directory} is not a directory",
            hint="create it (copy the files of templates/feeds/ you want to change)",
        )
    return (directory,)


def _channel_key(channel: Channel) -> list[object]:
    return [
        channel.slug, channel.title, channel.description, channel.site_url, channel.site_title,
        channel.language, sorted(channel.urls.items()), channel.image, channel.stylesheet,
        channel.hub,
    ]  # fmt: skip


def _entries(
    store: Store, config: Config, newest: list[tuple[str, str]],
    cache: dict[tuple[str, str], Entry],
) -> list[Entry]:  # fmt: skip
    missing = [rid for rid, fp in newest if (rid, fp) not in cache]
    if missing and len(cache) > _CACHE_ENTRIES:
        cache.clear()  # bounded memory with thousands of feeds; "all" overlaps most anyway
    if missing:
        loaded = store_records.load_by_ids(store, missing)
        for rid, fp in newest:
            record = loaded.get(rid)
            if record is not None:
                cache[(rid, fp)] = prepare_entry(record, site_url=config.site.url)
    return [cache[key] for key in newest if key in cache]


class _Writer:
    """Writes files on a few threads: fsync dominates a full build and releases the GIL.

    At most ``_IN_FLIGHT`` rendered files wait in memory; results are recorded in the
    order the files were given, so reports and the state file are deterministic.
    """

    def __init__(self, report: BuildReport, state: BuildState) -> None:
        self.report = report
        self.state = state
        self.pool = ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="feed-writer")
        self.queue: deque[tuple[str, Path, str | None, Future[bool]]] = deque()

    def put(self, name: str, target: Path, data: bytes, *, inputs: str | None) -> None:
        """Write ``data`` to ``target`` unless it holds those bytes already."""
        self.queue.append((name, target, inputs, self.pool.submit(write_if_changed, target, data)))
        while len(self.queue) > _IN_FLIGHT:
            self._finish()

    def _finish(self) -> None:
        name, target, inputs, future = self.queue.popleft()
        (self.report.written if future.result() else self.report.unchanged).append(name)
        if inputs is not None:
            self.state.remember(name, inputs, target)

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                while self.queue:
                    self._finish()
        finally:
            self.pool.shutdown(wait=True)


def _write_pages(
    config: Config,
    listings: list[Listing],
    writer: _Writer,
    overrides: tuple[Path, ...],
    key: str,
) -> None:
    """OPML, index.html and style.css: small, so rendered every time and compared."""
    output_dir = config.output_dir
    base = config.feeds.base_url.rstrip("/")
    site = config.site
    title = f"{site.title} feeds"
    pages = {
        OPML_NAME: render_opml(title, site.url, listings),
        INDEX_NAME: render_index(
            title,
            site.description,
            site.language,
            OPML_NAME,
            f"{base}/{OPML_NAME}",
            listings,
            overrides,
            key,
        ),
        STYLE_NAME: render_stylesheet(overrides, key),
    }
    for name, data in pages.items():
        writer.put(name, output_dir / name, data, inputs=None)


def _stale(
    output_dir: Path, state: BuildState, planned: set[str], prune: bool, report: BuildReport
) -> None:
    """Feed files an earlier build wrote that no planned feed writes any more.

    Only files ``.build-state.json`` lists are candidates: the output directory may hold
    other people's files (even an ``rss.xml`` of another tool), and those are never touched.
    """
    for name in sorted(set(state.files) - planned):
        path = output_dir / name
        if not prune:
            if path.exists():
                report.stale.append(name)
            else:
                state.forget(name)
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            report.removed.append(name)
        state.forget(name)
        with contextlib.suppress(OSError):  # only when nothing else is left in it
            path.parent.rmdir()
