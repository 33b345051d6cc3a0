"""The ``subscribers`` table.

Validation (addresses, names, statuses, categories) is the ``subscriptions`` package's job;
this module stores what it is given. The one rule kept here is which timestamps a status
sets (``_status_stamps``): every insert and every update goes through it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from kcrush_feeds.model import Subscriber, email_key
from kcrush_feeds.store.db import Store, to_timestamp

_COLUMNS = "id, email, name, status, categories"


class _Keep:
    """The type of ``KEEP``: an argument meaning "leave this column as it is"."""


KEEP = _Keep()


def _from_row(row: tuple[Any, ...]) -> Subscriber:
    categories = None if row[4] is None else tuple(json.loads(row[4]))
    return Subscriber(id=row[0], email=row[1], name=row[2], status=row[3], categories=categories)


def _categories_json(categories: tuple[str, ...] | None) -> str | None:
    return None if categories is None else json.dumps(list(categories), ensure_ascii=False)


def _status_stamps(status: str) -> dict[str, bool]:
    """The timestamp columns that becoming ``status`` stamps, each with whether an earlier
    stamp is kept: the first confirmation is what counts (consent records), the last
    unsubscription is."""
    if status == "active":
        return {"confirmed_at": True}
    if status == "unsubscribed":
        return {"unsubscribed_at": False}
    return {}


# --- reading -----------------------------------------------------------------------------


def get_by_email(store: Store, email: str) -> Subscriber | None:
    """The subscriber with this address (any case), or None."""
    row = store.conn.execute(
        f"SELECT {_COLUMNS} FROM subscribers WHERE email_key = ?", (email_key(email),)
    ).fetchone()
    return None if row is None else _from_row(row)


def get_by_id(store: Store, subscriber_id: int) -> Subscriber | None:
    """The subscriber with this id, or None."""
    row = store.conn.execute(
        f"SELECT {_COLUMNS} FROM subscribers WHERE id = ?", (subscriber_id,)
    ).fetchone()
    return None if row is None else _from_row(row)


def iter_all(store: Store, *, status: str | None = None) -> Iterator[Subscriber]:
    """Subscribers in id order (optionally only one status), streamed from the store."""
    if status is not None:
        cursor = store.conn.execute(
            f"SELECT {_COLUMNS} FROM subscribers WHERE status = ? ORDER BY id", (status,)
        )
    else:
        cursor = store.conn.execute(f"SELECT {_COLUMNS} FROM subscribers ORDER BY id")
    for row in cursor:
        yield _from_row(row)


def count_by_status(store: Store) -> dict[str, int]:
    """How many subscribers are in each status that has any."""
    return {
        str(status): int(n)
        for status, n in store.conn.execute(
            "SELECT status, count(*) FROM subscribers GROUP BY status"
        )
    }


def count_all(store: Store) -> int:
    """How many subscribers the store holds, whatever their status (the health check)."""
    return int(store.conn.execute("SELECT count(*) FROM subscribers").fetchone()[0])


# --- writing (inside a transaction) ------------------------------------------------------


def insert(
    store: Store,
    email: str,
    name: str,
    status: str,
    categories: tuple[str, ...] | None,
    now: datetime,
    origin: str,
) -> int:
    """Store a new subscriber; its id."""
    stamp = to_timestamp(now)
    stamps = _status_stamps(status)
    cursor = store.conn.execute(
        "INSERT INTO subscribers (email, email_key, name, status, categories, created_at, "
        "updated_at, confirmed_at, unsubscribed_at, origin) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (
            email,
            email_key(email),
            name,
            status,
            _categories_json(categories),
            stamp,
            stamp,
            stamp if "confirmed_at" in stamps else None,
            stamp if "unsubscribed_at" in stamps else None,
            origin,
        ),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def update(
    store: Store,
    subscriber_id: int,
    now: datetime,
    *,
    name: str | _Keep = KEEP,
    categories: tuple[str, ...] | _Keep | None = KEEP,
    status: str | _Keep = KEEP,
    reset_bounces: bool = False,
) -> None:
    """Change the columns given (``KEEP`` leaves one alone); ``updated_at`` is always set.

    A ``status`` given stamps what ``_status_stamps`` says; ``reset_bounces`` clears the
    hard-bounce count (an explicit re-activation).
    """
    stamp = to_timestamp(now)
    sets: list[str] = ["updated_at = ?"]
    params: list[Any] = [stamp]
    if not isinstance(name, _Keep):
        sets.append("name = ?")
        params.append(name)
    if not isinstance(categories, _Keep):
        sets.append("categories = ?")
        params.append(_categories_json(categories))
    if not isinstance(status, _Keep):
        sets.append("status = ?")
        params.append(status)
        for column, keep_first in _status_stamps(status).items():
            sets.append(f"{column} = coalesce({column}, ?)" if keep_first else f"{column} = ?")
            params.append(stamp)
    if reset_bounces:
        sets.append("hard_bounces = 0")
    store.conn.execute(
        f"UPDATE subscribers SET {', '.join(sets)} WHERE id = ?", (*params, subscriber_id)
    )


def delete(store: Store, subscriber_id: int) -> None:
    """Forget a subscriber and their delivery history."""
    store.conn.execute("DELETE FROM deliveries WHERE subscriber_id = ?", (subscriber_id,))
    store.conn.execute("DELETE FROM subscribers WHERE id = ?", (subscriber_id,))


def confirm_generation(store: Store, email: str) -> str | None:
    """What a confirm link is checked against: when the address last unsubscribed ("" if
    it never did), None if unknown. Unsubscribing changes it, so a link sent before an
    unsubscribe stops confirming, even once the address has asked to subscribe again."""
    row = store.conn.execute(
        "SELECT unsubscribed_at FROM subscribers WHERE email_key = ?", (email_key(email),)
    ).fetchone()
    if row is None:
        return None
    return "" if row[0] is None else str(row[0])
