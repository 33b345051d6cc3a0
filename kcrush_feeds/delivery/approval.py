"""Approval before sending: proofs to the editors, and the gate ``send`` passes.

With ``[digest] approval = "required"``, ``send`` freezes the digest as usual, then asks
``gate``: an approved digest (``digest approve``, the proof's link, or
``auto_approve_after`` past the proof) goes out; otherwise one proof goes to each of
``digest.editors`` (once per revision: an edit makes a new proof necessary) and the run
ends with exit 75, so cron (and ``schedule``'s retries) try again later.

A proof is the real digest as a reader of every category gets it, with the editor's note,
pins and drops, a banner saying it is a proof and a signed approve link to ``serve``'s
``/approve`` (valid for ``subscriptions.confirm_ttl``), from ``subscriptions.from``. Proofs
are not digest deliveries: nothing about them is written to ``deliveries``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import parseaddr

from kcrush_feeds import tokens
from kcrush_feeds.config import Config
from kcrush_feeds.delivery.dkim import DkimSigner
from kcrush_feeds.delivery.smtp import SmtpPool, SmtpSettings, SmtpUnavailable
from kcrush_feeds.digest.compose import DigestComposer, preview_subscriber
from kcrush_feeds.digest.desk import editorial_of
from kcrush_feeds.digest.editing import Editorial
from kcrush_feeds.model import Digest, Outcome, SendResult
from kcrush_feeds.store import editorial as store_editorial
from kcrush_feeds.store.db import Store
from kcrush_feeds.store.editorial import EditorialRow

log = logging.getLogger("kcrush_feeds.delivery.approval")

APPROVE_PATH = "/approve"


def load_editorial(config: Config, store: Store, digest: Digest) -> Editorial | None:
    """The editor's edit of a stored digest, or None (nothing to apply)."""
    if not digest.stored:
        return None
    edit = editorial_of(config, store_editorial.get_editorial(store, digest.id))
    return None if edit.empty else edit


def approve_url(config: Config, editor: str, digest: Digest, revision: int, now: datetime) -> str:
    """The signed link in ``editor``'s proof of ``revision``."""
    subscriptions = config.require_subscriptions()
    token = tokens.sign_approval(
        subscriptions.secret(),
        editor,
        digest.period,
        revision,
        expires=now + subscriptions.confirm_ttl,
    )
    return f"{subscriptions.base_url.rstrip('/')}{APPROVE_PATH}?token={token}"


@dataclass(frozen=True, slots=True)
class Gate:
    """The gate's answer: go ahead, or why not (for the summary line)."""

    open: bool
    note: str = ""
    proofs_sent: int = 0


def gate(
    config: Config,
    store: Store,
    digest: Digest,
    now: datetime,
    settings: SmtpSettings,
    *,
    signer: DkimSigner | None = None,
) -> Gate:
    """Whether ``digest`` may go out now; sends the proofs it needs to (see the module)."""
    settings_digest = config.require_digest()
    if settings_digest.approval != "required":
        return Gate(True)
    if store_editorial.sending_began(store.conn, digest.id):
        # Out already (approved then, or sent before approval was required): the rest of
        # its subscribers get it; an approval now could not hold back what was sent.
        return Gate(True)
    row = store_editorial.get_editorial(store, digest.id)
    if row.approved:
        return Gate(True)
    wait = settings_digest.auto_approve_after
    if (
        wait is not None
        and row.proof_current
        and row.proof_sent_at is not None
        and now >= row.proof_sent_at + wait
    ):
        store_editorial.approve(store, digest.id, now, by="auto", revision=row.revision)
        log.info("digest %s: approved automatically, %s after the proof", digest.period, wait)
        return Gate(True)
    editors = ", ".join(settings_digest.editors)
    if row.proof_current:
        return Gate(False, f"awaiting approval (proof sent to {editors}); nothing sent")
    results = send_proofs(config, digest, row, now, settings, signer=signer)
    sent = sum(1 for result in results if result.sent)
    if sent:
        store_editorial.mark_proof_sent(store, digest.id, row.revision, now)
        return Gate(False, f"awaiting approval: proof sent to {editors}; nothing else sent", sent)
    reply = results[0].reply if results else "no editors"
    return Gate(
        False, f"awaiting approval: the proof could not be sent ({reply}); retried next run"
    )


def send_proofs(
    config: Config,
    digest: Digest,
    row: EditorialRow,
    now: datetime,
    settings: SmtpSettings,
    *,
    signer: DkimSigner | None = None,
) -> list[SendResult]:
    """One proof to each editor, from ``subscriptions.from``; their results."""
    sender = config.transactional_from
    edit = editorial_of(config, row)
    messages = []
    for editor in config.require_digest().editors:
        url = approve_url(config, editor, digest, row.revision, now)
        composer = DigestComposer(
            config, digest, now=now, editorial=edit, proof_url=url, from_addr=sender
        )
        message = composer.compose(preview_subscriber(editor, ""))
        if message is None:
            continue
        data = signer.sign(message.data) if signer else message.data
        messages.append((editor, data))

    async def run() -> list[SendResult]:
        single = replace(settings, concurrency=1)
        async with SmtpPool(single, sender=parseaddr(sender)[1]) as pool:
            return [await pool.send(editor, data) for editor, data in messages]

    try:
        results = asyncio.run(run())
    except SmtpUnavailable as e:
        log.warning("proof not sent: %s", e.message)
        return [SendResult(Outcome.DEFERRED, e.message, 1)]
    for (editor, _), result in zip(messages, results, strict=True):
        log.info("proof of %s to %s: %s", digest.period, editor, result.reply)
    return results
