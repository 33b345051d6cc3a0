"""The ``records`` and ``record_categories`` tables: every query over the content records.

``upsert`` is the import's write; the feed build reads the category keys, the newest
(id, fingerprint) pairs of a feed off the indexes and the records themselves by id; the
digest selects what is new; the configured sources withdraw and restore records.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, Literal

from kcrush_feeds.model import Image, Record
from kcrush_feeds.store.db import Store, from_timestamp, in_chunks, to_timestamp

Change = Literal["added", "updated", "unchanged"]
RECORD_COLUMNS = (
    "id, url, title, published, updated, summary, content_html, image_url, image_alt, "
    "image_type, image_length, categories, authors, tags"
)


# --- writing -----------------------------------------------------------------------------


def upsert(store: Store, records: Sequence[Record], *, source: str, now: datetime) -> list[Change]:
    """Insert new records and rewrite changed ones (call inside ``transaction()``).

    Returns what happened to each record, in order. Unchanged rows are not written.
    """
    if not records:
        return []
    conn = store.conn
    changes: list[Change] = []
    known: dict[str, str] = {}
    for chunk, marks in in_chunks([r.id for r in records]):
        known.update(
            conn.execute(
                f"SELECT id, fingerprint FROM records WHERE id IN ({marks})", chunk
            ).fetchall()
        )
    stamp = to_timestamp(now)
    inserts: list[tuple[Any, ...]] = []
    updates: list[tuple[Any, ...]] = []
    category_rows: list[tuple[str, str, str, int]] = []
    for record in records:
        fingerprint = record.fingerprint()
        previous = known.get(record.id)
        if previous == fingerprint:
            changes.append("unchanged")
            continue
        row = _record_row(record)
        if previous is None:
            inserts.append((*row, fingerprint, source, stamp, stamp))
            changes.append("added")
        else:
            updates.append((*row[1:], fingerprint, source, stamp, record.id))
            changes.append("updated")
        known[record.id] = fingerprint  # the same id later in this batch: last wins
        published = to_timestamp(record.published)
        category_rows.extend(
            (record.id, name.casefold(), name, published) for name in record.categories
        )
    conn.executemany(
        f"INSERT INTO records ({RECORD_COLUMNS}, fingerprint, source, first_seen, "
        "changed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (id) DO UPDATE SET url=excluded.url, title=excluded.title, "
        "published=excluded.published, updated=excluded.updated, "
        "summary=excluded.summary, content_html=excluded.content_html, "
        "image_url=excluded.image_url, image_alt=excluded.image_alt, "
        "image_type=excluded.image_type, image_length=excluded.image_length, "
        "categories=excluded.categories, authors=excluded.authors, tags=excluded.tags, "
        "fingerprint=excluded.fingerprint, source=excluded.source, "
        "changed_at=excluded.changed_at, withdrawn=0",
        inserts,
    )
    conn.executemany(
        "UPDATE records SET url=?, title=?, published=?, updated=?, summary=?, "
        "content_html=?, image_url=?, image_alt=?, image_type=?, image_length=?, "
        "categories=?, authors=?, tags=?, fingerprint=?, source=?, changed_at=?, "
        "withdrawn=0 WHERE id=?",
        updates,
    )
    if updates:
        conn.executemany(
            "DELETE FROM record_categories WHERE record_id = ?", [(u[-1],) for u in updates]
        )
    conn.executemany(
        "INSERT OR REPLACE INTO record_categories (record_id, category_key, name, "
        "published) VALUES (?,?,?,?)",
        category_rows,
    )
    return changes


def withdrawn_among(store: Store, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are stored as withdrawn."""
    found: set[str] = set()
    for chunk, marks in in_chunks(ids):
        found.update(
            row[0]
            for row in store.conn.execute(
                f"SELECT id FROM records WHERE withdrawn = 1 AND id IN ({marks})", chunk
            )
        )
    return found


