"""The editorial tables: the editor's hand on a digest, its approval, and the outbox.

``digest_editorial`` holds one row per digest an editor touched (note, subject, pins, drops)
or a proof was sent for; ``revision`` counts the edits, and a proof and an approval each
name the revision they were for, so an edit after the proof asks for a new proof and a new
approval. ``outbox`` keeps transactional mail (confirmation, welcome) until the server
accepted it, so ``serve`` can retry it after a restart. Only this module writes their SQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kcrush_feeds.store.db import Store, from_timestamp, to_timestamp

_EDITORIAL_COLUMNS = (
    "digest_id, note, subject, pins, drops, revision, updated_at, proof_revision, "
    "proof_sent_at, approved_revision, approved_at, approved_by"
)


@dataclass(frozen=True, slots=True)
class EditorialRow:
    """What an editor did to one digest, and where its approval stands."""

    digest_id: int
    note: str = ""
    subject: str | None = None
    pins: tuple[str, ...] = ()
    drops: tuple[str, ...] = ()
    revision: int = 0
    updated_at: datetime | None = None
    proof_revision: int | None = None
    proof_sent_at: datetime | None = None
    approved_revision: int | None = None
    approved_at: datetime | None = None
    approved_by: str | None = None

    @property
    def approved(self) -> bool:
        """Approved, and not edited since."""
        return self.approved_revision is not None and self.approved_revision == self.revision

    @property
    def proof_current(self) -> bool:
        """A proof of the current revision went out."""
        return self.proof_revision is not None and self.proof_revision == self.revision


def _stamp(value: int | None) -> datetime | None:
    return None if value is None else from_timestamp(value)


def _row(row: Sequence[Any]) -> EditorialRow:
    (
        digest_id,
        note,
        subject,
        pins,
        drops,
        revision,
        updated,
        proof_revision,
        proof_sent,
        approved_revision,
        approved,
        by,
    ) = row
    return EditorialRow(
        int(digest_id),
        str(note),
        None if subject is None else str(subject),
        tuple(json.loads(str(pins))),
        tuple(json.loads(str(drops))),
        int(revision),
        _stamp(updated),
        None if proof_revision is None else int(proof_revision),
        _stamp(proof_sent),
        None if approved_revision is None else int(approved_revision),
        _stamp(approved),
        None if by is None else str(by),
    )


def get_editorial(store: Store, digest_id: int) -> EditorialRow:
    """The digest's editorial row (an empty one when nobody touched it)."""
    return _get(store.conn, digest_id) or EditorialRow(digest_id)


def _get(conn: sqlite3.Connection, digest_id: int) -> EditorialRow | None:
    row = conn.execute(
        f"SELECT {_EDITORIAL_COLUMNS} FROM digest_editorial WHERE digest_id = ?", (digest_id,)
    ).fetchone()
    return None if row is None else _row(row)


def sending_began(conn: sqlite3.Connection, digest_id: int) -> bool:
    """True once the server accepted the digest's first message (or it is done)."""
    row = conn.execute(
        "SELECT (SELECT status FROM digests WHERE id = :d) = 'done' OR EXISTS "
        "(SELECT 1 FROM deliveries WHERE digest_id = :d AND status = 'sent')",
        {"d": digest_id},
    ).fetchone()
    return bool(row[0])


class SendingBegan(Exception):
    """The digest's first message was accepted: it can no longer be edited or approved."""


