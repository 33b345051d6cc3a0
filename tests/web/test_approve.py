"""The approval round trip as an editor goes through it: ``send`` mails the proof (real
aiosmtpd), the editor follows its link to a real ``serve`` with httpx, the GET changes
nothing, a tampered or expired link is refused, the button's POST approves, and the next
``send`` delivers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kcrush_feeds import tokens
from kcrush_feeds.cli.main import main
from tests.support.serve import (
    SECRET,
    SECRET_ENV,
    Server,
    SmtpSink,
    body_of,
    csrf_from,
    link_in,
    start_server,
)

EDITOR = "ed@kcrush.com"


def run(directory: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        main,
        ["--config", str(directory / "config.toml"), *args],
        env={SECRET_ENV: SECRET, "KCRUSH_FEEDS_NOW": ""},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def this_weeks_records(now: datetime) -> str:
    """Stories published in the last hours (the proof's link is checked against the real
    clock by serve, so this test runs in the real present)."""
    lines = []
    for i in range(4):
        published = now - timedelta(minutes=10 * (i + 1))
        category = "interviews" if i == 0 else "articles"
        lines.append(
            json.dumps(
                {
                    "id": f"now-{i}",
                    "url": f"https://www.kcrush.com/now-{i}/",
                    "title": f"Fresh story {i}",
                    "published": published.isoformat(),
                    "categories": [category],
                }
            )
        )
    return "\n".join(lines) + "\n"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with SmtpSink() as smtp:
        running = start_server(
            tmp_path / "site",
            smtp,
            extra='from = "KCrush <hello@kcrush.com>"',
            digest_extra=f'approval = "required"\neditors = ["{EDITOR}"]',
        )
        try:
            yield running
        finally:
            running.stop()


def test_the_proof_link_approves_only_by_its_button(server: Server) -> None:
    directory = server.directory
    now = datetime.now(UTC)
    if now.weekday() == 0 and now.hour < 2:
        pytest.skip("too close to the start of the ISO week for 'records of this week'")
    (directory / "now.jsonl").write_text(this_weeks_records(now), encoding="utf-8")
    assert run(directory, "import", str(directory / "now.jsonl"))[0] == 0
    (directory / "subs.csv").write_text(
        "email,name,categories,status\nreader@example.org,Reader,,active\n", encoding="utf-8"
    )
    assert run(directory, "subscribers", "import", str(directory / "subs.csv"))[0] == 0

    # 1. send: one proof to the editor, nothing to subscribers, exit 75.
    code, output = run(directory, "send")
    assert code == 75, output
    assert "awaiting approval: proof sent to ed@kcrush.com" in output
    proof = server.smtp.wait_for(EDITOR)[0]
    assert proof["From"] == "KCrush <hello@kcrush.com>"
    assert server.smtp.messages[0].sender == "hello@kcrush.com"
    assert proof["Subject"].startswith("[Proof] ")
    assert server.smtp.to("reader@example.org") == []
    link = link_in(proof, "approve")
    assert link.startswith(f"{server.url}/approve?token=")
    assert "Nothing has been sent to subscribers" in body_of(proof)

    with server.client() as client:
        # 2. The GET (a mail scanner, a link preview, the editor) approves nothing.
        page = client.get(link)
        assert page.status_code == 200
        assert "Approve for sending" in page.text and "ed@kcrush.com" in page.text
        assert client.get(link).status_code == 200
        assert "awaiting approval" in run(directory, "digest", "show")[1].splitlines()[0]

        # 3. Tampered and expired links are refused and change nothing.
        token = link.split("token=", 1)[1]
        payload, mac = token.split(".")
        flipped = payload[:-1] + ("A" if payload[-1] != "A" else "B")
        assert client.get(f"/approve?token={flipped}.{mac}").status_code == 400
        period = run(directory, "digest", "show")[1].split()[1].rstrip(":")
        expired = tokens.sign_approval(
            SECRET.encode(), EDITOR, period, 0, expires=now - timedelta(minutes=1)
        )
        answer = client.get(f"/approve?token={expired}")
        assert answer.status_code == 400 and "expired" in answer.text
        csrf = csrf_from(page.text)
        refused = client.post("/approve", data={"token": f"{flipped}.{mac}", "csrf_token": csrf})
        assert refused.status_code == 400
        # A POST without the page's CSRF field (another site's form) does not approve.
        forged = client.post("/approve", data={"token": token})
        assert forged.status_code == 403
        assert "press the button once more" in forged.text
        csrf = csrf_from(forged.text)  # the page answered with a fresh form (and cookie)
        assert "awaiting approval" in run(directory, "digest", "show")[1].splitlines()[0]
        code, output = run(directory, "send")
        assert code == 75 and server.smtp.to("reader@example.org") == []
        assert len(server.smtp.to(EDITOR)) == 1  # no second proof

        # 4. The button: approved.
        approved = client.post("/approve", data={"token": token, "csrf_token": csrf})
        assert approved.status_code == 200, approved.text
        assert f"The {period} digest is approved" in approved.text
        assert "approved by ed@kcrush.com" in run(directory, "digest", "show")[1]

    # 5. The next send delivers the digest.
    code, output = run(directory, "send")
    assert code == 0, output
    digest = server.smtp.wait_for("reader@example.org")[0]
    assert digest["From"] == "KCrush Weekly <newsletter@kcrush.com>"
    assert "[Proof]" not in digest["Subject"] and "PROOF" not in body_of(digest)
    assert "Fresh story 0" in body_of(digest)
    # After sending began, the proof's link says so and approves nothing more.
    with server.client() as client:
        late = client.get(link)
        assert late.status_code == 200 and "being sent (or was sent) already" in late.text
