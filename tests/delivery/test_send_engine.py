"""The delivery engine (queue -> pool -> ledger) with real messages, server and store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kcrush_feeds.delivery.results import ResultWriter
from kcrush_feeds.delivery.send import Tally, deliver
from kcrush_feeds.errors import DeliveryError
from kcrush_feeds.store import deliveries
from kcrush_feeds.store.db import Store
from tests.support.sending import STORE_NOW as NOW
from tests.support.sending import add_digest, add_subscribers, message, settings
from tests.support.smtp_server import Behaviour, SmtpServer, smtp_server


@dataclass(frozen=True)
class Msg:
    subscriber_id: int
    recipient: str
    message_id: str
    data: bytes


def compose_all(store: Store, digest: int, *, skip: set[int] = frozenset()) -> Iterator[Msg | None]:  # type: ignore[assignment]
    for sub in deliveries.iter_pending(store, digest):
        if sub.id in skip:
            yield None
            continue
        message_id = f"<d{digest}.s{sub.id}@kcrush.com>"
        yield Msg(sub.id, sub.email, message_id, message(sub.email, sub.id, message_id))


def run(
    store: Store,
    server: SmtpServer,
    digest: int,
    *,
    stop: asyncio.Event | None = None,
    skip: set[int] = frozenset(),
    **overrides: Any,
) -> Tally:  # type: ignore[assignment]
    async def go() -> Tally:
        async with ResultWriter(store.path, max_hard_bounces=2) as ledger:
            return await deliver(
                compose_all(store, digest, skip=skip),
                settings=settings(server, **overrides),
                sender="newsletter@kcrush.com",
                writer=ledger,
                digest_id=digest,
                now=NOW,
                stop=stop,
            )

    return asyncio.run(go())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "store.db")
    yield s
    s.close()


def test_every_pending_subscriber_once_and_recorded(store: Store) -> None:
    add_subscribers(store, 120)
    digest = add_digest(store)
    with smtp_server() as server:
        tally = run(store, server, digest, concurrency=3, skip={5, 6})
        again = run(store, server, digest, concurrency=3, skip={5, 6})
    assert (tally.sent, tally.skipped, tally.deferred, tally.failed) == (118, 2, 0, 0)
    assert server.counts() == {f"reader{i}@example.org": 1 for i in range(120) if i not in (4, 5)}
    assert deliveries.counts(store, digest).sent == 118
    # A second run finds nobody pending but the two with nothing to get.
    assert (again.sent, again.skipped) == (0, 2)
    ids = {r.rcpt: r.message_id for r in server.received}
    assert ids["reader9@example.org"] == f"<d{digest}.s10@kcrush.com>"
    recorded = store.conn.execute(
        "SELECT message_id FROM deliveries WHERE subscriber_id = 10"
    ).fetchone()
    assert recorded == (ids["reader9@example.org"],)


def test_mixed_failures_are_recorded_with_the_servers_reply(store: Store) -> None:
    add_subscribers(store, 10)
    digest = add_digest(store)
    behaviour = Behaviour(
        tempfail={"reader2@example.org": 1, "reader3@example.org": 50},
        reject={"reader4@example.org"},
    )
    with smtp_server(behaviour=behaviour) as server:
        tally = run(store, server, digest, retries=2)
    assert (tally.sent, tally.deferred, tally.failed) == (8, 1, 1)
    assert deliveries.delivery_status(store, digest, 4) == (
        "deferred",
        "451 4.7.1 Greylisted, try again later",
    )
    assert deliveries.delivery_status(store, digest, 5) == ("failed", "550 5.1.1 No such user here")
    assert deliveries.delivery_status(store, digest, 3) == ("sent", "250 2.0.0 Ok: queued")
    attempts = dict(store.conn.execute("SELECT subscriber_id, attempts FROM deliveries"))
    assert attempts[3] == 2 and attempts[4] == 3
    # The deferred one is still pending; the failed one is not.
    assert [p.id for p in deliveries.iter_pending(store, digest)] == [4]
    bounces = store.conn.execute("SELECT hard_bounces FROM subscribers WHERE id = 5").fetchone()
    assert bounces == (1,)


def test_stop_finishes_in_flight_and_leaves_the_rest_pending(store: Store) -> None:
    add_subscribers(store, 200)
    digest = add_digest(store)

    async def go(server: SmtpServer) -> Tally:
        stop = asyncio.Event()
        async with ResultWriter(store.path, max_hard_bounces=2) as ledger:

            def progress(n: int) -> None:
                if deliveries_done() >= 20:
                    stop.set()

            def deliveries_done() -> int:
                return len(server.received)

            return await deliver(
                compose_all(store, digest),
                settings=settings(server, concurrency=2),
                sender="newsletter@kcrush.com",
                writer=ledger,
                digest_id=digest,
                now=NOW,
                stop=stop,
                progress=progress,
            )

    with smtp_server() as server:
        tally = asyncio.run(go(server))
        received = server.counts()
    assert tally.stopped
    assert 20 <= tally.sent < 200
    # Everything the server accepted is recorded, nothing more.
    assert tally.sent == len(received) == deliveries.counts(store, digest).sent
    assert deliveries.count_pending(store, digest) == 200 - tally.sent


def test_unreachable_server_leaves_everything_pending(store: Store) -> None:
    add_subscribers(store, 5)
    digest = add_digest(store)
    with smtp_server(behaviour=Behaviour(refuse_connections=1000)) as server:
        tally = run(store, server, digest, retries=1)
    assert tally.unavailable is not None and "421" in tally.unavailable
    assert tally.sent == 0
    assert deliveries.count_pending(store, digest) == 5


def test_fatal_error_stops_and_raises(store: Store) -> None:
    add_subscribers(store, 5)
    digest = add_digest(store)
    with smtp_server(tls="starttls") as server, pytest.raises(DeliveryError):
        run(store, server, digest)
    assert deliveries.count_pending(store, digest) == 5
