"""Returned mail in the store: outcomes against deliveries, and what they do to subscribers.

Every bounce, complaint or unsubscribe request that came back (by mail or webhook) is one
``mail_events`` row, keyed so the same report about the same delivery is written once
(``record_event`` returns ``duplicate`` the second time and changes nothing). The
suppression rules live here, in the same transaction as the row:

- a hard bounce makes an active (or paused, or pending) subscriber ``bounced``;
- a soft bounce is counted; ``soft_limit`` of them within ``soft_window`` do the same;
- a bounce dated before the subscriber's latest confirmation suppresses nobody (the
  address was confirmed working after it);
- a complaint or an unsubscribe request makes the subscriber ``unsubscribed``, with the
  reason in ``subscribers.unsubscribe_reason``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from kcrush_feeds.model import Applied, DigestOutcomes, MailEffect, MailEvent
from kcrush_feeds.store.db import Store, to_timestamp

_LIVE = ("active", "paused", "pending")  # states a returned mail can still end
_REASON = {"complaint": "complaint", "unsubscribe": "mailto"}


def record_event(
    store: Store, event: MailEvent, *, now: datetime, soft_limit: int, soft_window: timedelta
) -> Applied:
    """Write ``event`` and apply the suppression rules, in one transaction."""
    reported = to_timestamp(event.reported_at)
    stamp = to_timestamp(now)
    with _transaction(store) as conn:
        if conn.execute("SELECT 1 FROM mail_events WHERE key = ?", (event.key,)).fetchone():
            return Applied("none", duplicate=True, note="already recorded")
        row = conn.execute(
            "SELECT status, confirmed_at FROM subscribers WHERE id = ?", (event.subscriber_id,)
        ).fetchone()
        if row is None:
            return Applied("none", missing=True, note="the subscriber no longer exists")
        status, confirmed = row
        live = status in _LIVE
        effect: MailEffect = "none"
        note = ""
        if event.kind in ("hard", "soft") and confirmed is not None and reported < confirmed:
            note = "dated before the subscriber's latest confirmation"
        elif event.kind == "hard":
            effect = "bounced" if live else "none"
        elif event.kind == "soft":
            since = max(reported - int(soft_window.total_seconds()), confirmed or 0)
            earlier = conn.execute(
                "SELECT count(*) FROM mail_events WHERE subscriber_id = ? AND kind = 'soft' "
                "AND reported_at > ? AND reported_at <= ?",
                (event.subscriber_id, since, reported),
            ).fetchone()[0]
            effect = "bounced" if live and earlier + 1 >= soft_limit else "counted"
            if effect == "counted":
                note = f"soft bounce {earlier + 1} of {soft_limit}"
        else:
            effect = "unsubscribed" if live else "none"
        if effect == "none" and not note:
            note = f"the subscriber is {status} already"
        conn.execute(
            "INSERT INTO mail_events (key, digest_id, subscriber_id, kind, status_code, "
            "diagnostic, source, reported_at, received_at, effect) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                event.key,
                event.digest_id,
                event.subscriber_id,
                event.kind,
                event.status_code[:32],
                event.diagnostic[:1000],
                event.source,
                reported,
                stamp,
                effect,
            ),
        )
        if effect == "bounced":
            conn.execute(
                "UPDATE subscribers SET status = 'bounced', updated_at = ? WHERE id = ?",
                (stamp, event.subscriber_id),
            )
        elif effect == "unsubscribed":
            conn.execute(
                "UPDATE subscribers SET status = 'unsubscribed', unsubscribed_at = ?, "
                "updated_at = ?, unsubscribe_reason = ? WHERE id = ?",
                (stamp, stamp, _REASON[event.kind], event.subscriber_id),
            )
    return Applied(effect, note=note)


@contextmanager
def _transaction(store: Store) -> Iterator[sqlite3.Connection]:
    """The caller's transaction when one is open (``batch``), else a new one."""
    if store.conn.in_transaction:
        yield store.conn
    else:
        with store.transaction() as conn:
            yield conn


@contextmanager
def batch(store: Store) -> Iterator[None]:
    """One transaction (one fsync) for many outcomes: ``inbound`` files a message away only
    after the batch holding its outcome has committed, so a crash repeats, never loses."""
    with store.transaction():
        yield


# --- finding the delivery a report is about ------------------------------------------------


