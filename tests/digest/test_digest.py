"""The ledger: what goes into each week's digest, frozen once created, resumed, never twice."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from kcrush_feeds.config import Config
from kcrush_feeds.digest.select import compute_digest, open_digest
from kcrush_feeds.records.importer import import_files
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import load_digest
from tests.support.project import Project

W08 = datetime.fromisoformat("2024-02-19T09:00:00-08:00")  # Monday of 2024-W08, send time
W09 = datetime.fromisoformat("2024-02-26T09:00:00-08:00")
W10 = datetime.fromisoformat("2024-03-04T09:00:00-08:00")
W11 = datetime.fromisoformat("2024-03-11T09:00:00-08:00")


def rec(slug: str, published: str, category: str = "articles", **extra: Any) -> dict[str, Any]:
    return {
        "id": slug,
        "url": f"https://www.kcrush.com/{slug}/",
        "title": extra.pop("title", slug.replace("-", " ").title()),
        "published": published,
        "categories": [category],
        "summary": f"About {slug}.",
        **extra,
    }


@pytest.fixture
def load(project: Project, write_jsonl: Callable[..., Path]) -> Callable[..., None]:
    """Import records as of ``when`` (their first_seen), through the real importer."""
    count = 0

    def load(when: datetime, *records: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        path = write_jsonl(f"batch{count}.jsonl", *records)
        config = project.config
        with Store.open(config.database_path) as store:
            report = import_files(store, [str(path)], tz=config.site.tz, now=when)
        assert report.ok, report.rejected

    return load


def _open(config: Config, now: datetime) -> list[str] | None:
    with Store.open(config.database_path) as store:
        digest = open_digest(store, config, now)
    return None if digest is None else [item.record_id for item in digest.items]


def test_the_ledger_over_four_weeks(project: Project, load: Callable[..., None]) -> None:
    config = project.config
    load(
        datetime.fromisoformat("2024-02-18T12:00:00-08:00"),
        rec("old-archive", "2023-06-01T10:00:00"),  # before first_window: never
        rec("too-old", "2024-02-10T10:00:00", "interviews"),  # 9 days before: never
        rec("interview-a", "2024-02-14T10:00:00", "Interviews"),
        rec("article-b", "2024-02-16T10:00:00"),
        rec("fashion-only", "2024-02-17T10:00:00", "Fashion"),  # in no section
        rec("future-f", "2024-03-06T10:00:00", "interviews"),  # waits for its time
    )
    # The very first digest: only the last first_window (7 days), sections in order.
    assert _open(config, W08) == ["article-b", "interview-a"]
    load(
        datetime.fromisoformat("2024-02-22T12:00:00-08:00"),
        # Edited and re-dated after it went out: never again.
        rec("interview-a", "2024-02-21T10:00:00", "interviews", title="Interview A, updated"),
        rec("article-c", "2024-02-21T10:00:00"),
        rec("article-c-again", "2024-02-21T10:00:00", url="https://www.kcrush.com/article-c/"),
        # Published late but dated last week (after the last window opened): not lost.
        rec("late-d", "2024-02-15T10:00:00", "featured-interview"),
        # Back-dated long ago, imported now: an archive, not news.
        rec("backdated-e", "2024-01-02T10:00:00"),
    )
    assert _open(config, W09) == ["article-c", "late-d"]
    # Resumed: the same digest all week, even with new records (they wait for next week).
    load(datetime.fromisoformat("2024-02-27T12:00:00-08:00"),
         rec("article-g", "2024-02-27T11:00:00"))  # fmt: skip
    assert _open(config, datetime.fromisoformat("2024-03-01T18:00:00-08:00")) == [
        "article-c", "late-d"]  # fmt: skip
    assert _open(config, W10) == ["article-g"]
    # The future-dated record arrives when its time has come.
    assert _open(config, W11) == ["future-f"]
    with Store.open(config.database_path) as store:
        periods = [r[0] for r in store.conn.execute("SELECT period FROM digests ORDER BY id")]
        assert periods == ["2024-W08", "2024-W09", "2024-W10", "2024-W11"]
        sent = [r[0] for r in store.conn.execute("SELECT record_id FROM digest_items")]
        assert len(sent) == len(set(sent))  # nothing twice


def test_nothing_new_means_no_digest(project: Project, load: Callable[..., None]) -> None:
    config = project.config
    load(W08, rec("article-a", "2024-02-18T10:00:00"))
    assert _open(config, W08) == ["article-a"]
    assert _open(config, W09) is None
    with Store.open(config.database_path) as store:
        assert store.conn.execute("SELECT count(*) FROM digests").fetchone()[0] == 1
        assert load_digest(store, "2024-W09") is None


def test_a_digest_is_frozen_while_it_is_sent(project: Project, load: Callable[..., None]) -> None:
    config = project.config
    load(W08, rec("article-a", "2024-02-18T10:00:00", image={"url": "https://x.test/a.jpg"}))
    with Store.open(config.database_path) as store:
        created = open_digest(store, config, W08)
    assert created is not None
    load(W08, rec("article-a", "2024-02-18T10:00:00", title="Changed after the digest"))
    with Store.open(config.database_path) as store:
        loaded = load_digest(store, "2024-W08")
    assert loaded == created
    assert loaded.items[0].title == "Article A"
    assert loaded.items[0].image_url == "https://x.test/a.jpg"


def test_max_items_and_newest_first(project: Project, load: Callable[..., None]) -> None:
    project.append_config("")
    text = project.config_path.read_text().replace(
        'reply_to = "editors@kcrush.com"', 'reply_to = "editors@kcrush.com"\nmax_items = 3'
    )
    project.write_config(text)
    load(W08, *(rec(f"a{day}", f"2024-02-{day}T10:00:00") for day in range(13, 19)))
    assert _open(project.config, W08) == ["a18", "a17", "a16"]


def test_preview_computes_without_storing(project: Project, load: Callable[..., None]) -> None:
    load(W08, rec("article-a", "2024-02-18T10:00:00"))
    config = project.config
    with Store.open(config.database_path) as store:
        computed = compute_digest(store, config, W08)
        assert computed is not None and not computed.stored
        assert store.conn.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
        # A past week, judged by the digests before it, as at that week's end.
        assert compute_digest(store, config, W10, period="2024-W06") is None
        past = compute_digest(store, config, W10, period="2024-W07")
        assert past is not None and [i.record_id for i in past.items] == ["article-a"]


def test_two_processes_opening_at_once_get_one_digest(
    project: Project, load: Callable[..., None]
) -> None:
    load(W08, *(rec(f"a{day}", f"2024-02-{day}T10:00:00") for day in range(13, 19)))
    config = project.config
    barrier = threading.Barrier(4)
    results: list[tuple[int, list[str]]] = []

    def run() -> None:
        with Store.open(config.database_path) as store:  # a connection of its own
            barrier.wait()
            digest = open_digest(store, config, W08)
            assert digest is not None
            results.append((digest.id, [i.record_id for i in digest.items]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and len({json.dumps(r) for r in results}) == 1
    with Store.open(config.database_path) as store:
        assert store.conn.execute("SELECT count(*) FROM digests").fetchone()[0] == 1
        assert store.conn.execute("SELECT count(*) FROM digest_items").fetchone()[0] == 6
