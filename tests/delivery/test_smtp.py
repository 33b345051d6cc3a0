"""The SMTP pool against real aiosmtpd servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kcrush_feeds.delivery.smtp import (
    RateLimiter,
    SmtpPool,
    SmtpSettings,
    SmtpUnavailable,
)
from kcrush_feeds.errors import DeliveryError
from kcrush_feeds.model import Outcome, SendResult
from tests.support.sending import SENDER, message, settings
from tests.support.smtp_server import Behaviour, SmtpServer, smtp_server


async def send_all(s: SmtpSettings, recipients: list[str]) -> tuple[list[SendResult], SmtpPool]:
    async with SmtpPool(s, sender=SENDER) as pool:
        results = await asyncio.gather(
            *(pool.send(r, message(r, i)) for i, r in enumerate(recipients))
        )
    return list(results), pool


def addresses(n: int) -> list[str]:
    return [f"reader{i}@example.org" for i in range(n)]


def test_reused_connections_deliver_every_message_once() -> None:
    with smtp_server() as server:
        results, pool = asyncio.run(send_all(settings(server, concurrency=3), addresses(30)))
    assert [r.outcome for r in results] == [Outcome.SENT] * 30
    assert all(r.reply.startswith("250") and r.attempts == 1 for r in results)
    assert sorted(server.recipients()) == sorted(addresses(30))
    assert server.connections == 3  # each connection carried ten messages
    assert pool.stats.connections == 3
    got = {r.rcpt: r for r in server.received}
    body = got["reader7@example.org"].message
    assert body["Message-ID"] == "<digest-1.sub-7@kcrush.com>"
    # dot-stuffing survives the trip: the text part still has its lines starting with "."
    text = body.get_payload()[0].get_payload(decode=True).decode()
    assert "\n.\n..a line starting with a dot" in text.replace("\r\n", "\n")
    assert got["reader7@example.org"].mail_from == "newsletter@kcrush.com"


def test_reconnects_after_messages_per_connection() -> None:
    with smtp_server() as server:
        results, pool = asyncio.run(
            send_all(settings(server, concurrency=1, messages_per_connection=4), addresses(10))
        )
    assert all(r.sent for r in results)
    assert server.connections == 3  # 4 + 4 + 2
    assert pool.stats.recycled["limit"] == 2


def test_idle_connection_is_replaced_before_use() -> None:
    async def run(server: SmtpServer) -> SmtpPool:
        s = settings(server, concurrency=1, idle_timeout=0.2)
        async with SmtpPool(s, sender=SENDER) as pool:
            assert (await pool.send("a@example.org", message("a@example.org"))).sent
            await asyncio.sleep(0.3)
            assert (await pool.send("b@example.org", message("b@example.org"))).sent
        return pool

    with smtp_server() as server:
        pool = asyncio.run(run(server))
    assert pool.stats.recycled["idle"] == 1
    assert server.connections == 2


def test_451_is_retried_with_backoff_then_sent() -> None:
    behaviour = Behaviour(tempfail={"reader1@example.org": 2, "reader3@example.org": 1})
    with smtp_server(behaviour=behaviour) as server:
        results, pool = asyncio.run(send_all(settings(server), addresses(5)))
    by = dict(zip(addresses(5), results, strict=True))
    assert all(r.sent for r in results)
    assert by["reader1@example.org"].attempts == 3
    assert by["reader3@example.org"].attempts == 2
    assert server.counts() == dict.fromkeys(addresses(5), 1)
    assert pool.stats.retries == 3


def test_451_for_longer_than_the_retries_is_deferred() -> None:
    behaviour = Behaviour(tempfail={"reader2@example.org": 99})
    with smtp_server(behaviour=behaviour) as server:
        results, _ = asyncio.run(send_all(settings(server, retries=2), addresses(4)))
    deferred = results[2]
    assert deferred.outcome is Outcome.DEFERRED
    assert deferred.attempts == 3
    assert deferred.reply.startswith("451 4.7.1 Greylisted")
    assert [r.outcome for i, r in enumerate(results) if i != 2] == [Outcome.SENT] * 3
    assert "reader2@example.org" not in server.counts()


def test_550_fails_at_once_with_the_servers_reply() -> None:
    behaviour = Behaviour(reject={"gone@example.org"})
    recipients = ["a@example.org", "gone@example.org", "b@example.org"]
    with smtp_server(behaviour=behaviour) as server:
        results, _ = asyncio.run(send_all(settings(server), recipients))
    failed = results[1]
    assert failed.outcome is Outcome.FAILED
    assert failed.hard_bounce
    assert failed.attempts == 1
    assert failed.reply == "550 5.1.1 No such user here"
    assert sorted(server.recipients()) == ["a@example.org", "b@example.org"]


def test_partial_refusal_in_the_reply_dict_is_a_failure() -> None:
    """aiosmtplib raises only when every recipient is refused: check the returned dict."""

    async def run(server: SmtpServer) -> tuple[dict[str, Any], SendResult]:
        import aiosmtplib

        client = aiosmtplib.SMTP(
            hostname=server.host, port=server.port, start_tls=False, local_hostname="client.test"
        )
        async with client:
            errors, _ = await client.sendmail(
                "newsletter@kcrush.com",
                ["ok@example.org", "gone@example.org"],
                message("ok@example.org"),
            )
        async with SmtpPool(settings(server), sender=SENDER) as pool:
            result = await pool.send("gone@example.org", message("gone@example.org"))
        return dict(errors), result

    with smtp_server(behaviour=Behaviour(reject={"gone@example.org"})) as server:
        errors, result = asyncio.run(run(server))
    assert list(errors) == ["gone@example.org"]  # no exception: only the dict says so
    assert errors["gone@example.org"].code == 550
    assert result.outcome is Outcome.FAILED


def test_dropped_connection_is_retried_on_a_new_one() -> None:
    with smtp_server(behaviour=Behaviour(drop_after=3)) as server:
        results, pool = asyncio.run(send_all(settings(server, concurrency=1), addresses(10)))
    assert all(r.sent for r in results)
    assert server.counts() == dict.fromkeys(addresses(10), 1)
    assert server.connections >= 4
    assert pool.stats.recycled["dead"] + pool.stats.recycled["limit"] >= 0


def test_421_on_connect_for_a_while_then_accepts() -> None:
    with smtp_server(behaviour=Behaviour(refuse_connections=2)) as server:
        results, pool = asyncio.run(send_all(settings(server, concurrency=1), addresses(3)))
    assert all(r.sent for r in results)
    assert server.refused_connections == 2
    assert pool.stats.connect_failures == 2


def test_421_on_connect_for_good_stops_the_run() -> None:
    behaviour = Behaviour(refuse_connections=100)
    with smtp_server(behaviour=behaviour) as server, pytest.raises(SmtpUnavailable) as info:
        asyncio.run(send_all(settings(server, concurrency=1, retries=2), addresses(3)))
    assert "421" in str(info.value)
    assert info.value.exit_code == 75
    assert server.received == []


def test_server_not_listening_stops_the_run() -> None:
    from tests.support.smtp_server import free_port

    s = SmtpSettings(
        host="127.0.0.1",
        port=free_port(),
        tls="none",
        retries=1,
        retry_delay=0.01,
        local_hostname="client.test",
    )
    with pytest.raises(SmtpUnavailable, match="cannot connect"):
        asyncio.run(send_all(s, addresses(1)))


def test_slow_server_times_out_then_uncertain_never_retried() -> None:
    with smtp_server(behaviour=Behaviour(slow=1.0)) as server:
        started = time.monotonic()
        results, _ = asyncio.run(
            send_all(settings(server, concurrency=1, timeout=0.2, retries=1), addresses(1))
        )
        elapsed = time.monotonic() - started
    assert results[0].outcome is Outcome.UNCERTAIN
    assert results[0].reply.startswith("uncertain: timeout")
    assert results[0].attempts == 1
    assert elapsed < 2.0
    # The server queued it once; the client gave up on the reply and did not send again.
    assert server.counts()["reader0@example.org"] == 1


def test_slow_reply_once_is_uncertain_not_resent() -> None:
    """The timeout fires after the final dot: the server may have the message (it has)."""
    with smtp_server(behaviour=Behaviour(slow=0.6, slow_count=1)) as server:
        results, _ = asyncio.run(
            send_all(settings(server, concurrency=1, timeout=0.2), ["a@example.org"])
        )
    assert results[0].outcome is Outcome.UNCERTAIN
    assert results[0].attempts == 1
    assert server.counts()["a@example.org"] == 1


def test_starttls_required_with_verified_certificate(tmp_path: Path) -> None:
    with smtp_server(tls="starttls") as server:
        s = settings(
            server, tls="starttls", host="localhost", ca_file=Path(server.ca_file(tmp_path))
        )
        results, _ = asyncio.run(send_all(s, addresses(4)))
    assert all(r.sent for r in results)
    assert len(server.received) == 4


def test_starttls_refuses_an_unknown_certificate() -> None:
    with smtp_server(tls="starttls") as server:
        s = settings(server, tls="starttls", host="localhost")
        with pytest.raises(DeliveryError, match="certificate") as info:
            asyncio.run(send_all(s, addresses(1)))
    assert "ca_file" in str(info.value)
    assert server.received == []


def test_plain_client_against_a_starttls_only_server_sends_nothing() -> None:
    with smtp_server(tls="starttls") as server, pytest.raises(DeliveryError, match="530"):
        asyncio.run(send_all(settings(server, retries=0), addresses(1)))
    assert server.received == []


def test_implicit_tls(tmp_path: Path) -> None:
    with smtp_server(tls="implicit") as server:
        s = settings(server, tls="tls", host="localhost", ca_file=Path(server.ca_file(tmp_path)))
        results, _ = asyncio.run(send_all(s, addresses(3)))
    assert all(r.sent for r in results)


def test_auth_required(tmp_path: Path) -> None:
    with smtp_server(tls="starttls", auth=("newsletter", "s3cret")) as server:
        s = settings(
            server,
            tls="starttls",
            host="localhost",
            username="newsletter",
            password="s3cret",
            ca_file=Path(server.ca_file(tmp_path)),
        )
        results, _ = asyncio.run(send_all(s, addresses(4)))
    assert all(r.sent for r in results)
    assert server.logins == ["newsletter", "newsletter"]  # once per connection


def test_wrong_password_is_fatal(tmp_path: Path) -> None:
    with smtp_server(tls="starttls", auth=("newsletter", "s3cret")) as server:
        s = settings(
            server,
            tls="starttls",
            host="localhost",
            username="newsletter",
            password="wrong",
            ca_file=Path(server.ca_file(tmp_path)),
        )
        with pytest.raises(DeliveryError, match="refused the login") as info:
            asyncio.run(send_all(s, addresses(2)))
    assert "password_env" in str(info.value)
    assert server.received == []


def test_rate_limit_spreads_messages_over_time() -> None:
    with smtp_server() as server:
        started = time.monotonic()
        results, _ = asyncio.run(
            send_all(settings(server, concurrency=2, rate_limit=20), addresses(12))
        )
        elapsed = time.monotonic() - started
    assert all(r.sent for r in results)
    # 12 messages at 20/s with a burst of 2: at least (12 - 2) / 20 = 0.5 s
    assert elapsed >= 0.45


def test_rate_limiter_alone() -> None:
    async def run() -> float:
        limiter = RateLimiter(100, burst=1)
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(21)))
        return time.monotonic() - start

    assert 0.18 <= asyncio.run(run()) < 2.0  # 20 intervals of 10 ms; generous for busy CI


def test_non_ascii_address_uses_smtputf8() -> None:
    with smtp_server() as server:
        results, _ = asyncio.run(send_all(settings(server), ["björk@example.org"]))
    assert results[0].sent
    assert server.recipients() == ["björk@example.org"]


def test_starttls_configured_but_not_offered_is_fatal() -> None:
    with smtp_server() as server, pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        asyncio.run(send_all(settings(server, tls="starttls"), addresses(1)))
    assert server.received == []


def test_auth_configured_but_not_offered_is_fatal() -> None:
    s_kwargs: dict[str, Any] = {"username": "newsletter", "password": "pw"}
    with smtp_server() as server, pytest.raises(DeliveryError, match="AUTH") as info:
        asyncio.run(send_all(settings(server, **s_kwargs), addresses(1)))
    assert "smtp.username" in str(info.value)
    assert server.connections == 1  # not retried: it would fail the same way


def test_421_in_the_middle_of_a_session_reconnects_and_retries() -> None:
    with smtp_server(behaviour=Behaviour(busy_after=4)) as server:
        results, pool = asyncio.run(send_all(settings(server, concurrency=1), addresses(10)))
    assert all(r.sent for r in results)
    assert server.counts() == dict.fromkeys(addresses(10), 1)
    assert [code for _, code in server.refusals] == [421, 421]
    assert server.connections == 3  # 4 + 4 + 2
    assert pool.stats.retries == 2
