"""``inbound`` end to end: a real send through a relay that bounces, then the Maildir read back.

The relay is aiosmtpd on 127.0.0.1: it accepts every message and, for the recipients it
is told to bounce, mails a Postfix-shaped DSN to the message's envelope sender (the VERP
address) into a Maildir, as the bounce daemon of a smarthost does. ``inbound`` then reads
that Maildir through the real CLI against the real SQLite store.
"""

from __future__ import annotations

import json
import mailbox
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from kcrush_feeds.store.db import Store, migrations
from kcrush_feeds.tokens import sign, verify_delivery
from tests.support import mail_shapes as shapes
from tests.support.project import EXAMPLES, Project, rows
from tests.support.smtp_server import free_port

NOW = "2024-02-27T09:00:00-08:00"
LATER = "2024-02-27T10:00:00-08:00"
SECRET = b"test-secret-0123456789abcdef"


class BouncingRelay:
    """Accepts everything; for ``hard``/``soft`` recipients, mails back a DSN into ``maildir``."""

    def __init__(self, maildir: Path) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)
        self.hard: set[str] = set()
        self.soft: set[str] = set()
        self.envelopes: list[tuple[str, str, bytes]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        sender = str(envelope.mail_from)
        data = envelope.original_content or b""
        for rcpt in envelope.rcpt_tos:
            self.envelopes.append((sender, rcpt, data))
            if rcpt in self.hard:
                self.maildir.add(shapes.postfix(sender, rcpt, "5.1.1"))
            elif rcpt in self.soft:
                self.maildir.add(shapes.postfix(sender, rcpt, "4.2.2"))
        return "250 2.0.0 queued"


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[BouncingRelay, int]]:
    handler = BouncingRelay(tmp_path / "Maildir")
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def setup_project(project: Project, port: int, subscribers: int = 6) -> None:
    project.append_config(
        f"""\
        [smtp]
        host = "127.0.0.1"
        port = {port}
        tls = "none"
        concurrency = 1
        rate_limit = 0
        retries = 0

        [bounces]
        address = "bounces@kcrush.com"
        unsubscribe_address = "leave@kcrush.com"
        soft_limit = 2
        soft_window = "30d"
        """
    )
    env = {"KCRUSH_FEEDS_NOW": NOW}
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=env).exit_code == 0
    csv = "email,name,categories,status\n" + "".join(
        f"reader{i}@example.org,Reader {i},,active\n" for i in range(subscribers)
    )
    project.write("subs.csv", csv)
    subs = str(project.dir / "subs.csv")
    assert project.run("subscribers", "import", subs, env=env).exit_code == 0


def statuses(project: Project) -> dict[str, str]:
    return {str(e): str(s) for e, s in rows(project, "SELECT email, status FROM subscribers")}


def inbound(project: Project, *args: str, input: bytes | None = None) -> Any:
    return project.run("inbound", *args, input=input, env={"KCRUSH_FEEDS_NOW": LATER})


def test_send_goes_out_with_a_signed_verp_sender_and_the_configured_mailto(
    project: Project, relay: tuple[BouncingRelay, int]
) -> None:
    handler, port = relay
    setup_project(project, port, 3)
    result = project.run("send", env={"KCRUSH_FEEDS_NOW": NOW})
    assert result.exit_code == 0, result.output
    ids: dict[Any, Any] = dict(rows(project, "SELECT email, id FROM subscribers"))
    (digest_id,) = rows(project, "SELECT id FROM digests")[0]
    assert len(handler.envelopes) == 3
    for sender, rcpt, data in handler.envelopes:
        local, _, domain = sender.partition("@")
        assert domain == "kcrush.com" and local.startswith("bounces+")
        assert len(local.encode()) <= 64
        assert verify_delivery(SECRET, local.removeprefix("bounces+")) == (digest_id, ids[rcpt])
        token = sign(SECRET, "unsubscribe", rcpt)
        assert f"<mailto:leave@kcrush.com?subject=unsubscribe-{token}>".encode() in data


