"""Records staged for an all-or-nothing import (``import --strict``), outside the store.

The records are kept in a TEMP table: it lives in the connection's own temporary
database, so writing there takes no lock on the store, and memory stays flat however
large the input. Only the final move into ``records`` takes the write lock, for as long
as the writes themselves take, not for the reading and checking of the whole input.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator

from kcrush_feeds.model import Record
from kcrush_feeds.store.db import Store

_TABLE = "temp.kc_staged_records"


class StagedRecords:
    """A per-connection staging area for records: ``add``, then ``batches``, then ``clear``."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {_TABLE} "
            "(id TEXT PRIMARY KEY, source TEXT NOT NULL, data BLOB NOT NULL)"
        )
        store.conn.execute(f"DELETE FROM {_TABLE}")

    def add(self, records: Iterable[Record], *, source: str) -> None:
        """Stage ``records`` read from ``source``; a later record with the same id wins."""
        self.store.conn.executemany(
            f"INSERT OR REPLACE INTO {_TABLE} (id, source, data) VALUES (?, ?, ?)",
            [(r.id, source, pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in records],
        )

    def batches(self, size: int) -> Iterator[tuple[str, list[Record]]]:
        """``(source, records)`` in the order they were staged, ``size`` at a time."""
        last = 0
        while True:
            rows = self.store.conn.execute(
                f"SELECT rowid, source, data FROM {_TABLE} WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, size),
            ).fetchall()
            if not rows:
                return
            last = rows[-1][0]
            batch: list[Record] = []
            source = rows[0][1]
            for _, row_source, data in rows:
                if row_source != source:
                    yield source, batch
                    batch, source = [], row_source
                batch.append(pickle.loads(data))  # written by this process, just now
            yield source, batch

    def clear(self) -> None:
        self.store.conn.execute(f"DROP TABLE IF EXISTS {_TABLE}")