def save_edit(
    store: Store,
    digest_id: int,
    now: datetime,
    *,
    note: str | None = None,
    subject: str | None = None,
    pins: Sequence[str] = (),
    drops: Sequence[str] = (),
    clear: bool = False,
) -> EditorialRow:
    """Apply an edit in one transaction (``BEGIN IMMEDIATE``: a ``send`` that accepts its
    first message at the same moment either sees the edit or makes it fail).

    ``clear`` first resets note, subject, pins and drops. ``pins`` are added after the
    existing ones (a record pinned again moves to the end); a pinned record dropped is
    unpinned, a dropped record pinned is restored. The revision goes up, which voids any
    approval. Raises ``SendingBegan`` once the first message was accepted.
    """
    with store.transaction() as conn:
        if sending_began(conn, digest_id):
            raise SendingBegan(digest_id)
        current = _get(conn, digest_id) or EditorialRow(digest_id)
        old_note, old_subject = ("", None) if clear else (current.note, current.subject)
        old_pins = [] if clear else list(current.pins)
        old_drops = [] if clear else list(current.drops)
        for record_id in pins:
            if record_id in old_pins:
                old_pins.remove(record_id)
            old_pins.append(record_id)
            if record_id in old_drops:
                old_drops.remove(record_id)
        for record_id in drops:
            if record_id in old_pins:
                old_pins.remove(record_id)
            if record_id not in old_drops:
                old_drops.append(record_id)
        conn.execute(
            "INSERT INTO digest_editorial (digest_id, note, subject, pins, drops, revision, "
            "updated_at) VALUES (:d, :note, :subject, :pins, :drops, 1, :now) "
            "ON CONFLICT (digest_id) DO UPDATE SET note = excluded.note, "
            "subject = excluded.subject, pins = excluded.pins, drops = excluded.drops, "
            "revision = digest_editorial.revision + 1, updated_at = excluded.updated_at",
            {
                "d": digest_id,
                "note": old_note if note is None else note,
                "subject": old_subject if subject is None else (subject or None),
                "pins": json.dumps(old_pins, ensure_ascii=False),
                "drops": json.dumps(old_drops, ensure_ascii=False),
                "now": to_timestamp(now),
            },
        )
        saved = _get(conn, digest_id)
    assert saved is not None
    return saved


def mark_proof_sent(store: Store, digest_id: int, revision: int, now: datetime) -> None:
    """Record that the proof of ``revision`` went out."""
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO digest_editorial (digest_id, updated_at, proof_revision, "
            "proof_sent_at) VALUES (:d, :now, :r, :now) ON CONFLICT (digest_id) DO UPDATE "
            "SET proof_revision = excluded.proof_revision, proof_sent_at = excluded.proof_sent_at",
            {"d": digest_id, "r": revision, "now": to_timestamp(now)},
        )


def approve(
    store: Store, digest_id: int, now: datetime, *, by: str, revision: int | None = None
) -> EditorialRow | None:
    """Approve the digest's current revision (or only ``revision``, if given and still
    current); the row afterwards, or None when ``revision`` is out of date. Raises
    ``SendingBegan`` once sending began (there is nothing left to approve)."""
    with store.transaction() as conn:
        if sending_began(conn, digest_id):
            raise SendingBegan(digest_id)
        current = _get(conn, digest_id) or EditorialRow(digest_id)
        if revision is not None and revision != current.revision:
            return None
        if not current.approved:
            conn.execute(
                "INSERT INTO digest_editorial (digest_id, updated_at, approved_revision, "
                "approved_at, approved_by) VALUES (:d, :now, :r, :now, :by) "
                "ON CONFLICT (digest_id) DO UPDATE SET approved_revision = "
                "excluded.approved_revision, approved_at = excluded.approved_at, "
                "approved_by = excluded.approved_by",
                {"d": digest_id, "r": current.revision, "now": to_timestamp(now), "by": by},
            )
        return _get(conn, digest_id)


@dataclass(frozen=True, slots=True)
class DigestListing:
    """One stored digest at a glance, for ``digest list``."""

    id: int
    period: str
    created_at: datetime
    status: str  # sending | done (the digests table)
    items: int
    sent: int  # deliveries accepted
    deferred: int
    failed: int
    editorial: EditorialRow


def list_digests(store: Store) -> Iterator[DigestListing]:
    """Every stored digest, newest first, with item and delivery counts."""
    rows = store.conn.execute(
        "SELECT d.id, d.period, d.created_at, d.status, "
        "(SELECT count(*) FROM digest_items i WHERE i.digest_id = d.id), "
        "(SELECT count(*) FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'sent'), "
        "(SELECT count(*) FROM deliveries x WHERE x.digest_id = d.id "
        " AND x.status = 'deferred'), "
        "(SELECT count(*) FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'failed') "
        "FROM digests d ORDER BY d.period DESC"
    ).fetchall()
    for digest_id, period, created, status, items, sent, deferred, failed in rows:
        yield DigestListing(
            digest_id,
            period,
            from_timestamp(created),
            status,
            items,
            sent,
            deferred,
            failed,
            get_editorial(store, digest_id),
        )


