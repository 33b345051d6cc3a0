"""``inbound`` with no PATH against a real IMAP server: Debian's Dovecot on 127.0.0.1, over TLS.

Dovecot runs in the foreground with its own config directory, a free port for IMAPS, a
throwaway trustme certificate and one throwaway user in a passwd-file. Skipped, saying why,
where ``dovecot-imapd`` is not installed (``make test-deps`` installs it as root).
"""

from __future__ import annotations

import imaplib
import os
import pwd
import socket
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trustme

from kcrush_feeds.store.db import Store
from kcrush_feeds.tokens import sign, sign_delivery, verp_sender
from tests.support import mail_shapes as shapes
from tests.support.project import Project, rows
from tests.support.smtp_server import free_port

DOVECOT = Path("/usr/sbin/dovecot")
SECRET = b"test-secret-0123456789abcdef"
PASSWORD = "imap-pass-0123"

pytestmark = pytest.mark.skipif(
    not DOVECOT.exists(),
    reason="Dovecot is not installed (apt-get install dovecot-imapd, or make test-deps as root)",
)


@dataclass
class Imap:
    port: int
    ca_file: Path
    log: Path

    def client(self) -> imaplib.IMAP4_SSL:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        client = imaplib.IMAP4_SSL("127.0.0.1", self.port, ssl_context=context, timeout=10)
        client.login("bounces", PASSWORD)
        return client

    def uids(self, folder: str) -> list[bytes]:
        client = self.client()
        try:
            status, _ = client.select(f'"{folder}"')
            if status != "OK":
                return []
            return list(client.uid("SEARCH", "ALL")[1][0].split())
        finally:
            client.logout()


def _users() -> tuple[str, str, int, int]:
    """(login user, internal user, mail uid, mail gid): Dovecot's own users when root."""
    if os.getuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return "dovenull", "dovecot", mail.pw_uid, mail.pw_gid
    me = pwd.getpwuid(os.getuid()).pw_name
    return me, me, os.getuid(), os.getgid()


@pytest.fixture
def dovecot() -> Iterator[Imap]:
    # Not under pytest's tmp_path: Dovecot's unprivileged processes (when we are root) must
    # reach the passwd-file and the mail directory, and that tree is mode 0700.
    with tempfile.TemporaryDirectory(prefix="kcrush-dovecot-") as name:
        base = Path(name)
        base.chmod(0o755)
        yield from _run_dovecot(base)


