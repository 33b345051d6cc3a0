"""What the editors-in-the-loop tests share: a week of stories, two subscribers and an
[smtp] section pointing at a real aiosmtpd server; reading what it received."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

from tests.support.project import Project
from tests.support.sending import smtp_section
from tests.support.smtp_server import SmtpServer

WEEK = "2024-W09"
NOW = "2024-02-27T09:00:00-08:00"
ENV = {"KCRUSH_FEEDS_NOW": NOW}


def week_records() -> list[dict[str, object]]:
    """Six stories of the week: articles and interviews, newest first by id number."""
    records: list[dict[str, object]] = []
    for i in range(6):
        category = "interviews" if i % 3 == 0 else "articles"
        records.append(
            {
                "id": f"post-{i}",
                "url": f"https://www.kcrush.com/post-{i}/",
                "title": f"Story {i} ({category})",
                "published": f"2024-02-26T{10 + i:02d}:00:00-08:00",
                "categories": [category],
                "summary": f"The excerpt of story {i}.",
            }
        )
    return records


def setup(
    project: Project, server: SmtpServer, *, digest: str = "", subscriptions: str = ""
) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    text = text.replace(
        'reply_to = "editors@kcrush.com"\n', f'reply_to = "editors@kcrush.com"\n{digest}\n'
    )
    text = text.replace(
        'secret_env = "KCRUSH_TEST_SECRET"\n',
        f'secret_env = "KCRUSH_TEST_SECRET"\n{subscriptions}\n',
    )
    project.write_config(text)
    project.append_config(smtp_section(server))
    lines = "".join(json.dumps(r) + "\n" for r in week_records())
    project.write("week.jsonl", lines)
    assert project.run("import", str(project.dir / "week.jsonl"), env=ENV).exit_code == 0
    project.write(
        "subs.csv",
        "email,name,categories,status\n"
        "all@example.org,All,,active\n"
        "articles@example.org,Arti,kpop-articles,active\n",
    )
    result = project.run("subscribers", "import", str(project.dir / "subs.csv"), env=ENV)
    assert result.exit_code == 0, result.output


def parsed(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def part(message: EmailMessage, kind: str) -> str:
    body = message.get_body((kind,))
    assert body is not None
    return str(body.get_content())  # type: ignore[attr-defined]


def to(server: SmtpServer, address: str) -> list[EmailMessage]:
    return [parsed(r.data) for r in server.received if r.rcpt == address]
