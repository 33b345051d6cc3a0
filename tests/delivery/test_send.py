"""``kcrush-feeds send`` end to end: real config, store, composer and aiosmtpd server."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from pathlib import Path

import pytest

from kcrush_feeds.model import DeliveryCounts
from kcrush_feeds.store import deliveries
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import load_digest
from tests.support.project import Project
from tests.support.sending import NOW, prepare, smtp_section
from tests.support.smtp_server import Behaviour, SmtpServer, smtp_server

WEEK = "2024-W09"


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def send(project: Project, *args: str) -> tuple[int, str, str]:
    result = project.run("send", *args, env={"KCRUSH_FEEDS_NOW": NOW})
    return result.exit_code, result.stdout, result.stderr


def test_send_delivers_once_and_a_second_send_says_why(
    project: Project, server: SmtpServer
) -> None:
    prepare(project, server, 12)
    code, out, _ = send(project)
    assert code == 0, out
    assert out.strip() == f"digest {WEEK}: sent 12, deferred 0, failed 0, skipped 0"
    assert server.counts() == {f"reader{i:03d}@example.org": 1 for i in range(12)}
    # Every message is the composed digest with its deterministic Message-ID, recorded.
    with Store.open(project.config.database_path) as store:
        digest = load_digest(store, WEEK)
        assert digest is not None and digest.status == "done"
        recorded = dict(
            store.conn.execute(
                "SELECT s.email, d.message_id FROM deliveries d "
                "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.status = 'sent'"
            )
        )
    for received in server.received:
        msg = email.message_from_bytes(received.data, policy=email.policy.default)
        assert msg["Message-ID"] == recorded[received.rcpt]
        assert msg["To"].addresses[0].addr_spec == received.rcpt
        assert msg.get_content_type() == "multipart/alternative"
        assert received.mail_from == "newsletter@kcrush.com"

    code, out, _ = send(project)
    assert code == 0
    assert out.startswith(f"digest {WEEK}: already sent on 2024-02-27 09:00 (12 delivered)")
    assert "nothing to send until next week" in out
    assert len(server.received) == 12


def test_nothing_new_sends_nothing_and_says_so(project: Project, server: SmtpServer) -> None:
    project.append_config(smtp_section(server))
    code, out, _ = send(project)
    assert code == 0
    assert out.strip() == f"digest {WEEK}: nothing new since the last digest: none this week"
    assert server.received == []


def test_subscribers_with_nothing_for_them_are_skipped(
    project: Project, server: SmtpServer
) -> None:
    # Films only: the sample records of this week are K-Pop articles and interviews.
    extra = "film@example.org,Film Fan,kpop-articles,active\n"
    prepare(project, server, 3, csv_extra=extra)
    with Store.open(project.config.database_path) as store:
        store.conn.execute(
            "UPDATE subscribers SET categories = '[\"nothing-here\"]' "
            "WHERE email = 'film@example.org'"
        )
    code, out, _ = send(project)
    assert code == 0
    assert "sent 3, deferred 0, failed 0, skipped 1" in out
    assert "film@example.org" not in server.counts()


def test_deferred_exits_75_and_the_next_run_sends_the_rest(
    project: Project, server: SmtpServer
) -> None:
    prepare(project, server, 6)
    server.behaviour.tempfail["reader002@example.org"] = 3  # more than 1 try + 2 retries
    code, out, err = send(project)
    assert code == 75
    assert "sent 5, deferred 1, failed 0" in out
    assert "deferred deliveries are retried by the next run" in out
    assert "reader002@example.org: deferred: 451" in err
    # Same week, a later run: only the deferred one goes, with the same Message-ID.
    code, out, _ = send(project)
    assert code == 0
    assert "sent 1, deferred 0, failed 0" in out
    assert server.counts() == {f"reader{i:03d}@example.org": 1 for i in range(6)}
    refused_attempts = [a for a, c in server.refusals if c == 451]
    assert refused_attempts == ["reader002@example.org"] * 3


def test_550_fails_records_the_reply_and_exits_1(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 4)
    server.behaviour.reject.add("reader001@example.org")
    code, out, err = send(project)
    assert code == 1
    assert "sent 3, deferred 0, failed 1" in out
    assert "warning: reader001@example.org: 550 5.1.1 No such user here" in err
    with Store.open(project.config.database_path) as store:
        digest = load_digest(store, WEEK)
        assert digest is not None and digest.status == "done"
        row = store.conn.execute(
            "SELECT d.status, d.last_reply, s.hard_bounces FROM deliveries d "
            "JOIN subscribers s ON s.id = d.subscriber_id "
            "WHERE s.email = 'reader001@example.org'"
        ).fetchone()
    assert row == ("failed", "550 5.1.1 No such user here", 1)
    # Failed for good: not retried by the next run.
    code, out, _ = send(project)
    assert code == 0 and "already sent" in out


def test_unreachable_server_exits_75_and_sends_later(project: Project) -> None:
    with smtp_server(behaviour=Behaviour(refuse_connections=1000)) as server:
        prepare(project, server, 3, retries=1)
        code, out, err = send(project)
        assert code == 75
        assert "421" in out and "the rest waits for the next run" in out
        assert "retrying" in err  # the connection attempts are logged
        server.behaviour.refuse_connections = 0
        code, out, _ = send(project)
        assert code == 0 and "sent 3" in out
        assert server.counts() == {f"reader{i:03d}@example.org": 1 for i in range(3)}


def test_dry_run_writes_eml_and_marks_nothing(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 5)
    out_dir = project.dir / "outbox"
    code, out, _ = send(project, "--dry-run", str(out_dir))
    assert code == 0
    assert f"dry run: wrote 5 messages to {out_dir}" in out
    files = sorted(out_dir.glob("*.eml"))
    assert len(files) == 5
    msg = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert msg["To"].addresses[0].addr_spec == "reader000@example.org"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert server.received == []
    with Store.open(project.config.database_path) as store:
        assert load_digest(store, WEEK) is None  # not even created
    # The real send afterwards sends all five.
    code, out, _ = send(project)
    assert "sent 5" in out


def test_dry_run_default_directory(
    project: Project, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare(project, server, 2)
    monkeypatch.chdir(project.dir)
    code, out, _ = send(project, "--dry-run")
    assert code == 0
    assert "wrote 2 messages to dry-run" in out
    assert len(list((project.dir / "dry-run").glob("*.eml"))) == 2


def test_to_sends_one_test_copy_and_marks_nothing(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 3)
    code, out, _ = send(project, "--to", "Editor@KCrush.com")
    assert code == 0, out
    assert "test copy to Editor@kcrush.com: 250" in out
    assert server.recipients() == ["Editor@kcrush.com"]
    with Store.open(project.config.database_path) as store:
        assert load_digest(store, WEEK) is None
    code, out, _ = send(project)
    assert "sent 3" in out


def test_to_rejects_a_bad_address(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 1)
    code, _, err = send(project, "--to", "not an address")
    assert code == 2
    assert "--to not an address" in err
    assert server.received == []


def test_dry_run_and_to_together_is_a_usage_error(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 1)
    code, _, err = send(project, "--dry-run", "x", "--to", "a@example.org")
    assert code == 2 and "cannot be used together" in err


def test_missing_password_variable_is_a_config_error(
    project: Project, server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KCRUSH_TEST_SMTP_PASSWORD", raising=False)
    prepare(project, server, 1, username="newsletter", password_env="KCRUSH_TEST_SMTP_PASSWORD")
    code, _, err = send(project)
    assert code == 2
    assert "KCRUSH_TEST_SMTP_PASSWORD" in err
    assert server.received == []


def test_starttls_and_auth_from_the_config(project: Project) -> None:
    with smtp_server(tls="starttls", auth=("newsletter", "pw-from-env")) as server:
        ca = server.ca_file(project.dir)
        prepare(
            project,
            server,
            3,
            username="newsletter",
            password_env="KCRUSH_TEST_SMTP_PASSWORD",
            ca_file=ca,
        )
        config = project.config_path.read_text()
        project.config_path.write_text(
            config.replace('tls = "none"', 'tls = "starttls"').replace(
                'host = "127.0.0.1"', 'host = "localhost"'
            )
        )
        result = project.run(
            "send", env={"KCRUSH_FEEDS_NOW": NOW, "KCRUSH_TEST_SMTP_PASSWORD": "pw-from-env"}
        )
        assert result.exit_code == 0, result.output
        assert "sent 3" in result.stdout
        assert server.logins and set(server.logins) == {"newsletter"}


def test_status_shows_the_deliveries(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 3)
    send(project)
    result = project.run("status", env={"KCRUSH_FEEDS_NOW": NOW})
    assert f"last digest: {WEEK} (done)" in result.stdout
    assert "deliveries: 3 sent, 0 deferred, 0 failed" in result.stdout


def test_counts_helper_matches_the_server(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 7)
    send(project)
    with Store.open(project.config.database_path) as store:
        digest = load_digest(store, WEEK)
        assert digest is not None
        assert deliveries.counts(store, digest.id) == DeliveryCounts(7, 0, 0)
        assert deliveries.count_pending(store, digest.id) == 0
    assert len(server.received) == 7


def test_help_describes_exit_status(project: Project) -> None:
    result = project.run("send", "--help")
    assert "75" in result.stdout and "--dry-run" in result.stdout and "--to" in result.stdout


def test_config_path_is_relative_ca_file(project: Project, tmp_path: Path) -> None:
    with smtp_server(tls="implicit") as server:
        server.ca_file(project.dir)
        prepare(project, server, 2, ca_file="test-ca.pem")
        config = project.config_path.read_text()
        project.config_path.write_text(
            config.replace('tls = "none"', 'tls = "tls"').replace(
                'host = "127.0.0.1"', 'host = "localhost"'
            )
        )
        code, out, _ = send(project)
        assert code == 0, out
        assert "sent 2" in out


def test_dropped_connections_still_deliver_each_once(project: Project, server: SmtpServer) -> None:
    prepare(project, server, 15)
    server.behaviour.drop_after = 3
    code, out, _ = send(project)
    assert code == 0, out
    assert "sent 15, deferred 0, failed 0" in out
    assert server.counts() == {f"reader{i:03d}@example.org": 1 for i in range(15)}
    assert server.connections >= 5


def test_a_hostile_greeting_reaches_the_terminal_escaped(project: Project) -> None:
    # A relay whose greeting carries terminal escape codes (set the title, clear the screen).
    greeting = "421 4.7.0 \x1b]0;pwned\x07\x1b[2J\x1b[31mgo away\x9b"
    behaviour = Behaviour(refuse_connections=1000, refusal=greeting)
    with smtp_server(behaviour=behaviour) as server:
        prepare(project, server, 2, retries=0)
        code, out, err = send(project)
    assert code == 75
    for stream in (out, err):
        assert "\x1b" not in stream and "\x07" not in stream and "\x9b" not in stream
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[31mgo away" in out + err