def test_round_trip_bounces_through_the_maildir_then_status(
    project: Project, relay: tuple[BouncingRelay, int], tmp_path: Path
) -> None:
    handler, port = relay
    setup_project(project, port, 6)
    handler.hard = {"reader1@example.org", "reader2@example.org"}
    handler.soft = {"reader3@example.org"}
    assert project.run("send", env={"KCRUSH_FEEDS_NOW": NOW}).exit_code == 0
    maildir = tmp_path / "Maildir"
    assert len(list((maildir / "new").iterdir())) == 3

    result = inbound(project, str(maildir))
    print(result.output)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        "inbound: 3 messages: 2 hard bounces, 1 soft bounce, 0 complaints, "
        "0 unsubscribe requests, 0 auto-replies, 0 delay warnings or notices, "
        "0 already processed, 0 not understood"
    )
    assert statuses(project) == {
        "reader0@example.org": "active",
        "reader1@example.org": "bounced",
        "reader2@example.org": "bounced",
        "reader3@example.org": "active",  # one soft bounce of soft_limit = 2
        "reader4@example.org": "active",
        "reader5@example.org": "active",
    }
    # Filed away as a mail reader would: cur/, seen.
    assert list((maildir / "new").iterdir()) == []
    filed = sorted(p.name for p in (maildir / "cur").iterdir())
    assert len(filed) == 3 and all(name.endswith(":2,S") for name in filed)
    events = rows(
        project,
        "SELECT s.email, e.kind, e.status_code, e.source, e.effect, e.diagnostic "
        "FROM mail_events e JOIN subscribers s ON s.id = e.subscriber_id ORDER BY s.email",
    )
    assert [e[:5] for e in events] == [
        ("reader1@example.org", "hard", "5.1.1", "mail", "bounced"),
        ("reader2@example.org", "hard", "5.1.1", "mail", "bounced"),
        ("reader3@example.org", "soft", "4.2.2", "mail", "counted"),
    ]
    assert all("User unknown" in str(e[5]) for e in events)

    # The same messages again (put back into new/): counted once, nothing changes.
    before = rows(project, "SELECT * FROM subscribers ORDER BY id")
    for path in (maildir / "cur").iterdir():
        shutil.copy(path, maildir / "new" / path.name.partition(":")[0])
    again = inbound(project, str(maildir))
    assert again.exit_code == 0
    assert "3 already processed" in again.stdout
    assert rows(project, "SELECT * FROM subscribers ORDER BY id") == before
    assert len(rows(project, "SELECT * FROM mail_events")) == 3

    status = project.run("status", env={"KCRUSH_FEEDS_NOW": LATER})
    print(status.output)
    assert "subscribers: 4 active, 2 bounced" in status.stdout
    assert (
        "  2024-W09: sent 6, deferred 0, failed 0; bounces 2 hard, 1 soft; "
        "complaints 0; unsubscribes 0"
    ) in status.stdout
    info = json.loads(project.run("status", "--json").stdout)
    assert info["digests"][0] | {"complaint_rate": 0} == {
        "period": "2024-W09",
        "sent": 6,
        "deferred": 0,
        "failed": 0,
        "hard_bounces": 2,
        "soft_bounces": 1,
        "complaints": 0,
        "unsubscribes": 0,
        "complaint_rate": 0,
    }
    assert info["subscribers"]["bounced"] == 2


def _verp_of(handler: BouncingRelay, rcpt: str) -> str:
    return next(sender for sender, to, _ in handler.envelopes if to == rcpt)


def test_complaints_mailto_auto_replies_from_mbox_stdin_and_eml(
    project: Project, relay: tuple[BouncingRelay, int], tmp_path: Path
) -> None:
    handler, port = relay
    setup_project(project, port, 4)
    assert project.run("send", env={"KCRUSH_FEEDS_NOW": NOW}).exit_code == 0
    # An mbox (only read) with a complaint by VERP and an auto-reply.
    box = mailbox.mbox(tmp_path / "fbl.mbox")
    box.add(shapes.arf(_verp_of(handler, "reader0@example.org"), "reader0@example.org"))
    box.add(shapes.auto_reply("newsletter@kcrush.com"))
    box.close()
    size = (tmp_path / "fbl.mbox").stat().st_size
    result = inbound(project, str(tmp_path / "fbl.mbox"))
    assert result.exit_code == 0, result.output
    assert "1 complaint, 0 unsubscribe requests, 1 auto-reply" in result.stdout
    assert (tmp_path / "fbl.mbox").stat().st_size == size
    # A mailto request on stdin, as an MTA pipe delivers it.
    token = sign(SECRET, "unsubscribe", "reader1@example.org")
    result = inbound(project, "-", input=shapes.mailto(token, "reader1@example.org"))
    assert result.exit_code == 0, result.output
    assert "1 unsubscribe request" in result.stdout
    # A complaint a feedback loop sent to the plain address: the original's token.
    token2 = sign(SECRET, "unsubscribe", "reader2@example.org")
    eml = project.write(
        "complaint.eml",
        shapes.arf(
            "fbl@kcrush.com",
            "redacted@example.org",
            f"<mailto:leave@kcrush.com?subject=unsubscribe-{token2}>",
        ),
    )
    assert inbound(project, str(eml)).exit_code == 0
    assert statuses(project) == {
        "reader0@example.org": "unsubscribed",
        "reader1@example.org": "unsubscribed",
        "reader2@example.org": "unsubscribed",
        "reader3@example.org": "active",
    }
    reasons: dict[Any, Any] = dict(
        rows(project, "SELECT email, unsubscribe_reason FROM subscribers")
    )
    assert reasons["reader0@example.org"] == "complaint"
    assert reasons["reader1@example.org"] == "mailto"
    status = project.run("status", env={"KCRUSH_FEEDS_NOW": LATER})
    assert "complaints 2; unsubscribes 1" in status.stdout
    assert "warning: digest 2024-W09: complaint rate 50.00% (2 of 4) is over 0.1%" in (
        status.stdout
    )
    assert json.loads(project.run("status", "--json").stdout)["warnings"]


