"""The SQLite store: opening, migrations, transactions, timestamps, the chunked ``IN``.

The database runs in WAL mode with foreign keys on and ``synchronous=FULL`` (a delivery
recorded as sent must survive a power cut). The schema is versioned with
``PRAGMA user_version``; ``migrations/NNNN_name.sql`` are applied in order on open, each
in its own transaction. The SQL of each table family lives in its own module next to this
one (``records``, ``subscribers``, ``digests``, ``deliveries``, ``sources``): no other
package writes SQL.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import TypeVar

from kcrush_feeds.errors import StoreError

_STORE_HINT = (
    "check the free disk space, that the store and its directory are writable, and that no "
    "other program holds a lock on it"
)
_MIGRATION_RE = re.compile(r"(\d{4})_[a-z0-9_]+\.sql")
# SQLite allows 32766 bound parameters since 3.32 but 999 before: 500 ids per statement
# stays under both, and a build's read of 20 000 entries is still only 40 statements.
IN_CHUNK = 500
_T = TypeVar("_T")


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
    """The store's time format: whole seconds since the epoch."""
    return int(moment.timestamp())


def from_timestamp(value: int) -> datetime:
    """An aware UTC datetime from a stored timestamp."""
    return datetime.fromtimestamp(value, UTC)


def in_chunks(values: Sequence[_T], size: int = IN_CHUNK) -> Iterator[tuple[list[_T], str]]:
    """``values`` cut into lists of at most ``size``, each with its ``?,?,...`` marks.

    The one way this package writes ``... WHERE id IN (...)`` over a list of any length::

        for chunk, marks in in_chunks(ids):
            conn.execute(f"SELECT ... WHERE id IN ({marks})", chunk)
    """
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        yield chunk, ",".join("?" * len(chunk))


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
            if not path.exists():
                # Created 0600 before SQLite touches it: the store holds every subscriber's
                # address, and SQLite gives its WAL and shared-memory files this same mode.
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
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
        deliveries table, which must survive a power cut, is always written with FULL.
        """
        self.conn.execute("PRAGMA synchronous = NORMAL")
        try:
            yield
        finally:
            self.conn.execute("PRAGMA synchronous = FULL")
