"""The WordPress import against a real WordPress (Debian's package, on MariaDB, php-fpm and
nginx: see real_wordpress.py), changed only through WordPress's own PHP functions.

A week of the magazine: the site is imported; an editor edits a post, schedules one that
cron publishes (its modified date stays the moment "Schedule" was pressed), creates one
scheduled a month ahead (its modified date is that future date), and Bulk Edits 150 posts
(a few shared seconds); then the incremental imports and a full re-read must agree with
the site, post for post. Select with ``pytest -m wordpress``; skipped, saying why, where
the packages are missing or not root.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner

from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.http_fixtures import example_records
from tests.support.project import BASE_CONFIG, Project, rows
from tests.support.real_wordpress import RealWordPress, missing, running_wordpress

WHY_NOT = missing()
pytestmark = [
    pytest.mark.wordpress,
    pytest.mark.slow,
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
]
VARIATIONS = 150  # after the 30 examples: 180 posts, two pages


@dataclass
class Site:
    wp: RealWordPress
    ids: list[int]  # in the order of the posts given to install
    guids: list[str]  # the record ids (WordPress sets the guid when a post is created)
    user: str
    password: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    examples = example_records()
    posts = []
    for n in range(len(examples) + VARIATIONS):
        rec = examples[n % len(examples)]
        published = datetime.fromisoformat(rec["published"]) + timedelta(minutes=n)
        posts.append(
            {
                "title": rec["title"] if n < len(examples) else f"{rec['title']} (part {n})",
                "summary": rec.get("summary", ""),
                "content": f"<p>{html.escape(rec.get('summary', ''))}</p>",
                "published": published.timestamp(),
                "categories": rec["categories"],
            }
        )
    with running_wordpress(tmp_path_factory.mktemp("wordpress")) as wp:
        answer = wp.act("install", timezone="Asia/Seoul", posts=posts)
        guids = [html.unescape(g) for g in answer["guids"]]
        yield Site(wp, answer["ids"], guids, answer["user"], answer["password"])


def reader(base: Path, site: Site, monkeypatch: pytest.MonkeyPatch, *, editor: bool) -> Project:
    """A kcrush-feeds project importing the site, with or without credentials."""
    monkeypatch.setenv("KCRUSH_TEST_SECRET", "test-secret-0123456789abcdef")
    project = Project(base, CliRunner())
    base.mkdir(parents=True, exist_ok=True)
    project.write_config(BASE_CONFIG)
    project.append_config(f"""
        [[sources]]
        type = "wordpress"
        name = "KCrush"
        url = "{site.wp.url}"
    """)
    if editor:
        monkeypatch.setenv("KCRUSH_WP_PASSWORD", site.password)
        project.append_config(f"""
            username = "{site.user}"
            password_env = "KCRUSH_WP_PASSWORD"
        """)
    return project


def run(project: Project, *args: str) -> str:
    result = project.run("import", *args)
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("KCrush (wordpress): "), line
    return line


def cursor(project: Project) -> datetime:
    [(value,)] = rows(project, "SELECT cursor FROM sources")
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def gmt(value: str) -> datetime:
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def post_requests(site: Site, since: int) -> list[dict[str, str]]:
    """The posts requests nginx saw after the first ``since`` log lines."""
    found = []
    for line in site.wp.requests()[since:]:
        target, _status = line.rsplit(" ", 1)
        parts = urlsplit(target)
        if parts.path == "/wp-json/wp/v2/posts":
            found.append({k: v[-1] for k, v in parse_qs(parts.query).items()})
    return found


def test_a_week_of_a_real_wordpress(
    site: Site,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    pytestconfig: pytest.Config,
) -> None:
    wp = site.wp
    public = reader(tmp_path / "public", site, monkeypatch, editor=False)
    editor = reader(tmp_path / "editor", site, monkeypatch, editor=True)

    edited = wp.act("edit", id=site.ids[0], title="Korean leg of the iKON “Take Off” World Tour")
    # Scheduled by an editor three days ago, for two minutes from now.
    scheduled = wp.act(
        "schedule", title="Interview: 방탄소년단", pressed_ago=3 * 86400, **{"in": 120}
    )
    assert scheduled["status"] == "future"
    # Created scheduled a month ahead: WordPress gives it that future date as modified.
    ahead = wp.act("create_scheduled", title="Next month", **{"in": 31 * 86400})
    assert ahead["post_modified_gmt"] == ahead["post_date_gmt"]

    # --- the first imports ---
    since = len(wp.requests())
    line = run(public)
    assert "fetched 180 posts in 2 pages: 180 added" in line
    assert cursor(public) == gmt(edited["post_modified_gmt"])
    answered = parsedate_to_datetime(_date_of_last_reply(wp))
    assert cursor(public) <= answered
    assert {r["orderby"] for r in post_requests(site, since)} == {"id"}
    check_posts(public, site)

    line = run(editor)
    assert "fetched 182 posts in 2 pages: 182 added" in line  # both scheduled posts too
    assert cursor(editor) == gmt(edited["post_modified_gmt"])  # not next month

    # --- the week ---
    bulk = wp.act("bulk_edit", ids=site.ids[30:], category="Bulk Edited")
    assert bulk["updated"] == VARIATIONS
    assert bulk["seconds"] < VARIATIONS / 10  # a handful of shared seconds
    published = wp.act("cron_publish", id=scheduled["id"])
    assert published["status"] == "publish"
    assert published["post_modified_gmt"] == scheduled["post_modified_gmt"]  # three days ago

    since = len(wp.requests())
    line = run(public)
    assert ": 1 added, 150 updated, 1 unchanged, 0 rejected" in line, line
    incremental = post_requests(site, since)
    asked = gmt(edited["post_modified_gmt"]) - timedelta(hours=14)  # the cursor, minus 14 h
    stamp = asked.replace(tzinfo=None).isoformat() + "Z"
    assert [(r.get("modified_after"), r.get("after"), r["page"]) for r in incremental] == [
        (stamp, None, "1"),
        (stamp, None, "2"),
        (None, stamp, "1"),
    ]
    assert record_titles(public)[scheduled["guid"]] == "Interview: 방탄소년단"
    assert all("Bulk Edited" in c for c in bulk_categories(public, site))
    show(capsys, pytestconfig, "incremental import without credentials", site, since)

    since = len(wp.requests())
    line = run(editor)
    with_status = post_requests(site, since)
    assert {r["status"] for r in with_status} == {"publish,future,draft,pending,private,trash"}
    assert [(r.get("modified_after"), r.get("after")) for r in with_status][-1] == (None, stamp)
    show(capsys, pytestconfig, "incremental import with credentials", site, since)
    # The cron-published post was stored while scheduled; publishing gave it its pretty
    # link (a scheduled post's link is ?p=ID), hence one more update than the Bulk Edit.
    assert ": 0 added, 151 updated, 2 unchanged, 0 rejected" in line, line
    with Store.open(editor.dir / "store.db") as store:
        record = store_records.get(store, scheduled["guid"])
    assert record is not None and "?p=" not in record.url
    assert all("Bulk Edited" in c for c in bulk_categories(editor, site))

    # --- a full re-read: complete, so it may withdraw; nothing live is withdrawn ---
    line = run(public, "--full")
    assert "fetched 181 posts in 2 pages" in line and "withdrawn" not in line, line
    assert rows(public, "SELECT count(*), sum(withdrawn) FROM records") == [(181, 0)]


def show(
    capsys: pytest.CaptureFixture[str],
    config: pytest.Config,
    what: str,
    site: Site,
    since: int,
) -> None:
    """Under ``-v``: the requests nginx logged, for a person checking what is asked."""
    if config.get_verbosity() < 1:
        return
    with capsys.disabled():
        print(f"\n{what} requested:")
        for line in site.wp.requests()[since:]:
            print("  GET", site.wp.url + line)


def _date_of_last_reply(wp: RealWordPress) -> str:
    import httpx

    return httpx.get(f"{wp.url}/wp-json/").headers["date"]


def record_titles(project: Project) -> dict[str, str]:
    with Store.open(project.dir / "store.db") as store:
        return {r.id: r.title for r in store_records.newest_visible(store, 10_000)}


def bulk_categories(project: Project, site: Site) -> list[tuple[str, ...]]:
    with Store.open(project.dir / "store.db") as store:
        found = [store_records.get(store, guid) for guid in site.guids[30:]]
    assert all(r is not None for r in found)
    return [r.categories for r in found if r is not None]


def check_posts(project: Project, site: Site) -> None:
    """Every example came through: title, publish time, link and categories."""
    examples = example_records()
    with Store.open(project.dir / "store.db") as store:
        for n, (rec, guid) in enumerate(zip(examples, site.guids, strict=False)):
            record: Any = store_records.get(store, guid)
            assert record is not None, guid
            assert record.title == rec["title"]
            published = datetime.fromisoformat(rec["published"]) + timedelta(minutes=n)
            assert record.published == published.astimezone(UTC)
            assert record.url.startswith(f"{site.wp.url}/")
            assert set(record.categories) == set(rec["categories"])


def test_a_wrong_application_password_is_named_as_such(
    site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = reader(tmp_path, site, monkeypatch, editor=True)
    monkeypatch.setenv("KCRUSH_WP_PASSWORD", "abcd efgh ijkl mnop qrst uvwx")
    result = project.run("import")
    assert result.exit_code == 1
    # WordPress 6.1 treats the wrong password as no login and refuses the statuses.
    assert "HTTP 400: the site did not accept the credentials" in result.stderr
    assert f'username = "{site.user}", password_env = "KCRUSH_WP_PASSWORD"' in result.stderr
    assert "(rest_invalid_param: Invalid parameter(s): status)" in result.stderr
