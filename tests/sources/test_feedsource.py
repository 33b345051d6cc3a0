"""RSS, Atom and JSON Feed sources: parsing, conditional GET (ETag, Last-Modified), 304."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.http_fixtures import (
    FeedEndpoint,
    FixtureServer,
    Reply,
    atom_feed,
    example_records,
    rss_feed,
    serve,
)
from tests.support.project import Project, rows


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    yield from serve()


def test_rss_feed_with_etag_then_304_then_a_new_entry(
    project: Project, server: FixtureServer
) -> None:
    examples = example_records()
    feed = FeedEndpoint(rss_feed(examples[:10]), "application/rss+xml; charset=UTF-8")
    server.route("/feed/", feed.handle)
    url = f"{server.url}/feed/"

    first = project.run("import", url)
    assert first.exit_code == 0, first.stderr
    assert (
        f"{url} (feed): fetched 10 entries: 10 added, 0 updated, 0 unchanged, 0 rejected"
        in first.stdout
    )
    [request] = server.requests("/feed/")
    assert "if-none-match" not in request.headers
    with Store.open(project.dir / "store.db") as store:
        record = store_records.get(store, examples[0]["url"])  # the RSS guid
    assert record is not None
    assert record.title == "Korean leg of the iKON “Take Off” World Tour"
    assert record.categories == ("K-Pop Articles",)
    assert record.image is not None and record.image.length == 244426
    assert record.published == datetime.fromisoformat(examples[0]["published"]).astimezone(UTC)
    assert rows(project, "SELECT etag FROM sources") == [('"v1"',)]

    second = project.run("import", url)
    assert second.exit_code == 0
    assert f"{url} (feed): not modified since the last import (HTTP 304)" in second.stdout
    assert server.requests("/feed/")[-1].headers["if-none-match"] == '"v1"'

    feed.body = rss_feed(examples[:11])
    feed.etag = '"v2"'
    third = project.run("import", url)
    assert "fetched 11 entries: 1 added, 0 updated, 10 unchanged" in third.stdout
    assert rows(project, "SELECT etag FROM sources") == [('"v2"',)]

    status = project.run("status")
    assert f"{url} (feed): last success " in status.stdout


def test_atom_feed_with_last_modified(project: Project, server: FixtureServer) -> None:
    interviews = [r for r in example_records() if "K-Pop Interviews" in r["categories"]]
    stamp = "Fri, 01 Mar 2024 08:00:00 GMT"
    feed = FeedEndpoint(
        atom_feed(interviews), "application/atom+xml", etag=None, last_modified=stamp
    )
    server.route("/interviews.atom", feed.handle)
    url = f"{server.url}/interviews.atom"
    assert project.run("import", url).exit_code == 0
    again = project.run("import", url)
    assert "not modified since the last import (HTTP 304)" in again.stdout
    assert server.requests("/interviews.atom")[-1].headers["if-modified-since"] == stamp
    # Atom entries carry no category here: they get the feed's own title.
    with Store.open(project.dir / "store.db") as store:
        record = store_records.get(store, interviews[0]["url"])
    assert record is not None
    assert record.categories == ("KCrush Interviews",)
    assert record.authors == (interviews[0]["authors"][0],)
    # --full fetches even when unchanged.
    full = project.run("import", url, "--full")
    assert f"fetched {len(interviews)} entries" in full.stdout


def test_json_feed_file_from_config(project: Project) -> None:
    examples = example_records()
    items = [
        {
            "id": f"kcrush-{n}",
            "url": r["url"],
            "title": r["title"],
            "summary": r.get("summary"),
            "date_published": r["published"],
            "tags": r["categories"] if n % 2 else [],
            "image": r["image"]["url"] if isinstance(r.get("image"), dict) else None,
            "authors": [{"name": a} for a in r.get("authors", [])],
        }
        for n, r in enumerate(examples[:6])
    ]
    items[0]["title"] = "방탄소년단 인터뷰 &amp; 새 앨범"
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "KCrush JSON",
        "home_page_url": "https://www.kcrush.com/",
        "items": items,
    }
    project.write("feeds/kcrush.json", json.dumps(doc, ensure_ascii=False))
    project.append_config("""
        [[sources]]
        type = "feed"
        name = "partner JSON feed"
        path = "feeds/kcrush.json"
        categories = ["Partner news"]
    """)
    result = project.run("import")
    assert result.exit_code == 0, result.stderr
    assert "partner JSON feed (feed): fetched 6 entries: 6 added" in result.stdout
    with Store.open(project.dir / "store.db") as store:
        first = store_records.get(store, "kcrush-0")
        second = store_records.get(store, "kcrush-1")
    assert first is not None and second is not None
    assert first.title == "방탄소년단 인터뷰 & 새 앨범"
    assert first.categories == ("Partner news",)  # no tags: the configured categories
    assert second.categories == tuple(examples[1]["categories"])
    assert second.image is not None and second.image.url == examples[1]["image"]["url"]


def test_not_a_feed_is_a_clear_error(project: Project, server: FixtureServer) -> None:
    page = Reply(200, b"<html><body>Hello</body></html>", {"Content-Type": "text/html"})
    server.route("/page", lambda _: page)
    result = project.run("import", f"{server.url}/page")
    assert result.exit_code == 1
    assert (
        f"error: {server.url}/page (feed): {server.url}/page: not an RSS, Atom or JSON feed"
        in result.stderr
    )


def test_json_report_and_usage_errors(project: Project, server: FixtureServer) -> None:
    feed = FeedEndpoint(rss_feed(example_records()[:3]), "application/rss+xml")
    server.route("/feed", feed.handle)
    result = project.run("import", "--json", f"{server.url}/feed")
    assert result.exit_code == 0, result.stderr
    [report] = json.loads(result.stdout)["sources"]
    assert report["kind"] == "feed" and report["ok"] is True
    assert (report["fetched"], report["added"], report["not_modified"]) == (3, 3, False)

    bad = project.run("import", "--wordpress", "www.kcrush.com")
    assert bad.exit_code == 2
    assert "'www.kcrush.com' is not an http(s) URL" in bad.stderr
    strict = project.run("import", "--strict", f"{server.url}/feed")
    assert strict.exit_code == 2
    assert "--strict and --format apply to files only" in strict.stderr
    nothing = project.run("import")
    assert nothing.exit_code == 2 and "nothing to import" in nothing.stderr
