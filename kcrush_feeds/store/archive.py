"""What the newsletter archive reads: the digests that were sent.

A digest counts as sent once its first message was accepted (a ``deliveries`` row with
status ``sent``); one frozen but never delivered (every address deferred, or a proof only)
has no page. The digests themselves come from ``store.digests.load_digest``, frozen.
"""

from __future__ import annotations

from kcrush_feeds.model import IssueRef
from kcrush_feeds.store.db import Store, from_timestamp


def sent_issues(store: Store) -> list[IssueRef]:
    """Every sent digest, newest period first. One query; ``EXISTS`` stops at the first
    accepted delivery through the ``deliveries_status`` index, so the cost follows the
    number of digests, not of deliveries."""
    rows = store.conn.execute(
        "SELECT d.period, d.id, d.created_at FROM digests d WHERE EXISTS ("
        " SELECT 1 FROM deliveries dl WHERE dl.digest_id = d.id AND dl.status = 'sent')"
        " ORDER BY d.period DESC"
    ).fetchall()
    return [
        IssueRef(str(period), int(did), from_timestamp(created)) for period, did, created in rows
    ]
