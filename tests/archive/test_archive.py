"""The newsletter on the web, end to end: a digest really sent through aiosmtpd, then
``build``: the issue page, the index, the archive feeds (feedparser, RELAX NG, JSON Schema),
"View in browser" and List-Archive in the mail, byte stability, frozen content, and one
local date for one moment on the feed page, the archive page and in the email."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest
from lxml import etree, html

from bench.issues import seed_issues
from kcrush_feeds.archive.build import build_archive
from kcrush_feeds.digest.select import compute_digest
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import load_digest
from tests.support.archive import (
    ARCHIVE,
    ARCHIVE_BASE,
    ENV,
    ISSUE_URL,
    LATE,
    LOCAL_DAY,
    UTC_DAY,
    WEEK,
    Sent,
    files_under,
    send,
    sent_project,
)
from tests.support.feedcheck import check_atom_xml, json_feed_validator
from tests.support.project import Project
from tests.support.sending import prepare
from tests.support.smtp_server import Behaviour, smtp_server


@pytest.fixture
def sent(project: Project, write_jsonl: object) -> Iterator[Sent]:
    yield from sent_project(project, write_jsonl)


def test_issue_page_is_the_public_digest(sent: Sent) -> None:
    page = sent.issue_html()
    with Store.open(sent.project.config.database_path) as store:
        digest = load_digest(store, WEEK)
    assert digest is not None and digest.items
    doc = html.fromstring(page)
    titles = [a.text_content() for a in doc.xpath("//article//h3/a")]
    assert titles == [item.title for item in digest.items]  # every item, in the digest's order
    assert [h.text for h in doc.xpath("//section/h2")] == ["New articles", "Interviews"][
        : len({i.section for i in digest.items})
    ]
    # Nothing personal: no address, name, token or personal link of any subscriber.
    for i in range(3):
        assert f"reader{i:03d}@example.org" not in page and f"Reader {i}" not in page
    for word in ("token=", "unsubscribe", "preferences", "kcfslot"):
        assert word not in page.lower()
    # Sharing: canonical, Open Graph, Twitter card, the archive feed, the subscribe form.
    head = {m.get("property") or m.get("name"): m.get("content") for m in doc.iter("meta")}
    assert doc.xpath("//link[@rel='canonical']")[0].get("href") == ISSUE_URL
    assert head["og:url"] == ISSUE_URL and head["og:title"].endswith("Week of February 26, 2024")
    assert head["og:image"] == LATE["image"]["url"]  # type: ignore[index]
    assert head["twitter:card"] == "summary_large_image"
    assert head["description"] == head["og:description"] and head["description"]
    alternates = {a.get("type"): a.get("href") for a in doc.xpath("//link[@rel='alternate']")}
    assert alternates == {
        "application/rss+xml": f"{ARCHIVE_BASE}/rss.xml",
        "application/atom+xml": f"{ARCHIVE_BASE}/atom.xml",
        "application/feed+json": f"{ARCHIVE_BASE}/feed.json",
    }
    (form,) = doc.xpath("//form[@class='subscribe']")
    assert form.get("method") == "post"
    assert form.get("action") == "https://www.kcrush.com/newsletter/subscribe"
    assert doc.xpath("//link[@rel='stylesheet']")[0].get("href") == "../style.css"
    assert (sent.archive_dir / "style.css").is_file()


def test_index_lists_the_issue(sent: Sent) -> None:
    doc = html.fromstring((sent.archive_dir / "index.html").read_bytes())
    assert [a.get("href") for a in doc.xpath("//ol[@class='issues']//a")] == [f"{WEEK}/"]


def _feed_checks(root: Path, periods: list[str]) -> None:
    urls = [f"{ARCHIVE_BASE}/{p}/" for p in periods]
    atom = (root / "atom.xml").read_bytes()
    check_atom_xml(atom)
    for name, version in (("rss.xml", "rss20"), ("atom.xml", "atom10")):
        data = (root / name).read_bytes()
        assert b"xml-stylesheet" not in data
        parsed = feedparser.parse(data)
        assert not parsed.bozo, parsed.get("bozo_exception")
        assert parsed.version == version
        selfs = [link["href"] for link in parsed.feed.links if link.get("rel") == "self"]
        assert selfs == [f"{ARCHIVE_BASE}/{name}"]
        assert [e.link for e in parsed.entries] == urls  # one entry per issue, newest first
        assert [e.id for e in parsed.entries] == urls
        for entry in parsed.entries:
            assert entry.content[0].value.count("<h3>") >= 1  # the issue's HTML as content
    feed = json.loads((root / "feed.json").read_bytes())
    assert not sorted(json_feed_validator().iter_errors(feed), key=str)
    assert feed["feed_url"] == f"{ARCHIVE_BASE}/feed.json"
    assert [item["url"] for item in feed["items"]] == urls
    assert all("<h3>" in item["content_html"] for item in feed["items"])


def test_archive_feeds_are_valid_and_list_the_issue(sent: Sent) -> None:
    _feed_checks(sent.archive_dir, [WEEK])
    content = feedparser.parse((sent.archive_dir / "atom.xml").read_bytes()).entries[0]
    assert "Late night drop" in content.content[0].value


def test_every_mail_links_its_page_in_both_parts(sent: Sent) -> None:
    messages = sent.messages()
    assert len(messages) == 3
    for msg in messages:
        assert msg["List-Archive"] == f"<{ARCHIVE_BASE}/>"
        text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        body = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert f"View in browser: {ISSUE_URL}" in text.split("Hi ")[0]  # near the top
        links = [
            a for a in html.fromstring(body).iter("a") if a.text_content() == "View in browser"
        ]
        assert [a.get("href") for a in links] == [ISSUE_URL]


def test_one_moment_one_local_date_on_feed_page_archive_and_email(sent: Sent) -> None:
    def date_next_to_title(page: bytes | str) -> str:
        doc = html.fromstring(page)
        (article,) = [a for a in doc.iter("article") if "Late night drop" in a.text_content()]
        (time,) = article.iter("time")
        assert time.get("datetime") == "2024-02-26"
        return str(time.text)

    feeds = sent.project.config.output_dir
    assert date_next_to_title((feeds / "all" / "index.html").read_bytes()) == LOCAL_DAY
    assert date_next_to_title((feeds / "kpop-articles" / "index.html").read_bytes()) == LOCAL_DAY
    assert date_next_to_title(sent.issue_html()) == LOCAL_DAY
    msg = sent.messages()[0]
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    after_title = text.split("* Late night drop", 1)[1].splitlines()[1]
    assert after_title.strip() == f"K-Pop Articles · {LOCAL_DAY}"
    body = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    doc = html.fromstring(body)
    (title,) = [a for a in doc.iter("a") if a.text_content() == "Late night drop"]
    meta = title.getparent().find("div")  # type: ignore[union-attr]
    assert meta is not None and meta.text_content() == f"K-Pop Articles · {LOCAL_DAY}"
    assert UTC_DAY not in meta.text_content()


def test_rebuild_writes_nothing_and_bytes_do_not_depend_on_the_state(sent: Sent) -> None:
    root = sent.archive_dir
    before = files_under(root)
    result = sent.project.run("build", env=ENV)
    assert result.exit_code == 0 and "nothing changed" in result.output, result.output
    assert "wrote" not in result.output
    assert files_under(root) == before  # same bytes, same mtimes
    (root / ".build-state.json").unlink()
    result = sent.project.run("build", env={"KCRUSH_FEEDS_NOW": "2025-06-01T00:00:00+00:00"})
    assert "wrote" not in result.output, result.output  # a year later: the same bytes
    after = files_under(root)
    after.pop(".build-state.json")
    before.pop(".build-state.json")
    assert after == before


def test_the_page_shows_what_was_sent_after_the_record_changed(sent: Sent) -> None:
    changed = {**LATE, "title": "Late night drop (edited after sending)"}
    path = sent.project.write("edit.jsonl", json.dumps(changed) + "\n")
    assert "1 updated" in sent.project.run("import", str(path), env=ENV).output
    result = sent.project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    assert "archive/" not in result.output  # no archive file was written
    page = sent.issue_html()
    assert "Late night drop" in page and "edited after sending" not in page
    feed = (sent.project.config.output_dir / "all" / "rss.xml").read_text(encoding="utf-8")
    assert "edited after sending" in feed  # while the feeds follow the record


def test_a_digest_never_accepted_has_no_page(project: Project) -> None:
    project.append_config(ARCHIVE)
    with smtp_server(behaviour=Behaviour(refuse_connections=10_000)) as server:
        prepare(project, server, 2)
        code, _, _ = send(project)
        assert code == 75  # frozen, every delivery deferred
    with Store.open(project.config.database_path) as store:
        assert load_digest(store, WEEK) is not None
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    root = project.config.archive_dir
    assert root is not None and not (root / WEEK).exists()
    assert "No issue has been sent yet" in (root / "index.html").read_text(encoding="utf-8")
    assert feedparser.parse((root / "atom.xml").read_bytes()).entries == []
    check_atom_xml((root / "atom.xml").read_bytes())


def test_many_issues_paginate_and_feeds_hold_the_newest(project: Project) -> None:
    project.append_config(ARCHIVE)
    config = project.config
    assert config.archive is not None
    with Store.open(config.database_path) as store:
        periods = seed_issues(store, 120)
        report = build_archive(config, store, datetime(2030, 1, 1, tzinfo=UTC))
    root = config.archive_dir
    assert root is not None
    assert report.issues == 120 and len(report.written) == 120 + 3 + 3 + 1
    newest_first = periods[::-1]
    pages = [root / "index.html", root / "page" / "2" / "index.html", root / "page/3/index.html"]
    listed = []
    for i, path in enumerate(pages):
        doc = html.fromstring(path.read_bytes())
        hrefs = [a.get("href") for a in doc.xpath("//ol[@class='issues']//a")]
        assert len(hrefs) == (50 if i < 2 else 20)
        listed += [h.rsplit("/", 2)[-2] for h in hrefs]
        prefix = "" if i == 0 else "../../"
        assert doc.xpath("//link[@rel='stylesheet']")[0].get("href") == f"{prefix}style.css"
    assert listed == newest_first
    assert not (root / "page" / "1").exists() and not (root / "page" / "4").exists()
    _feed_checks(root, newest_first[: config.archive.items_per_feed])
    # Neighbours link each other.
    doc = html.fromstring((root / periods[1] / "index.html").read_bytes())
    nav = [a.get("href") for a in doc.xpath("//nav[@class='pager']/a")]
    assert nav == [f"../{periods[2]}/", "../", f"../{periods[0]}/"]


def test_an_editor_template_override_rewrites_the_pages(project: Project) -> None:
    project.append_config(ARCHIVE + 'templates_dir = "my-archive"\n')
    (project.dir / "my-archive").mkdir()
    config = project.config
    now = datetime(2030, 1, 1, tzinfo=UTC)
    with Store.open(config.database_path) as store:
        seed_issues(store, 2)
        build_archive(config, store, now)
        assert not build_archive(config, store, now).written
        (project.dir / "my-archive" / "page.css").write_text(".page { color: red; }\n")
        again = build_archive(config, store, now)
    assert "style.css" in again.written
    root = config.archive_dir
    assert root is not None
    css = (root / "style.css").read_text(encoding="utf-8")
    assert ".page { color: red; }" in css and ".masthead" in css  # the digest's rules first


def test_the_atom_feed_is_rfc_4287_valid_with_a_hub(project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        'base_url = "https://www.kcrush.com/feeds"\n',
        'base_url = "https://www.kcrush.com/feeds"\nwebsub_hub = "https://hub.example/"\n',
    )
    project.write_config(text + ARCHIVE)
    config = project.config
    with Store.open(config.database_path) as store:
        seed_issues(store, 3)
        build_archive(config, store, datetime(2030, 1, 1, tzinfo=UTC))
    root = config.archive_dir
    assert root is not None
    atom = etree.fromstring((root / "atom.xml").read_bytes())
    check_atom_xml(etree.tostring(atom))
    hubs = atom.findall("{http://www.w3.org/2005/Atom}link[@rel='hub']")
    assert [h.get("href") for h in hubs] == ["https://hub.example/"]
    rss = feedparser.parse((root / "rss.xml").read_bytes())
    assert {link["rel"]: link["href"] for link in rss.feed.links}["hub"] == "https://hub.example/"
    feed = json.loads((root / "feed.json").read_bytes())
    assert feed["hubs"] == [{"type": "WebSub", "url": "https://hub.example/"}]
    assert not sorted(json_feed_validator().iter_errors(feed), key=str)


@pytest.mark.skipif(
    not os.environ.get("FEED_VALIDATOR"),
    reason="set FEED_VALIDATOR to the "
    "W3C feed validator command (it is not part of this repository)",
)
def test_w3c_feed_validator_on_the_archive_feeds(sent: Sent) -> None:
    for name in ("rss.xml", "atom.xml"):
        url = f"{ARCHIVE_BASE}/{name}"
        done = subprocess.run(
            [os.environ["FEED_VALIDATOR"], "--base", url, str(sent.archive_dir / name)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "RESULT: OK" in done.stdout, done.stdout


def test_the_issue_page_shows_the_editors_note_pins_and_drops(
    project: Project, write_jsonl: object
) -> None:
    """What was sent is what the page shows: the note on top, the pinned story first in
    its own section, the dropped one nowhere."""
    with smtp_server() as server:
        project.append_config(ARCHIVE)
        prepare(project, server, 3)
        early = {**LATE, "id": "early", "url": "https://www.kcrush.com/early/", "title": "Early"}
        early["published"] = "2024-02-26T08:00:00-08:00"
        path = project.write("late.jsonl", json.dumps(LATE) + "\n" + json.dumps(early) + "\n")
        assert project.run("import", str(path), env=ENV).exit_code == 0
        with Store.open(project.config.database_path) as store:
            digest = compute_digest(
                store, project.config, datetime.fromisoformat(ENV["KCRUSH_FEEDS_NOW"])
            )
        assert digest is not None and len(digest.items) >= 3
        pin, drop = digest.items[-1], digest.items[0]
        note = project.write("note.md", "This week: **our big interview**.\n<script>x()</script>\n")
        edit = project.run(
            "digest",
            "edit",
            WEEK,
            "--note",
            str(note),
            "--pin",
            pin.record_id,
            "--drop",
            drop.record_id,
            env=ENV,
        )
        assert edit.exit_code == 0, edit.output
        code, out, err = send(project)
        assert code == 0, out + err
        assert project.run("build", env=ENV).exit_code == 0
    page = (project.config.archive_dir / WEEK / "index.html").read_text(encoding="utf-8")  # type: ignore[operator]
    doc = html.fromstring(page)
    titles = [a.text_content() for a in doc.xpath("//article//h3/a")]
    assert (
        titles[0] == pin.title and drop.title not in titles and len(titles) == len(digest.items) - 1
    )
    assert doc.xpath("//section/h2")[0].text == "Editor's picks"
    assert "<strong>our big interview</strong>" in page and "<script>" not in page
