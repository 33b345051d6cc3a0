"""Import from the configured sources (WordPress sites, feeds, record files), incrementally.

Each source has a row in the ``sources`` table (migration 0004): its cursor (WordPress: the
newest ``modified_gmt`` seen, see ``wordpress_sync``), the ETag and Last-Modified of a
feed, when it last succeeded and the last error. ``import_sources`` is what ``schedule``
calls before every build and what ``import`` calls for ``--wordpress`` and feed URLs: one
failing source is reported and never stops the others.

Withdrawal: after a ``full`` re-read of a WordPress site verified whole, records of that source
that the site no longer lists are marked ``records.withdrawn = 1`` (never deleted), and so
are posts the site reports with a status other than publish/future. A record that comes
back is un-withdrawn. Feeds are windows onto the newest entries, so an entry missing from
a feed is not withdrawn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from kcrush_feeds.config import Config, SourceConfig, secret_from_env
from kcrush_feeds.errors import InputError, KcrushError, RecordError
from kcrush_feeds.model import Record, Source, SourceState
from kcrush_feeds.records.importer import ImportReport, Problem, import_files, import_records
from kcrush_feeds.records.normalize import normalize
from kcrush_feeds.sources.feed import parse_feed
from kcrush_feeds.sources.http import MB, HttpClient, HttpSettings
from kcrush_feeds.sources.wordpress import WordPressSite, format_utc, parse_gmt
from kcrush_feeds.sources.wordpress_sync import next_cursor, sync_plan
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store import sources as store_sources
from kcrush_feeds.store.db import Store

log = logging.getLogger("kcrush_feeds.sources.configured")


@dataclass(frozen=True, slots=True)
class SourceReport:
    """What one import of one source did."""

    source: Source
    fetched: int = 0  # posts or entries read (files: records read)
    requests: int = 0  # HTTP requests made (retries not counted)
    pages: int = 0
    not_modified: bool = False
    report: ImportReport = field(default_factory=ImportReport)
    withdrawn: int = 0
    restored: int = 0
    cursor: str | None = None
    error: str | None = None
    incomplete: str | None = None  # a full re-read that withdrew nothing, and why
    urls: tuple[str, ...] = ()  # the requests made (WordPress)

    @property
    def ok(self) -> bool:
        return self.error is None and self.report.ok

    def summary(self) -> str:
        """One line for the terminal and the ``sources.last_summary`` column."""
        if self.error is not None:
            return f"failed: {self.error}"
        if self.not_modified:
            return "not modified since the last import (HTTP 304)"
        r = self.report
        what = {"wordpress": "posts", "feed": "entries", "file": "records"}[self.source.kind]
        parts = [f"fetched {self.fetched} {what}"]
        if self.source.kind == "wordpress":
            parts[0] += f" in {self.pages} page{'s' if self.pages != 1 else ''}"
        text = (
            f"{', '.join(parts)}: {r.added} added, {r.updated} updated, "
            f"{r.unchanged} unchanged, {len(r.rejected)} rejected"
        )
        if self.withdrawn:
            text += f", {self.withdrawn} withdrawn"
        if self.restored:
            text += f", {self.restored} restored"
        if self.incomplete:
            text += f"; nothing withdrawn: {self.incomplete}"
        return text


def source_from_config(config: Config, entry: SourceConfig) -> Source:
    """The ``Source`` a ``[[sources]]`` entry of ``config`` names (paths resolved)."""
    if entry.url is not None:
        location = entry.url.rstrip("/") if entry.type == "wordpress" else entry.url
    else:
        assert entry.path is not None
        location = str(config.resolve(entry.path))
    return Source(
        entry.type,
        location,
        entry.name or "",
        tuple(entry.categories),
        entry.username,
        entry.password_env,
    )


# --- state ------------------------------------------------------------------------------


# --- importing --------------------------------------------------------------------------


def config_sources(config: Config) -> list[Source]:
    return [source_from_config(config, entry) for entry in config.sources]


def import_sources(
    config: Config,
    store: Store,
    now: datetime,
    *,
    full: bool = False,
    sources: Iterable[Source] | None = None,
    settings: HttpSettings | None = None,
    on_report: Callable[[SourceReport], None] | None = None,
) -> list[SourceReport]:
    """Import every source (default: ``config.sources``); one report per source.

    A source that fails is recorded (``sources.last_error``) and reported; the others
    still run. Failures are logged as warnings unless ``on_report`` is given (the caller
    then shows each report itself). ``full`` re-reads WordPress sites from the start and
    withdraws what they no longer list, and ignores the ETag of feeds.
    """
    chosen = list(config_sources(config) if sources is None else sources)
    reports = []
    with HttpClient(settings or HttpSettings()) as client:
        for source in chosen:
            report = import_source(
                source, config, store, now, client=client, full=full, log_errors=on_report is None
            )
            reports.append(report)
            if on_report is not None:
                on_report(report)
    return reports


def import_source(
    source: Source,
    config: Config,
    store: Store,
    now: datetime,
    *,
    client: HttpClient,
    full: bool = False,
    log_errors: bool = True,
) -> SourceReport:
    """Import one source; errors become the report's ``error`` (and ``last_error``)."""
    state = store_sources.get_state(store, source)
    try:
        if source.kind == "wordpress":
            report = _import_wordpress(source, state, config, store, now, client, full)
        elif source.kind == "feed":
            report = _import_feed(source, state, config, store, now, client, full)
        else:
            report = _import_file(source, config, store, now)
    except KcrushError as e:
        if log_errors:
            log.warning("%s: %s", source.label, e)
        store_sources.save(store, source, now, last_error=str(e))
        return SourceReport(source, error=str(e))
    store_sources.save(
        store, source, now, succeeded=True, last_error=None, last_summary=report.summary()
    )
    return report


