"""The shared values: frozen dataclasses every stage passes to the next.

Nothing here reads the disk, the network, the clock or the store: ``store/`` builds these
from rows, the stages above compute with them. A value lives here when it crosses a
package boundary (a record read by ``feeds`` and ``digest``, a digest item frozen by the
store and rendered by ``compose``, a send result written by the store's deliveries).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

# --- records -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Image:
    url: str
    alt: str = ""
    type: str = "image/jpeg"
    length: int = 0  # bytes; 0 when unknown (RSS enclosure needs a number)


@dataclass(frozen=True, slots=True)
class Record:
    id: str
    url: str
    title: str
    published: datetime  # aware, UTC
    updated: datetime  # aware, UTC
    categories: tuple[str, ...]
    summary: str = ""
    content_html: str = ""
    image: Image | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        """A hash of everything a feed or digest shows: equal means nothing changed."""
        image = self.image
        parts = [
            self.url,
            self.title,
            str(int(self.published.timestamp())),
            str(int(self.updated.timestamp())),
            "\x1f".join(self.categories),
            self.summary,
            ""
            if image is None
            else f"{image.url}\x1f{image.alt}\x1f{image.type}\x1f{image.length}",
            "\x1f".join(self.authors),
            "\x1f".join(self.tags),
            self.content_html,
        ]
        # Fields never contain NUL (control characters are removed on the way in).
        return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


# --- sources -----------------------------------------------------------------------------

SourceKind = Literal["wordpress", "feed", "file"]


@dataclass(frozen=True, slots=True)
class Source:
    """One place to import from. ``key`` identifies it in the store."""

    kind: SourceKind
    location: str  # a URL, or a file path
    name: str = ""
    categories: tuple[str, ...] = ()  # feed entries without a category get these
    username: str | None = None  # WordPress: with password_env, every post status is read
    password_env: str | None = None

    @property
    def key(self) -> str:
        return f"{self.kind} {self.location}"

    @property
    def label(self) -> str:
        return self.name or self.location

    @property
    def is_url(self) -> bool:
        return self.location.startswith(("http://", "https://"))


@dataclass(frozen=True, slots=True)
class SourceState:
    """What the store remembers about a source."""

    key: str
    name: str
    kind: str
    url: str
    cursor: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_summary: str | None = None


# --- subscribers -------------------------------------------------------------------------


def email_key(email: str) -> str:
    """The address compared case-insensitively: two spellings, one subscriber."""
    return email.strip().lower()


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: int
    email: str
    name: str
    status: str  # pending|active|paused|unsubscribed|bounced
    categories: tuple[str, ...] | None  # digest categories (feed slugs); None = all of them

    @property
    def key(self) -> str:
        return email_key(self.email)


# --- digests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DigestItem:
    """One record as the digest shows it (frozen with the digest)."""

    record_id: str
    url: str
    title: str
    published: datetime
    excerpt: str  # plain text, at most digest.select.EXCERPT_CHARS
    excerpt_html: str  # the sanitised HTML summary, or "" (then templates show ``excerpt``)
    image_url: str | None
    image_alt: str
    category: str  # the category to show: the feed title it belongs to, or its own name
    topics: tuple[str, ...]  # digest categories (feed slugs) it belongs to
    section: int  # index into the digest's sections
    section_title: str
    authors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Digest:
    """One period's digest. ``id`` is 0 for a digest computed for preview and not stored."""

    id: int
    period: str  # "2024-W09"
    created_at: datetime
    items: tuple[DigestItem, ...]  # by section, then newest first
    since: datetime  # the window start this digest used
    until: datetime  # records published up to this time were considered
    status: str = "sending"  # sending | done

    @property
    def stored(self) -> bool:
        return self.id != 0

    def items_for(self, categories: Iterable[str] | None) -> tuple[DigestItem, ...]:
        """The items a subscriber with these digest categories gets (None: all of them)."""
        if categories is None:
            return self.items
        chosen = frozenset(categories)
        return tuple(item for item in self.items if chosen.intersection(item.topics))


