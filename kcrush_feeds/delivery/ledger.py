"""The deliveries ledger: who still needs a digest, and what became of each message.

One row per (digest, subscriber) in ``deliveries``. A subscriber is *pending* for a
digest while they are active and have no ``sent`` or ``failed`` row (a ``deferred`` row
is retried by the next run). Each result is written in its own small transaction the
moment the server has answered (``record_results``), together with the subscriber's
hard-bounce counter, so a crash loses at most the answers not yet committed.

``Ledger`` does those writes from one background thread with its own SQLite
connection: while one commit waits for the disk (``synchronous=FULL``), the event loop
keeps the SMTP connections busy, and results that arrive during a commit go into the
next one (group commit). A sender waits for its result to be committed before it
takes its next message, so the uncommitted results are never more than the sends in
flight.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from kcrush_feeds.delivery.smtp import UNCERTAIN_PREFIX, Outcome, SendResult
from kcrush_feeds.store.db import Store, from_timestamp, to_timestamp

PAGE = 500  # subscribers fetched per query: memory stays flat whatever the list size


@dataclass(frozen=True, slots=True)
class PendingSubscriber:
    """An active subscriber who has not yet been served this digest."""

    id: int
    email: str
    name: str
    status: str
    categories: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One result to write: which digest, which subscriber, with which Message-ID."""

    digest_id: int
    subscriber_id: int
    message_id: str
    result: SendResult


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.deferred + self.failed


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


def record_results(
    store: Store, deliveries: Sequence[Delivery], now: datetime, *, max_hard_bounces: int
) -> None:
    """Write results in one transaction, committed (fsynced) before returning."""
    with store.transaction() as conn:
        write_results(conn, deliveries, now, max_hard_bounces=max_hard_bounces)


def uncertain_ids(store: Store, digest_id: int) -> frozenset[int]:
    """Subscribers whose last try for ``digest_id`` was uncertain (the reply to the final
    dot was lost): the next try is their last."""
    rows = store.conn.execute(
        "SELECT subscriber_id FROM deliveries WHERE digest_id = ? AND status = 'deferred' "
        "AND last_reply LIKE ?",
        (digest_id, UNCERTAIN_PREFIX + "%"),
    ).fetchall()
    return frozenset(row[0] for row in rows)


def digest_state(store: Store, digest_id: int) -> tuple[str, datetime | None]:
    """(status, finished_at) of a digest."""
    row = store.conn.execute(
        "SELECT status, finished_at FROM digests WHERE id = ?", (digest_id,)
    ).fetchone()
    if row is None:
        raise LookupError(digest_id)
    return row[0], None if row[1] is None else from_timestamp(row[1])


class Ledger:
    """Commits results from a writer thread, batching those that arrive together.

    ``await ledger.record(delivery, now)`` returns once the row is durable. Use as an
    async context manager (or call ``close()``).
    """

    def __init__(
        self, path: Path, *, max_hard_bounces: int, batch: int = 1, linger: float = 0.0
    ) -> None:
        self.max_hard_bounces = max_hard_bounces
        # A commit costs the same CPU for one row as for ten: when fewer than ``batch``
        # results wait, linger up to ``linger`` seconds for more to share the commit.
        self.batch = batch
        self.linger = linger
        self._store = Store.open(path, create=False)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")
        self._waiting: list[tuple[Delivery, datetime, asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.commits = 0  # fewer than written: results arriving together share a commit
        self.written = 0

    async def record(self, delivery: Delivery, now: datetime) -> None:
        """Write ``delivery``; return when it is committed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._waiting.append((delivery, now, done))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        # shield: a cancelled sender must not cancel the commit others wait on.
        await asyncio.shield(done)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            if len(self._waiting) < self.batch and self.linger > 0:
                await asyncio.sleep(self.linger)
            batch, self._waiting = self._waiting, []
            try:
                await loop.run_in_executor(self._executor, self._write, batch)
            except BaseException as e:  # hand the error to every waiting sender
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(e)
                if not isinstance(e, Exception):
                    raise
            else:
                for _, _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def _write(self, batch: list[tuple[Delivery, datetime, asyncio.Future[None]]]) -> None:
        now = max(moment for _, moment, _ in batch)
        record_results(
            self._store, [d for d, _, _ in batch], now, max_hard_bounces=self.max_hard_bounces
        )
        self.commits += 1
        self.written += len(batch)

    async def record_late(self, late: Sequence[tuple[Delivery, datetime]]) -> None:
        """Write results a failed commit left behind, in one more transaction."""
        batch = [(d, moment, asyncio.get_running_loop().create_future()) for d, moment in late]
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, batch)
        for _, _, done in batch:
            done.cancel()  # nobody waits on these

    async def aclose(self) -> None:
        if self._flusher is not None:
            await self._flusher
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._store.close()

    async def __aenter__(self) -> Ledger:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
