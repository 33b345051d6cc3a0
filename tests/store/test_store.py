"""The store: migrations on open, refusing a newer schema, transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kcrush_feeds.errors import StoreError
from kcrush_feeds.model import Record
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store, migrations

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def record(i: int, title: str = "T") -> Record:
    when = datetime(2024, 2, 1, tzinfo=UTC)
    return Record(
        id=f"r{i}",
        url=f"https://x.test/{i}",
        title=title,
        published=when,
        updated=when,
        categories=("News", "news"),
    )


def test_fresh_store_is_at_the_latest_schema_in_wal_mode(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        assert store.schema_version == len(migrations())
        assert store.conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 999")
    with pytest.raises(StoreError, match="newer than this kcrush-feeds knows"):
        Store.open(path)


def test_failed_transaction_changes_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        with store.transaction():
            store_records.upsert(store, [record(1)], source="t", now=NOW)
        with pytest.raises(RuntimeError), store.transaction():
            store_records.upsert(store, [record(2), record(1, "changed")], source="t", now=NOW)
            raise RuntimeError("boom")
        assert store_records.count(store) == 1
        assert store_records.get(store, "r1").title == "T"  # type: ignore[union-attr]


def test_upsert_reports_and_categories_are_case_folded(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.db") as store, store.transaction():
        assert store_records.upsert(store, [record(1), record(2)], source="t", now=NOW) == [
            "added",
            "added",
        ]
        assert store_records.upsert(store, [record(1), record(2, "x")], source="t", now=NOW) == [
            "unchanged",
            "updated",
        ]
        keys = store.conn.execute("SELECT DISTINCT category_key FROM record_categories").fetchall()
        assert keys == [("news",)]
