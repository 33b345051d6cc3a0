"""The ``digests``, ``digest_items`` and ``digest_snapshots`` tables.

A stored digest is frozen: its items, in order, and a JSON snapshot of what each one
showed, so a resumed send renders exactly what the first run did. ``digest_items`` is also
the inclusion record: a record that any earlier digest included is never selected again
(see ``store.records.digest_candidates``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import datetime

from kcrush_feeds.model import Digest, DigestItem, DigestState, DigestSummary
from kcrush_feeds.store.db import Store, from_timestamp, to_timestamp


def previous_window(store: Store, period: str) -> tuple[str, int, int] | None:
    """(period, since, until) of the newest stored digest before ``period``, or None."""
    row = store.conn.execute(
        "SELECT period, since, until FROM digests WHERE period < ? ORDER BY period DESC LIMIT 1",
        (period,),
    ).fetchone()
    return None if row is None else (str(row[0]), int(row[1]), int(row[2]))


def insert_digest(
    store: Store, period: str, created: int, since: int, items: Sequence[DigestItem]
) -> int:
    """Freeze a new digest of ``period`` with ``items`` (inside a transaction); its id.

    ``until`` is ``created``: the digest considered records published up to its creation.
    """
    conn = store.conn
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
        [(digest_id, item.record_id, _snapshot(item)) for item in items],
    )
    return digest_id


def load_digest(store: Store, period: str) -> Digest | None:
    """The stored digest of ``period`` ("2024-W09"), exactly as it was frozen, or None."""
    conn = store.conn
    row = conn.execute(
        "SELECT id, created_at, since, until, status FROM digests WHERE period = ?", (period,)
    ).fetchone()
    if row is None:
        return None
    digest_id, created, since, until, status = row
    items = tuple(
        _from_snapshot(content)
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


def completion(store: Store, digest_id: int) -> tuple[str, datetime | None]:
    """(status, finished_at) of the digest with this id; ``LookupError`` if there is none."""
    row = store.conn.execute(
        "SELECT status, finished_at FROM digests WHERE id = ?", (digest_id,)
    ).fetchone()
    if row is None:
        raise LookupError(digest_id)
    return row[0], None if row[1] is None else from_timestamp(row[1])


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


def digest_state(store: Store, period: str) -> DigestState:
    """What the store says about the digest of ``period`` (see ``DigestState``)."""
    digest = load_digest(store, period)
    if digest is not None:
        return "done" if digest.status == "done" else "sending"
    return "missing" if next(last_digests(store), None) is not None else "empty"


# The snapshot format (``digest_snapshots.content``): the item's fields as JSON, its
# ``published`` as a store timestamp. Stores written before this module existed hold the
# same format, so it must not change.


def _snapshot(item: DigestItem) -> str:
    data = asdict(item)
    data["published"] = to_timestamp(item.published)
    return json.dumps(data, ensure_ascii=False)


def _from_snapshot(text: str) -> DigestItem:
    data = json.loads(text)
    data["published"] = from_timestamp(data["published"])
    data["topics"] = tuple(data["topics"])
    data["authors"] = tuple(data["authors"])
    return DigestItem(**data)
