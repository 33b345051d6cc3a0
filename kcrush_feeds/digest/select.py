"""What is new: the weekly digest, decided by the ledger of what earlier digests included.

A record goes into a digest when no earlier digest included it (``digest_items`` is the
ledger, so a record edited or re-dated later is never sent twice), it is not withdrawn, its
``published`` time has passed (future-dated records wait), it belongs to a section, and it
is new since the previous digest: published after the previous digest's ``until``, or
first seen by this store after it while dated no earlier than the previous digest's window
start (an article published late but back-dated to last week is not lost; an old archive
imported today does not flood the digest). The very first digest looks back only
``digest.first_window``.

``open_digest`` creates the digest of the current period once and freezes it (its items and
a snapshot of what they show): every later call in the same period returns the same digest,
so an interrupted ``send`` resumes it. ``compute_digest`` computes without storing anything
(for ``preview``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from kcrush_feeds.config import Config
from kcrush_feeds.digest.sections import Catalogue
from kcrush_feeds.store.db import Store, from_timestamp, to_timestamp
from kcrush_feeds.text import has_tags, plain_text, truncate
from kcrush_feeds.weeks import period_bounds, period_of

EXCERPT_CHARS = 300  # the plain-text excerpt of an item, cut at a word
EXCERPT_HTML_CHARS = 600  # an HTML summary longer than this (as text) is shown as text
_INLINE_TAG_RE = re.compile(
    r"</?(?:a|abbr|b|bdi|bdo|cite|code|data|dfn|em|i|kbd|mark|q|s|samp|small|span|strong|"
    r"sub|sup|time|u|var)\b[^<>]*>",
    re.IGNORECASE,
)
CATCH_ALL_TITLE = "New this week"  # the one section when no feeds or sections are configured


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One record as the digest shows it (frozen with the digest)."""

    record_id: str
    url: str
    title: str
    published: datetime
    excerpt: str  # plain text, at most EXCERPT_CHARS
    excerpt_html: str  # the sanitised HTML summary, or "" (then templates show ``excerpt``)
    image_url: str | None
    image_alt: str
    category: str  # the category to show: the feed title it belongs to, or its own name
    topics: tuple[str, ...]  # digest categories (feed slugs) it belongs to
    section: int  # index into the digest's sections
    section_title: str
    authors: tuple[str, ...] = ()

    def to_json(self) -> str:
        data = asdict(self)
        data["published"] = to_timestamp(self.published)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> DigestItem:
        data = json.loads(text)
        data["published"] = from_timestamp(data["published"])
        data["topics"] = tuple(data["topics"])
        data["authors"] = tuple(data["authors"])
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Digest:
    """One period's digest. ``id`` is 0 for a digest computed for preview and not stored."""

    id: int
    period: str  # "2024-W09"
    created_at: datetime
    items: tuple[DigestItem, ...]  # by section, then newest first
    since: datetime  # the window start this digest used
    until: datetime  # records published up to this time were considered
    status: str = "sending"  # sending | done

    @property
    def stored(self) -> bool:
        return self.id != 0

    def items_for(self, categories: Iterable[str] | None) -> tuple[DigestItem, ...]:
        """The items a subscriber with these digest categories gets (None: all of them)."""
        if categories is None:
            return self.items
        chosen = frozenset(categories)
        return tuple(item for item in self.items if chosen.intersection(item.topics))


def sections_of(items: Iterable[DigestItem]) -> list[tuple[str, list[DigestItem]]]:
    """``items`` grouped by section, in section order: [(title, items), ...]."""
    grouped: dict[int, tuple[str, list[DigestItem]]] = {}
    for item in items:
        grouped.setdefault(item.section, (item.section_title, []))[1].append(item)
    return [grouped[index] for index in sorted(grouped)]


# --- computing ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Previous:
    period: str
    since: int
    until: int