def sections_of(items: Iterable[DigestItem]) -> list[tuple[str, list[DigestItem]]]:
    """``items`` grouped by section, in section order: [(title, items), ...]."""
    grouped: dict[int, tuple[str, list[DigestItem]]] = {}
    for item in items:
        grouped.setdefault(item.section, (item.section_title, []))[1].append(item)
    return [grouped[index] for index in sorted(grouped)]


# What the store says about a period's digest: "done", "sending" (started, not finished),
# "missing" (no digest for it, earlier ones exist) or "empty" (no digest was ever sent).
DigestState = Literal["done", "sending", "missing", "empty"]


@dataclass(frozen=True, slots=True)
class DigestSummary:
    """A stored digest at a glance, for ``status``."""

    period: str
    created_at: datetime
    items: int
    status: str
    deliveries: dict[str, int]  # sent / deferred / failed


# --- deliveries --------------------------------------------------------------------------


class Outcome(StrEnum):
    """What became of one message; the values are the ``deliveries.status`` column's."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    # The whole message went out and the reply to its final dot never came (a drop, a
    # timeout, a stop): the server may have queued it. Never retried in the same run;
    # recorded as deferred with an "uncertain:" reply, retried once by a later run.
    UNCERTAIN = "uncertain"


UNCERTAIN_PREFIX = "uncertain: "  # the reply of a deferred row whose try was uncertain


@dataclass(frozen=True, slots=True)
class SendResult:
    """The result of delivering one message to one recipient (after in-run retries)."""

    outcome: Outcome
    reply: str  # the server's last reply ("250 2.0.0 Ok: queued as ...") or what went wrong
    attempts: int
    hard_bounce: bool = False  # a 5xx for the recipient itself (RCPT): counts to "bounced"

    @property
    def sent(self) -> bool:
        return self.outcome is Outcome.SENT


@dataclass(frozen=True, slots=True)
class PendingSubscriber:
    """An active subscriber who has not yet been served this digest."""

    id: int
    email: str
    name: str
    status: str
    categories: tuple[str, ...] | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One result to write: which digest, which subscriber, with which Message-ID."""

    digest_id: int
    subscriber_id: int
    message_id: str
    result: SendResult


@dataclass(frozen=True, slots=True)
class DeliveryCounts:
    sent: int = 0
    deferred: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.deferred + self.failed


# --- returned mail (bounces, complaints, unsubscribe requests) ----------------------------

MailKind = Literal["hard", "soft", "complaint", "unsubscribe"]
MailEffect = Literal["bounced", "unsubscribed", "counted", "none"]


@dataclass(frozen=True, slots=True)
class MailEvent:
    """One outcome to record: about which delivery, what, when, and from where."""

    key: str  # idempotency key: "hard:DIGEST:SUBSCRIBER" and the like
    digest_id: int | None
    subscriber_id: int
    kind: MailKind
    reported_at: datetime
    source: str  # mail, mailgun, postmark, ses
    status_code: str = ""
    diagnostic: str = ""


@dataclass(frozen=True, slots=True)
class Applied:
    """What recording an event did."""

    effect: MailEffect
    duplicate: bool = False  # already recorded: nothing changed
    missing: bool = False  # the subscriber no longer exists: nothing recorded
    note: str = ""  # why an event changed no status


@dataclass(frozen=True, slots=True)
class DigestOutcomes:
    """Per digest: deliveries next to what came back about them."""

    period: str
    sent: int
    deferred: int
    failed: int
    hard: int
    soft: int
    complaints: int
    unsubscribes: int

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0


# --- the archive -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssueRef:
    """A digest that was sent (its first message was accepted): it has a page in the archive.

    ``created_at`` is when it was frozen, which never changes: the archive's date for it.
    """

    period: str  # "2026-W49"
    digest_id: int
    created_at: datetime
