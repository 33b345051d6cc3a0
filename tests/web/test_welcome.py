"""The welcome mail through a real ``serve`` and a real aiosmtpd: sent exactly once after
confirming, from ``subscriptions.from``; kept and retried when the SMTP server was down,
across a restart of ``serve``; never a digest delivery."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from tests.support.serve import Server, SmtpSink, link_in, start_server, subscribe

ADDRESS = "newbie@example.com"
EXTRA = 'from = "KCrush <hello@kcrush.com>"\nmail_retry = "1s"'


def welcomes(server: Server, address: str) -> list[str]:
    return [m["Subject"] for m in server.smtp.to(address) if m["Subject"].startswith("Welcome")]


def outbox(directory: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(directory / "store.db")
    try:
        return conn.execute("SELECT kind, status, recipient FROM outbox ORDER BY id").fetchall()
    finally:
        conn.close()


def test_one_welcome_after_confirming(tmp_path: Path) -> None:
    with SmtpSink() as smtp:
        server = start_server(tmp_path / "site", smtp, extra=EXTRA)
        try:
            with server.client() as client:
                assert subscribe(client, ADDRESS, name="Newbie").status_code == 200
                confirm = smtp.wait_for(ADDRESS)[0]
                link = link_in(confirm, "confirm")
                for _ in range(3):  # the reader, their mail scanner, a second click
                    assert client.get(link).status_code == 200
            welcome = smtp.wait_for(ADDRESS, count=2)[1]
            time.sleep(1.0)  # anything more would have arrived by now
            assert welcomes(server, ADDRESS) == ["Welcome to KCrush Weekly"]
        finally:
            server.stop()
    assert welcome["From"] == "KCrush <hello@kcrush.com>"
    assert confirm["From"] == "KCrush <hello@kcrush.com>"
    assert {c.sender for c in smtp.messages} == {"hello@kcrush.com"}
    assert welcome.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in welcome.iter_parts()] == ["text/plain", "text/html"]
    assert welcome["List-Unsubscribe"].startswith(f"<{server.url}/unsubscribe?token=")
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = welcome.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi Newbie," in text and "every Monday" in text
    assert outbox(server.directory) == [
        ("confirm", "sent", ADDRESS),
        ("welcome", "sent", ADDRESS),
    ]
    conn = sqlite3.connect(server.directory / "store.db")
    try:
        assert conn.execute("SELECT count(*) FROM deliveries").fetchone() == (0,)
    finally:
        conn.close()


def test_the_welcome_waits_for_the_smtp_server_across_a_restart(tmp_path: Path) -> None:
    smtp = SmtpSink()
    smtp.up()
    server = start_server(tmp_path / "site", smtp, extra=EXTRA)
    try:
        with server.client() as client:
            assert subscribe(client, ADDRESS).status_code == 200
            link = link_in(smtp.wait_for(ADDRESS)[0], "confirm")
            smtp.down()  # the SMTP server goes down
            assert client.get(link).status_code == 200  # the answer does not wait for it
        deadline = time.monotonic() + 15
        while "not sent yet" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "welcome mail to newbie@example.com not sent yet" in server.log()
        assert outbox(server.directory)[-1] == ("welcome", "pending", ADDRESS)

        # serve restarts while the SMTP server is still down; the queue is in the store.
        server.stop()
        server = start_server(server.directory, smtp, port=server.port, write=False)
        time.sleep(1.5)
        assert outbox(server.directory)[-1] == ("welcome", "pending", ADDRESS)

        smtp.up()  # ... and comes back
        smtp.wait_for(ADDRESS, count=2, timeout=30)
        time.sleep(1.0)
        assert welcomes(server, ADDRESS) == ["Welcome to KCrush Weekly"]
        assert outbox(server.directory)[-1] == ("welcome", "sent", ADDRESS)
    finally:
        server.stop()
        smtp.down()