def _previous(conn: sqlite3.Connection, period: str) -> _Previous | None:
    row = conn.execute(
        "SELECT period, since, until FROM digests WHERE period < ? ORDER BY period DESC LIMIT 1",
        (period,),
    ).fetchone()
    return None if row is None else _Previous(*row)


def compute_digest(
    store: Store, config: Config, now: datetime, *, period: str | None = None
) -> Digest | None:
    """The digest ``now``'s period would get, without storing anything; None if nothing is
    new. With ``period`` (a past or current week), as it would have been at that week's end
    (or ``now``, if earlier), judged by the digests before that week."""
    tz = config.site.tz
    if period is None:
        period = period_of(now, tz)
    else:
        _, end = period_bounds(period, tz)
        now = min(now, end - timedelta(seconds=1))
    items, since = _select(store.conn, config, now, period)
    if not items:
        return None
    return Digest(
        0,
        period,
        from_timestamp(to_timestamp(now)),
        tuple(items),
        from_timestamp(since),
        from_timestamp(to_timestamp(now)),
    )


def _select(
    conn: sqlite3.Connection, config: Config, now: datetime, period: str
) -> tuple[list[DigestItem], int]:
    digest = config.require_digest()
    catalogue = Catalogue.from_config(config)
    until = to_timestamp(now)
    previous = _previous(conn, period)
    if previous is None:
        since = to_timestamp(now - digest.first_window)
        late_after, late_since = until + 1, until + 1  # no "arrived late" rule yet
    else:
        since = previous.until
        late_after, late_since = previous.until, previous.since
    # Boundaries are inclusive on purpose: the ledger, not the clock, prevents repeats.
    rows = conn.execute(
        "SELECT id, url, title, published, summary, content_html, image_url, image_alt, "
        "categories, authors FROM records r "
        "WHERE withdrawn = 0 AND published <= :until "
        "AND (published >= :since OR (first_seen >= :late_after AND published >= :late_since)) "
        "AND NOT EXISTS (SELECT 1 FROM digest_items di JOIN digests d ON d.id = di.digest_id "
        "                WHERE di.record_id = r.id AND d.period < :period) "
        "ORDER BY published DESC, id",
        {
            "until": until,
            "since": since,
            "late_after": late_after,
            "late_since": late_since,
            "period": period,
        },
    )
    chosen: list[DigestItem] = []
    urls: set[str] = set()
    for row in rows:
        item = _item(row, catalogue)
        if item is None or item.url in urls:
            continue  # in no section; or the same article again under another id
        urls.add(item.url)
        chosen.append(item)
        if len(chosen) >= digest.max_items:
            break
    # Sections in configured order; newest first within each (the query's order).
    chosen.sort(key=lambda item: item.section)
    return chosen, since


def _item(row: tuple[Any, ...], catalogue: Catalogue) -> DigestItem | None:
    (
        record_id,
        url,
        title,
        published,
        summary,
        content_html,
        image_url,
        image_alt,
        categories_json,
        authors_json,
    ) = row
    categories: list[str] = json.loads(categories_json)
    topics = catalogue.topics(categories)
    if catalogue.gathers_everything:
        section_index, section_title = 0, CATCH_ALL_TITLE
    else:
        section = catalogue.section_of(topics)
        if section is None:
            return None
        section_index, section_title = section.index, section.title
    label = catalogue.titles[topics[0]] if topics else (categories[0] if categories else "")
    source = summary or content_html
    if has_tags(source):
        from kcrush_feeds.sanitize import sanitize_html  # nh3: not for `status`, which lists

        safe = sanitize_html(source, url)
    else:
        safe = source
    # Inline tags vanish without a space ("<b>ARMY</b>:" reads "ARMY:"), others part words.
    text = plain_text(_INLINE_TAG_RE.sub("", safe))
    excerpt_html = ""
    if summary and has_tags(summary) and len(text) <= EXCERPT_HTML_CHARS:
        excerpt_html = safe
    return DigestItem(
        record_id=record_id,
        url=url,
        title=title,
        published=from_timestamp(published),
        excerpt=truncate(text, EXCERPT_CHARS),
        excerpt_html=excerpt_html,
        image_url=image_url,
        image_alt=image_alt or "",
        category=label,
        topics=topics,
        section=section_index,
        section_title=section_title,
        authors=tuple(json.loads(authors_json)),
    )


