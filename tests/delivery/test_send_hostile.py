"""Delivery against servers and stores that misbehave on purpose (real aiosmtpd, real SQLite).

- A server that takes the message and drops the line before its reply: "uncertain", never
  resent in the same run, tried once more by a later run, never again.
- A relay that takes DATA and never answers: the circuit breaker ends the run after a few
  timeouts (exit 75), and SIGTERM ends it at once.
- A store whose commit fails mid-send: every sender stops, at most one unrecorded message
  per connection, exit 75 with a clear message, and nothing else is resent.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

from kcrush_feeds.delivery.smtp import BREAKER_TIMEOUTS, STOP_GRACE
from tests.support.project import Project, sent_rows
from tests.support.sending import NOW, prepare
from tests.support.smtp_server import Behaviour, SmtpServer, smtp_server


def send(project: Project, *args: str) -> tuple[int, str, str]:
    result = project.run("send", *args, env={"KCRUSH_FEEDS_NOW": NOW})
    return result.exit_code, result.stdout, result.stderr


def readers(n: int) -> set[str]:
    return {f"reader{i:03d}@example.org" for i in range(n)}


def test_reply_dropped_after_data_is_uncertain_and_tried_once_later(project: Project) -> None:
    with smtp_server(behaviour=Behaviour(drop_data=-1)) as server:
        prepare(project, server, 6, retries=3)
        code, out, _ = send(project)
        assert code == 75, out
        assert "sent 0, deferred 0, failed 0, skipped 0, uncertain 6" in out
        assert "tried once more by the next run, never again" in out
        # Each message went out once: no retry in the run that lost the reply.
        assert server.counts() == Counter(dict.fromkeys(readers(6), 1))
        code, out, _ = send(project)  # the later run: the one more try, uncertain again
        assert "uncertain 6" in out
        code, out, _ = send(project)  # and no more tries after that
        assert code == 0 and "already sent" in out, out
    counts = server.counts()
    assert max(counts.values()) == 2  # the measured duplicate window: two copies at most
    assert sum(counts.values()) == 12


def test_reply_dropped_once_then_the_later_run_delivers(project: Project) -> None:
    with smtp_server(behaviour=Behaviour(drop_data=1)) as server:
        prepare(project, server, 4, concurrency=1)
        code, out, _ = send(project)
        assert code == 75 and "sent 3, deferred 0, failed 0, skipped 0, uncertain 1" in out
        code, out, _ = send(project)
        assert code == 0 and "sent 1, deferred 0, failed 0" in out, out
    counts = server.counts()
    assert sorted(counts.values()) == [1, 1, 1, 2]  # the uncertain one, tried once more


def test_a_relay_that_never_answers_trips_the_breaker(project: Project) -> None:
    """Worst case against a relay that takes DATA and never replies: the breaker's
    timeouts, ceil(BREAKER_TIMEOUTS / concurrency) waves of smtp.timeout, then exit 75."""
    concurrency, timeout = 2, 1.0
    with smtp_server(behaviour=Behaviour(slow=3600)) as server:
        prepare(project, server, 30, concurrency=concurrency, timeout="1s", retries=3)
        started = time.monotonic()
        code, out, err = send(project)
        elapsed = time.monotonic() - started
        assert code == 75, out + err
        assert "stopped answering (3 timeouts in a row)" in out + err
        assert "the rest waits for the next run" in out
        waves = math.ceil(BREAKER_TIMEOUTS / concurrency)
        # The run is bounded by the breaker's waves of timeouts, never by the list size
        # (30 subscribers x 4 tries x 1 s before); compared with the configured timeout.
        assert elapsed < (waves + 2) * timeout, elapsed
        # At most one message per connection per wave reached the silent relay.
        assert len(server.received) <= waves * concurrency
        assert max(server.counts().values()) == 1
    print(f"worst case against a silent relay: {elapsed:.2f}s for timeout={timeout}s")


def test_sigterm_stops_a_run_waiting_on_a_silent_relay_at_once(project: Project) -> None:
    with smtp_server(behaviour=Behaviour(slow=3600)) as server:
        prepare(project, server, 10, concurrency=1, timeout="60s", retries=3)
        process = subprocess.Popen(
            [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), "send"],
            env={**os.environ, "KCRUSH_FEEDS_NOW": NOW},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not server.received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.received, "the relay never got the first message"
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        took = time.monotonic() - stopped
    assert process.returncode == 75, out + err
    assert "uncertain 1" in out and "stopped by a signal" in out
    assert took < STOP_GRACE + 5, took  # the smtp.timeout is 60 s: not waited for
    assert len(server.received) == 1
    print(f"SIGTERM to exit against a silent relay: {took:.2f}s (smtp.timeout = 60s)")


def _fail_commits_after(project: Project, rows: int) -> None:
    """A real failing commit: SQLite aborts every write to the ledger past ``rows`` rows."""
    with sqlite3.connect(project.config.database_path) as conn:
        conn.execute(
            "CREATE TRIGGER kc_test_full BEFORE INSERT ON deliveries "
            f"WHEN (SELECT count(*) FROM deliveries) >= {rows} "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )


def test_a_failing_commit_stops_every_sender_and_exits_75(project: Project) -> None:
    concurrency = 3
    with smtp_server() as server:
        prepare(project, server, 40, concurrency=concurrency)
        # The first commit creates the digest's rows: let a few deliveries be recorded.
        _fail_commits_after(project, 5)
        code, out, err = send(project)
        assert code == 75, out + err
        assert "cannot record deliveries in the store" in err
        assert "database or disk is full" in err
        assert "every sender stopped at once" in err
        recorded = sent_rows(project)
        unrecorded = set(server.counts()) - recorded
        # At most one message per connection was accepted without its row.
        assert 1 <= len(unrecorded) <= concurrency, unrecorded
        with sqlite3.connect(project.config.database_path) as conn:
            conn.execute("DROP TRIGGER kc_test_full")
        code, out, _ = send(project)
        assert code == 0, out
    counts = server.counts()
    assert set(counts) == readers(40)
    twice = {a for a, n in counts.items() if n == 2}
    assert twice == unrecorded  # nothing else was sent again
    assert max(counts.values()) <= 2


def test_smtp_server_misbehaviours_are_real(project: Project) -> None:
    """The misbehaving server itself: the message is queued, the reply never comes."""
    import smtplib

    server: SmtpServer
    with smtp_server(behaviour=Behaviour(drop_data=1)) as server:
        client = smtplib.SMTP(server.host, server.port, timeout=5)
        try:
            client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhi\r\n")
        except smtplib.SMTPServerDisconnected:
            pass
        else:
            raise AssertionError("the server replied")
    assert server.recipients() == ["b@example.org"]
