"""The SQLite store: opening, migrations, transactions, and the records tables.

The database runs in WAL mode with foreign keys on and ``synchronous=FULL`` (a delivery
recorded as sent must survive a power cut). The schema is versioned with
``PRAGMA user_version``; ``migrations/NNNN_name.sql`` are applied in order on open, each
in its own transaction. Other modules (subscribers, digests, sources) keep their SQL in
their own module and use ``Store.transaction`` / ``Store.conn``.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from kcrush_feeds.errors import StoreError
from kcrush_feeds.records.normalize import Image, Record

Change = Literal["added", "updated", "unchanged"]
_STORE_HINT = (
    "check the free disk space, that the store and its directory are writable, and that no "
    "other program holds a lock on it"
)
_MIGRATION_RE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
_RECORD_COLUMNS = (
    "id, url, title, published, updated, summary, content_html, image_url, image_alt, "
    "image_type, image_length, categories, authors, tags"
)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("kcrush_feeds.store").joinpath("migrations").iterdir():
        match = _MIGRATION_RE.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), entry.name, entry.read_text(encoding="utf-8")))
    found.sort()
    for expected, (version, name, _) in enumerate(found, start=1):
        if version != expected:
            raise StoreError(f"migration {name} is out of sequence (expected {expected:04d})")
    return found


def to_timestamp(moment: datetime) -> int:
    return int(moment.timestamp())


def from_timestamp(value: int) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class Store:
    """One open SQLite database. Use as a context manager or call ``close()``."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn

    # --- lifecycle -----------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        """Open (and by default create) the store at ``path`` and apply pending migrations."""
        if not create and not path.exists():
            raise StoreError(f"{path}: no store here", hint="run 'kcrush-feeds init' first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
            conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 30000")
        except (sqlite3.Error, OSError) as e:
            raise StoreError(f"{path}: cannot open the store: {e}") from e
        store = cls(path, conn)
        try:
            store.migrate()
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        known = migrations()
        current = self.schema_version
        if current > len(known):
            raise StoreError(
                f"{self.path}: the store has schema version {current}, newer than this "
                f"kcrush-feeds knows ({len(known)})",
                hint="upgrade kcrush-feeds",
            )
        for version, name, sql in known[current:]:
            try:
                # executescript commits first, so the BEGIN/COMMIT inside makes the
                # migration and its version bump one transaction.
                self.conn.executescript(
                    f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;"
                )
            except sqlite3.Error as e:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise StoreError(f"{self.path}: migration {name} failed: {e}") from e

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if the block raises."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: cannot start a transaction: {e}") from e
        try:
            yield self.conn
        except sqlite3.Error as e:
            self._rollback()
            raise StoreError(
                f"{self.path}: cannot write: {e}; nothing of this transaction was stored",
                hint=_STORE_HINT,
            ) from e
        except BaseException:
            self._rollback()
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as e:
                self._rollback()
                raise StoreError(
                    f"{self.path}: cannot commit: {e}; nothing of this transaction was stored",
                    hint=_STORE_HINT,
                ) from e

    def _rollback(self) -> None:
        """ROLLBACK, unless SQLite already rolled back by itself (a full disk, an I/O
        error: then a ROLLBACK would fail with "no transaction is active" and hide why)."""
        if self.conn.in_transaction:
            with suppress(sqlite3.Error):
                self.conn.execute("ROLLBACK")

    @contextmanager
    def bulk(self) -> Iterator[None]:
        """Relax fsync for a bulk import: ``synchronous=NORMAL`` for the block's duration.

        In WAL mode NORMAL still survives a crash of the process; only a power cut can
        roll back the last few commits, and an import is idempotent (re-run it). The
        delivery ledger, which must survive a power cut, always runs with FULL.
        """
        self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")

    # --- records -------------------------------------------------------------------------

    def upsert_records(
        self, records: Sequence[Record], *, source: str, now: datetime
    ) -> list[Change]:
        """Insert new records and rewrite changed ones (call inside ``transaction()``).

        Returns what happened to each record, in order. Unchanged rows are not written.
        """
        if not records:
            return []
        conn = self.conn
        changes: list[Change] = []
        known: dict[str, str] = {}
        ids = [r.id for r in records]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            known.update(
                conn.execute(
                    f"SELECT id, fingerprint FROM records WHERE id IN ({marks})", chunk
                ).fetchall()
            )
        stamp = to_timestamp(now)
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        category_rows: list[tuple[str, str, str, int]] = []
        for record in records:
            fingerprint = record.fingerprint()
            previous = known.get(record.id)
            if previous == fingerprint:
                changes.append("unchanged")
                continue
            row = _record_row(record)
            if previous is None:
                inserts.append((*row, fingerprint, source, stamp, stamp))
                changes.append("added")
            else:
                updates.append((*row[1:], fingerprint, source, stamp, record.id))
                changes.append("updated")
            known[record.id] = fingerprint  # the same id later in this batch: last wins
            published = to_timestamp(record.published)
            category_rows.extend(
                (record.id, name.casefold(), name, published) for name in record.categories
            )
        conn.executemany(
            f"INSERT INTO records ({_RECORD_COLUMNS}, fingerprint, source, first_seen, "
            "changed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET url=excluded.url, title=excluded.title, "
            "published=excluded.published, updated=excluded.updated, "
            "summary=excluded.summary, content_html=excluded.content_html, "
            "image_url=excluded.image_url, image_alt=excluded.image_alt, "
            "image_type=excluded.image_type, image_length=excluded.image_length, "
            "categories=excluded.categories, authors=excluded.authors, tags=excluded.tags, "
            "fingerprint=excluded.fingerprint, source=excluded.source, "
            "changed_at=excluded.changed_at, withdrawn=0",
            inserts,
        )
        conn.executemany(
            "UPDATE records SET url=?, title=?, published=?, updated=?, summary=?, "
            "content_html=?, image_url=?, image_alt=?, image_type=?, image_length=?, "
            "categories=?, authors=?, tags=?, fingerprint=?, source=?, changed_at=?, "
            "withdrawn=0 WHERE id=?",
            updates,
        )
        if updates:
            conn.executemany(
                "DELETE FROM record_categories WHERE record_id = ?", [(u[-1],) for u in updates]
            )
        conn.executemany(
            "INSERT OR REPLACE INTO record_categories (record_id, category_key, name, "
            "published) VALUES (?,?,?,?)",
            category_rows,
        )
        return changes

    def get_record(self, record_id: str) -> Record | None:
        row = self.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE id = ?", (record_id,)
        ).fetchone()
        return None if row is None else record_from_row(row)

    def iter_records(self, where: str = "", params: Iterable[Any] = ()) -> Iterator[Record]:
        """Records matching an optional SQL ``where`` clause, newest first."""
        sql = f"SELECT {_RECORD_COLUMNS} FROM records r"
        if where:
            sql += f" WHERE {where}"
        for row in self.conn.execute(sql + " ORDER BY published DESC, id", tuple(params)):
            yield record_from_row(row)

    def count_records(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM records").fetchone()[0])

    def category_counts(self) -> list[tuple[str, int, datetime]]:
        """(category name, visible records, newest published) for every record category."""
        rows = self.conn.execute(
            "SELECT min(rc.name), count(*), max(rc.published) FROM record_categories rc "
            "JOIN records r ON r.id = rc.record_id WHERE r.withdrawn = 0 "
            "GROUP BY rc.category_key ORDER BY count(*) DESC, min(rc.name)"
        ).fetchall()
        return [(name, count, from_timestamp(newest)) for name, count, newest in rows]

    def newest_record(self) -> Record | None:
        return next(self.iter_records_limit(1), None)

    def iter_records_limit(self, limit: int) -> Iterator[Record]:
        rows = self.conn.execute(
            f"SELECT {_RECORD_COLUMNS} FROM records WHERE withdrawn = 0 "
            "ORDER BY published DESC, id LIMIT ?",
            (limit,),
        )
        return (record_from_row(row) for row in rows)


def _record_row(record: Record) -> tuple[Any, ...]:
    image = record.image
    return (
        record.id,
        record.url,
        record.title,
        to_timestamp(record.published),
        to_timestamp(record.updated),
        record.summary,
        record.content_html,
        image.url if image else None,
        image.alt if image else "",
        image.type if image else None,
        image.length if image else 0,
        json.dumps(record.categories, ensure_ascii=False),
        json.dumps(record.authors, ensure_ascii=False),
        json.dumps(record.tags, ensure_ascii=False),
    )


def record_from_row(row: Sequence[Any]) -> Record:
    """A ``Record`` from a row selected as ``_RECORD_COLUMNS`` (see ``RECORD_COLUMNS``)."""
    (
        rid,
        url,
        title,
        published,
        updated,
        summary,
        content,
        image_url,
        image_alt,
        image_type,
        image_length,
        categories,
        authors,
        tags,
    ) = row
    return Record(
        id=rid,
        url=url,
        title=title,
        published=from_timestamp(published),
        updated=from_timestamp(updated),
        categories=tuple(json.loads(categories)),
        summary=summary,
        content_html=content,
        image=Image(image_url, image_alt, image_type or "image/jpeg", image_length)
        if image_url
        else None,
        authors=tuple(json.loads(authors)),
        tags=tuple(json.loads(tags)),
    )


RECORD_COLUMNS = _RECORD_COLUMNS