def _run_dovecot(base: Path) -> Iterator[Imap]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(base / "cert.pem"))
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    login, internal, uid, gid = _users()
    home = base / "home"
    home.mkdir()
    if os.getuid() == 0:
        os.chown(home, uid, gid)
    (base / "passwd").write_text(f"bounces:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{home}::\n")
    port = free_port()
    (base / "dovecot.conf").write_text(
        f"""\
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
default_login_user = {login}
default_internal_user = {internal}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = 0
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/passwd
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    process = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(base / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    imap = Imap(port, base / "ca.pem", base / "dovecot.log")
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, (base / "dovecot.log").read_text(errors="replace")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            imap.client().logout()
            break
        except (OSError, imaplib.IMAP4.error):
            assert time.monotonic() < deadline, "Dovecot did not answer within 20 s"
            time.sleep(0.1)
    try:
        yield imap
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_inbound_reads_the_imap_mailbox_and_moves_what_it_understood(
    project: Project, dovecot: Imap
) -> None:
    project.append_config(
        f"""\
        [bounces]
        address = "bounces@kcrush.com"

        [bounces.imap]
        host = "127.0.0.1"
        port = {dovecot.port}
        username = "bounces"
        password_env = "KCRUSH_TEST_IMAP"
        folder = "INBOX"
        processed_folder = "Processed"
        ca_file = "{dovecot.ca_file}"
        """
    )
    with Store.open(project.config.database_path):
        pass
    conn = sqlite3.connect(project.dir / "store.db")
    sent = int(datetime(2024, 2, 27, 17, 0, tzinfo=UTC).timestamp())
    conn.execute(
        "INSERT INTO digests (id, period, created_at, since, until, status) "
        "VALUES (1, '2024-W09', ?, 0, ?, 'done')",
        (sent, sent),
    )
    for n in (1, 2):
        address = f"reader{n}@example.org"
        conn.execute(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at) "
            "VALUES (?, ?, ?, 'active', 1, 1)",
            (n, address, address),
        )
        conn.execute(
            "INSERT INTO deliveries (digest_id, subscriber_id, status, message_id, attempts, "
            "updated_at, sent_at) VALUES (1, ?, 'sent', ?, 1, ?, ?)",
            (n, f"<m{n}@x>", sent, sent),
        )
    conn.commit()
    conn.close()
    verp = verp_sender("bounces@kcrush.com", sign_delivery(SECRET, 1, 1))
    client = dovecot.client()
    for raw in (
        shapes.gmail(verp, "reader1@example.org"),
        shapes.mailto(sign(SECRET, "unsubscribe", "reader2@example.org"), "reader2@example.org"),
        b"From: someone@example.org\r\nSubject: hello\r\n\r\nJust saying hi.\r\n",
    ):
        assert client.append("INBOX", None, None, raw)[0] == "OK"
    client.logout()

    env = {"KCRUSH_TEST_IMAP": PASSWORD, "KCRUSH_FEEDS_NOW": "2024-02-27T10:00:00-08:00"}
    result = project.run("inbound", env=env)
    print(result.output)
    assert result.exit_code == 1  # the hello is not understood
    assert "3 messages: 1 hard bounce, 0 soft bounces, 0 complaints, 1 unsubscribe request" in (
        result.stdout
    )
    assert "INBOX;UID=3: not understood: not a bounce" in result.stderr
    assert dict(rows(project, "SELECT email, status FROM subscribers")) == {
        "reader1@example.org": "bounced",
        "reader2@example.org": "unsubscribed",
    }
    # Understood mail moved to Processed (nothing deleted); the rest stays in INBOX.
    assert len(dovecot.uids("Processed")) == 2
    assert len(dovecot.uids("INBOX")) == 1

    again = project.run("inbound", env=env)
    assert "1 message: " in again.stdout and "1 not understood" in again.stdout
    assert len(dovecot.uids("Processed")) == 2


def test_a_wrong_password_is_one_clear_line(project: Project, dovecot: Imap) -> None:
    project.append_config(
        f"""\
        [bounces.imap]
        host = "127.0.0.1"
        port = {dovecot.port}
        username = "bounces"
        password_env = "KCRUSH_TEST_IMAP"
        ca_file = "{dovecot.ca_file}"
        """
    )
    result = project.run("inbound", env={"KCRUSH_TEST_IMAP": "wrong"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: imap://bounces@127.0.0.1:")
    assert "Traceback" not in result.output


def test_schedule_reads_the_mailbox_on_its_build_tick(
    project: Project, dovecot: Imap, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kcrush_feeds.schedule.jobs import ConfiguredJobs

    project.append_config(
        f"""\
        [bounces.imap]
        host = "127.0.0.1"
        port = {dovecot.port}
        username = "bounces"
        password_env = "KCRUSH_TEST_IMAP"
        ca_file = "{dovecot.ca_file}"
        """
    )
    client = dovecot.client()
    client.append("INBOX", None, None, shapes.auto_reply("newsletter@kcrush.com"))
    client.logout()
    monkeypatch.setenv("KCRUSH_TEST_IMAP", PASSWORD)
    now = datetime(2024, 2, 27, 18, 0, tzinfo=UTC)
    outcome = ConfiguredJobs(project.config).build(now, threading.Event())
    assert outcome.status == "ok"
    assert dovecot.uids("INBOX") == [] and len(dovecot.uids("Processed")) == 1
