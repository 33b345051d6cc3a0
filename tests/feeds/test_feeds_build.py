"""``kcrush-feeds build`` end to end: real config, real SQLite store, real files, read back
with feedparser, RELAX NG and JSON Schema; byte stability, minimal rewrites, --prune."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from kcrush_feeds.errors import FeedError
from kcrush_feeds.feeds.build import FILE_NAMES, build_feeds, plan_feeds
from kcrush_feeds.feeds.slugs import slugify
from kcrush_feeds.model import Record
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from tests.support.feedcheck import check_feed
from tests.support.project import EXAMPLES, Project

LONG_NAME = ("케이팝 " * 50).strip()  # 199 characters: the most an import accepts
NOW = "2024-03-01T00:00:00+00:00"
NOW_DT = datetime.fromisoformat(NOW)
ENV = {"KCRUSH_FEEDS_NOW": NOW}
BIG_BODY = ("<p>" + "본문 &amp; body text, <a href='/rel'>link</a>. " * 10 + "</p>\n") * 12_000

EXTRA = [
    {
        "id": "kr-1",
        "url": "https://www.kcrush.com/kr-1/",
        "title": '블랙핑크 & <새 앨범> "특별" 🎤',
        "published": "2024-02-28T09:00:00+09:00",
        "categories": ["케이팝", "K-Pop Interviews"],
        "summary": "",
        "tags": ["BLACKPINK"],
        "authors": ["김기자"],
    },
    {
        "url": "https://www.kcrush.com/bell/",
        "title": "Bell\u0007 rings & <b>bold</b>",
        "published": "2024-02-27T10:00:00-08:00",
        "categories": ["🎤 Live", "../../etc", "CON"],
        "summary": "<p onclick='x()'>Hi <a href=\"/about\">about</a><script>alert(1)</script></p>",
        "content_html": "<p>Body with a control \u000b character</p>",
    },
    {
        "url": "https://www.kcrush.com/big/",
        "title": "A 5 MB body",
        "published": "2024-02-26T10:30:00-08:00",
        "categories": [LONG_NAME],
        "content_html": BIG_BODY,
        "summary": "Too long for feeds; the summary stays.",
    },
    {
        "url": "https://www.kcrush.com/future/",
        "title": "Not yet",
        "published": "2024-06-01T10:00:00-07:00",
        "categories": ["K-Pop Articles", "Future Only"],
    },
    {
        "url": "https://www.kcrush.com/gone/",
        "title": "Withdrawn later",
        "published": "2024-02-20T10:00:00-08:00",
        "categories": ["Gone"],
    },
]


def files_under(root: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def visible(store: Store, keys: tuple[str, ...] | None, limit: int) -> list[Record]:
    """What a feed should hold, computed independently of building.py."""
    out = []
    for record in store_records.iter_records(store, "withdrawn = 0"):
        if record.published > NOW_DT:
            continue
        if keys is None or {c.casefold() for c in record.categories} & set(keys):
            out.append(record)
    return out[:limit]


@pytest.fixture
def built(project: Project, write_jsonl: Callable[..., Path]) -> Project:
    assert len(BIG_BODY.encode()) > 5_000_000
    result = project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV)
    assert result.exit_code == 0, result.output
    extra = write_jsonl("extra.jsonl", *EXTRA)
    result = project.run("import", str(extra), env=ENV)
    assert result.exit_code == 0, result.output
    assert "over the 1 MiB limit" in result.output  # the 5 MB body is dropped, with a warning
    config = project.config
    with Store.open(config.database_path) as store, store.transaction() as conn:
        conn.execute("UPDATE records SET withdrawn = 1 WHERE url = 'https://www.kcrush.com/gone/'")
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    return project


def out_dir(project: Project) -> Path:
    return project.config.output_dir


def test_every_file_is_valid_and_lists_exactly_the_records(built: Project) -> None:
    config = built.config
    root = out_dir(built)
    with Store.open(config.database_path) as store:
        specs = plan_feeds(config, store)
        slugs = {s.slug for s in specs}
        assert {"all", "kpop-articles", "kpop-interviews", "film", "k-drama", "fashion"} <= slugs
        for name in ("케이팝", "🎤 Live", "../../etc", "CON", LONG_NAME, "Gone", "Future Only"):
            assert slugify(name) in slugs, name
        for spec in specs:
            expected = visible(store, spec.keys, config.feeds.items_per_feed)
            for fmt, file_name in FILE_NAMES.items():
                path = root / spec.slug / file_name
                assert path.resolve().is_relative_to(root.resolve())
                url = f"{config.feeds.base_url}/{spec.slug}/{file_name}"
                check_feed(path, fmt, expected, self_url=url)
        ids = {r.id for r in visible(store, None, 1000)}
    assert "https://www.kcrush.com/future/" not in ids and "https://www.kcrush.com/gone/" not in ids
    everything = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert b"https://www.kcrush.com/future/" not in everything  # future-dated: in no feed
    assert b"https://www.kcrush.com/gone/" not in everything  # withdrawn: in no feed
    assert b"alert(1)" not in everything and b"onclick" not in everything
    assert b"https://www.kcrush.com/about" in everything  # relative link made absolute
    assert b"\x07" not in everything and b"\x0b" not in everything
    # the empty feeds are there, and valid (checked above with expected == [])
    assert (root / slugify("Gone") / "atom.xml").exists()
    assert (root / slugify("Future Only") / "rss.xml").exists()
    for path in root.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o644, path  # readable by the web server


def test_opml_index_and_stylesheet(built: Project) -> None:
    config = built.config
    root = out_dir(built)
    base = config.feeds.base_url
    opml = etree.parse(str(root / "feeds.opml"))
    outlines = opml.findall("body/outline")
    with Store.open(config.database_path) as store:
        specs = plan_feeds(config, store)
    assert [o.get("text") for o in outlines] == [s.title for s in specs]
    for outline in outlines:
        url = outline.get("xmlUrl")
        assert url.startswith(base + "/")
        assert (root / url.removeprefix(base + "/")).is_file()
        assert outline.get("type") == "rss" and outline.get("htmlUrl") == config.site.url
    index = (root / "index.html").read_text(encoding="utf-8")
    for spec in specs:
        for fmt, file_name in FILE_NAMES.items():
            assert f'href="{base}/{spec.slug}/{file_name}"' in index, (spec.slug, fmt)
            assert f'<a href="{spec.slug}/{file_name}">' in index
    assert index.count('<link rel="alternate"') == 3 * len(specs) + 1  # + the OPML
    rss = (root / "all" / "rss.xml").read_bytes()
    assert b"xml-stylesheet" not in rss and not (root / "feed.xsl").exists()
    # Each feed is shown to a person by its own page, no XSLT needed.
    page = (root / "all" / "index.html").read_text(encoding="utf-8")
    assert "KCrush Interview with TravelingWill" in page
    assert f'value="{base}/all/atom.xml"' in page and 'href="../style.css"' in page
    assert (root / "style.css").is_file()


def test_second_build_changes_nothing_and_says_so(built: Project) -> None:
    root = out_dir(built)
    before = files_under(root)
    result = built.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output and "wrote" not in result.output
    assert files_under(root) == before  # same bytes, same mtimes
    # Without the remembered state every feed is rendered again, and compared: still nothing.
    (root / ".build-state.json").unlink()
    result = built.run("build", env=ENV)
    assert "nothing changed" in result.output
    after = files_under(root)
    after.pop(".build-state.json")
    before.pop(".build-state.json")
    assert after == before
    # A fresh build into another directory gives the very same bytes.
    other = built.dir / "public2"
    shutil.copy(built.config_path, built.dir / "other.toml")
    text = (built.dir / "other.toml").read_text().replace('"public/feeds"', '"public2"')
    (built.dir / "other.toml").write_text(text)
    result = built.runner.invoke(
        __import__("kcrush_feeds.cli.main", fromlist=["main"]).main,
        ["--config", str(built.dir / "other.toml"), "build"],
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    fresh = {k: v[0] for k, v in files_under(other).items() if k != ".build-state.json"}
    assert fresh == {k: v[0] for k, v in before.items()}


def test_one_changed_record_rewrites_only_the_files_that_hold_it(
    built: Project, write_jsonl: Callable[..., Path]
) -> None:
    root = out_dir(built)
    before = files_under(root)
    lines = (EXAMPLES / "records.jsonl").read_text(encoding="utf-8").splitlines()
    raw = next(json.loads(line) for line in lines if "Best K-indie Artists" in line)
    assert raw["categories"] == ["K-Pop Articles"]
    raw["title"] = "Best K-indie Artists (updated)"
    result = built.run("import", str(write_jsonl("change.jsonl", raw)), env=ENV)
    assert "1 updated" in result.output
    result = built.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    after = files_under(root)
    changed = {k for k in after if after[k] != before.get(k)} - {".build-state.json"}
    expected = {
        f"{slug}/{name}"
        for slug in ("all", "kpop-articles")
        for name in (*FILE_NAMES.values(), "index.html")  # the feed and its page
    }
    assert changed == expected
    assert sorted(
        line.split()[-1] for line in result.output.splitlines() if line.startswith("wrote")
    ) == sorted(expected)
    assert b"Best K-indie Artists (updated)" in (root / "kpop-articles" / "rss.xml").read_bytes()


def test_deleted_or_edited_file_is_restored(built: Project) -> None:
    root = out_dir(built)
    good = (root / "film" / "atom.xml").read_bytes()
    (root / "film" / "atom.xml").unlink()
    (root / "film" / "rss.xml").write_bytes(b"broken")
    result = built.run("build", env=ENV)
    assert "wrote    film/atom.xml" in result.output and "wrote    film/rss.xml" in result.output
    assert (root / "film" / "atom.xml").read_bytes() == good
    assert "2 files written" in result.output


def test_prune_only_when_asked(built: Project) -> None:
    root = out_dir(built)
    text = built.config_path.read_text()
    text = text.replace(
        'base_url = "https://www.kcrush.com/feeds"\n',
        'base_url = "https://www.kcrush.com/feeds"\nauto_categories = false\n'
        'formats = ["rss", "atom"]\n',
        1,
    )
    built.config_path.write_text(text)
    result = built.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    assert (root / "film" / "rss.xml").exists() and (root / "all" / "feed.json").exists()
    assert "warning: stale film/rss.xml" in result.output
    assert "build --prune removes" in result.output
    (root / "film" / "notes.txt").write_text("not ours")
    result = built.run("build", "--prune", env=ENV)
    assert "removed  film/rss.xml" in result.output
    assert "removed  all/feed.json" in result.output
    assert not (root / "film" / "rss.xml").exists() and not (root / "all" / "feed.json").exists()
    assert (root / "film" / "notes.txt").exists()  # never removes what it did not write
    assert not (root / slugify("케이팝")).exists()  # emptied directories go
    assert (root / "all" / "rss.xml").exists() and (root / "kpop-articles" / "atom.xml").exists()
    result = built.run("build", "--prune", env=ENV)
    assert "nothing changed" in result.output


def test_collision_is_refused_with_a_clear_error(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    project.append_config("""
        [[feeds.categories]]
        slug = "film"
        title = "Movies"
        match = ["movies"]
    """)
    project.run(
        "import",
        str(
            write_jsonl(
                "r.jsonl",
                {
                    "url": "https://www.kcrush.com/a/",
                    "title": "A",
                    "published": "2024-01-01T00:00:00Z",
                    "categories": ["Film"],
                },
            )
        ),
        env=ENV,
    )
    result = project.run("build", env=ENV)
    assert result.exit_code == 1
    assert "'Film' (an unconfigured record category) and the feed 'Movies'" in result.output
    assert "film/" in result.output and "hint:" in result.output
    # The configured feed is built; the record category that clashes with it is not.
    feed = json.loads((project.config.output_dir / "film" / "feed.json").read_bytes())
    assert feed["title"].endswith("Movies") and feed["items"] == []


def test_a_slug_clash_between_record_categories_skips_that_feed_only(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    records = [
        {
            "url": f"https://www.kcrush.com/{i}/",
            "title": f"T{i}",
            "published": f"2024-01-0{i + 1}T00:00:00Z",
            "categories": [name],
        }
        for i, name in enumerate(["K Drama", "K-Drama", "Film", "K-Pop Articles"])
    ]
    result = project.run("import", str(write_jsonl("r.jsonl", *records)), env=ENV)
    assert result.exit_code == 0
    assert (
        "warning: the feed 'K Drama' (an unconfigured record category) and the feed "
        "'K-Drama' (an unconfigured record category) would both write the feeds in "
        "k-drama/: build will write no feed for them"
    ) in result.output
    result = project.run("build", env=ENV)
    assert result.exit_code == 1
    assert "error: the feed 'K Drama'" in result.output and "k-drama/; not built" in result.output
    out = project.config.output_dir
    assert not (out / "k-drama").exists()
    for slug in ("all", "film", "kpop-articles"):
        assert (out / slug / "feed.json").exists(), slug
    everything = json.loads((out / "all" / "feed.json").read_bytes())
    assert len(everything["items"]) == 4  # the clashing records are still in "all"
    assert "1 not built (two categories share a slug)" in result.output


def test_two_spellings_of_one_category_share_a_feed(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    project.run(
        "import",
        str(
            write_jsonl(
                "r.jsonl",
                *[
                    {
                        "url": f"https://www.kcrush.com/{n}/",
                        "title": n,
                        "published": f"2024-01-0{i + 1}T00:00:00Z",
                        "categories": [n],
                    }
                    for i, n in enumerate(["K-Drama", "k-drama", "K-DRAMA"])
                ],
            )
        ),
        env=ENV,
    )
    assert project.run("build", env=ENV).exit_code == 0
    feed = json.loads((project.config.output_dir / "k-drama" / "feed.json").read_bytes())
    assert [i["title"] for i in feed["items"]] == ["K-DRAMA", "k-drama", "K-Drama"]
    assert feed["title"] == "K-DRAMA"  # the newest record's spelling


def test_library_entry_point_and_report(project: Project, write_jsonl: Callable[..., Path]) -> None:
    project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV)
    config = project.config
    with Store.open(config.database_path) as store:
        report = build_feeds(config, store, NOW_DT)
        # Three formats and a page per feed, plus feeds.opml, index.html and style.css.
        assert report.feeds == 6 and len(report.written) == 6 * 4 + 3 and not report.unchanged
        assert report.summary() == "6 feeds: 27 files written, 0 unchanged, 0 removed"
        again = build_feeds(config, store, NOW_DT, prune=True)
        assert not again.changed and len(again.unchanged) == 27
        # Time passing alone changes nothing when no record becomes due.
        later = build_feeds(config, store, datetime(2030, 1, 1, tzinfo=UTC))
        assert not later.changed


def test_unwritable_output_dir_is_a_feed_error(project: Project) -> None:
    project.write("public", "a file where the directory should be")
    config = project.config
    with Store.open(config.database_path) as store, pytest.raises(FeedError, match="public"):
        build_feeds(config, store, NOW_DT)


@pytest.mark.skipif(
    not os.environ.get("FEED_VALIDATOR"),
    reason="set FEED_VALIDATOR to the "
    "W3C feed validator command (it is not part of this repository)",
)
def test_w3c_feed_validator(built: Project) -> None:
    root = out_dir(built)
    base = built.config.feeds.base_url
    for path in sorted(root.glob("*/*.xml")):
        url = f"{base}/{path.relative_to(root).as_posix()}"
        done = subprocess.run(
            [os.environ["FEED_VALIDATOR"], "--base", url, str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and "RESULT: OK" in done.stdout, done.stdout
    done = subprocess.run(
        [os.environ["FEED_VALIDATOR"], str(root / "feeds.opml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout


def test_prune_never_touches_files_it_did_not_write(built: Project) -> None:
    root = out_dir(built)
    (root / "blog").mkdir()
    (root / "blog" / "rss.xml").write_text("another tool's feed")
    outside = built.dir / "precious.txt"
    outside.write_text("keep me")
    state_path = root / ".build-state.json"
    state = json.loads(state_path.read_text())
    state["files"]["../precious.txt"] = {"inputs": "x", "size": 7, "mtime_ns": 0}
    state_path.write_text(json.dumps(state))
    result = built.run("build", "--prune", env=ENV)
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.output and "0 removed" in result.output
    assert (root / "blog" / "rss.xml").exists() and outside.read_text() == "keep me"
