"""The relays' webhooks with real signatures: Mailgun HMAC, Postmark basic auth, SES over SNS.

Mailgun, Postmark and SES (with the pinned certificate) run against a real ``kcrush-feeds
serve`` subprocess over httpx. The SNS certificate fetch, its cache and the subscription
confirmation run in-process with an injected fetcher, since nothing may reach
amazonaws.com from a test; the URL rules are checked there.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from kcrush_feeds.config import load_config
from kcrush_feeds.store.db import Store
from kcrush_feeds.tokens import sign_delivery, verp_sender
from kcrush_feeds.web.app import create_app
from tests.support.serve import SECRET, SECRET_ENV, Server, SmtpSink, free_port, write_config

MAILGUN_KEY = "key-0123456789abcdef0123456789abcdef"
TOPIC = "arn:aws:sns:us-east-1:123456789012:kcrush-bounces"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789.pem"
WEBHOOKS = f"""
[bounces]
address = "bounces@kcrush.com"
soft_limit = 3

[bounces.webhooks]
mailgun_signing_key_env = "KCRUSH_TEST_MAILGUN"
postmark_username = "kcrush"
postmark_password_env = "KCRUSH_TEST_POSTMARK"
ses_topic_arn = "{TOPIC}"
"""
ENV = {SECRET_ENV: SECRET, "KCRUSH_TEST_MAILGUN": MAILGUN_KEY, "KCRUSH_TEST_POSTMARK": "pm-pass"}
READERS = [f"reader{i}@example.org" for i in range(8)]


# --- a throwaway SNS signing certificate -----------------------------------------------------


def make_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM)


KEY, CERT_PEM = make_certificate()


def sns(
    message: dict[str, Any] | None,
    *,
    kind: str = "Notification",
    version: str = "1",
    topic: str = TOPIC,
    key: rsa.RSAPrivateKey = KEY,
    **extra: str,
) -> dict[str, Any]:
    """An SNS message as AWS posts it, signed the documented way."""
    body: dict[str, Any] = {
        "Type": kind,
        "MessageId": f"mid-{time.monotonic_ns()}",
        "TopicArn": topic,
        "Message": json.dumps(message) if message is not None else "You have chosen...",
        "Timestamp": "2024-02-27T17:05:00.000Z",
        "SignatureVersion": version,
        "SigningCertURL": CERT_URL,
        **extra,
    }
    if kind == "Notification":
        order = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        order = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{k}\n{body[k]}\n" for k in order if k in body)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = key.sign(text.encode(), padding.PKCS1v15(), algorithm)
    body["Signature"] = base64.b64encode(signature).decode()
    return body


def ses_bounce(source: str, recipient: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 no",
                }
            ],
            "timestamp": "2024-02-27T17:05:00.000Z",
        },
        "mail": {"source": source, "messageId": "0100018d-ses", "commonHeaders": {}},
    }


def ses_complaint(recipient: str, message_id: str) -> dict[str, Any]:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": recipient}],
            "complaintFeedbackType": "abuse",
            "timestamp": "2024-02-27T17:06:00.000Z",
        },
        "mail": {
            "source": "bounces@kcrush.com",
            "commonHeaders": {"messageId": message_id},
        },
    }


# --- a store with a sent digest, and serve running on it --------------------------------------


def seed(directory: Path) -> dict[str, tuple[int, int, str]]:
    """Subscribers with one sent delivery each: {address: (digest, subscriber, message id)}."""
    config = load_config(directory / "config.toml")
    with Store.open(config.database_path):
        pass
    conn = sqlite3.connect(config.database_path)
    sent = int(datetime(2024, 2, 27, 17, 0, tzinfo=UTC).timestamp())
    conn.execute(
        "INSERT INTO digests (id, period, created_at, since, until, status) "
        "VALUES (1, '2024-W09', ?, 0, ?, 'done')",
        (sent, sent),
    )
    found = {}
    for n, address in enumerate(READERS, start=1):
        conn.execute(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at, "
            "confirmed_at) VALUES (?, ?, ?, 'active', 1, 1, 1)",
            (n, address, address),
        )
        message_id = f"<digest-2024-W09.s{n}.abcdef@www.kcrush.com>"
        conn.execute(
            "INSERT INTO deliveries (digest_id, subscriber_id, status, message_id, attempts, "
            "updated_at, sent_at) VALUES (1, ?, 'sent', ?, 1, ?, ?)",
            (n, message_id, sent, sent),
        )
        found[address] = (1, n, message_id)
    conn.commit()
    conn.close()
    return found


def status_of(directory: Path, address: str) -> str:
    conn = sqlite3.connect(directory / "store.db")
    try:
        return str(
            conn.execute("SELECT status FROM subscribers WHERE email = ?", (address,)).fetchone()[0]
        )
    finally:
        conn.close()


def event_count(directory: Path) -> int:
    conn = sqlite3.connect(directory / "store.db")
    try:
        return int(conn.execute("SELECT count(*) FROM mail_events").fetchone()[0])
    finally:
        conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, Any]]]:
    directory = tmp_path_factory.mktemp("webhooks")
    with SmtpSink() as sink:
        port = free_port()
        path = write_config(directory, base_url=f"http://127.0.0.1:{port}", smtp_port=sink.port)
        (directory / "sns.pem").write_bytes(CERT_PEM)
        path.write_text(
            path.read_text() + WEBHOOKS + 'ses_cert_file = "sns.pem"\n', encoding="utf-8"
        )
        deliveries = seed(directory)
        env = {**os.environ, **ENV}
        env.pop("KCRUSH_FEEDS_NOW", None)
        log = (directory / "serve.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kcrush_feeds",
                "--config",
                str(path),
                "serve",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        server = Server(directory, port, sink, process)
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, server.log()
            try:
                if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        try:
            yield server, deliveries
        finally:
            server.stop()


# --- Mailgun ------------------------------------------------------------------------------------


def mailgun(
    event: dict[str, Any], *, token: str | None = None, age: float = 0.0, key: str = MAILGUN_KEY
) -> dict[str, Any]:
    timestamp = str(int(time.time() - age))
    token = token or hashlib.sha256(os.urandom(16)).hexdigest()[:50]
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


def test_mailgun(served: tuple[Server, dict[str, Any]]) -> None:
    server, deliveries = served
    d, s, message_id = deliveries["reader0@example.org"]
    verp = verp_sender("bounces@kcrush.com", sign_delivery(SECRET.encode(), d, s))
    failed = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "reader0@example.org",
        "timestamp": time.time(),
        "envelope": {"sender": verp},
        "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist"},
        "message": {"headers": {"message-id": message_id.strip("<>")}},
    }
    with server.client() as client:
        before = event_count(server.directory)
        assert (
            client.post("/webhooks/mailgun", json=mailgun(failed, key="wrong")).status_code == 403
        )
        assert client.post("/webhooks/mailgun", json=mailgun(failed, age=3600)).status_code == 403
        assert client.post("/webhooks/mailgun", content=b"{not json").status_code == 400
        assert client.post("/webhooks/mailgun", json={"event-data": {}}).status_code == 400
        assert event_count(server.directory) == before
        assert status_of(server.directory, "reader0@example.org") == "active"

        signed = mailgun(failed)
        first = client.post("/webhooks/mailgun", json=signed)
        assert first.status_code == 200, first.text
        assert first.json()["results"][0]["kind"] == "hard"
        assert status_of(server.directory, "reader0@example.org") == "bounced"
        after = event_count(server.directory)
        assert client.post("/webhooks/mailgun", json=signed).status_code == 406  # replayed token
        again = client.post("/webhooks/mailgun", json=mailgun(failed))  # re-sent, new token
        assert again.json()["results"][0]["kind"] == "duplicate"
        assert event_count(server.directory) == after

        # A complaint named only by our Message-ID (looked up in the ledger).
        _, _, mid1 = deliveries["reader1@example.org"]
        complained = {
            "event": "complained",
            "recipient": "reader1@example.org",
            "timestamp": time.time(),
            "message": {"headers": {"message-id": mid1.strip("<>")}},
        }
        assert client.post("/webhooks/mailgun", json=mailgun(complained)).status_code == 200
        assert status_of(server.directory, "reader1@example.org") == "unsubscribed"
    assert "webhook mailgun: refused (403): the signature does not match" in server.log()


# --- Postmark -----------------------------------------------------------------------------------


def test_postmark(served: tuple[Server, dict[str, Any]]) -> None:
    server, _ = served
    bounce = {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "reader2@example.org",
        "BouncedAt": "2024-02-27T17:05:00Z",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
    }
    with server.client() as client:
        assert client.post("/webhooks/postmark", json=bounce).status_code == 401
        wrong = client.post("/webhooks/postmark", json=bounce, auth=("kcrush", "nope"))
        assert wrong.status_code == 401
        assert status_of(server.directory, "reader2@example.org") == "active"
        auth = ("kcrush", "pm-pass")
        assert client.post("/webhooks/postmark", json=bounce, auth=auth).status_code == 200
        assert status_of(server.directory, "reader2@example.org") == "bounced"
        soft = bounce | {"Type": "SoftBounce", "Email": "reader3@example.org", "TypeCode": 4096}
        answer = client.post("/webhooks/postmark", json=soft, auth=auth).json()
        assert answer["results"][0]["kind"] == "soft"
        assert status_of(server.directory, "reader3@example.org") == "active"  # 1 of 3
        spam = {
            "RecordType": "SpamComplaint",
            "Email": "reader4@example.org",
            "BouncedAt": "2024-02-27T17:05:00Z",
        }
        assert client.post("/webhooks/postmark", json=spam, auth=auth).status_code == 200
        assert status_of(server.directory, "reader4@example.org") == "unsubscribed"
        assert client.post("/webhooks/postmark", content=b"[]", auth=auth).status_code == 400


# --- SES over SNS, pinned certificate -------------------------------------------------------------


def test_ses_with_the_pinned_certificate(served: tuple[Server, dict[str, Any]]) -> None:
    server, deliveries = served
    d, s, _ = deliveries["reader5@example.org"]
    verp = verp_sender("bounces@kcrush.com", sign_delivery(SECRET.encode(), d, s))
    with server.client() as client:
        body = sns(ses_bounce(verp, "reader5@example.org"), version="1")
        tampered = dict(body, Message=body["Message"].replace("Permanent", "Transient"))
        assert client.post("/webhooks/ses", content=json.dumps(tampered)).status_code == 403
        other_key, _ = make_certificate()
        forged = sns(ses_bounce(verp, "reader5@example.org"), key=other_key)
        assert client.post("/webhooks/ses", content=json.dumps(forged)).status_code == 403
        wrong = sns(ses_bounce(verp, "reader5@example.org"), topic=TOPIC + "-other")
        assert client.post("/webhooks/ses", content=json.dumps(wrong)).status_code == 403
        assert client.post("/webhooks/ses", content=b"nope").status_code == 400
        assert status_of(server.directory, "reader5@example.org") == "active"

        answer = client.post("/webhooks/ses", content=json.dumps(body))
        assert answer.status_code == 200, answer.text
        assert status_of(server.directory, "reader5@example.org") == "bounced"
        assert (
            client.post("/webhooks/ses", content=json.dumps(body)).json()["results"][0]["kind"]
            == "duplicate"
        )

        _, _, mid6 = deliveries["reader6@example.org"]
        v2 = sns(ses_complaint("reader6@example.org", mid6), version="2")
        assert client.post("/webhooks/ses", content=json.dumps(v2)).status_code == 200
        assert status_of(server.directory, "reader6@example.org") == "unsubscribed"

        confirm = sns(
            None,
            kind="SubscriptionConfirmation",
            topic=TOPIC + "-other",
            SubscribeURL="https://sns.us-east-1.amazonaws.com/?Action=Confirm",
            Token="tok",
        )
        assert client.post("/webhooks/ses", content=json.dumps(confirm)).status_code == 403
    assert "is not the configured one" in server.log()


# --- SNS certificate fetching, caching and confirmation (in-process) -----------------------


def test_sns_certificate_is_fetched_only_from_amazonaws_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    path = write_config(tmp_path, base_url="http://127.0.0.1:1", smtp_port=1)
    path.write_text(path.read_text() + WEBHOOKS, encoding="utf-8")
    deliveries = seed(tmp_path)
    fetched: list[str] = []

    async def fetch(url: str) -> bytes:
        fetched.append(url)
        return CERT_PEM if url.endswith(".pem") else b"<ConfirmSubscriptionResponse/>"

    config = load_config(path)
    app = create_app(config, config.database_path, lambda: datetime.now(UTC))
    # The Webhooks object behind the routes: give it the test's fetcher.
    route = next(r for r in app.routes if getattr(r, "path", "") == "/webhooks/ses")
    route.endpoint.__self__.fetch = fetch  # type: ignore[attr-defined]

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            await _fetch_and_cache(client, deliveries, fetched)

    asyncio.run(scenario())


async def _fetch_and_cache(
    client: httpx.AsyncClient, deliveries: dict[str, Any], fetched: list[str]
) -> None:
    for address in ("reader0@example.org", "reader1@example.org"):
        d, s, _ = deliveries[address]
        verp = verp_sender("bounces@kcrush.com", sign_delivery(SECRET.encode(), d, s))
        body = sns(ses_bounce(verp, address, "Transient"), version="2")
        answer = await client.post("/webhooks/ses", content=json.dumps(body))
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"][0]["kind"] == "soft"
    assert fetched == [CERT_URL]  # once, then from the cache

    for bad in (
        "http://sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com.evil.example/cert.pem",
        "https://evil.example/sns.us-east-1.amazonaws.com/cert.pem",
        "https://sns.us-east-1.amazonaws.com/cert.txt",
    ):
        body = sns(ses_bounce("x@kcrush.com", "reader2@example.org"), SigningCertURL=bad)
        assert (await client.post("/webhooks/ses", content=json.dumps(body))).status_code == 403
    assert fetched == [CERT_URL]

    confirm_url = (
        f"https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=t"
    )
    confirm = sns(None, kind="SubscriptionConfirmation", SubscribeURL=confirm_url, Token="t")
    answer = await client.post("/webhooks/ses", content=json.dumps(confirm))
    assert answer.status_code == 200 and answer.json() == {"confirmed": TOPIC}
    assert fetched == [CERT_URL, confirm_url]
    elsewhere = sns(
        None, kind="SubscriptionConfirmation", SubscribeURL="https://evil.example/c", Token="t"
    )
    assert (await client.post("/webhooks/ses", content=json.dumps(elsewhere))).status_code == 400
    assert fetched == [CERT_URL, confirm_url]
