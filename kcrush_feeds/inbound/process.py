"""Applying what came back: one code path for mail (``inbound``) and webhooks (``serve``).

``Processor.message(raw)`` classifies one message and records its outcome;
``Processor.verdict(v)`` records an outcome a webhook already classified. Both end in
``store.bounces.record_event``, keyed per delivery, so the same report twice (or by mail
and by webhook) changes nothing the second time. Understood message bytes are remembered
(sha256) so a message read again counts as already processed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from kcrush_feeds.config import BouncesConfig, Config
from kcrush_feeds.inbound.classify import Verdict, classify, unknown
from kcrush_feeds.model import MailEvent
from kcrush_feeds.store import bounces as db
from kcrush_feeds.store.db import Store

log = logging.getLogger("kcrush_feeds.inbound")

# Report order and wording: (kind, singular, plural)
_LABELS = (
    ("hard", "hard bounce", "hard bounces"),
    ("soft", "soft bounce", "soft bounces"),
    ("complaint", "complaint", "complaints"),
    ("unsubscribe", "unsubscribe request", "unsubscribe requests"),
    ("auto_reply", "auto-reply", "auto-replies"),
    ("warning", "delay warning or notice", "delay warnings or notices"),
    ("duplicate", "already processed", "already processed"),
    ("unknown", "not understood", "not understood"),
)


@dataclass(frozen=True, slots=True)
class Result:
    """What processing one message or event did."""

    kind: str  # a Verdict kind, or "duplicate"
    note: str  # one line for the log
    effect: str = "none"

    @property
    def understood(self) -> bool:
        return self.kind != "unknown"


@dataclass
class InboundReport:
    """Counts over one ``inbound`` run, and the not-understood lines."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # "label: reason", every one
    kept: int = 0  # not understood from stdin, delivered into the --keep Maildir

    def add(self, label: str, result: Result) -> None:
        self.counts[result.kind] += 1
        if not result.understood:
            self.problems.append(f"{label}: {result.note}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def not_understood(self) -> int:
        return self.counts["unknown"]

    def summary(self) -> str:
        """One line: how many of each kind."""
        parts = []
        for kind, one, many in _LABELS:
            n = self.counts[kind]
            parts.append(f"{n} {one if n == 1 else many}")
        total = self.total
        kept = f" ({self.kept} kept for a person)" if self.kept else ""
        return f"{total} message{'s' if total != 1 else ''}: " + ", ".join(parts) + kept

    def as_dict(self) -> dict[str, int]:
        counts = {kind: self.counts[kind] for kind, _, _ in _LABELS}
        return counts | {"total": self.total, "kept": self.kept}


class Processor:
    """Classifies and applies returned mail against one store."""

    def __init__(self, config: Config, store: Store, now: datetime) -> None:
        self.config = config
        self.store = store
        self.now = now
        self.settings = config.bounces or BouncesConfig()
        self.secret = config.require_subscriptions().secret()

    def message(
        self, raw: bytes, *, label: str = "message", envelope_recipient: str | None = None
    ) -> Result:
        """Classify and apply one message; logs one line when it is not understood."""
        sha = hashlib.sha256(raw).hexdigest()
        if db.seen_message(self.store, sha):
            return Result("duplicate", "the same message was processed before: nothing changed")
        verdict = classify(raw, self.secret, envelope_recipient=envelope_recipient)
        result = self.verdict(verdict, source="mail", key_suffix=sha[:16])
        if result.understood:
            db.mark_message(self.store, sha, result.kind, self.now)
            log.debug("%s: %s", label, result.note)
        else:
            log.warning("%s: not understood: %s (kept)", label, result.note)
        return result

    def verdict(self, verdict: Verdict, *, source: str, key_suffix: str = "") -> Result:
        """Record ``verdict`` (from mail or a webhook) against its delivery."""
        if not verdict.understood:
            return Result("unknown", verdict.reason)
        if verdict.kind in ("warning", "auto_reply"):
            return Result(verdict.kind, verdict.reason)
        reported = verdict.reported_at or self.now
        # A report dated in the future (a wrong clock) counts as now.
        reported = min(reported, self.now)
        target = self._target(verdict, reported)
        if isinstance(target, str):
            return Result("unknown", target)
        digest_id, subscriber_id = target
        kind = verdict.kind
        if kind == "unsubscribe":
            # A request by mail names the subscriber, not a delivery: each distinct message
            # is one request (the same bytes twice were caught above).
            key = f"unsubscribe:{subscriber_id}:{key_suffix or reported.isoformat()}"
        else:
            key = f"{kind}:{digest_id}:{subscriber_id}"
        applied = db.record_event(
            self.store,
            MailEvent(
                key=key,
                digest_id=digest_id,
                subscriber_id=subscriber_id,
                kind=kind,  # type: ignore[arg-type]  # the four kinds left
                reported_at=reported,
                source=source,
                status_code=verdict.status_code,
                diagnostic=verdict.diagnostic,
            ),
            now=self.now,
            soft_limit=self.settings.soft_limit,
            soft_window=self.settings.soft_window,
        )
        who = f"subscriber {subscriber_id}" + (f", digest {digest_id}" if digest_id else "")
        if applied.missing:
            return Result(kind, f"{verdict.reason}: {who}: {applied.note}")
        if applied.duplicate:
            return Result("duplicate", f"{verdict.reason}: {who}: already recorded")
        what = {
            "bounced": "now bounced",
            "unsubscribed": "now unsubscribed",
            "counted": "counted",
            "none": "no change",
        }[applied.effect]
        note = f"{verdict.reason}: {who}: {what}" + (f" ({applied.note})" if applied.note else "")
        log.info("%s", note)
        return Result(kind, note, applied.effect)

    def _target(self, verdict: Verdict, reported: datetime) -> tuple[int | None, int] | str:
        """(digest id or None, subscriber id) the verdict is about, or why it has none."""
        if verdict.delivery is not None:
            digest_id, subscriber_id = verdict.delivery
            if db.delivery_recipient(self.store, digest_id, subscriber_id) is None:
                return (
                    f"the signed envelope names digest {digest_id}, subscriber "
                    f"{subscriber_id}: no such delivery in this store"
                )
            return digest_id, subscriber_id
        if verdict.message_id:
            found = db.delivery_by_message_id(self.store, verdict.message_id)
            if found is not None:
                digest_id, subscriber_id, address = found
                if not verdict.email or verdict.email.lower() == address.lower():
                    return digest_id, subscriber_id
        if verdict.email:
            subscriber = db.subscriber_by_email(self.store, verdict.email)
            if subscriber is None:
                return f"{verdict.reason}: no subscriber with that address"
            subscriber_id = subscriber[0]
            return db.latest_delivery(self.store, subscriber_id, at_or_before=reported), (
                subscriber_id
            )
        return "nothing names the delivery it is about"


def not_understood(reason: str) -> Result:
    """A result for input that never reached the classifier (unreadable, truncated)."""
    return Result("unknown", unknown(reason).reason)
