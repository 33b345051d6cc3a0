"""The ``deliveries`` table: who still needs a digest, and what became of each message.

One row per (digest, subscriber). A subscriber is *pending* for a digest while they are
active and have no ``sent`` or ``failed`` row (a ``deferred`` row is retried by the next
run). Each result is written in its own small transaction the moment the server has
answered (``record_results``), together with the subscriber's hard-bounce counter, so a
crash loses at most the answers not yet committed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime

from kcrush_feeds.model import (
    UNCERTAIN_PREFIX,
    Delivery,
    DeliveryCounts,
    Outcome,
    PendingSubscriber,
)
from kcrush_feeds.store.db import Store, to_timestamp

PAGE = 500  # subscribers fetched per query: memory stays flat whatever the list size


_PENDING_WHERE = (
    "s.status = 'active' AND NOT EXISTS (SELECT 1 FROM deliveries d "
    "WHERE d.digest_id = ? AND d.subscriber_id = s.id AND d.status IN ('sent', 'failed'))"
)


def iter_pending(store: Store, digest_id: int, *, page: int = PAGE) -> Iterator[PendingSubscriber]:
    """Pending subscribers of ``digest_id`` in id order, fetched a page at a time.

    Keyset pagination (``id > last``) rather than one long cursor: no read transaction
    stays open while results are being committed, and memory does not grow.
    """
    last = 0
    while True:
        rows = store.conn.execute(
            "SELECT s.id, s.email, s.name, s.status, s.categories FROM subscribers s "
            f"WHERE s.id > ? AND {_PENDING_WHERE} ORDER BY s.id LIMIT ?",
            (last, digest_id, page),
        ).fetchall()
        for sid, email, name, status, categories in rows:
            yield PendingSubscriber(
                sid,
                email,
                name,
                status,
                None if categories is None else tuple(json.loads(categories)),
            )
        if len(rows) < page:
            return
        last = rows[-1][0]


def count_pending(store: Store, digest_id: int) -> int:
    """How many subscribers ``iter_pending`` would yield now."""
    row = store.conn.execute(
        f"SELECT count(*) FROM subscribers s WHERE {_PENDING_WHERE}", (digest_id,)
    ).fetchone()
    return int(row[0])


def counts(store: Store, digest_id: int) -> DeliveryCounts:
    """Rows of ``digest_id`` by status."""
    found = dict(
        store.conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE digest_id = ? GROUP BY status",
            (digest_id,),
        ).fetchall()
    )
    return DeliveryCounts(found.get("sent", 0), found.get("deferred", 0), found.get("failed", 0))


def delivery_status(store: Store, digest_id: int, subscriber_id: int) -> tuple[str, str] | None:
    """(status, last_reply) of one delivery, or None when nothing was recorded."""
    row = store.conn.execute(
        "SELECT status, last_reply FROM deliveries WHERE digest_id = ? AND subscriber_id = ?",
        (digest_id, subscriber_id),
    ).fetchone()
    return None if row is None else (row[0], row[1] or "")


def write_results(
    conn: sqlite3.Connection,
    deliveries: Sequence[Delivery],
    now: datetime,
    *,
    max_hard_bounces: int,
) -> None:
    """Write results and bounce counters (call inside a transaction).

    A ``sent`` row is never changed again: a late duplicate result cannot turn a
    delivered message back into a deferred one. A hard bounce counts towards
    ``max_hard_bounces`` consecutive ones, after which the subscriber is ``bounced``;
    a delivered message resets the count.
    """
    stamp = to_timestamp(now)
    conn.executemany(
        "INSERT INTO deliveries (digest_id, subscriber_id, status, message_id, attempts, "
        "last_reply, updated_at, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (digest_id, subscriber_id) DO UPDATE SET status = excluded.status, "
        "attempts = deliveries.attempts + excluded.attempts, "
        "last_reply = excluded.last_reply, updated_at = excluded.updated_at, "
        "sent_at = excluded.sent_at WHERE deliveries.status <> 'sent'",
        [
            (
                d.digest_id,
                d.subscriber_id,
                # An uncertain result is a deferred row whose reply says "uncertain: ...":
                # pending, so the next run tries once more (see uncertain_ids).
                Outcome.DEFERRED.value
                if d.result.outcome is Outcome.UNCERTAIN
                else d.result.outcome.value,
                d.message_id,
                d.result.attempts,
                d.result.reply[:1000],
                stamp,
                stamp if d.result.outcome is Outcome.SENT else None,
            )
            for d in deliveries
        ],
    )
    conn.executemany(
        "UPDATE subscribers SET hard_bounces = 0 WHERE id = ? AND hard_bounces <> 0",
        [(d.subscriber_id,) for d in deliveries if d.result.outcome is Outcome.SENT],
    )
    conn.executemany(
        "UPDATE subscribers SET hard_bounces = hard_bounces + 1, "
        "status = CASE WHEN hard_bounces + 1 >= ? AND status = 'active' "
        "THEN 'bounced' ELSE status END, updated_at = ? WHERE id = ?",
        [
            (max_hard_bounces, stamp, d.subscriber_id)
            for d in deliveries
            if d.result.outcome is Outcome.FAILED and d.result.hard_bounce
        ],
    )


def uncertain_ids(store: Store, digest_id: int) -> frozenset[int]:
    """Subscribers whose last try for ``digest_id`` was uncertain (the reply to the final
    dot was lost): the next try is their last."""
    rows = store.conn.execute(
        "SELECT subscriber_id FROM deliveries WHERE digest_id = ? AND status = 'deferred' "
        "AND last_reply LIKE ?",
        (digest_id, UNCERTAIN_PREFIX + "%"),
    ).fetchall()
    return frozenset(row[0] for row in rows)


def record_results(
    store: Store, deliveries: Sequence[Delivery], now: datetime, *, max_hard_bounces: int
) -> None:
    """Write results in one transaction, committed (fsynced) before returning."""
    with store.transaction() as conn:
        write_results(conn, deliveries, now, max_hard_bounces=max_hard_bounces)