def set_withdrawn(store: Store, ids: Sequence[str], *, withdrawn: bool) -> int:
    """Mark ``ids`` withdrawn (or not); how many rows changed. Inside a transaction."""
    changed = 0
    flag = 1 if withdrawn else 0
    for chunk, marks in in_chunks(ids):
        changed += store.conn.execute(
            f"UPDATE records SET withdrawn = ? WHERE withdrawn != ? AND id IN ({marks})",
            (flag, flag, *chunk),
        ).rowcount
    return changed


def withdraw_absent(store: Store, source: str, seen: set[str]) -> int:
    """Withdraw the records of ``source`` whose id is not in ``seen``; how many changed."""
    with store.transaction() as conn:
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS seen_ids (id TEXT PRIMARY KEY)")
        conn.execute("DELETE FROM seen_ids")
        conn.executemany("INSERT OR IGNORE INTO seen_ids (id) VALUES (?)", [(i,) for i in seen])
        changed = conn.execute(
            "UPDATE records SET withdrawn = 1 WHERE source = ? AND withdrawn = 0 "
            "AND id NOT IN (SELECT id FROM seen_ids)",
            (source,),
        ).rowcount
        conn.execute("DELETE FROM seen_ids")
    return int(changed)


# --- reading -----------------------------------------------------------------------------


def get(store: Store, record_id: str) -> Record | None:
    """The record with this id, or None."""
    row = store.conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM records WHERE id = ?", (record_id,)
    ).fetchone()
    return None if row is None else record_from_row(row)


def iter_records(store: Store, where: str = "", params: Iterable[Any] = ()) -> Iterator[Record]:
    """Records matching an optional SQL ``where`` clause, newest first."""
    sql = f"SELECT {RECORD_COLUMNS} FROM records r"
    if where:
        sql += f" WHERE {where}"
    for row in store.conn.execute(sql + " ORDER BY published DESC, id", tuple(params)):
        yield record_from_row(row)


def count(store: Store) -> int:
    """How many records the store holds (withdrawn ones included)."""
    return int(store.conn.execute("SELECT count(*) FROM records").fetchone()[0])


def category_counts(store: Store) -> list[tuple[str, int, datetime]]:
    """(category name, visible records, newest published) for every record category."""
    rows = store.conn.execute(
        "SELECT min(rc.name), count(*), max(rc.published) FROM record_categories rc "
        "JOIN records r ON r.id = rc.record_id WHERE r.withdrawn = 0 "
        "GROUP BY rc.category_key ORDER BY count(*) DESC, min(rc.name)"
    ).fetchall()
    return [(name, n, from_timestamp(newest)) for name, n, newest in rows]


def newest(store: Store) -> Record | None:
    """The newest visible record, or None."""
    return next(newest_visible(store, 1), None)


def newest_visible(store: Store, limit: int) -> Iterator[Record]:
    """The ``limit`` newest records that are not withdrawn."""
    rows = store.conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM records WHERE withdrawn = 0 "
        "ORDER BY published DESC, id LIMIT ?",
        (limit,),
    )
    return (record_from_row(row) for row in rows)


def load_by_ids(store: Store, ids: Sequence[str]) -> dict[str, Record]:
    """The records with these ids, by id (unknown ids are left out)."""
    found: dict[str, Record] = {}
    for chunk, marks in in_chunks(ids):
        for row in store.conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE id IN ({marks})", chunk
        ):
            record = record_from_row(row)
            found[record.id] = record
    return found


# --- for the feed build ------------------------------------------------------------------