def test_bad_input_is_kept_and_changes_nothing(
    project: Project, relay: tuple[BouncingRelay, int], tmp_path: Path
) -> None:
    handler, port = relay
    setup_project(project, port, 2)
    assert project.run("send", env={"KCRUSH_FEEDS_NOW": NOW}).exit_code == 0
    verp = _verp_of(handler, "reader0@example.org")
    box = mailbox.Maildir(tmp_path / "bad", create=True)
    bad = {
        "malformed": b"garbage without any header\r\n",
        "huge": shapes.postfix(verp, "reader0@example.org") + b"x" * 10_500_000,
        "no-recipient": shapes.postfix(verp, "reader0@example.org")
        .replace(b"Action: failed\r\n", b"")
        .replace(b"reader0@example.org", b"somebody"),
        "forged": shapes.postfix(verp.replace("+d", "+d9"), "reader0@example.org"),
        "non-bounce": b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n",
        "non-utf8": b"From: \xff@\xfe\r\nSubject: \xe9\x80\r\n\r\n\xff\xfe\x00\r\n",
    }
    keys = {box.add(raw): name for name, raw in bad.items()}
    box.close()
    before = rows(project, "SELECT * FROM subscribers ORDER BY id")
    result = inbound(project, str(tmp_path / "bad"))
    assert result.exit_code == 1
    assert "6 messages:" in result.stdout and "6 not understood" in result.stdout
    lines = [line for line in result.stderr.splitlines() if "not understood" in line]
    assert len(lines) == 6, result.stderr
    assert "Traceback" not in result.output
    for key in keys:
        assert any(key in line for line in lines)  # a line names each message
    assert sorted(p.name for p in (tmp_path / "bad" / "new").iterdir()) == sorted(keys)
    assert rows(project, "SELECT * FROM subscribers ORDER BY id") == before
    assert rows(project, "SELECT count(*) FROM mail_events") == [(0,)]

    # An mbox whose last message is cut short: the others are read, that one reported.
    text = b"".join(
        b"From MAILER-DAEMON Tue Feb 27 09:05:00 2024\n" + raw.replace(b"\r\n", b"\n") + b"\n"
        for raw in (shapes.auto_reply("x@kcrush.com"), shapes.postfix(verp, "reader0@example.org"))
    )
    cut = project.write("cut.mbox", text[:-300])
    result = inbound(project, str(cut))
    assert result.exit_code == 1
    assert "1 auto-reply" in result.stdout and "1 not understood" in result.stdout
    assert "cut.mbox#2: not understood: truncated" in result.stderr
    assert statuses(project)["reader0@example.org"] == "active"


def test_a_pipe_keeps_what_it_did_not_understand(project: Project, tmp_path: Path) -> None:
    hello = b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    result = inbound(project, "-", input=hello)
    assert result.exit_code == 1  # without --keep, the MTA keeps it (it bounces it back)
    kept = tmp_path / "kept"
    result = inbound(project, "--keep", str(kept), "-", input=hello)
    assert result.exit_code == 0, result.output
    assert "1 not understood (1 kept for a person)" in result.stdout
    (only,) = list((kept / "new").iterdir())
    assert only.read_bytes() == hello


def test_inbound_without_path_or_mailbox_is_a_config_error(project: Project) -> None:
    result = project.run("inbound")
    assert result.exit_code == 2
    assert "[bounces.imap]: the section is missing" in result.stderr
    missing = project.run("inbound", str(project.dir / "nowhere"))
    assert missing.exit_code == 2 and "nowhere: no such file or directory" in missing.stderr
    (project.dir / "plain-dir").mkdir()
    plain = project.run("inbound", str(project.dir / "plain-dir"))
    assert plain.exit_code == 2 and "not a Maildir" in plain.stderr


def test_a_store_written_before_opens_and_keeps_its_subscribers(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for version, _, sql in migrations()[:4]:
        conn.executescript(sql + f"\nPRAGMA user_version = {version};")
    conn.execute(
        "INSERT INTO subscribers (email, email_key, status, created_at, updated_at) "
        "VALUES ('old@example.org', 'old@example.org', 'active', 1, 1)"
    )
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.schema_version >= 5
        assert store.conn.execute(
            "SELECT email, status, unsubscribe_reason FROM subscribers"
        ).fetchall() == [("old@example.org", "active", None)]


def test_bounces_config_errors_name_the_key(project: Project) -> None:
    project.append_config('[bounces]\naddress = "a-very-long-bounce-box@kcrush.com"\n')
    result = project.run("inbound", str(project.dir))
    assert result.exit_code == 2
    assert "bounces.address: " in result.stderr and "at most 12 characters" in result.stderr


def test_inbound_json(project: Project, tmp_path: Path) -> None:
    eml = project.write("auto.eml", shapes.auto_reply("newsletter@kcrush.com"))
    result = inbound(project, "--json", str(eml))
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["auto_reply"] == 1 and data["total"] == 1 and data["problems"] == []
    assert eml.exists()  # a single file is only read
