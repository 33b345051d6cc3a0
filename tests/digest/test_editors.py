"""Editors in the loop through the real CLI: ``digest list/show/edit/approve``, approval
before ``send``, proofs, and what the edits do to the composed message (real aiosmtpd)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.editors import ENV, WEEK, part, setup, to
from tests.support.project import Project, rows
from tests.support.smtp_server import SmtpServer, smtp_server


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


NOTE = """\
A word from the **editors**: this week is [the big interview](/post-3/).

<script>alert(1)</script><b onclick="x()">Bold</b> and an <iframe src="https://evil.example"></iframe>end.
"""


def test_note_pins_and_drops_in_the_composed_message(project: Project, server: SmtpServer) -> None:
    setup(project, server)
    project.write("note.md", NOTE)
    edit = project.run(
        "digest", "edit", "--note", str(project.dir / "note.md"), "--pin", "post-3",
        "--pin", "post-1", "--drop", "post-4", "--subject", "The big interview",
        env=ENV,
    )  # fmt: skip
    assert edit.exit_code == 0, edit.output
    shown = project.run("digest", "show", env=ENV)
    assert shown.exit_code == 0
    assert shown.stdout.splitlines()[:2] == [f"digest {WEEK}: draft", "  revision 1"]
    assert "  pin  post-3  Story 3 (interviews)" in shown.stdout
    assert "  drop post-4  Story 4 (articles)" in shown.stdout
    assert "subject: The big interview" in shown.stdout

    code = project.run("send", env=ENV).exit_code
    assert code == 0
    everything = to(server, "all@example.org")
    assert len(everything) == 1
    message = everything[0]
    assert message["Subject"] == "The big interview"
    html, text = part(message, "html"), part(message, "plain")
    # The note first (sanitised: no script, no iframe, no handler), then the pins in order.
    assert "<strong>editors</strong>" in html
    assert 'href="https://www.kcrush.com/post-3/"' in html
    assert "<script" not in html and "iframe" not in html and "onclick" not in html
    assert "A word from the editors: this week is the big interview" in text
    assert "<https://www.kcrush.com/post-3/>" in text and "alert(1)" not in text
    order = [text.index(f"Story {i} ") for i in (3, 1, 5, 2, 0)]
    assert order == sorted(order), "pins first in the order given, then the sections"
    assert text.index("A word from the editors") < order[0]
    assert "Story 4" not in text and "Story 4" not in html
    # A subscriber of articles only gets the article pin, not the interview one.
    articles = part(to(server, "articles@example.org")[0], "plain")
    assert "Story 1 (articles)" in articles and "Story 3" not in articles
    assert articles.index("Story 1 ") < articles.index("Story 5 ")


def test_edits_are_refused_once_sending_began(project: Project, server: SmtpServer) -> None:
    setup(project, server)
    assert project.run("send", env=ENV).exit_code == 0
    refused = project.run("digest", "edit", "--drop", "post-2", env=ENV)
    assert refused.exit_code == 1
    assert "can no longer be edited: sending began (2 messages accepted)" in refused.stderr
    assert rows(project, "SELECT count(*) FROM digest_editorial") == [(0,)]
    listing = project.run("digest", "list", env=ENV)
    assert listing.stdout.splitlines()[1].split() == [WEEK, "sent", "6", "2", "0", "0"]


def test_bad_weeks_and_unknown_records_are_usage_errors(
    project: Project, server: SmtpServer
) -> None:
    setup(project, server)
    for week in ("2024-W54", "2024-W00", "24-W9", "2025-W53", "2024-W10"):
        result = project.run("digest", "show", week, env=ENV)
        assert result.exit_code == 2, (week, result.output)
    unknown = project.run("digest", "edit", "--pin", "no-such-record", env=ENV)
    assert unknown.exit_code == 2
    assert "not in the 2024-W09 digest: no-such-record" in unknown.stderr
    past = project.run("digest", "edit", "2024-W01", "--clear", env=ENV)
    assert past.exit_code == 2 and "only the current week" in past.stderr
    nothing = project.run("digest", "edit", env=ENV)
    assert nothing.exit_code == 2


def test_approval_required_sends_one_proof_per_revision_then_the_digest(
    project: Project, server: SmtpServer
) -> None:
    setup(
        project,
        server,
        digest='approval = "required"\neditors = ["ed@kcrush.com", "chief@kcrush.com"]',
        subscriptions='from = "KCrush <hello@kcrush.com>"',
    )
    first = project.run("send", env=ENV)
    assert first.exit_code == 75, first.output
    assert "awaiting approval: proof sent to ed@kcrush.com, chief@kcrush.com" in first.stdout
    assert sorted(r.rcpt for r in server.received) == ["chief@kcrush.com", "ed@kcrush.com"]
    proof = to(server, "ed@kcrush.com")[0]
    assert proof["Subject"].startswith("[Proof] KCrush Weekly: ")
    assert proof["From"] == "KCrush <hello@kcrush.com>"
    assert {r.mail_from for r in server.received} == {"hello@kcrush.com"}
    assert "PROOF of the 2024-W09 digest" in part(proof, "plain")
    assert "/approve?token=" in part(proof, "plain")
    # Every category's items are in the proof.
    assert all(f"Story {i} " in part(proof, "plain") for i in range(6))
    assert rows(project, "SELECT count(*) FROM deliveries") == [(0,)]

    again = project.run("send", env=ENV)
    assert again.exit_code == 75 and "awaiting approval (proof sent to" in again.stdout
    assert len(server.received) == 2  # no second proof of the same revision
    assert project.run("digest", "show", env=ENV).stdout.startswith(
        f"digest {WEEK}: awaiting approval"
    )

    assert project.run("digest", "edit", "--drop", "post-0", env=ENV).exit_code == 0
    assert project.run("send", env=ENV).exit_code == 75
    assert len(server.received) == 4  # the edit: a new proof to each editor
    second = to(server, "ed@kcrush.com")[1]
    assert "Story 0" not in part(second, "plain")
    assert second["Message-ID"] != proof["Message-ID"]

    approved = project.run("digest", "approve", env=ENV)
    assert approved.exit_code == 0 and "approved digest 2024-W09 (revision 1)" in approved.stdout
    assert project.run("digest", "list", env=ENV).stdout.splitlines()[1].split()[:2] == [
        WEEK,
        "approved",
    ]
    sent = project.run("send", env=ENV)
    assert sent.exit_code == 0, sent.output
    assert sorted(r.rcpt for r in server.received[4:]) == [
        "all@example.org",
        "articles@example.org",
    ]
    # Digests still come from digest.from; proofs were never deliveries.
    assert {r.mail_from for r in server.received[4:]} == {"newsletter@kcrush.com"}
    assert rows(project, "SELECT count(*) FROM deliveries") == [(2,)]


def test_auto_approve_after_the_proof(project: Project, server: SmtpServer) -> None:
    setup(
        project,
        server,
        digest='approval = "required"\neditors = ["ed@kcrush.com"]\nauto_approve_after = "2h"',
    )
    assert project.run("send", env=ENV).exit_code == 75
    early = project.run("send", env={"KCRUSH_FEEDS_NOW": "2024-02-27T10:59:00-08:00"})
    assert early.exit_code == 75
    late = project.run("send", env={"KCRUSH_FEEDS_NOW": "2024-02-27T11:00:00-08:00"})
    assert late.exit_code == 0, late.output
    assert sorted(r.rcpt for r in server.received) == [
        "all@example.org",
        "articles@example.org",
        "ed@kcrush.com",
    ]
    assert "approved by auto" in project.run("digest", "show", env=ENV).stdout


def test_required_approval_needs_editors(project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        'reply_to = "editors@kcrush.com"\n',
        'reply_to = "editors@kcrush.com"\napproval = "required"\n',
    )
    project.write_config(text)
    result = project.run("digest", "list")
    assert result.exit_code == 2
    assert 'digest: editors: approval = "required" needs at least one editor' in result.stderr


def test_a_digest_out_already_is_finished_without_a_proof(
    project: Project, server: SmtpServer
) -> None:
    setup(project, server)
    server.behaviour.tempfail["articles@example.org"] = 10  # deferred in this run
    assert project.run("send", env=ENV).exit_code == 75
    assert [r.rcpt for r in server.received] == ["all@example.org"]
    # Approval becomes required while the digest is half out: the rest still gets it.
    text = project.config_path.read_text(encoding="utf-8").replace(
        'reply_to = "editors@kcrush.com"\n',
        'reply_to = "editors@kcrush.com"\napproval = "required"\neditors = ["ed@kcrush.com"]\n',
    )
    project.write_config(text)
    server.behaviour.tempfail.clear()
    assert project.run("send", env=ENV).exit_code == 0
    assert [r.rcpt for r in server.received] == ["all@example.org", "articles@example.org"]
