"""The ``sources`` table: what the store remembers about each configured source.

Its cursor (WordPress: the newest ``modified_gmt`` seen), the ETag and Last-Modified of a
feed, when it was last attempted and last succeeded, the last error and summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from kcrush_feeds.model import Source, SourceState
from kcrush_feeds.store.db import Store, from_timestamp, to_timestamp

_STATE_COLUMNS = (
    "key, name, kind, url, cursor, etag, last_modified, last_attempt, "
    "last_success, last_error, last_summary"
)


def list_states(store: Store) -> list[SourceState]:
    """Every source the store knows, in the order they were first imported."""
    rows = store.conn.execute(f"SELECT {_STATE_COLUMNS} FROM sources ORDER BY rowid").fetchall()
    return [_state(row) for row in rows]


def get_state(store: Store, source: Source) -> SourceState:
    """What the store remembers about ``source`` (a fresh state if nothing yet)."""
    row = store.conn.execute(
        f"SELECT {_STATE_COLUMNS} FROM sources WHERE key = ?", (source.key,)
    ).fetchone()
    if row is None:
        return SourceState(source.key, source.label, source.kind, source.location)
    return _state(row)


def _state(row: Sequence[object]) -> SourceState:
    (key, name, kind, url, cursor, etag, last_modified, attempt, success, error, summary) = row
    return SourceState(
        str(key),
        str(name),
        str(kind),
        str(url),
        cursor if isinstance(cursor, str) else None,
        etag if isinstance(etag, str) else None,
        last_modified if isinstance(last_modified, str) else None,
        from_timestamp(attempt) if isinstance(attempt, int) else None,
        from_timestamp(success) if isinstance(success, int) else None,
        error if isinstance(error, str) else None,
        summary if isinstance(summary, str) else None,
    )


def save(
    store: Store, source: Source, now: datetime, *, succeeded: bool = False, **values: object
) -> None:
    """Upsert the source row with ``values`` (column -> value), stamping last_attempt (and
    last_success when the import ``succeeded``)."""
    columns = {
        "name": source.label,
        "kind": source.kind,
        "url": source.location,
        "last_attempt": to_timestamp(now),
        **({"last_success": to_timestamp(now)} if succeeded else {}),
        **values,
    }
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns)
    with store.transaction() as conn:
        conn.execute(
            f"INSERT INTO sources (key, {names}) VALUES (?, {marks}) "
            f"ON CONFLICT (key) DO UPDATE SET {updates}",
            (source.key, *columns.values()),
        )
