"""Hostile input against a real ``kcrush-feeds serve`` (issue 18, part B): the slash
redirect, idle and slow sockets, a port in use, a store that cannot be opened.

Real sockets against a real server process; nothing reaches past 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from kcrush_feeds import tokens
from tests.support.mailcheck import HOSTILE_NAMES, one_mailbox
from tests.support.serve import (
    SECRET,
    SECRET_ENV,
    Server,
    SmtpSink,
    csrf_from,
    link_in,
    start_server,
    subscribe,
    write_config,
)


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, smtp: SmtpSink) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("serve-hostile")
    running = start_server(
        directory,
        smtp,
        extra="rate_limit_client = 1000",
        args=("--header-timeout", "1", "--keep-alive", "1", "--max-connections", "100"),
    )
    yield running
    running.stop()


# --- point 7: a display name never adds a mailbox ----------------------------------------


def test_hostile_names_in_the_confirmation_and_already_subscribed_mails(server: Server) -> None:
    names = [n for n in HOSTILE_NAMES if "\n" not in n and "\r" not in n]
    with server.client() as client:
        for number, name in enumerate(names):
            address = f"hostile{number}@example.com"
            assert subscribe(client, address, name=name).status_code == 200
            server.smtp.wait_for(address)
            (raw,) = server.smtp.raw_to(address)
            assert one_mailbox(raw, "To")[1] == address
            assert one_mailbox(raw, "From")[1] == "newsletter@kcrush.com"
        # Confirmed, then the form again: the "already subscribed" mail, same name.
        address = "hostile0@example.com"
        mail = server.smtp.wait_for(address)[0]
        assert client.get(link_in(mail, "confirm")).status_code == 200
        welcome = server.smtp.wait_for(address, count=2)[1]  # the welcome mail, same name
        assert welcome["Subject"] == "Welcome to KCrush Weekly"
        assert one_mailbox(server.smtp.raw_to(address)[1], "To")[1] == address
        assert subscribe(client, address, name=names[0]).status_code == 200
        notice = server.smtp.wait_for(address, count=3)[2]
        assert notice["Subject"].startswith("You are already subscribed")
        raw = server.smtp.raw_to(address)[2]
        assert one_mailbox(raw, "To")[1] == address


# --- point 8: an old confirm link stays dead after unsubscribe and a new subscription --------


def test_an_old_confirm_link_is_refused_after_unsubscribe_and_subscribing_again(
    server: Server,
) -> None:
    address = "twice@example.com"
    with server.client() as client:
        assert subscribe(client, address).status_code == 200
        old_link = link_in(server.smtp.wait_for(address)[0], "confirm")
        assert client.get(old_link).status_code == 200
        token = tokens.sign(SECRET.encode(), "unsubscribe", address)
        one_click = {"List-Unsubscribe": "One-Click"}
        assert client.post(f"/unsubscribe?token={token}", data=one_click).status_code == 200
        # Someone (not the owner) submits the form again: pending, a new mail to the owner.
        assert subscribe(client, address).status_code == 200
        assert server.subscriber(address).status == "pending"  # type: ignore[union-attr]
        mails = server.smtp.wait_for(address, count=3)  # confirm, welcome, confirm
        confirms = [m for m in mails if m["Subject"].startswith("Confirm")]
        new_link = link_in(confirms[1], "confirm")
        # The old link, followed by whoever kept it (real clock, same second or not): refused.
        refused = client.get(old_link)
        assert refused.status_code == 400 and "no longer valid" in refused.text
        assert server.subscriber(address).status == "pending"  # type: ignore[union-attr]
        # The owner's new link confirms.
        assert client.get(new_link).status_code == 200
    assert server.subscriber(address).status == "active"  # type: ignore[union-attr]


# --- point 9: no mail bomb, no lock-out through the form ----------------------------------


def test_the_form_cannot_flood_a_mailbox_nor_lock_its_owner_out(
    tmp_path: Path, smtp: SmtpSink
) -> None:
    # Clients told apart by X-Forwarded-For from a trusted proxy, as behind nginx.
    server = start_server(
        tmp_path,
        smtp,
        extra='rate_limit_client = 10\nrate_limit_address = 3\ntrusted_proxies = ["127.0.0.1"]',
    )
    try:
        for client_number in range(5):
            headers = {"X-Forwarded-For": f"203.0.113.{client_number + 1}"}
            with server.client(headers=headers) as client:
                for n in range(10):
                    address = f"Victim+{client_number}-{n}@Example.com"
                    assert subscribe(client, address).status_code == 200
        with server.client(headers={"X-Forwarded-For": "203.0.113.99"}) as attacker:
            for _ in range(3):
                assert subscribe(attacker, "victim@example.com").status_code == 200
        # The owner, from a client of their own, right after: answered as always.
        with server.client(headers={"X-Forwarded-For": "198.51.100.7"}) as owner:
            assert subscribe(owner, "victim@example.com").status_code == 200
        time.sleep(1.0)  # let every mail that was sent arrive
        to_mailbox = [c for c in smtp.messages if any("victim" in r.lower() for r in c.recipients)]
        assert len(to_mailbox) == 3  # rate_limit_address, not 50
        # What is stored is the address as given, plus-tag and case kept.
        assert server.subscriber("Victim+0-0@example.com").email == "Victim+0-0@example.com"  # type: ignore[union-attr]
    finally:
        server.stop()


# --- CSRF: a planted cookie gets no token ------------------------------------------------


def test_a_planted_csrf_cookie_and_its_token_do_not_pass(server: Server) -> None:
    # The attacker picks a cookie value, plants it in the victim's browser (a sibling
    # domain can set cookies) and asks the form for a token that matches it.
    planted = "A" * 32
    with server.client(cookies={"kcrush_csrf": planted}) as attacker:
        page = attacker.get("/subscribe")
        assert page.status_code == 200
        token = csrf_from(page.text)
    # The victim's browser posts the planted cookie with that token.
    with server.client(cookies={"kcrush_csrf": planted}) as victim:
        answer = victim.post(
            "/subscribe", data={"email": "planted@example.com", "csrf_token": token}
        )
    assert answer.status_code == 403
    assert server.subscriber("planted@example.com") is None


# --- point 12: no redirect to the Host header --------------------------------------------


@pytest.mark.parametrize("path", ["/subscribe/", "/confirm/", "/health/", "/preferences/"])
def test_a_trailing_slash_is_404_not_a_redirect_to_the_host_header(
    server: Server, path: str
) -> None:
    with server.client(headers={"Host": "evil.example"}, follow_redirects=False) as client:
        answer = client.get(path)
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert "evil.example" not in answer.text


# --- point 13: idle and slow connections --------------------------------------------------


def _open(server: Server, count: int, first_bytes: bytes) -> list[socket.socket]:
    out = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        out.append(s)
    return out


def _closed_by_peer(s: socket.socket) -> bool:
    s.setblocking(False)
    try:
        data = s.recv(4096)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        s.setblocking(True)
    return data == b"" or data.startswith(b"HTTP/1.1 4")  # closed, or closed with a 4xx


def _wait_all_closed(sockets: list[socket.socket], timeout: float) -> int:
    deadline = time.monotonic() + timeout
    open_ = list(sockets)
    while open_ and time.monotonic() < deadline:
        open_ = [s for s in open_ if not _closed_by_peer(s)]
        time.sleep(0.1)
    return len(open_)


def test_slow_header_sockets_are_closed_after_the_header_timeout(server: Server) -> None:
    # The slowloris shape: a request line and half a header, then nothing.
    slow = _open(server, 60, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    silent = _open(server, 30, b"")
    try:
        # --header-timeout 1: every one closed within a few seconds, not kept for good.
        assert _wait_all_closed(slow + silent, timeout=8) == 0
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
    finally:
        for s in slow + silent:
            s.close()


def test_a_body_that_trickles_in_is_cut_off(server: Server) -> None:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        s.sendall(
            b"POST /subscribe HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 9000\r\n\r\n"
        )
        closed = False
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # a byte every 0.2 s: never a whole body
            try:
                s.sendall(b"e")
            except OSError:
                closed = True
                break
            if _closed_by_peer(s):
                closed = True
                break
            time.sleep(0.2)
        assert closed, "the connection was kept open for a body that never completes"
    finally:
        s.close()


def test_idle_keep_alive_connections_are_closed(server: Server) -> None:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        # --keep-alive 1: the idle connection goes (and a dribbled second request too).
        s.sendall(b"GET /health HTTP/1.1\r\n")
        assert _wait_all_closed([s], timeout=6) == 0
    finally:
        s.close()


def test_more_idle_sockets_than_the_limit_do_not_lock_out_a_request(server: Server) -> None:
    # --max-connections 100: 150 idle sockets push each other out; a real request still
    # gets its answer at once (before any header timeout could have helped).
    idle = _open(server, 150, b"")
    try:
        started = time.monotonic()
        assert httpx.get(f"{server.url}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.9
        still_open = sum(not _closed_by_peer(s) for s in idle)
        assert still_open <= 100
    finally:
        for s in idle:
            s.close()


# --- serve's own errors: one clear line, the right exit status -----------------------------


def _serve(directory: Path, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "kcrush_feeds",
            "--config",
            str(directory / "config.toml"),
            "serve",
            "--port",
            str(port),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, SECRET_ENV: SECRET},
    )


def test_serve_on_a_port_in_use_exits_1_with_one_line(tmp_path: Path, server: Server) -> None:
    write_config(tmp_path, base_url="http://127.0.0.1:1/", smtp_port=server.smtp.port)
    done = _serve(tmp_path, server.port)  # the module's server holds this port
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"cannot listen on 127.0.0.1:{server.port}" in done.stderr


def test_serve_with_a_store_that_cannot_be_opened_exits_1(tmp_path: Path, smtp: SmtpSink) -> None:
    write_config(tmp_path, base_url="http://127.0.0.1:1/", smtp_port=smtp.port)
    (tmp_path / "store.db").write_bytes(b"this is not a SQLite database, not at all" * 100)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _serve(tmp_path, port)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "cannot open the store" in done.stderr


def test_a_store_that_refuses_writes_is_503_not_500(tmp_path: Path) -> None:
    """A full disk (here: a trigger that aborts every new subscriber, as SQLite aborts a
    write on a full disk) is the store's trouble, temporary: 503 with Retry-After."""
    import sqlite3

    with SmtpSink() as sink:
        server = start_server(tmp_path / "site", sink)
        try:
            db = next((tmp_path / "site").glob("*.db"))
            conn = sqlite3.connect(db)
            conn.execute(
                "CREATE TRIGGER full_disk BEFORE INSERT ON subscribers "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
            conn.commit()
            conn.close()
            with server.client() as client:
                answer = subscribe(client, "new.reader@example.org")
            assert answer.status_code == 503, answer.text
            assert answer.headers["retry-after"] == "60"
            assert "try again" in answer.text
        finally:
            server.stop()
