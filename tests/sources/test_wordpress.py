"""WordPress REST import against a real HTTP server on 127.0.0.1 (see http_fixtures)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme

from kcrush_feeds.model import Source
from kcrush_feeds.sources.configured import SourceReport, import_sources
from kcrush_feeds.sources.http import USER_AGENT, FetchError, HttpClient, HttpSettings
from kcrush_feeds.sources.wordpress_sync import CURSOR_OVERLAP
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.http_fixtures import (
    CATEGORIES_PATH,
    POSTS_PATH,
    FixtureServer,
    Reply,
    Seen,
    WordPressSite,
    example_records,
    serve,
    wordpress_site,
)
from tests.support.project import Project, rows

FAST = HttpSettings(backoff=0.05, retries=2, read_timeout=5, connect_timeout=5)


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    yield from serve()


@pytest.fixture
def site(server: FixtureServer) -> WordPressSite:
    return wordpress_site(server)


def record_by_guid(project: Project, site: WordPressSite, wp_id: int) -> dict[str, object]:
    with Store.open(project.dir / "store.db") as store:
        record = store_records.get(store, f"{site.base}/?p={wp_id}")
    assert record is not None, wp_id
    return {
        "title": record.title,
        "url": record.url,
        "published": record.published,
        "updated": record.updated,
        "categories": record.categories,
        "summary": record.summary,
        "content": record.content_html,
        "image": record.image,
        "authors": record.authors,
        "tags": record.tags,
    }


def run_import(project: Project, *args: str) -> tuple[int, str, str]:
    result = project.run("import", *args)
    return result.exit_code, result.stdout, result.stderr


def test_full_import_reads_every_page_and_maps_the_schema(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    code, out, err = run_import(project, "--wordpress", server.url)
    assert code == 0, err
    assert (
        f"{server.url} (wordpress): fetched 230 posts in 3 pages: 230 added, 0 updated, "
        "0 unchanged, 0 rejected" in out
    )

    posts = server.requests(POSTS_PATH)
    assert [p.query["page"] for p in posts] == ["1", "2", "3"]
    for request in posts:
        assert request.query["per_page"] == "100"
        assert request.query["orderby"] == "id"
        assert request.query["order"] == "asc"
        assert request.query["_embed"] == "author,wp:term,wp:featuredmedia"
        assert "modified_after" not in request.query
        assert request.headers["user-agent"] == USER_AGENT
        assert USER_AGENT.startswith("kcrush-feeds/0.1.0 (+https://")
        assert "gzip" in request.headers["accept-encoding"]
    # The one category never embedded was asked for once, by id.
    assert [r.query["include"] for r in server.requests(CATEGORIES_PATH)] == ["7"]

    examples = example_records()
    first = record_by_guid(project, site, 1001)
    assert first["title"] == "Korean leg of the iKON “Take Off” World Tour"  # &#8220; decoded
    assert first["url"] == f"{server.url}/korean-leg-of-the-ikon-take-off-world-tour/"
    assert first["published"] == datetime.fromisoformat(examples[0]["published"]).astimezone(UTC)
    assert first["updated"] == first["published"] + timedelta(hours=1)  # type: ignore[operator]
    assert first["categories"] == ("K-Pop Articles",)
    assert first["tags"] == ("iKON",)
    assert first["authors"] == ("KCrush Staff",)
    assert first["summary"].endswith("their…")  # type: ignore[union-attr]
    assert "[" not in first["summary"]  # type: ignore[operator]
    assert first["content"].startswith("<p>May 6th, 2023")  # type: ignore[union-attr]
    image = first["image"]
    assert image is not None
    assert (image.url, image.alt, image.type, image.length) == (  # type: ignore[attr-defined]
        examples[0]["image"]["url"],
        "iKON on stage at Jangchung Arena, Seoul",
        "image/jpeg",
        244426,
    )

    assert record_by_guid(project, site, 1002)["title"] == "BTS & BLACKPINK: A Tale of Two Fandoms"
    assert record_by_guid(project, site, 1003)["title"] == "방탄소년단 인터뷰: 새 앨범 이야기"
    assert record_by_guid(project, site, 1004)["image"] is None  # no featured image
    assert record_by_guid(project, site, 1005)["categories"] == (
        "K-Pop Articles",
        "Featured Interview",
    )  # resolved through /categories
    no_size = record_by_guid(project, site, 1006)["image"]
    assert no_size is not None and no_size.length == 0  # type: ignore[attr-defined]
    assert record_by_guid(project, site, 1007)["categories"] == ("K-Pop Articles", "Film & TV")

    [(key, cursor, success, error)] = rows(
        project, "SELECT key, cursor, last_success, last_error FROM sources"
    )
    assert key == f"wordpress {server.url}"
    newest = max(p["modified_gmt"] for p in site.posts)
    assert cursor == newest + "Z"
    assert success is not None and error is None

    status = project.run("status")
    assert f"{server.url} (wordpress): last success " in status.stdout
    assert f"cursor {newest}Z" in status.stdout


def test_second_import_asks_modified_after_and_gets_the_edited_post(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    assert run_import(project, "--wordpress", server.url)[0] == 0
    cursor = datetime.fromisoformat(max(p["modified_gmt"] for p in site.posts)).replace(tzinfo=UTC)
    site.edit(1010, title="Best 3rd Generation K-Dramas (updated)", when=cursor + timedelta(days=2))
    server.seen.clear()

    code, out, err = run_import(project, "--wordpress", server.url)
    assert code == 0, err
    # What was edited since, and what was published since (a cron-published post keeps
    # its old modified date).
    edited, published = server.requests(POSTS_PATH)
    asked = datetime.fromisoformat(edited.query["modified_after"].replace("Z", "+00:00"))
    assert asked == cursor - CURSOR_OVERLAP
    assert published.query["after"] == edited.query["modified_after"]
    # The edit, plus the posts of the last 14 hours before the cursor, which the overlap
    # re-reads and recognises as unchanged.
    overlap = sum(
        1
        for p in site.posts
        if datetime.fromisoformat(p["modified_gmt"]).replace(tzinfo=UTC) > asked
        or datetime.fromisoformat(p["date_gmt"]).replace(tzinfo=UTC) > asked
    )
    assert 2 <= overlap < 20
    assert (
        f"fetched {overlap} posts in 2 pages: 0 added, 1 updated, {overlap - 1} unchanged, "
        "0 rejected"
    ) in out
    assert record_by_guid(project, site, 1010)["title"] == "Best 3rd Generation K-Dramas (updated)"
    [(cursor_now,)] = rows(project, "SELECT cursor FROM sources")
    assert cursor_now == (cursor + timedelta(days=2)).replace(tzinfo=None).isoformat() + "Z"

    # Nothing changed since: two requests, nothing written.
    server.seen.clear()
    code, out, _ = run_import(project, "--wordpress", server.url)
    assert code == 0 and len(server.requests(POSTS_PATH)) == 2
    assert "0 added, 0 updated, 1 unchanged" in out  # only the edited post is that recent


def test_full_reread_withdraws_what_the_site_no_longer_lists(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    assert run_import(project, "--wordpress", server.url)[0] == 0
    site.delete(1016)  # "KCrush Interview with TravelingWill" is deleted
    site.post(1017)["status"] = "draft"  # unpublished: no longer listed without credentials

    code, out, err = run_import(project, "--wordpress", server.url, "--full")
    assert code == 0, err
    assert "modified_after" not in server.requests(POSTS_PATH)[-1].query
    assert ", 2 withdrawn" in out
    withdrawn = rows(project, "SELECT id FROM records WHERE withdrawn = 1 ORDER BY id")
    assert withdrawn == [(f"{server.url}/?p=1016",), (f"{server.url}/?p=1017",)]
    assert rows(project, "SELECT count(*) FROM records") == [(230,)]  # nothing deleted

    # Withdrawn records leave what the feeds read.
    with Store.open(project.dir / "store.db") as store:
        shown = {r.id for r in store_records.newest_visible(store, 1000)}
        counts = {name: n for name, n, _ in store_records.category_counts(store)}
    assert f"{server.url}/?p=1016" not in shown and len(shown) == 228
    interviews = sum(1 for p in site.posts if 2 in p["categories"] and p["status"] == "publish")
    assert counts["K-Pop Interviews"] == interviews

    # Published again: restored.
    site.post(1017)["status"] = "publish"
    site.post(1017)["modified_gmt"] = "2030-01-01T00:00:00"
    code, out, _ = run_import(project, "--wordpress", server.url)
    assert code == 0 and "1 restored" in out
    assert rows(project, "SELECT withdrawn FROM records WHERE id = ?", f"{server.url}/?p=1017") == [
        (0,)
    ]


def test_429_retry_after_is_honoured(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    server.queue(POSTS_PATH, Reply(429, b'{"code":"too_many_requests"}', {"Retry-After": "1"}))
    code, _out, err = run_import(project, "--wordpress", server.url)
    assert code == 0, err
    first, second = server.requests(POSTS_PATH)[:2]
    assert first.query == second.query
    assert second.at - first.at >= 1.0


def import_site_once(project: Project, server: FixtureServer) -> SourceReport:
    """One import of the fixture site, with short retry delays."""
    with Store.open(project.dir / "store.db") as store:
        [report] = import_sources(
            project.config,
            store,
            datetime.now(UTC),
            sources=[Source("wordpress", server.url)],
            settings=FAST,
        )
    return report


def test_retry_after_over_the_cap_gives_up_without_waiting(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    server.queue(POSTS_PATH, Reply(503, b"busy", {"Retry-After": "3600"}))
    report = import_site_once(project, server)
    assert report.error is not None
    assert "HTTP 503" in report.error and "wait 3600 s" in report.error
    assert len(server.requests(POSTS_PATH)) == 1


def test_500_then_success(project: Project, server: FixtureServer, site: WordPressSite) -> None:
    server.queue(POSTS_PATH, Reply(500, b"<h1>Error establishing a database connection</h1>"))
    report = import_site_once(project, server)
    assert report.ok, report.error
    assert report.report.added == 230
    assert [r.query["page"] for r in server.requests(POSTS_PATH)] == ["1", "1", "2", "3"]


def test_500_every_time_names_the_url_and_status(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    server.route(POSTS_PATH, lambda _: Reply(500, b"down"))
    report = import_site_once(project, server)
    assert report.error is not None
    assert report.error.startswith(f"{server.url}{POSTS_PATH}?per_page=100&page=1")
    assert "HTTP 500: Internal Server Error (gave up after 3 attempts)" in report.error
    assert len(server.requests(POSTS_PATH)) == 3
    [(error, success)] = rows(project, "SELECT last_error, last_success FROM sources")
    assert "HTTP 500" in str(error) and success is None


def test_truncated_json_body_is_a_clear_error(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    whole = site.handle_posts(server_request()).body
    server.route(
        POSTS_PATH,
        lambda _: Reply(200, whole[: len(whole) // 2], {"Content-Type": "application/json"}),
    )
    code, _, err = run_import(project, "--wordpress", server.url)
    assert code == 1
    assert f"{server.url}{POSTS_PATH}?per_page=100&page=1" in err
    assert "HTTP 200: the reply is not valid JSON" in err


def test_connection_cut_mid_body_is_retried_then_reported(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    whole = site.handle_posts(server_request()).body
    server.route(POSTS_PATH, lambda _: Reply(200, whole[:1000], declared_length=len(whole)))
    report = import_site_once(project, server)
    assert report.error is not None
    assert report.error.startswith(f"{server.url}{POSTS_PATH}?")
    assert "connection lost while reading the body" in report.error
    assert "gave up after 3 attempts" in report.error


def test_redirect_loop_is_named(server: FixtureServer) -> None:
    server.route("/a", lambda _: Reply(302, b"", {"Location": "/b"}))
    server.route("/b", lambda _: Reply(301, b"", {"Location": f"{server.url}/a"}))
    with HttpClient(FAST) as client, pytest.raises(FetchError) as caught:
        client.get(f"{server.url}/a")
    assert str(caught.value) == (
        f"{server.url}/a: redirect loop: {server.url}/a -> {server.url}/b -> {server.url}/a"
    )
    assert len(server.seen) == 2


def test_redirects_are_followed_up_to_the_limit(server: FixtureServer) -> None:
    for n in range(8):
        server.route(f"/r{n}", lambda _, n=n: Reply(302, b"", {"Location": f"/r{n + 1}"}))
    server.route("/r8", lambda _: Reply(200, b"ok"))
    with HttpClient(FAST) as client:
        with pytest.raises(FetchError, match="more than 5 redirects"):
            client.get(f"{server.url}/r0")
        assert client.get(f"{server.url}/r4").body == b"ok"  # 4 hops: fine


def test_response_over_the_size_limit_is_aborted(server: FixtureServer) -> None:
    big = b"x" * (3 * 1024 * 1024)
    server.route("/big", lambda _: Reply(200, big))
    server.route("/bomb", lambda _: Reply(200, big, gzip=True))  # small on the wire
    small = HttpSettings(max_bytes=1024 * 1024)
    with HttpClient(small) as client:
        with pytest.raises(
            FetchError,
            match=r"/big: HTTP 200: the response is 3.0 MB, over the "
            r"1 MB limit",
        ):
            client.get(f"{server.url}/big")
        with pytest.raises(
            FetchError,
            match=r"/bomb: HTTP 200: the response is over the 1 MB "
            r"limit; stopped reading",
        ):
            client.get(f"{server.url}/bomb")


def test_a_failing_source_does_not_stop_the_others(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    project.append_config(f"""
        [[sources]]
        type = "wordpress"
        name = "broken"
        url = "{server.url}/broken"

        [[sources]]
        type = "wordpress"
        name = "KCrush"
        url = "{server.url}"
    """)
    no_route = (
        b'{"code":"rest_no_route","message":"No route was found matching the URL and '
        b'request method.","data":{"status":404}}'
    )
    server.route("/broken/wp-json/wp/v2/posts", lambda _: Reply(404, no_route))
    code, out, err = run_import(project)  # no SOURCE: the configured sources
    assert code == 1
    assert f"error: broken (wordpress): {server.url}/broken/wp-json/wp/v2/posts?" in err
    assert "HTTP 404: Not Found (rest_no_route: No route was found" in err
    assert "hint: no REST API here: check the site's address" in err
    assert err.count("/broken/wp-json/wp/v2/posts") == 1  # said once, not logged twice
    assert "KCrush (wordpress): fetched 230 posts in 3 pages: 230 added" in out
    states = rows(
        project, "SELECT name, last_error IS NULL, last_success IS NULL FROM sources ORDER BY rowid"
    )
    assert states == [("broken", 0, 1), ("KCrush", 1, 0)]
    report = json.loads(project.run("status", "--json").stdout)
    assert [s["name"] for s in report["sources"]] == ["broken", "KCrush"]
    assert report["sources"][0]["last_error"].startswith(f"{server.url}/broken/wp-json")


def server_request() -> Seen:
    return Seen(
        POSTS_PATH,
        {"per_page": "100", "page": "1", "orderby": "modified", "order": "asc", "_embed": "1"},
        {},
        0.0,
    )


def test_tls_certificates_are_verified(tmp_path: Path) -> None:
    """A server whose certificate no trusted CA signed is refused, naming the URL."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = FixtureServer()
    server.httpd.socket = context.wrap_socket(server.httpd.socket, server_side=True)
    server.route("/feed", lambda _: Reply(200, b"ok"))
    server.start()
    try:
        url = server.url.replace("http://", "https://") + "/feed"
        with HttpClient(FAST) as client, pytest.raises(FetchError) as caught:
            client.get(url)
        assert str(caught.value).startswith(f"{url}: connection failed: ")
        assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        assert "gave up" not in str(caught.value)  # not retried: it would fail again
        assert server.requests("/feed") == []
    finally:
        server.stop()