def _import_wordpress(
    source: Source,
    state: SourceState,
    config: Config,
    store: Store,
    now: datetime,
    client: HttpClient,
    full: bool,
) -> SourceReport:
    auth = None
    if source.username is not None:
        password = secret_from_env(source.password_env, f"sources ({source.label}).password_env")
        auth = (source.username, password or "")
    site = WordPressSite(client, source.location, auth=auth, credentials=_credential_keys(source))
    saved = parse_gmt(state.cursor)
    if saved is not None and saved > now:
        # Older versions took the cursor from a post created scheduled (its modified date
        # is its future publish date): from there on no change would be asked for.
        log.warning(
            "%s: the saved cursor %s is in the future; reading every post once",
            source.label,
            state.cursor,
        )
        saved = None
    plan = sync_plan(None if full else saved)
    report = ImportReport()
    done: set[int] = set()  # posts already handled this run (the listings overlap)
    seen: set[str] = set()
    fetched = pages = withdrawn = restored = 0
    answered: datetime | None = None  # the server's Date of the first reply
    newest: datetime | None = None
    incomplete: str | None = None
    for listing in plan.listings:
        for page in site.posts(**listing):
            pages += 1
            if answered is None:
                answered = min(page.answered or now, now)
            candidate = page.newest_modified(answered)
            if candidate is not None and (newest is None or candidate > newest):
                newest = candidate
            batch: list[tuple[str, int | None, Record]] = []
            gone: list[str] = []
            for post in page.posts:
                if post.wp_id in done:
                    continue
                done.add(post.wp_id)
                fetched += 1
                if post.raw is None:
                    gone.append(post.record_id)
                    continue
                seen.add(post.record_id)
                record = _normalise(f"{source.label} post {post.wp_id}", post.raw, config, report)
                if record is not None:
                    batch.append((source.key, None, record))
            restored += _store(store, source, batch, now, report)
            with store.transaction():
                withdrawn += store_records.set_withdrawn(store, gone, withdrawn=True)
            if page.total_pages > 1:
                log.info("%s: page %d of %d stored", source.label, page.page, page.total_pages)
        incomplete = incomplete or site.incomplete
    cursor = next_cursor(saved, newest, answered or now, complete=incomplete is None)
    if incomplete is not None:
        # Some posts may not have been listed: ask again from the old cursor next time,
        # and withdraw nothing on the strength of an incomplete listing.
        log.warning(
            "%s: the listing was not whole (%s): nothing withdrawn, the cursor is kept, "
            "and the next import reads this window again",
            source.label,
            incomplete,
        )
    elif full:
        withdrawn += _withdraw_absent(store, source, seen)
    # Saved once the listings are read whole: the pages come in id order, so the newest
    # change of the first pages says nothing about the posts still to come.
    store_sources.save(store, source, now, cursor=format_utc(cursor) if cursor else None)
    return SourceReport(
        source,
        fetched=fetched,
        requests=site.requests,
        pages=pages,
        report=report,
        withdrawn=withdrawn,
        restored=restored,
        cursor=format_utc(cursor) if cursor else None,
        incomplete=incomplete if full else None,
        urls=tuple(site.urls),
    )


