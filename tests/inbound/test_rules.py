"""The suppression rules on a real store: soft limit and window, confirmation, one per delivery."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kcrush_feeds.config import load_config
from kcrush_feeds.inbound.classify import Verdict
from kcrush_feeds.inbound.process import Processor
from kcrush_feeds.store.db import Store, to_timestamp
from tests.support.project import Project

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(project: Project) -> Iterator[Store]:
    project.append_config('[bounces]\nsoft_limit = 3\nsoft_window = "30d"\n')
    with Store.open(project.config.database_path) as opened:
        conn = opened.conn
        conn.execute(
            "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at, "
            "confirmed_at) VALUES (1, 'a@example.org', 'a@example.org', 'active', 0, 0, ?)",
            (to_timestamp(T0 - timedelta(days=400)),),
        )
        for week in range(1, 9):
            sent = to_timestamp(T0 + timedelta(days=7 * (week - 1)))
            conn.execute(
                "INSERT INTO digests (id, period, created_at, since, until, status) "
                "VALUES (?, ?, ?, 0, ?, 'done')",
                (week, f"2024-W{week + 8:02d}", sent, sent),
            )
            conn.execute(
                "INSERT INTO deliveries (digest_id, subscriber_id, status, message_id, "
                "attempts, updated_at, sent_at) VALUES (?, 1, 'sent', ?, 1, ?, ?)",
                (week, f"<m{week}@x>", sent, sent),
            )
        yield opened


def soft(digest: int, days: float) -> Verdict:
    return Verdict(
        "soft",
        "DSN: failed 4.2.2",
        delivery=(digest, 1),
        status_code="4.2.2",
        reported_at=T0 + timedelta(days=days),
    )


def status(store: Store) -> str:
    return str(store.conn.execute("SELECT status FROM subscribers WHERE id = 1").fetchone()[0])


def test_soft_bounces_suppress_at_the_limit_within_the_window(
    project: Project, store: Store
) -> None:
    processor = Processor(project.config, store, T0 + timedelta(days=100))
    # Two soft bounces, then one 40 days later: the window holds only two at a time.
    assert processor.verdict(soft(1, 0), source="mail").effect == "counted"
    assert processor.verdict(soft(2, 7), source="mail").effect == "counted"
    assert processor.verdict(soft(7, 47), source="mail").effect == "counted"
    assert status(store) == "active"
    # The same delivery's soft bounce again (a second DSN) counts once.
    assert processor.verdict(soft(7, 47.5), source="mail").kind == "duplicate"
    assert status(store) == "active"
    # Two more within 30 days of the third: the limit is reached.
    assert processor.verdict(soft(6, 45), source="mail").effect == "counted"
    assert status(store) == "active"
    assert processor.verdict(soft(8, 50), source="mail").effect == "bounced"
    assert status(store) == "bounced"


def test_a_bounce_before_the_latest_confirmation_suppresses_nobody(
    project: Project, store: Store
) -> None:
    store.conn.execute(
        "UPDATE subscribers SET confirmed_at = ? WHERE id = 1",
        (to_timestamp(T0 + timedelta(days=10)),),
    )
    processor = Processor(load_config(project.config_path), store, T0 + timedelta(days=20))
    old = Verdict("hard", "DSN: failed 5.1.1", delivery=(1, 1), reported_at=T0)
    result = processor.verdict(old, source="mail")
    assert result.effect == "none" and "before the subscriber's latest confirmation" in result.note
    assert status(store) == "active"
    fresh = Verdict(
        "hard", "DSN: failed 5.1.1", delivery=(3, 1), reported_at=T0 + timedelta(days=15)
    )
    assert processor.verdict(fresh, source="mail").effect == "bounced"
    # A complaint for someone already bounced is recorded and changes nothing else.
    complaint = Verdict("complaint", "ARF", delivery=(3, 1), reported_at=T0 + timedelta(days=16))
    assert processor.verdict(complaint, source="mail").effect == "none"
    assert status(store) == "bounced"


def test_a_token_for_a_delivery_this_store_does_not_know_changes_nothing(
    project: Project, store: Store
) -> None:
    processor = Processor(project.config, store, T0)
    result = processor.verdict(Verdict("hard", "DSN", delivery=(99, 1)), source="mail")
    assert result.kind == "unknown" and "no such delivery" in result.note
    assert status(store) == "active"
