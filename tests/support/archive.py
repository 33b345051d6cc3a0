"""Helpers of the archive tests: a project whose digest was really sent (aiosmtpd), then
built; the browser's paths and a wait for the next page."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from tests.support.project import Project
from tests.support.sending import NOW, prepare
from tests.support.smtp_server import SmtpServer, smtp_server

ENV = {"KCRUSH_FEEDS_NOW": NOW}
WEEK = "2024-W09"  # the digest period of NOW
ARCHIVE_BASE = "https://www.kcrush.com/newsletter/archive"
ARCHIVE = f"""
[archive]
output_dir = "public/newsletter"
base_url = "{ARCHIVE_BASE}"
"""
ISSUE_URL = f"{ARCHIVE_BASE}/{WEEK}/"
# Published at 23:30 on Monday Feb 26 in Los Angeles: already Tuesday Feb 27 in UTC.
LATE = {
    "id": "late-night",
    "url": "https://www.kcrush.com/late-night-drop/",
    "title": "Late night drop",
    "published": "2024-02-26T23:30:00-08:00",
    "categories": ["K-Pop Articles"],
    "summary": "Posted at 23:30 in Los Angeles.",
    "image": {
        "url": "https://www.kcrush.com/img/late.jpg",
        "alt": "A stage at night",
        "type": "image/jpeg",
        "length": 1234,
    },
}
LOCAL_DAY = "Feb 26, 2024"
UTC_DAY = "Feb 27, 2024"


@dataclass
class Sent:
    project: Project
    server: SmtpServer

    @property
    def archive_dir(self) -> Path:
        directory = self.project.config.archive_dir
        assert directory is not None
        return directory

    def issue_html(self) -> str:
        return (self.archive_dir / WEEK / "index.html").read_text(encoding="utf-8")

    def messages(self) -> list[EmailMessage]:
        return [
            cast(EmailMessage, email.message_from_bytes(r.data, policy=email.policy.default))
            for r in self.server.received
        ]


def sent_project(project: Project, write_jsonl: object, extra_config: str = "") -> Iterator[Sent]:
    """``project`` with [archive], 3 subscribers, the late record; ``send`` then ``build``."""
    import json

    with smtp_server() as server:
        project.append_config(ARCHIVE + extra_config)
        prepare(project, server, 3)
        path = project.write("late.jsonl", json.dumps(LATE) + "\n")
        assert project.run("import", str(path), env=ENV).exit_code == 0
        code, out, err = send(project)
        assert code == 0, out + err
        result = project.run("build", env=ENV)
        assert result.exit_code == 0, result.output
        yield Sent(project, server)


def send(project: Project, *args: str) -> tuple[int, str, str]:
    """``kcrush-feeds send`` at NOW: (exit code, stdout, stderr)."""
    result = project.run("send", *args, env=ENV)
    return result.exit_code, result.stdout, result.stderr


def shows(driver: Any, css: str, text: str, timeout: float = 10) -> bool:
    """Wait until an element matching ``css`` contains ``text`` (the next page loaded)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def found(d: Any) -> bool:
        return text in d.find_element(By.CSS_SELECTOR, css).text

    wait = WebDriverWait(
        driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)
    )
    return bool(wait.until(found))


def files_under(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
