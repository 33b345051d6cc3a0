"""``serve`` as a first-time user meets it (issue 15, findings 6 and 10): an SMTP server that
is not running yet, and an error page. A real ``serve`` process, real HTTP (httpx)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.support.serve import Server, SmtpSink, start_server, subscribe


def _wait_for_log(server: Server, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not in the serve log:\n{server.log()}")


def test_serve_says_once_at_start_that_smtp_is_unreachable_and_logs_no_false_hint(
    tmp_path: Path,
) -> None:
    down = SmtpSink()  # never started: nothing listens on its port
    server = start_server(tmp_path, down, extra="rate_limit_client = 100")
    try:
        log = _wait_for_log(server, "cannot be reached")
        assert log.count("cannot be reached") == 1
        assert f"the SMTP server 127.0.0.1:{down.port} cannot be reached" in log
        with server.client() as client:
            assert subscribe(client, "new.reader@example.org").status_code == 200
        # What the log says is true: the outbox (issue 14) retries the confirmation mail.
        log = _wait_for_log(server, "mail to new.reader@example.org not sent yet")
        assert "retrying at" in log
        assert "a later run retries" not in log
        assert log.count("cannot be reached") == 1  # at start only, not per mail
    finally:
        server.stop()


def test_serve_with_smtp_running_does_not_warn(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        server = start_server(tmp_path, sink)
        try:
            with server.client() as client:
                assert client.get("/health").status_code == 200
            assert "cannot be reached" not in server.log()
        finally:
            server.stop()


def test_an_error_page_says_its_message_once(tmp_path: Path) -> None:
    with SmtpSink() as sink:
        server = start_server(tmp_path, sink)
        try:
            with server.client() as client:
                for path in ("/unsubscribe?token=garbage", "/preferences?token=a.b.c"):
                    page = client.get(path)
                    assert page.status_code == 400
                    body = re.sub(r"<title>.*?</title>", "", page.text, flags=re.S)
                    assert body.count("this link is not valid (malformed token)") == 1, body
        finally:
            server.stop()
