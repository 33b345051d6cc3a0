"""Sent digests written straight into a store (the archive benchmark and its tests).

Each issue is frozen with ``store.digests.insert_digest`` and gets one accepted delivery
(``store.deliveries.record_results``): that is what makes a digest count as sent.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kcrush_feeds.model import Delivery, DigestItem, Outcome, Record, SendResult
from kcrush_feeds.store import deliveries, subscribers
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.digests import insert_digest
from kcrush_feeds.weeks import period_of

FIRST = datetime(2016, 1, 4, 17, 0, tzinfo=UTC)  # a Monday, 09:00 in Los Angeles
ITEMS = 8


IMAGES = "https://www.kcrush.com/img"


def issue_items(n: int, published: datetime, images: str = IMAGES) -> list[DigestItem]:
    """``ITEMS`` items of issue ``n``: two sections, every other one with an image."""
    items = []
    for i in range(ITEMS):
        interview = i >= ITEMS - 2
        items.append(
            DigestItem(
                record_id=f"https://www.kcrush.com/issue-{n}-story-{i}/",
                url=f"https://www.kcrush.com/issue-{n}-story-{i}/",
                title=f"Story {i} of issue {n}: K-Pop & <friends> on tour",
                published=published - timedelta(hours=3 * i),
                excerpt=f"What happened in week {n}, in a few lines for story {i}.",
                excerpt_html=f"<p>What happened in week {n}, in a few lines for story {i}.</p>",
                image_url=None if i % 2 else f"{images}/{n}-{i}.jpg",
                image_alt=f"Photo {i}",
                category="K-Pop Interviews" if interview else "K-Pop Articles",
                topics=("kpop-interviews",) if interview else ("kpop-articles",),
                section=1 if interview else 0,
                section_title="Interviews" if interview else "New articles",
            )
        )
    return items


def seed_issues(
    store: Store, count: int, *, first: datetime = FIRST, images: str = IMAGES
) -> list[str]:
    """``count`` sent weekly digests, one week apart from ``first``; their periods.
    ``images``: where the items' image URLs point."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo("America/Los_Angeles")
    with store.transaction():
        sid = subscribers.insert(
            store, "reader@example.org", "Reader Secret", "active", None, first, "import"
        )
    periods = []
    results = []
    issues = [(n, first + timedelta(weeks=n)) for n in range(count)]
    # The records the digests froze (digest_items points at them).
    with store.transaction():
        store_records.upsert(
            store,
            [
                Record(
                    item.record_id,
                    item.url,
                    item.title,
                    item.published,
                    item.published,
                    (item.category,),
                )
                for n, moment in issues
                for item in issue_items(n, moment, images)
            ],
            source="bench",
            now=first,
        )
    with store.transaction():
        for n, moment in issues:
            period = period_of(moment, tz)
            since = int((moment - timedelta(weeks=1)).timestamp())
            digest_id = insert_digest(
                store, period, int(moment.timestamp()), since, issue_items(n, moment, images)
            )
            periods.append(period)
            results.append(
                Delivery(digest_id, sid, f"<d{n}@x>", SendResult(Outcome.SENT, "250 ok", 1))
            )
    deliveries.record_results(store, results, first, max_hard_bounces=3)
    return periods