def category_keys(store: Store) -> list[tuple[str, str]]:
    """(key, display name) of every record category in the store, by key.

    Withdrawn and future records count too. The distinct keys come from a skip-scan of the
    index (one lookup per category, not one row per record), and the name is the one the
    newest record uses.
    """
    rows = store.conn.execute(
        "WITH RECURSIVE k(key) AS ("
        " SELECT min(category_key) FROM record_categories"
        " UNION ALL"
        " SELECT (SELECT min(category_key) FROM record_categories WHERE category_key > k.key)"
        " FROM k WHERE k.key IS NOT NULL)"
        " SELECT key, (SELECT name FROM record_categories WHERE category_key = k.key"
        "  ORDER BY published DESC, record_id LIMIT 1)"
        " FROM k WHERE key IS NOT NULL"
    ).fetchall()
    return [(str(key), str(name)) for key, name in rows]


def newest_fingerprints(store: Store, now: int, limit: int) -> list[tuple[str, str]]:
    """(id, fingerprint) of the newest visible records published by ``now``, newest first."""
    rows = store.conn.execute(
        "SELECT id, fingerprint FROM records WHERE withdrawn = 0 AND published <= ? "
        "ORDER BY published DESC, id LIMIT ?",
        (now, limit),
    ).fetchall()
    return [(str(i), str(f)) for i, f in rows]


def newest_in_category(
    store: Store, key: str, now: int, limit: int
) -> Iterator[tuple[str, str, int]]:
    """(id, fingerprint, published) of a category's newest visible records, newest first.

    Walks record_categories_newest (category_key, published DESC, record_id) and stops
    after ``limit`` visible rows.
    """
    return store.conn.execute(
        "SELECT rc.record_id, r.fingerprint, rc.published FROM record_categories rc "
        "JOIN records r ON r.id = rc.record_id "
        "WHERE rc.category_key = ? AND rc.published <= ? AND r.withdrawn = 0 "
        "ORDER BY rc.published DESC, rc.record_id LIMIT ?",
        (key, now, limit),
    )


# --- for the digest ----------------------------------------------------------------------

# The columns ``digest_candidates`` yields, in order.
CANDIDATE_COLUMNS = (
    "id, url, title, published, summary, content_html, image_url, image_alt, categories, authors"
)


def digest_candidates(
    store: Store,
    *,
    until: int,
    since: int,
    late_after: int,
    late_since: int,
    period: str,
) -> Iterator[tuple[Any, ...]]:
    """Rows (``CANDIDATE_COLUMNS``) a digest of ``period`` may include, newest first.

    Visible, published by ``until``, and published since ``since`` or first seen after
    ``late_after`` while dated no earlier than ``late_since``; never a record that an
    earlier period's digest included (``digest_items`` is the inclusion record). Boundaries
    are inclusive on purpose: the inclusion record, not the clock, prevents repeats.
    """
    return store.conn.execute(
        f"SELECT {CANDIDATE_COLUMNS} FROM records r "
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


# --- rows ----------------------------------------------------------------------------------


def _record_row(record: Record) -> tuple[Any, ...]:
    image = record.image
    return (
        record.id,
        record.url,
        record.title,
        to_timestamp(record.published),
        to_timestamp(record.updated),
        record.summary,
        record.content_html,
        image.url if image else None,
        image.alt if image else "",
        image.type if image else None,
        image.length if image else 0,
        json.dumps(record.categories, ensure_ascii=False),
        json.dumps(record.authors, ensure_ascii=False),
        json.dumps(record.tags, ensure_ascii=False),
    )


def record_from_row(row: Sequence[Any]) -> Record:
    """A ``Record`` from a row selected as ``RECORD_COLUMNS``."""
    (
        rid,
        url,
        title,
        published,
        updated,
        summary,
        content,
        image_url,
        image_alt,
        image_type,
        image_length,
        categories,
        authors,
        tags,
    ) = row
    return Record(
        id=rid,
        url=url,
        title=title,
        published=from_timestamp(published),
        updated=from_timestamp(updated),
        categories=tuple(json.loads(categories)),
        summary=summary,
        content_html=content,
        image=Image(image_url, image_alt, image_type or "image/jpeg", image_length)
        if image_url
        else None,
        authors=tuple(json.loads(authors)),
        tags=tuple(json.loads(tags)),
    )