# --- storing -----------------------------------------------------------------------------


def open_digest(store: Store, config: Config, now: datetime) -> Digest | None:
    """The digest of ``now``'s period: created and frozen on the first call if anything is
    new, the same digest on every later call in the period, None if nothing is new.

    One ``BEGIN IMMEDIATE`` transaction: two processes calling at once get the same digest.
    """
    period = period_of(now, config.site.tz)
    with store.transaction() as conn:
        existing = _load(conn, period)
        if existing is not None:
            return existing
        items, since = _select(conn, config, now, period)
        if not items:
            return None
        created = to_timestamp(now)
        cursor = conn.execute(
            "INSERT INTO digests (period, created_at, since, until) VALUES (?,?,?,?)",
            (period, created, since, created),
        )
        digest_id = cursor.lastrowid
        assert digest_id is not None
        conn.executemany(
            "INSERT INTO digest_items (digest_id, record_id, section, position) VALUES (?,?,?,?)",
            [
                (digest_id, item.record_id, item.section, position)
                for position, item in enumerate(items)
            ],
        )
        conn.executemany(
            "INSERT INTO digest_snapshots (digest_id, record_id, content) VALUES (?,?,?)",
            [(digest_id, item.record_id, item.to_json()) for item in items],
        )
    return Digest(
        digest_id,
        period,
        from_timestamp(created),
        tuple(items),
        from_timestamp(since),
        from_timestamp(created),
    )


def load_digest(store: Store, period: str) -> Digest | None:
    """The stored digest of ``period`` ("2024-W09"), exactly as it was frozen, or None."""
    return _load(store.conn, period)


def _load(conn: sqlite3.Connection, period: str) -> Digest | None:
    row = conn.execute(
        "SELECT id, created_at, since, until, status FROM digests WHERE period = ?", (period,)
    ).fetchone()
    if row is None:
        return None
    digest_id, created, since, until, status = row
    items = tuple(
        DigestItem.from_json(content)
        for (content,) in conn.execute(
            "SELECT s.content FROM digest_items di JOIN digest_snapshots s "
            "ON s.digest_id = di.digest_id AND s.record_id = di.record_id "
            "WHERE di.digest_id = ? ORDER BY di.position",
            (digest_id,),
        )
    )
    return Digest(
        digest_id,
        period,
        from_timestamp(created),
        items,
        from_timestamp(since),
        from_timestamp(until),
        status,
    )


def mark_done(store: Store, digest: Digest, now: datetime) -> None:
    """Record that every delivery of ``digest`` is settled (for ``send`` and ``status``)."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE digests SET status = 'done', finished_at = ? WHERE id = ?",
            (to_timestamp(now), digest.id),
        )


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """A stored digest at a glance, for ``status``."""

    period: str
    created_at: datetime
    items: int
    status: str
    deliveries: dict[str, int]  # sent / deferred / failed


def last_digests(store: Store, limit: int = 1) -> Iterator[DigestSummary]:
    """The newest stored digests, newest first, with their delivery counts."""
    for digest_id, period, created, status in store.conn.execute(
        "SELECT id, period, created_at, status FROM digests ORDER BY period DESC LIMIT ?", (limit,)
    ).fetchall():
        items = store.conn.execute(
            "SELECT count(*) FROM digest_items WHERE digest_id = ?", (digest_id,)
        ).fetchone()[0]
        deliveries = {"sent": 0, "deferred": 0, "failed": 0}
        for state, count in store.conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE digest_id = ? GROUP BY status",
            (digest_id,),
        ):
            deliveries[state] = count
        yield DigestSummary(period, from_timestamp(created), items, status, deliveries)