def test_posts_deleted_while_paging_withdraw_nothing_until_a_stable_reread(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    assert run_import(project, "--wordpress", server.url)[0] == 0
    [(cursor_before,)] = rows(project, "SELECT cursor FROM sources")

    def deleting_after_page_one(request: Seen) -> Reply:
        reply = site.handle_posts(request)
        if request.query["page"] == "1":
            for wp_id in range(1101, 1201):  # 100 posts deleted while we read page 1
                site.delete(wp_id)
        return reply

    server.route(POSTS_PATH, deleting_after_page_one)
    code, out, err = run_import(project, "--wordpress", server.url, "--full")
    assert code == 0, err
    assert "the listing was not whole (X-WP-Total changed from 230 to 130" in err
    assert "nothing withdrawn: X-WP-Total changed" in out  # and says why
    assert ", 100 withdrawn" not in out
    assert rows(project, "SELECT count(*) FROM records WHERE withdrawn = 1") == [(0,)]
    assert rows(project, "SELECT cursor FROM sources") == [(cursor_before,)]

    server.route(POSTS_PATH, site.handle_posts)
    code, out, _ = run_import(project, "--wordpress", server.url, "--full")
    assert code == 0 and ", 100 withdrawn" in out


def test_a_site_without_pagination_headers_is_paged_until_a_short_page(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    def without_headers(request: Seen) -> Reply:
        reply = site.handle_posts(request)
        reply.headers = {k: v for k, v in reply.headers.items() if not k.startswith("X-WP-")}
        return reply

    server.route(POSTS_PATH, without_headers)
    code, out, err = run_import(project, "--wordpress", server.url)
    assert code == 0, err
    assert "fetched 230 posts in 3 pages: 230 added" in out


def test_with_credentials_unpublished_posts_are_withdrawn_incrementally(
    project: Project, server: FixtureServer, site: WordPressSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCRUSH_WP_PASSWORD", "abcd efgh ijkl mnop")
    project.append_config(f"""
        [[sources]]
        type = "wordpress"
        name = "KCrush"
        url = "{server.url}"
        username = "feeds"
        password_env = "KCRUSH_WP_PASSWORD"
    """)
    assert run_import(project)[0] == 0
    first = server.requests(POSTS_PATH)[0]
    assert first.query["status"] == "publish,future,draft,pending,private,trash"
    assert first.headers["authorization"] == site.auth

    site.post(1017)["status"] = "private"
    site.post(1017)["modified_gmt"] = "2030-01-01T00:00:00"
    code, out, err = run_import(project)
    assert code == 0, err
    assert "modified_after" in server.requests(POSTS_PATH)[-2].query  # not a full re-read
    assert ", 1 withdrawn" in out
    assert rows(project, "SELECT id FROM records WHERE withdrawn = 1") == [
        (f"{server.url}/?p=1017",)
    ]


def test_wrong_credentials_are_reported(
    project: Project, server: FixtureServer, site: WordPressSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KCRUSH_WP_PASSWORD", "wrong")
    project.append_config(f"""
        [[sources]]
        type = "wordpress"
        url = "{server.url}"
        username = "feeds"
        password_env = "KCRUSH_WP_PASSWORD"
    """)
    code, _, err = run_import(project)
    assert code == 1
    # WordPress 6.1 answers a wrong application password as an anonymous request.
    assert "HTTP 400: the site did not accept the credentials" in err
    assert "(rest_invalid_param: Invalid parameter(s): status)" in err
    assert "hint: WordPress treats a wrong username or application password" in err
