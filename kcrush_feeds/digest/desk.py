"""The editor's desk: the digests, their state, and the edits and approvals made to them.

What ``kcrush-feeds digest list | show | edit | approve`` do, without the command line:
states are computed here, edits go through ``store.editorial`` (refused once the digest's
first message was accepted), and a digest that does not exist yet is frozen first, exactly
as ``send`` would freeze it (``select.open_digest``), so what the editor edits is what goes
out.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kcrush_feeds.config import Config
from kcrush_feeds.digest.editing import Editorial, apply
from kcrush_feeds.digest.select import compute_digest, open_digest
from kcrush_feeds.errors import KcrushError, UsageError
from kcrush_feeds.model import Digest
from kcrush_feeds.store import editorial as store_editorial
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import load_digest
from kcrush_feeds.store.editorial import EditorialRow, SendingBegan
from kcrush_feeds.weeks import period_bounds, period_of

_WEEK_RE = re.compile(r"(\d{4})-[Ww](\d{2})")
STATES = ("draft", "awaiting approval", "approved", "sending", "sent")


class EditRefused(KcrushError, RuntimeError):
    """The digest can no longer be changed: its first message was accepted."""


def parse_week(value: str | None, config: Config, now: datetime) -> str:
    """``WEEK`` as given ("2026-W49", any case), or the current one; ``UsageError`` for a
    week that does not exist (W00, W54, W53 of a 52-week year)."""
    if value is None:
        return period_of(now, config.site.tz)
    match = _WEEK_RE.fullmatch(value.strip())
    if not match:
        raise UsageError(f"WEEK {value!r}: expected an ISO week such as 2026-W49")
    period = f"{match[1]}-W{match[2]}"
    try:
        start, _ = period_bounds(period, config.site.tz)
    except ValueError as e:
        raise UsageError(f"WEEK {value!r}: no such ISO week ({e})") from e
    if start.isocalendar()[:2] != (int(match[1]), int(match[2])):
        raise UsageError(f"WEEK {value!r}: no such ISO week")
    current = period_of(now, config.site.tz)
    if period > current:
        raise UsageError(f"WEEK {period}: in the future (this week is {current})")
    return period


def state_of(config: Config, status: str, delivered: int, row: EditorialRow) -> str:
    """One of ``STATES`` for a stored digest."""
    if status == "done":
        return "sent"
    if delivered:
        return "sending"
    if row.approved:
        return "approved"
    if config.require_digest().approval == "required" and row.proof_current:
        return "awaiting approval"
    return "draft"


@dataclass(frozen=True, slots=True)
class DeskView:
    """One digest as ``digest show`` prints it."""

    period: str
    stored: bool
    state: str
    original: Digest  # as frozen (or as it would be frozen now)
    edited: Digest  # as subscribers get it
    row: EditorialRow
    editorial: Editorial
    delivered: int


def editorial_of(config: Config, row: EditorialRow) -> Editorial:
    """The stored edit as the composer takes it (the note rendered)."""
    return Editorial.of(
        note=row.note, subject=row.subject, pins=row.pins, drops=row.drops, base_url=config.site.url
    )


def view(config: Config, store: Store, period: str, now: datetime) -> DeskView | None:
    """The digest of ``period`` (stored, or computed as it would be frozen now); None when
    there is none and nothing is new."""
    digest = load_digest(store, period)
    if digest is None:
        computed = compute_digest(store, config, now, period=period)
        if computed is None:
            return None
        row = EditorialRow(0)
        return DeskView(period, False, "not yet frozen", computed, computed, row, Editorial(), 0)
    row = store_editorial.get_editorial(store, digest.id)
    delivered = store_editorial.delivered_count(store, digest.id)
    edit = editorial_of(config, row)
    return DeskView(
        period,
        True,
        state_of(config, digest.status, delivered, row),
        digest,
        apply(digest, edit).digest,
        row,
        edit,
        delivered,
    )


def frozen(config: Config, store: Store, period: str, now: datetime) -> Digest:
    """The stored digest of ``period``, frozen now if it is the current week and new items
    wait; ``UsageError`` otherwise."""
    digest = load_digest(store, period)
    if digest is not None:
        return digest
    current = period_of(now, config.site.tz)
    if period != current:
        raise UsageError(
            f"there is no digest of {period}; only the current week ({current}) can be "
            "created by an edit"
        )
    created = open_digest(store, config, now)
    if created is None:
        raise UsageError(f"nothing new for {period}: there is no digest to edit")
    return created


def edit(
    config: Config,
    store: Store,
    period: str,
    now: datetime,
    *,
    note: str | None = None,
    subject: str | None = None,
    pins: Sequence[str] = (),
    drops: Sequence[str] = (),
    clear: bool = False,
) -> DeskView:
    """Apply an edit to the digest of ``period`` (creating it if need be)."""
    digest = frozen(config, store, period, now)
    known = {item.record_id for item in digest.items}
    unknown = [record_id for record_id in (*pins, *drops) if record_id not in known]
    if unknown:
        raise UsageError(
            f"not in the {period} digest: {', '.join(unknown)}",
            hint=f"'kcrush-feeds digest show {period}' lists its record ids",
        )
    try:
        store_editorial.save_edit(
            store,
            digest.id,
            now,
            note=note,
            subject=subject,
            pins=pins,
            drops=drops,
            clear=clear,
        )
    except SendingBegan as e:
        raise EditRefused(
            f"the {period} digest can no longer be edited: sending began "
            f"({store_editorial.delivered_count(store, digest.id)} messages accepted)"
        ) from e
    found = view(config, store, period, now)
    assert found is not None
    return found


def approve(config: Config, store: Store, period: str, now: datetime, *, by: str) -> DeskView:
    """Approve the current revision of the digest of ``period`` (creating it if need be)."""
    digest = frozen(config, store, period, now)
    try:
        store_editorial.approve(store, digest.id, now, by=by)
    except SendingBegan as e:
        raise EditRefused(f"the {period} digest is being sent already: nothing to approve") from e
    found = view(config, store, period, now)
    assert found is not None
    return found
