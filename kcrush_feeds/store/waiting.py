"""Who still waits for a digest that is not done: for ``status`` after a send that stopped.

The same rule as the ledger's pending subscribers (active, and no ``sent`` or ``failed``
delivery for that digest yet), read without the delivery machinery (aiosmtplib), so
``status`` stays quick to start.
"""

from __future__ import annotations

from dataclasses import dataclass

from kcrush_feeds.store.db import Store

_PENDING_WHERE = (
    "s.status = 'active' AND NOT EXISTS (SELECT 1 FROM deliveries d "
    "WHERE d.digest_id = ? AND d.subscriber_id = s.id AND d.status IN ('sent', 'failed'))"
)


@dataclass(frozen=True, slots=True)
class Waiting:
    """How many subscribers still wait for the digest, and the first of them by id."""

    count: int
    first: tuple[str, ...]


def waiting_for(store: Store, period: str, *, show: int = 10) -> Waiting:
    """The subscribers the digest of ``period`` has not served yet (``show`` addresses)."""
    row = store.conn.execute("SELECT id FROM digests WHERE period = ?", (period,)).fetchone()
    if row is None:
        return Waiting(0, ())
    digest_id = row[0]
    count = store.conn.execute(
        f"SELECT count(*) FROM subscribers s WHERE {_PENDING_WHERE}", (digest_id,)
    ).fetchone()[0]
    first = store.conn.execute(
        f"SELECT s.email FROM subscribers s WHERE {_PENDING_WHERE} ORDER BY s.id LIMIT ?",
        (digest_id, show),
    ).fetchall()
    return Waiting(int(count), tuple(email for (email,) in first))