def digest_id_of(store: Store, period: str) -> int | None:
    """The id of the stored digest of ``period``, or None."""
    row = store.conn.execute("SELECT id FROM digests WHERE period = ?", (period,)).fetchone()
    return None if row is None else int(row[0])


def delivered_count(store: Store, digest_id: int) -> int:
    """Deliveries of ``digest_id`` the server accepted."""
    row = store.conn.execute(
        "SELECT count(*) FROM deliveries WHERE digest_id = ? AND status = 'sent'", (digest_id,)
    ).fetchone()
    return int(row[0])


# --- the outbox --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxMail:
    """One transactional mail waiting to be (or already) sent."""

    id: int
    kind: str
    sender: str
    recipient: str
    data: bytes
    attempts: int
    created_at: datetime


def enqueue(
    store: Store,
    *,
    kind: str,
    sender: str,
    recipient: str,
    data: bytes,
    now: datetime,
    dedupe: str | None = None,
) -> int | None:
    """Keep a mail for sending; its id, or None when ``dedupe`` was queued before (a
    welcome mail is sent once per subscriber, whatever happens later)."""
    with store.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO outbox (kind, dedupe, sender, recipient, data, created_at, "
            "next_attempt) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe) DO NOTHING",
            (kind, dedupe, sender, recipient, data, to_timestamp(now), to_timestamp(now)),
        )
        return cursor.lastrowid if cursor.rowcount == 1 else None


def _mail(row: Sequence[Any]) -> OutboxMail:
    mail_id, kind, sender, recipient, data, attempts, created = row
    return OutboxMail(
        int(mail_id),
        str(kind),
        str(sender),
        str(recipient),
        bytes(data),
        int(attempts),
        from_timestamp(int(created)),
    )


def due_mail(store: Store, now: datetime, limit: int = 50) -> list[OutboxMail]:
    """Pending mails whose next attempt is due, oldest first."""
    rows = store.conn.execute(
        "SELECT id, kind, sender, recipient, data, attempts, created_at FROM outbox "
        "WHERE status = 'pending' AND next_attempt <= ? ORDER BY next_attempt, id LIMIT ?",
        (to_timestamp(now), limit),
    ).fetchall()
    return [_mail(row) for row in rows]


def record_attempt(
    store: Store,
    mail_id: int,
    now: datetime,
    *,
    status: str,
    reply: str,
    next_attempt: datetime | None = None,
) -> None:
    """The result of one attempt: ``sent``, ``failed`` (for good), ``expired`` (gave up),
    or ``pending`` again with ``next_attempt``."""
    stamp = to_timestamp(now)
    with store.transaction() as conn:
        conn.execute(
            "UPDATE outbox SET status = ?, attempts = attempts + 1, last_reply = ?, "
            "next_attempt = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END "
            "WHERE id = ? AND status = 'pending'",
            (
                status,
                reply[:1000],
                to_timestamp(next_attempt) if next_attempt else stamp,
                status,
                stamp,
                mail_id,
            ),
        )


def next_attempt_at(store: Store) -> datetime | None:
    """When the next pending mail is due, or None when none waits."""
    row = store.conn.execute(
        "SELECT min(next_attempt) FROM outbox WHERE status = 'pending'"
    ).fetchone()
    return None if row is None or row[0] is None else from_timestamp(int(row[0]))


def latest_sent_period(store: Store) -> str | None:
    """The newest digest whose first message was accepted (an archive issue), or None."""
    row = store.conn.execute(
        "SELECT max(d.period) FROM digests d WHERE EXISTS "
        "(SELECT 1 FROM deliveries x WHERE x.digest_id = d.id AND x.status = 'sent')"
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])
