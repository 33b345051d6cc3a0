"""``build``'s second half: the archive of sent digests under ``archive.output_dir``.

Layout (public at ``archive.base_url``)::

    index.html  page/2/index.html ...     every issue, newest first, issues_per_page a page
    2026-W49/index.html ...               one page per sent digest
    rss.xml  atom.xml  feed.json          the newest items_per_feed issues
    style.css                             the digest's stylesheet plus page.css
    .build-state.json                     what the last build wrote

The same rules as the feeds: every file has a fingerprint of its inputs (the issue refs it
shows, the site values, the template sources); a file whose fingerprint, size and mtime match
the state is not even rendered, so a rebuild with nothing new costs one query; a rendered file
with the same bytes is not rewritten; new bytes are written atomically (``write_atomic``).
A sent digest is frozen (edits are refused once its first message was accepted), so its page
shows what was sent even if a record was edited or withdrawn afterwards.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from kcrush_feeds.archive.render import (
    FEED_NAMES,
    STYLESHEET,
    ArchiveSite,
    Issue,
    Renderer,
    make_issue,
)
from kcrush_feeds.config import Config
from kcrush_feeds.digest.desk import editorial_of
from kcrush_feeds.digest.editing import apply
from kcrush_feeds.errors import ConfigError, FeedError, StoreError
from kcrush_feeds.feeds.files import BuildState, fingerprint_of, write_if_changed
from kcrush_feeds.model import IssueRef
from kcrush_feeds.store import editorial as store_editorial
from kcrush_feeds.store.archive import sent_issues
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import load_digest

STATE_NAME = ".build-state.json"
ARCHIVE_VERSION = "1"  # bump when the built-in pages change for the same input
_WRITERS = 4  # fsync dominates a full build and releases the GIL


@dataclass(slots=True)
class ArchiveReport:
    """What ``build_archive`` did. Paths are relative to ``output_dir``."""

    output_dir: Path
    issues: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)  # public URLs, for WebSub

    @property
    def changed(self) -> bool:
        return bool(self.written)

    def summary(self) -> str:
        return (
            f"archive: {self.issues} issues: {len(self.written)} files written, "
            f"{len(self.unchanged)} unchanged"
        )


def archive_site(config: Config) -> ArchiveSite:
    """The values every archive page shows, from the config."""
    archive = config.archive
    if archive is None:
        raise ConfigError(f"{config.path}: [archive]: the section is missing")
    subscriptions = config.subscriptions
    return ArchiveSite(
        name=f"{config.site.title} Weekly",
        site_title=config.site.title,
        site_url=config.site.url,
        description=config.site.description,
        language=config.site.language,
        tz=config.site.tz,
        base_url=archive.base_url.rstrip("/"),
        subscribe_url=None
        if subscriptions is None
        else f"{subscriptions.base_url.rstrip('/')}/subscribe",
        feeds_url=f"{config.feeds.base_url.rstrip('/')}/",
        image=config.site.image,
        hub=config.feeds.websub_hub,
    )


def template_dirs(config: Config) -> list[Path]:
    archive = config.archive
    if archive is None or archive.templates_dir is None:
        return []
    directory = config.resolve(archive.templates_dir)
    if not directory.is_dir():
        raise ConfigError(
            f"{config.path}: archive.templates_dir: {directory} is not a directory",
            hint="create it (copy the files of templates/archive/ you want to change)",
        )
    return [directory]


def _ref_key(ref: IssueRef) -> list[object]:
    return [ref.period, ref.digest_id, int(ref.created_at.timestamp())]


def build_archive(config: Config, store: Store, now: datetime) -> ArchiveReport:
    """Write the archive pages and feeds of every sent digest under ``archive.output_dir``.

    ``now`` is not shown anywhere (the bytes never depend on the clock); it is taken for
    symmetry with ``build_feeds`` and for a later "not before" rule.
    """
    del now
    site = archive_site(config)
    archive = config.archive
    assert archive is not None
    output_dir = config.resolve(archive.output_dir)
    report = ArchiveReport(output_dir=output_dir)
    renderer = Renderer(site, template_dirs(config))
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        refs = sent_issues(store)
        report.issues = len(refs)
        state = BuildState.load(output_dir / STATE_NAME)
        base = fingerprint_of(ARCHIVE_VERSION, renderer.templates_key(), site.key())
        loaded: dict[str, Issue] = {}

        def issue(ref: IssueRef) -> Issue:
            found = loaded.get(ref.period)
            if found is None:
                digest = load_digest(store, ref.period)
                if digest is None:  # deleted between the two queries
                    raise StoreError(f"{store.path}: the digest {ref.period} disappeared")
                # What was sent: the editor's pins and drops applied, the note on top.
                edit = editorial_of(config, store_editorial.get_editorial(store, digest.id))
                note = edit.note.html if edit.note is not None else ""
                found = loaded[ref.period] = make_issue(site, apply(digest, edit).digest, note)
            return found

        pending: list[tuple[str, str, Future[bool], str | None]] = []
        with ThreadPoolExecutor(max_workers=_WRITERS, thread_name_prefix="archive-writer") as pool:

            def put(name: str, inputs: str, render: Any, feed_url: str | None = None) -> None:
                target = output_dir / name
                if state.fresh(name, inputs, target):
                    report.unchanged.append(name)
                    return
                pending.append(
                    (name, inputs, pool.submit(write_if_changed, target, render()), feed_url)
                )

            for i, ref in enumerate(refs):
                newer = refs[i - 1].period if i > 0 else None
                older = refs[i + 1].period if i + 1 < len(refs) else None
                put(
                    f"{ref.period}/index.html",
                    fingerprint_of(base, _ref_key(ref), newer, older),
                    lambda ref=ref, newer=newer, older=older: renderer.issue_page(
                        issue(ref), newer, older
                    ),
                )
            per_page = archive.issues_per_page
            pages = max(1, -(-len(refs) // per_page))
            for page in range(1, pages + 1):
                chunk = refs[(page - 1) * per_page : page * per_page]
                name = "index.html" if page == 1 else f"page/{page}/index.html"
                put(
                    name,
                    fingerprint_of(base, page, pages, [_ref_key(r) for r in chunk]),
                    lambda chunk=chunk, page=page: renderer.index_page(
                        [issue(r) for r in chunk], page, pages
                    ),
                )
            newest = refs[: archive.items_per_feed]
            feed_inputs = fingerprint_of(base, [_ref_key(r) for r in newest])
            for fmt in site.formats:
                put(
                    FEED_NAMES[fmt],
                    f"{fmt}:{feed_inputs}",
                    lambda fmt=fmt: renderer.feed(fmt, [issue(r) for r in newest]),
                    site.feed_url(fmt),
                )
            put(STYLESHEET, base, renderer.stylesheet)
            for name, inputs, future, feed_url in pending:
                if future.result():
                    report.written.append(name)
                    if feed_url is not None:
                        report.changed_feeds.append(feed_url)
                else:
                    report.unchanged.append(name)
                state.remember(name, inputs, output_dir / name)
        state.save()
    except sqlite3.Error as e:
        raise StoreError(f"{store.path}: cannot read the digests: {e}") from e
    except OSError as e:
        raise FeedError(f"{e.filename or output_dir}: cannot write: {e.strerror}") from e
    return report
