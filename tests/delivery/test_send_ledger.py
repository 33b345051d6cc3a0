"""The deliveries ledger and the run lock, on a real SQLite store."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from pathlib import Path

import pytest

from kcrush_feeds.delivery.lock import lock_path, run_lock
from kcrush_feeds.delivery.results import ResultWriter
from kcrush_feeds.errors import BusyError
from kcrush_feeds.model import Delivery, DeliveryCounts, Outcome, SendResult
from kcrush_feeds.store import deliveries
from kcrush_feeds.store.db import Store, to_timestamp
from tests.support.sending import STORE_NOW as NOW
from tests.support.sending import add_digest, add_subscribers


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "store.db")
    yield s  # type: ignore[misc]
    s.close()


def result(outcome: Outcome, *, hard: bool = False, attempts: int = 1) -> SendResult:
    reply = {"sent": "250 ok", "deferred": "451 later", "failed": "550 no such user"}
    return SendResult(outcome, reply[outcome.value], attempts, hard_bounce=hard)


def test_pending_is_active_subscribers_without_sent_or_failed(store: Store) -> None:
    add_subscribers(store, 6)
    add_subscribers(store, 2, status="unsubscribed", start=6)
    digest = add_digest(store)
    deliveries.record_results(
        store,
        [
            Delivery(digest, 1, "<m1>", result(Outcome.SENT)),
            Delivery(digest, 2, "<m2>", result(Outcome.FAILED, hard=True)),
            Delivery(digest, 3, "<m3>", result(Outcome.DEFERRED)),
        ],
        NOW,
        max_hard_bounces=3,
    )
    pending = [p.id for p in deliveries.iter_pending(store, digest, page=2)]
    assert pending == [3, 4, 5, 6]
    assert deliveries.count_pending(store, digest) == 4
    assert deliveries.counts(store, digest) == DeliveryCounts(1, 1, 1)
    # Another digest has its own ledger.
    assert deliveries.count_pending(store, add_digest(store, "2026-W49")) == 6


def test_sent_row_is_never_downgraded_and_attempts_add_up(store: Store) -> None:
    add_subscribers(store, 1)
    digest = add_digest(store)
    for outcome in (Outcome.DEFERRED, Outcome.SENT, Outcome.DEFERRED):
        deliveries.record_results(
            store,
            [Delivery(digest, 1, "<m>", result(outcome, attempts=2))],
            NOW,
            max_hard_bounces=3,
        )
    row = store.conn.execute(
        "SELECT status, attempts, sent_at, message_id FROM deliveries"
    ).fetchone()
    assert row == ("sent", 4, to_timestamp(NOW), "<m>")


def test_consecutive_hard_bounces_mark_bounced_and_success_resets(store: Store) -> None:
    add_subscribers(store, 2)
    for week in range(3):
        digest = add_digest(store, f"2026-W{40 + week}")
        deliveries.record_results(
            store,
            [
                Delivery(digest, 1, f"<a{week}>", result(Outcome.FAILED, hard=True)),
                Delivery(
                    digest,
                    2,
                    f"<b{week}>",
                    result(Outcome.SENT if week == 1 else Outcome.FAILED, hard=week != 1),
                ),
            ],
            NOW,
            max_hard_bounces=3,
        )
    rows = dict(
        store.conn.execute("SELECT id, status || ':' || hard_bounces FROM subscribers").fetchall()
    )
    assert rows == {1: "bounced:3", 2: "active:1"}
    # A bounced subscriber is no longer pending for the next digest.
    assert [p.id for p in deliveries.iter_pending(store, add_digest(store, "2026-W50"))] == [2]


def test_a_failure_that_is_not_a_bounce_does_not_count(store: Store) -> None:
    add_subscribers(store, 1)
    digest = add_digest(store)
    deliveries.record_results(
        store, [Delivery(digest, 1, "<m>", result(Outcome.FAILED))], NOW, max_hard_bounces=1
    )
    assert store.conn.execute("SELECT status, hard_bounces FROM subscribers").fetchone() == (
        "active",
        0,
    )


def test_ledger_group_commit_from_a_thread(store: Store) -> None:
    add_subscribers(store, 200)
    digest = add_digest(store)

    async def run() -> ResultWriter:
        async with ResultWriter(store.path, max_hard_bounces=3) as ledger:
            await asyncio.gather(
                *(
                    ledger.record(Delivery(digest, i, f"<m{i}>", result(Outcome.SENT)), NOW)
                    for i in range(1, 201)
                )
            )
            # Every awaited record is committed: another connection sees it at once.
            assert deliveries.counts(store, digest).sent == 200
        return ledger

    ledger = asyncio.run(run())
    assert ledger.written == 200
    assert ledger.commits < 200  # results arriving together share a commit


def test_digest_state(store: Store) -> None:
    from kcrush_feeds.store.digests import completion, load_digest, mark_done

    digest = add_digest(store)
    assert completion(store, digest) == ("sending", None)
    found = load_digest(store, "2026-W48")
    assert found is not None
    mark_done(store, found, NOW)
    assert completion(store, digest) == ("done", NOW)


def _hold_lock(database: str, seconds: float, ready: multiprocessing.synchronize.Event) -> None:
    with run_lock(Path(database)):
        ready.set()
        time.sleep(seconds)


def test_second_runner_waits_then_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(str(database), 3.0, ready)
    )
    holder.start()
    try:
        assert ready.wait(10)
        started = time.monotonic()
        with pytest.raises(BusyError) as info, run_lock(database, wait=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        message = str(info.value)
        assert f"pid {holder.pid}" in message
        assert "another 'kcrush-feeds send' is running" in message
        assert str(lock_path(database, "send")) in message
    finally:
        holder.kill()
        holder.join()
    # SIGKILL released the lock with the process: the next run gets it at once.
    with run_lock(database, wait=0):
        pass


def test_second_runner_that_waits_long_enough_gets_the_lock(tmp_path: Path) -> None:
    database = tmp_path / "store.db"
    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(str(database), 0.3, ready)
    )
    holder.start()
    assert ready.wait(10)
    started = time.monotonic()
    with run_lock(database, wait=5):
        waited = time.monotonic() - started
        holder.join(5)
        assert holder.exitcode == 0  # it had finished: the lock was free only then
    assert 0.1 < waited < 3


def test_holder_reports_a_running_send(tmp_path: Path) -> None:
    from kcrush_feeds.delivery.lock import holder

    database = tmp_path / "store.db"
    assert holder(database) is None  # no lock file: nothing running, nothing created
    assert not lock_path(database, "send").exists()
    ready = multiprocessing.get_context("fork").Event()
    process = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(str(database), 5.0, ready)
    )
    process.start()
    try:
        assert ready.wait(10)
        assert holder(database) == process.pid
    finally:
        process.kill()
        process.join()
    assert holder(database) is None
