"""Exactly once, whatever happens to the process: real ``send`` processes, SIGKILLed,
SIGTERMed or started twice at once, against a real aiosmtpd server.

The one window for a duplicate is between the server's 250 and the local commit
(docs/delivery.md). Each test measures that window at the moment of the crash (the
subscribers the server has a message for but the store has no ``sent`` row for) and
checks that after a re-run exactly those got two messages and everyone else one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from kcrush_feeds.delivery.send import ENV_CRASH
from tests.support.project import Project, sent_rows
from tests.support.sending import NOW, prepare
from tests.support.smtp_server import SmtpServer, smtp_server

N_SUBSCRIBERS = 40


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def everyone() -> set[str]:
    return {f"reader{i:03d}@example.org" for i in range(N_SUBSCRIBERS)}


def send_process(project: Project, **env: str) -> subprocess.Popen[str]:
    full = {**os.environ, "KCRUSH_FEEDS_NOW": NOW, **env}
    return subprocess.Popen(
        [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), "send"],
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_send(project: Project, **env: str) -> tuple[int, str, str]:
    process = send_process(project, **env)
    out, err = process.communicate(timeout=120)
    return process.returncode, out, err


def check_exactly_once_but_window(
    project: Project, server: SmtpServer, window: set[str], *, senders: int
) -> None:
    """After the re-run: the window got two, everyone else one, and the window is small."""
    counts = server.counts()
    assert set(counts) == everyone()
    twice = {address for address, n in counts.items() if n == 2}
    assert twice == window
    assert max(counts.values()) <= 2
    assert len(window) <= senders
    assert sent_rows(project) == everyone()
    # The repeated message is the same message: same Message-ID both times.
    for address in window:
        ids = {r.message_id for r in server.received if r.rcpt == address}
        assert len(ids) == 1


@pytest.mark.parametrize(
    ("crash", "concurrency"),
    [
        ("1", 1),
        ("7", 1),
        ("1:committed", 1),
        ("40", 1),
        ("7", 3),
        ("23", 3),
        ("23:committed", 3),
        ("40", 3),
    ],
)
def test_sigkill_at_the_nth_message_then_rerun(
    project: Project, server: SmtpServer, crash: str, concurrency: int
) -> None:
    prepare(project, server, N_SUBSCRIBERS, concurrency=concurrency)
    code, _, _ = run_send(project, **{ENV_CRASH: crash})
    assert code == -signal.SIGKILL
    server.settle()
    nth = int(crash.partition(":")[0])
    received = set(server.recipients())
    assert len(server.received) >= nth
    window = received - sent_rows(project)
    if concurrency == 1:
        # One connection: the server's Nth message is the Nth 250 the client got.
        nth_address = server.received[nth - 1].rcpt
        if crash.endswith(":committed"):
            assert nth_address not in window
        else:
            assert nth_address in window
    code, out, err = run_send(project)
    assert code == 0, err
    assert f"sent {N_SUBSCRIBERS - len(received - window)}" in out
    check_exactly_once_but_window(project, server, window, senders=concurrency)


def test_sigkill_from_outside_at_arbitrary_moments(project: Project, server: SmtpServer) -> None:
    """kill -9 while sending (rate-limited so it is caught mid-run), three times over."""
    prepare(project, server, N_SUBSCRIBERS, concurrency=2, rate_limit=100)
    windows: set[str] = set()
    for target in (5, 17, 29):
        process = send_process(project)
        server.wait_for(target, timeout=30)
        process.kill()
        process.wait()
        server.settle()
        windows |= set(server.recipients()) - sent_rows(project)
    code, _, err = run_send(project)
    assert code == 0, err
    counts = server.counts()
    assert set(counts) == everyone()
    assert {a for a, n in counts.items() if n > 1} == windows
    assert max(counts.values()) <= 2


def test_sigterm_finishes_the_message_in_flight_records_it_and_exits(
    project: Project, server: SmtpServer
) -> None:
    prepare(project, server, N_SUBSCRIBERS, concurrency=2, rate_limit=20)
    process = send_process(project)
    server.wait_for(5, timeout=30)
    status = project.run("status", "--json")
    assert f'"pid": {process.pid}' in status.stdout  # status sees the send running
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 75
    assert "SIGTERM: finishing the messages in flight, then stopping" in err
    assert "stopped by a signal; the rest waits for the next run" in out
    # Nothing in the window: every message the server accepted was recorded before exit.
    assert set(server.recipients()) == sent_rows(project)
    assert len(server.received) < N_SUBSCRIBERS
    code, _, _ = run_send(project)
    assert code == 0
    assert server.counts() == Counter(everyone())


def test_two_sends_started_together_deliver_each_message_once(
    project: Project, server: SmtpServer
) -> None:
    prepare(project, server, N_SUBSCRIBERS, concurrency=2)
    first, second = send_process(project), send_process(project)
    outputs = [p.communicate(timeout=60) for p in (first, second)]
    codes = [first.returncode, second.returncode]
    assert server.counts() == Counter(everyone())
    text = [out + err for out, err in outputs]
    sent = [t for t in text if f"sent {N_SUBSCRIBERS}," in t]
    assert len(sent) == 1, text
    other = text[1 - text.index(sent[0])]
    # The other one waited for the lock and found the digest sent, or gave up waiting.
    assert "already sent" in other or "another 'kcrush-feeds send' is running" in other
    assert sorted(codes) in ([0, 0], [0, 1])


def test_sigint_too(project: Project, server: SmtpServer) -> None:
    prepare(project, server, N_SUBSCRIBERS, concurrency=1, rate_limit=20)
    process = send_process(project)
    server.wait_for(3, timeout=30)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 75, err
    assert "stopped by a signal" in out
    assert set(server.recipients()) == sent_rows(project)
    started = time.monotonic()
    assert run_send(project)[0] == 0
    assert time.monotonic() - started < 30
    assert server.counts() == Counter(everyone())