def _credential_keys(source: Source) -> str:
    """Where the credentials come from, by config key (for "not accepted" errors)."""
    where = f'[[sources]] "{source.label}"'
    return f'{where}: username = "{source.username}", password_env = "{source.password_env}"'


def _import_feed(
    source: Source,
    state: SourceState,
    config: Config,
    store: Store,
    now: datetime,
    client: HttpClient,
    full: bool,
) -> SourceReport:
    etag = last_modified = content_type = None
    requests = 0
    if source.is_url:
        headers = {
            "Accept": "application/atom+xml, application/rss+xml, "
            "application/feed+json, application/xml;q=0.9, */*;q=0.8"
        }
        if not full and state.etag:
            headers["If-None-Match"] = state.etag
        if not full and state.last_modified:
            headers["If-Modified-Since"] = state.last_modified
        response = client.get(source.location, headers=headers)
        requests = 1
        if response.not_modified:
            return SourceReport(source, requests=requests, not_modified=True, cursor=state.cursor)
        data = response.body
        etag = response.header("etag")
        last_modified = response.header("last-modified")
        content_type = response.header("content-type")
    else:
        data = _read_file(source.location, client.settings.max_bytes)
    parsed = parse_feed(
        data, source.location, content_type=content_type, default_categories=source.categories
    )
    report = ImportReport()
    batch = []
    for number, raw in enumerate(parsed.entries, start=1):
        record = _normalise(f"{source.label} entry {number}", raw, config, report)
        if record is not None:
            batch.append((source.key, None, record))
    restored = _store(store, source, batch, now, report)
    newest = parsed.newest
    previous = parse_gmt(state.cursor)
    if previous is not None and (newest is None or previous > newest):
        newest = previous
    cursor = format_utc(newest) if newest else None
    store_sources.save(store, source, now, etag=etag, last_modified=last_modified, cursor=cursor)
    return SourceReport(
        source,
        fetched=len(parsed.entries),
        requests=requests,
        report=report,
        restored=restored,
        cursor=cursor,
    )


def _import_file(source: Source, config: Config, store: Store, now: datetime) -> SourceReport:
    report = import_files(store, [source.location], tz=config.site.tz, now=now)
    fetched = report.added + report.updated + report.unchanged + len(report.rejected)
    return SourceReport(source, fetched=fetched, report=report)


def _read_file(path: str, limit: int) -> bytes:
    try:
        with Path(path).open("rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise InputError(path, f"cannot open: {e.strerror}") from e
    if len(data) > limit:
        raise InputError(path, f"the file is over the {limit / MB:.0f} MB limit for feeds")
    return data


def _normalise(
    where: str, raw: dict[str, object], config: Config, report: ImportReport
) -> Record | None:
    try:
        record, warnings = normalize(raw, config.site.tz)
    except RecordError as e:
        report.rejected.append(Problem(where, None, str(e)))
        return None
    report.warnings.extend(Problem(where, None, w) for w in warnings)
    return record


# --- withdrawal -----------------------------------------------------------------------------


def _store(
    store: Store,
    source: Source,
    batch: Sequence[tuple[str, int | None, Record]],
    now: datetime,
    report: ImportReport,
) -> int:
    """Store ``batch``; records of it that were withdrawn are restored. Returns how many."""
    was_withdrawn = store_records.withdrawn_among(store, [record.id for _, _, record in batch])
    import_records(store, batch, source=source.key, now=now, report=report)
    if was_withdrawn:
        with store.transaction():
            # An unchanged record is not rewritten by the upsert, so clear the flag here.
            store_records.set_withdrawn(store, sorted(was_withdrawn), withdrawn=False)
    return len(was_withdrawn)


def _withdraw_absent(store: Store, source: Source, seen: set[str]) -> int:
    """After a complete re-read: withdraw this source's records the site no longer lists."""
    if not seen:
        # An empty answer is far likelier a broken site or a plugin hiding posts than an
        # editor deleting everything: keep the records, say so.
        log.warning("%s: the full re-read listed no posts; nothing withdrawn", source.label)
        return 0
    return store_records.withdraw_absent(store, source.key, seen)
