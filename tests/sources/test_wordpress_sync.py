"""The WordPress sync against what real WordPress 6.x does (see http_fixtures): scheduled
posts published by cron, posts created scheduled, Bulk Edit's shared seconds, wrong
application passwords, and the User-Agent the docs name."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kcrush_feeds.sources.http import USER_AGENT
from kcrush_feeds.sources.wordpress_sync import CURSOR_OVERLAP, next_cursor, sync_plan
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.http_fixtures import POSTS_PATH, FixtureServer, Reply, Seen, WordPressSite, serve
from tests.support.http_fixtures import wordpress_site as make_site
from tests.support.project import ROOT, Project, rows

PASSWORD = "abcd efgh ijkl mnop"


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    yield from serve()


@pytest.fixture
def site(server: FixtureServer) -> WordPressSite:
    return make_site(server)


def utc(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=UTC)


def newest_modified(site: WordPressSite) -> datetime:
    return max(utc(p["modified_gmt"]) for p in site.posts if p["status"] == "publish")


def imported(project: Project, *args: str) -> str:
    result = project.run("import", *args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def with_credentials(project: Project, server: FixtureServer, mp: pytest.MonkeyPatch) -> None:
    mp.setenv("KCRUSH_WP_PASSWORD", PASSWORD)
    project.append_config(f"""
        [[sources]]
        type = "wordpress"
        name = "KCrush"
        url = "{server.url}"
        username = "feeds"
        password_env = "KCRUSH_WP_PASSWORD"
    """)


def titles(project: Project, site: WordPressSite) -> dict[int, str]:
    with Store.open(project.dir / "store.db") as store:
        found = {}
        for post in site.posts:
            record = store_records.get(store, f"{site.base}/?p={post['id']}")
            if record is not None:
                found[post["id"]] = record.title
    return found


def test_a_scheduled_post_published_by_cron_reaches_the_next_incremental_import(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    # Post 1230 was scheduled by an editor two days before the newest edit of the site:
    # WordPress keeps that moment as its modified date when cron publishes it.
    others = max(utc(p["modified_gmt"]) for p in site.posts if p["id"] != 1230)
    site.schedule(
        1230, publish_at=others + timedelta(days=1), pressed_at=others - timedelta(days=2)
    )
    assert "229 added" in imported(project, "--wordpress", server.url)
    [(cursor,)] = rows(project, "SELECT cursor FROM sources")
    assert cursor == others.replace(tzinfo=None).isoformat() + "Z"

    site.cron_publish(1230)
    server.seen.clear()
    out = imported(project, "--wordpress", server.url)
    assert "1 added" in out
    assert titles(project, site)[1230] == html.unescape(site.post(1230)["title"]["rendered"])

    # Two listings, each in a unique order: what was edited, and what was published.
    modified, published = server.requests(POSTS_PATH)
    since = format_z(utc(cursor) - CURSOR_OVERLAP)
    assert modified.query["modified_after"] == since and "after" not in modified.query
    assert published.query["after"] == since and "modified_after" not in published.query
    for request in (modified, published):
        assert (request.query["orderby"], request.query["order"]) == ("id", "asc")


def format_z(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def test_a_post_created_scheduled_does_not_move_the_cursor_into_the_future(
    project: Project, server: FixtureServer, site: WordPressSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_credentials(project, server, monkeypatch)
    # Created scheduled a month ahead: its modified date is that future date.
    site.create_scheduled(2001, like=1001, publish_at=datetime.now(UTC) + timedelta(days=31))
    out = imported(project)
    assert "231 added" in out  # the scheduled post is stored, shown when its time comes
    [(cursor,)] = rows(project, "SELECT cursor FROM sources")
    assert utc(cursor) == newest_modified(site)

    # A change made today is fetched by the next run.
    site.edit(1010, title="Edited today", when=datetime.now(UTC) - timedelta(minutes=1))
    out = imported(project)
    assert titles(project, site)[1010] == "Edited today"
    assert "1 updated" in out


def test_the_cursor_never_passes_the_time_of_the_response(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    # A published post whose modified date is past the server's clock (a migration plugin
    # copied it from a site whose clock ran ahead): the server's Date caps the cursor.
    answered = newest_modified(site) + timedelta(hours=1)
    server.clock = answered
    site.post(1020)["modified_gmt"] = format_z(answered + timedelta(days=1))[:-1]
    out = imported(project, "--wordpress", server.url)
    [(cursor,)] = rows(project, "SELECT cursor FROM sources")
    assert utc(cursor) <= answered
    assert utc(cursor) == max(
        utc(p["modified_gmt"]) for p in site.posts if utc(p["modified_gmt"]) <= answered
    )
    assert f"newest change {cursor}" in out


def test_a_cursor_saved_in_the_future_is_not_trusted(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    imported(project, "--wordpress", server.url)
    with Store.open(project.dir / "store.db") as store, store.transaction() as conn:
        conn.execute("UPDATE sources SET cursor = '2099-12-31T08:23:37Z'")
    site.edit(1010, title="Edited today", when=datetime.now(UTC) - timedelta(minutes=1))
    server.seen.clear()
    result = project.run("import", "--wordpress", server.url)
    assert result.exit_code == 0, result.stderr
    assert "2099-12-31T08:23:37Z is in the future" in result.stderr
    assert "modified_after" not in server.requests(POSTS_PATH)[0].query
    assert titles(project, site)[1010] == "Edited today"
    [(cursor,)] = rows(project, "SELECT cursor FROM sources")
    assert utc(cursor) < datetime.now(UTC)


def test_a_bulk_edit_of_150_posts_is_imported_whole(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    imported(project, "--wordpress", server.url)
    edited = list(range(1041, 1191))
    site.bulk_edit(edited, start=newest_modified(site) + timedelta(hours=1))
    assert len({site.post(i)["modified_gmt"] for i in edited}) == 4
    out = imported(project, "--wordpress", server.url)
    assert ", 150 updated, " in out
    now = titles(project, site)
    assert [i for i in edited if not now[i].endswith("(bulk edited)")] == []


def test_a_full_reread_after_a_bulk_edit_withdraws_nothing_live(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    imported(project, "--wordpress", server.url)
    site.bulk_edit(list(range(1041, 1191)), start=newest_modified(site) + timedelta(hours=1))
    server.seen.clear()
    out = imported(project, "--wordpress", server.url, "--full")
    assert "withdrawn" not in out
    assert rows(project, "SELECT count(*) FROM records WHERE withdrawn = 1") == [(0,)]
    requests = server.requests(POSTS_PATH)
    assert [r.query["page"] for r in requests] == ["1", "2", "3"]
    assert {r.query["orderby"] for r in requests} == {"id"}


def test_a_listing_that_is_not_whole_withdraws_nothing_and_says_why(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    imported(project, "--wordpress", server.url)
    site.bulk_edit(list(range(1041, 1191)), start=newest_modified(site) + timedelta(hours=1))

    def ordering_plugin(request: Seen) -> Reply:
        # A plugin (say, a custom post order) that forces ORDER BY post_modified whatever
        # the request asks: the ties straddle pages differently on every request.
        return site.handle_posts(
            Seen(request.path, {**request.query, "orderby": "modified"}, request.headers, 0.0)
        )

    server.route(POSTS_PATH, ordering_plugin)
    result = project.run("import", "--wordpress", server.url, "--full")
    assert result.exit_code == 0, result.stderr
    assert rows(project, "SELECT count(*) FROM records WHERE withdrawn = 1") == [(0,)]
    said = re.search(r"nothing withdrawn: (.*)", result.stdout + result.stderr)
    assert said is not None, result.stdout + result.stderr
    assert re.search(r"post \d+ was listed twice", said.group(1)), said.group(1)
    assert "nothing withdrawn" in result.stdout  # in the summary line too


def test_deleted_while_paging_says_the_count_changed(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    imported(project, "--wordpress", server.url)

    def deleting_after_page_one(request: Seen) -> Reply:
        reply = site.handle_posts(request)
        if request.query["page"] == "1":
            site.delete(1150)
        return reply

    server.route(POSTS_PATH, deleting_after_page_one)
    result = project.run("import", "--wordpress", server.url, "--full")
    assert result.exit_code == 0, result.stderr
    assert "nothing withdrawn: X-WP-Total changed from 230 to 229 while the pages were read" in (
        result.stdout
    )


WRONG_PASSWORD_ANSWERS = {
    # WordPress 6.1 when the application password is wrong (or application passwords are
    # unavailable: plain http on a non-local site): the request is anonymous.
    "400 rest_invalid_param": (
        400,
        b'{"code":"rest_invalid_param","message":"Invalid parameter(s): status","data":'
        b'{"status":400,"params":{"status":"Status is forbidden."},"details":{"status":'
        b'{"code":"rest_forbidden_status","message":"Status is forbidden.","data":'
        b'{"status":401}}}}}',
    ),
    "401 rest_forbidden_status": (
        401,
        b'{"code":"rest_forbidden_status","message":"Status is forbidden.","data":{"status":401}}',
    ),
    "401 incorrect_password": (
        401,
        b'{"code":"incorrect_password","message":"The provided password is an invalid '
        b'application password.","data":{"status":401}}',
    ),
    "403 rest_forbidden_context": (
        403,
        b'{"code":"rest_forbidden_context","message":"Sorry, you are not allowed to edit '
        b'posts in this post type.","data":{"status":403}}',
    ),
}


@pytest.mark.parametrize("answer", WRONG_PASSWORD_ANSWERS)
def test_refused_credentials_are_named_as_such(
    project: Project,
    server: FixtureServer,
    site: WordPressSite,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
) -> None:
    with_credentials(project, server, monkeypatch)
    monkeypatch.setenv("KCRUSH_WP_PASSWORD", "wrong")
    status, body = WRONG_PASSWORD_ANSWERS[answer]
    if status != 400:  # the 400 is what the fixture site itself answers
        server.route(
            POSTS_PATH, lambda _: Reply(status, body, {"Content-Type": "application/json"})
        )
    result = project.run("import")
    assert result.exit_code == 1
    assert f"HTTP {status}: the site did not accept the credentials" in result.stderr
    assert 'username = "feeds"' in result.stderr
    assert 'password_env = "KCRUSH_WP_PASSWORD"' in result.stderr
    assert answer.split()[1] in result.stderr  # WordPress's own code is still shown


def test_the_same_answer_without_credentials_is_not_blamed_on_them(
    project: Project, server: FixtureServer, site: WordPressSite
) -> None:
    status, body = WRONG_PASSWORD_ANSWERS["401 rest_forbidden_status"]
    server.route(POSTS_PATH, lambda _: Reply(status, body, {"Content-Type": "application/json"}))
    result = project.run("import", "--wordpress", server.url)
    assert result.exit_code == 1
    assert "credentials" not in result.stderr
    assert "hint: the REST API asks for a login" in result.stderr


def test_the_docs_name_the_user_agent_that_is_sent(server: FixtureServer, site: object) -> None:
    docs = (ROOT / "docs" / "sources.md").read_text(encoding="utf-8")
    named = re.findall(r"User-Agent: (kcrush-feeds/[^`]*)`", docs)
    assert named, "docs/sources.md names no User-Agent"
    from kcrush_feeds import __version__

    assert {n.replace("<version>", __version__) for n in named} == {USER_AGENT}


def test_the_cursor_rules() -> None:
    t = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    hour = timedelta(hours=1)
    assert next_cursor(None, None, t, complete=True) is None
    assert next_cursor(t - 2 * hour, t - hour, t, complete=True) == t - hour
    assert next_cursor(t - hour, t - 2 * hour, t, complete=True) == t - hour  # never back
    assert next_cursor(t - hour, t + hour, t, complete=True) == t  # never past the reply
    assert next_cursor(t - 3 * hour, t - hour, t, complete=False) == t - 3 * hour
    assert sync_plan(None).listings == ({},)
    assert sync_plan(t).listings == (
        {"modified_after": t - CURSOR_OVERLAP},
        {"published_after": t - CURSOR_OVERLAP},
    )
