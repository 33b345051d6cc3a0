"""What is new: the weekly digest, decided by the inclusion record of earlier digests.

A record goes into a digest when no earlier digest included it (``digest_items`` is the
inclusion record, so a record edited or re-dated later is never sent twice), it is not
withdrawn, its ``published`` time has passed (future-dated records wait), it belongs to a
section, and it is new since the previous digest: published after the previous digest's
``until``, or first seen by this store after it while dated no earlier than the previous
digest's window start (an article published late but back-dated to last week is not lost;
an old archive imported today does not flood the digest). The very first digest looks back only
``digest.first_window``.

``open_digest`` creates the digest of the current period once and freezes it (its items and
a snapshot of what they show): every later call in the same period returns the same digest,
so an interrupted ``send`` resumes it. ``compute_digest`` computes without storing anything
(for ``preview``).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from kcrush_feeds.catalogue import Catalogue
from kcrush_feeds.config import Config
from kcrush_feeds.model import Digest, DigestItem
from kcrush_feeds.sanitize import sanitize_html
from kcrush_feeds.store import digests as store_digests
from kcrush_feeds.store import records as store_records
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


# --- computing ---------------------------------------------------------------------------


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
    items, since = _select(store, config, now, period)
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
    store: Store, config: Config, now: datetime, period: str
) -> tuple[list[DigestItem], int]:
    digest = config.require_digest()
    catalogue = Catalogue.from_config(config)
    until = to_timestamp(now)
    previous = store_digests.previous_window(store, period)
    if previous is None:
        since = to_timestamp(now - digest.first_window)
        late_after, late_since = until + 1, until + 1  # no "arrived late" rule yet
    else:
        _, previous_since, previous_until = previous
        since = previous_until
        late_after, late_since = previous_until, previous_since
    rows = store_records.digest_candidates(
        store,
        until=until,
        since=since,
        late_after=late_after,
        late_since=late_since,
        period=period,
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
    safe = sanitize_html(source, url) if has_tags(source) else source
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
    with store.transaction():
        existing = store_digests.load_digest(store, period)
        if existing is not None:
            return existing
        items, since = _select(store, config, now, period)
        if not items:
            return None
        created = to_timestamp(now)
        digest_id = store_digests.insert_digest(store, period, created, since, items)
    return Digest(
        digest_id,
        period,
        from_timestamp(created),
        tuple(items),
        from_timestamp(since),
        from_timestamp(created),
    )
