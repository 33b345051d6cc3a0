"""What a confirm link is checked against: the subscriber's *generation*.

A confirm link carries the generation its address had when the link was sent: the time it
last unsubscribed ("" if it never did). Unsubscribing changes it, so a link sent before the
unsubscribe stops confirming, even once the address has asked to subscribe again.
"""

from __future__ import annotations

from kcrush_feeds.store.db import Store


def generation(store: Store, email_key: str) -> str | None:
    """The generation of the subscriber with this (case-folded) address; None if unknown."""
    row = store.conn.execute(
        "SELECT unsubscribed_at FROM subscribers WHERE email_key = ?", (email_key,)
    ).fetchone()
    if row is None:
        return None
    return "" if row[0] is None else str(row[0])
