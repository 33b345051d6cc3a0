"""Helpers of the delivery tests: a project ready to send, rows made straight in a store,
messages and SMTP settings for the pool."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from typing import Any

from kcrush_feeds.delivery.smtp import SmtpSettings
from kcrush_feeds.store.db import Store, to_timestamp
from tests.support.project import EXAMPLES, Project
from tests.support.smtp_server import SmtpServer

NOW = "2024-02-27T09:00:00-08:00"  # the Tuesday after the sample records
STORE_NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # rows made straight in a store


def smtp_section(server: SmtpServer, **extra: object) -> str:
    keys: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "concurrency": 2,
        "rate_limit": 0,
        "retries": 2,
        "retry_delay": 0.01,
        "timeout": "5s",
    }
    keys.update(extra)
    lines = ["[smtp]"]
    for key, value in keys.items():
        lines.append(f'{key} = "{value}"' if isinstance(value, str) else f"{key} = {value}")
    return "\n".join(lines) + "\n"


def subscribers_csv(n: int, *, extra: str = "") -> str:
    rows = ["email,name,categories,status"]
    for i in range(n):
        categories = "kpop-interviews" if i % 5 == 4 else ""
        rows.append(f"reader{i:03d}@example.org,Reader {i},{categories},active")
    return "\n".join(rows) + "\n" + extra


def prepare(
    project: Project, server: SmtpServer, n: int = 12, *, csv_extra: str = "", **smtp: object
) -> None:
    """Sample records, ``n`` subscribers and an [smtp] section pointing at ``server``."""
    project.append_config(smtp_section(server, **smtp))
    env = {"KCRUSH_FEEDS_NOW": NOW}
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=env).exit_code == 0
    project.write("subs.csv", subscribers_csv(n, extra=csv_extra))
    result = project.run("subscribers", "import", str(project.dir / "subs.csv"), env=env)
    assert result.exit_code == 0, result.output


def add_subscribers(store: Store, n: int, *, status: str = "active", start: int = 0) -> None:
    stamp = to_timestamp(STORE_NOW)
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO subscribers (email, email_key, name, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    f"reader{i}@example.org",
                    f"reader{i}@example.org",
                    f"Reader {i}",
                    status,
                    stamp,
                    stamp,
                )
                for i in range(start, start + n)
            ],
        )


def add_digest(store: Store, period: str = "2026-W48") -> int:
    stamp = to_timestamp(STORE_NOW)
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO digests (period, created_at, since, until) VALUES (?, ?, ?, ?)",
            (period, stamp, stamp - 7 * 86400, stamp),
        )
    assert cur.lastrowid is not None
    return cur.lastrowid


SENDER = "KCrush Weekly <newsletter@kcrush.com>"


def message(recipient: str, n: int = 0, message_id: str | None = None) -> bytes:
    """A real RFC 5322 message with CRLF line ends, as the composer produces."""
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = recipient
    msg["Subject"] = f"KCrush Weekly #{n}"
    msg["Message-ID"] = message_id or f"<digest-1.sub-{n}@kcrush.com>"
    msg.set_content(f"Hello {recipient}\n.\n..a line starting with a dot\n")
    msg.add_alternative(f"<p>Hello {recipient}</p>", subtype="html")
    return msg.as_bytes(policy=SMTP_POLICY)


def settings(server: SmtpServer, **overrides: Any) -> SmtpSettings:
    base: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "timeout": 5.0,
        "concurrency": 2,
        "rate_limit": 0,
        "retries": 3,
        "retry_delay": 0.01,
        "local_hostname": "client.test",
    }
    base.update(overrides)
    return SmtpSettings(**base)