def delivery_recipient(store: Store, digest_id: int, subscriber_id: int) -> str | None:
    """The subscriber's address if ``digest_id`` was delivered (or attempted) to them."""
    row = store.conn.execute(
        "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
        "WHERE d.digest_id = ? AND d.subscriber_id = ?",
        (digest_id, subscriber_id),
    ).fetchone()
    return None if row is None else str(row[0])


def delivery_by_message_id(store: Store, message_id: str) -> tuple[int, int, str] | None:
    """(digest id, subscriber id, address) of the delivery that carried ``message_id``."""
    value = message_id.strip()
    if not value.startswith("<"):
        value = f"<{value}>"
    row = store.conn.execute(
        "SELECT d.digest_id, d.subscriber_id, s.email FROM deliveries d "
        "JOIN subscribers s ON s.id = d.subscriber_id WHERE d.message_id = ? LIMIT 1",
        (value,),
    ).fetchone()
    return None if row is None else (int(row[0]), int(row[1]), str(row[2]))


def subscriber_by_email(store: Store, email: str) -> tuple[int, str] | None:
    """(id, address) of the subscriber with this address (any case)."""
    row = store.conn.execute(
        "SELECT id, email FROM subscribers WHERE email_key = ?", (email.strip().lower(),)
    ).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def latest_delivery(store: Store, subscriber_id: int, *, at_or_before: datetime) -> int | None:
    """The digest last delivered to ``subscriber_id`` no later than ``at_or_before``."""
    row = store.conn.execute(
        "SELECT digest_id FROM deliveries WHERE subscriber_id = ? AND status = 'sent' "
        "AND coalesce(sent_at, updated_at) <= ? ORDER BY coalesce(sent_at, updated_at) DESC "
        "LIMIT 1",
        (subscriber_id, to_timestamp(at_or_before)),
    ).fetchone()
    return None if row is None else int(row[0])


# --- idempotency of messages and webhooks ---------------------------------------------------


def seen_message(store: Store, sha256: str) -> bool:
    """Whether these exact bytes were processed (and understood) before."""
    found = store.conn.execute("SELECT 1 FROM inbound_seen WHERE sha256 = ?", (sha256,))
    return found.fetchone() is not None


def mark_message(store: Store, sha256: str, kind: str, now: datetime) -> None:
    """Remember these bytes as processed."""
    with _transaction(store) as conn:
        conn.execute(
            "INSERT OR IGNORE INTO inbound_seen (sha256, kind, seen_at) VALUES (?,?,?)",
            (sha256, kind, to_timestamp(now)),
        )


def claim_replay_token(
    store: Store, provider: str, token: str, *, now: datetime, keep: timedelta
) -> bool:
    """True the first time ``token`` is seen for ``provider``; False for a replay.

    Tokens older than ``keep`` are forgotten: their timestamps are stale by then, so a
    replay of one is refused as stale instead.
    """
    stamp = to_timestamp(now)
    with _transaction(store) as conn:
        conn.execute(
            "DELETE FROM webhook_replays WHERE seen_at < ?",
            (stamp - int(keep.total_seconds()),),
        )
        cursor = conn.execute(
            "INSERT OR IGNORE INTO webhook_replays (provider, token, seen_at) VALUES (?,?,?)",
            (provider, token, stamp),
        )
        return cursor.rowcount == 1


# --- status ---------------------------------------------------------------------------------


def digest_outcomes(store: Store, limit: int = 5) -> list[DigestOutcomes]:
    """The newest ``limit`` digests, newest first: deliveries and returned mail counts."""
    found = []
    for digest_id, period in store.conn.execute(
        "SELECT id, period FROM digests ORDER BY period DESC LIMIT ?", (limit,)
    ).fetchall():
        deliveries = {"sent": 0, "deferred": 0, "failed": 0}
        for state, count in store.conn.execute(
            "SELECT status, count(*) FROM deliveries WHERE digest_id = ? GROUP BY status",
            (digest_id,),
        ):
            deliveries[state] = count
        kinds = {"hard": 0, "soft": 0, "complaint": 0, "unsubscribe": 0}
        for kind, count in store.conn.execute(
            "SELECT kind, count(*) FROM mail_events WHERE digest_id = ? GROUP BY kind",
            (digest_id,),
        ):
            kinds[kind] = count
        found.append(
            DigestOutcomes(
                period,
                deliveries["sent"],
                deliveries["deferred"],
                deliveries["failed"],
                kinds["hard"],
                kinds["soft"],
                kinds["complaint"],
                kinds["unsubscribe"],
            )
        )
    return found
