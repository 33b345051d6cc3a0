"""Subscribers through the real CLI and a real SQLite store."""

from __future__ import annotations

import csv
import io
import json

from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions.subscribers import get_subscriber, iter_subscribers
from tests.support.project import EXAMPLES, Project


def _emails(project: Project, status: str | None = None) -> dict[str, str]:
    with Store.open(project.config.database_path) as store:
        return {s.email: s.status for s in iter_subscribers(store, status=status)}


def test_add_normalises_validates_and_refuses_duplicates(project: Project) -> None:
    result = project.run(
        "subscribers", "add", " Minji.Kim@EXAMPLE.com ", "--name", "김민지",
        "--category", "kpop-interviews",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output == "added Minji.Kim@example.com (active; kpop-interviews)\n"
    again = project.run("subscribers", "add", "minji.kim@example.com")
    assert again.exit_code == 2
    assert "already a subscriber" in again.output
    bad = project.run("subscribers", "add", "not-an-address")
    assert bad.exit_code == 2
    assert "'not-an-address'" in bad.output and "@" in bad.output
    unknown = project.run("subscribers", "add", "a@example.com", "--category", "k-drama")
    assert unknown.exit_code == 2
    assert "'k-drama' is not a digest category" in unknown.output
    assert "kpop-articles" in unknown.output
    newline = project.run("subscribers", "add", "b@example.com", "--name", "Evil\nBcc: x@y.z")
    assert newline.exit_code == 2 and "line break" in newline.output
    with Store.open(project.config.database_path) as store:
        found = get_subscriber(store, "MINJI.kim@example.COM")
        assert found is not None
        assert (found.name, found.categories) == ("김민지", ("kpop-interviews",))


def test_import_merges_reports_bad_rows_and_never_resubscribes(project: Project) -> None:
    first = project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    assert first.exit_code == 0, first.output
    assert "8 added" in first.output
    assert _emails(project)["dave.wilson@example.org"] == "unsubscribed"
    path = project.write(
        "more.csv",
        "email,name,categories,status\n"
        "DAVE.WILSON@example.org,Dave Wilson,,active\n"  # unsubscribed: must stay so
        "bad address,Nobody,,active\n"
        "new.one@example.com,New One,kpop-articles|KPOP-INTERVIEWS,\n"
        "new.one@EXAMPLE.com,New One Again,kpop-articles,\n"  # the same address: merged
        "x@example.com,X,no-such-category,active\n"
        "y@example.com,Y,,sleeping\n"
        "sam.okafor@example.org,Sam O.,,\n",
    )
    result = project.run("subscribers", "import", str(path))
    assert result.exit_code == 1
    err = result.stderr
    assert f"error: {path}:3: email: 'bad address': " in err
    assert f"error: {path}:6: categories: 'no-such-category' is not a digest category" in err
    assert f"error: {path}:7: status: 'sleeping' is not a status" in err
    assert f"warning: {path}:5: email: new.one@example.com repeats line 4" in err
    assert f"kept: {path}:2: email: dave.wilson@example.org is unsubscribed" in err
    assert "1 added, 1 updated, 0 unchanged, 1 kept unsubscribed/bounced, 3 rejected" in (
        result.stdout
    )
    emails = _emails(project)
    assert emails["dave.wilson@example.org"] == "unsubscribed"
    assert "x@example.com" not in emails and "y@example.com" not in emails
    with Store.open(project.config.database_path) as store:
        new = get_subscriber(store, "new.one@example.com")
        assert new is not None
        assert (new.name, new.categories, new.status) == (
            "New One Again", ("kpop-articles",), "active")  # fmt: skip
        sam = get_subscriber(store, "sam.okafor@example.org")
        assert sam is not None and sam.name == "Sam O." and sam.status == "active"
        assert sam.categories is None  # an empty categories cell means all categories


def test_import_without_a_categories_column_keeps_what_is_stored(project: Project) -> None:
    project.run("subscribers", "add", "a@example.com", "--category", "kpop-articles")
    path = project.write("names.csv", "email,name\na@example.com,Anna\n")
    assert project.run("subscribers", "import", str(path)).exit_code == 0
    with Store.open(project.config.database_path) as store:
        a = get_subscriber(store, "a@example.com")
        assert a is not None and (a.name, a.categories) == ("Anna", ("kpop-articles",))


def test_list_export_round_trip_update_and_remove(project: Project) -> None:
    project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    listed = json.loads(project.run("subscribers", "list", "--json").output)
    assert len(listed) == 8
    assert listed[0] == {
        "id": 1, "email": "minji.kim@example.com", "name": "김민지", "status": "active",
        "categories": ["kpop-interviews"],
    }  # fmt: skip
    pending = project.run("subscribers", "list", "--status", "pending").output
    assert pending.splitlines()[0].startswith("priya.nair@example.com")
    exported = project.run("subscribers", "export").output
    rows = list(csv.DictReader(io.StringIO(exported)))
    original = list(csv.DictReader((EXAMPLES / "subscribers.csv").open(encoding="utf-8")))
    assert rows == original
    out = project.dir / "out.csv"
    assert project.run("subscribers", "export", "--out", str(out)).exit_code == 0
    assert out.read_text(encoding="utf-8") == exported

    updated = project.run("subscribers", "update", "ana.souza@example.com", "--all-categories")
    assert updated.output == "updated ana.souza@example.com (active; all categories)\n"
    removed = project.run("subscribers", "remove", "ana.souza@example.com")
    assert removed.output == "unsubscribed ana.souza@example.com\n"
    # Remembered as unsubscribed: importing the original file again does not bring it back.
    again = project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    assert "ana.souza@example.com is unsubscribed" in again.stderr
    assert _emails(project)["ana.souza@example.com"] == "unsubscribed"
    forgotten = project.run("subscribers", "remove", "ana.souza@example.com", "--forget")
    assert forgotten.output == "deleted ana.souza@example.com\n"
    assert "ana.souza@example.com" not in _emails(project)
    missing = project.run("subscribers", "remove", "nobody@example.com")
    assert missing.exit_code == 2 and "no such subscriber" in missing.output


def test_status_shows_subscribers_by_status(project: Project) -> None:
    project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    result = project.run("status")
    assert "subscribers: 1 pending, 6 active, 1 unsubscribed" in result.output
    assert "last digest: none yet" in result.output
    info = json.loads(project.run("status", "--json").output)
    assert info["subscribers"]["active"] == 6 and info["last_digest"] is None


def test_import_from_stdin_and_a_missing_file(project: Project) -> None:
    result = project.run("subscribers", "import", "-", input="email,name\nZoe@Example.com,Zoe\n")
    assert result.exit_code == 0, result.output
    assert _emails(project) == {"Zoe@example.com": "active"}
    missing = project.run("subscribers", "import", str(project.dir / "nope.csv"))
    assert missing.exit_code == 1 and "nope.csv: cannot read" in missing.output
    no_email = project.write("bad.csv", "name,status\nZoe,active\n")
    result = project.run("subscribers", "import", str(no_email))
    assert result.exit_code == 1 and "bad.csv:1: the header row has no 'email' column" in (
        result.output
    )
