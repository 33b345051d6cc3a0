"""``inbound`` as a library call: read the sources, process each message, file it away."""

from __future__ import annotations

import itertools
import logging
import mailbox
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from kcrush_feeds.config import Config
from kcrush_feeds.errors import ConfigError, KcrushError
from kcrush_feeds.inbound.mailboxes import ImapMailbox, Item, iter_path
from kcrush_feeds.inbound.process import InboundReport, Processor, not_understood
from kcrush_feeds.store import bounces as db
from kcrush_feeds.store.db import Store

log = logging.getLogger("kcrush_feeds.inbound")
# Postfix's pipe(8) and local(8) pass the envelope recipient of the message here.
ENV_RECIPIENT = "ORIGINAL_RECIPIENT"
BATCH = 200  # messages per transaction: one fsync for them all


def process_items(
    processor: Processor,
    items: Iterable[Item],
    report: InboundReport,
    *,
    keep: Path | None = None,
) -> None:
    """Process ``items`` into ``report``, ``BATCH`` to a transaction; the understood ones
    are filed away (moved) once the transaction holding their outcome has committed."""
    envelope = os.environ.get(ENV_RECIPIENT) or None
    iterator = iter(items)
    while True:
        chunk = list(itertools.islice(iterator, BATCH))
        if not chunk:
            return
        to_file: list[Item] = []
        with db.batch(processor.store):
            for item in chunk:
                if item.problem is not None:
                    result = not_understood(item.problem)
                    log.warning("%s: not understood: %s (kept)", item.label, item.problem)
                else:
                    result = processor.message(
                        item.data,
                        label=item.label,
                        envelope_recipient=envelope if item.label == "stdin" else None,
                    )
                report.add(item.label, result)
                if result.understood and item.done is not None:
                    to_file.append(item)
                elif not result.understood and item.label == "stdin" and keep is not None:
                    _keep(keep, item.data)
                    report.kept += 1
                    log.warning("stdin: kept in %s", keep)
        for item in to_file:
            assert item.done is not None
            item.done()


def _keep(maildir: Path, data: bytes) -> None:
    """Deliver a message not understood into ``maildir``/new (created), for a person."""
    box = mailbox.Maildir(maildir, create=True)
    try:
        box.add(data)
    finally:
        box.close()


def run_inbound(
    config: Config,
    store: Store,
    paths: Sequence[Path],
    now: datetime,
    *,
    keep: Path | None = None,
) -> InboundReport:
    """Read ``paths`` (or, with none, the ``[bounces.imap]`` mailbox) and apply what came back.

    ``keep``: a Maildir where a message read from stdin that is not understood is kept
    (an MTA pipe has nowhere else to leave it). Raises ``ConfigError`` without paths when
    no mailbox is configured, ``InputError`` for a path or mailbox that cannot be read.
    """
    processor = Processor(config, store, now)
    report = InboundReport()
    if paths:
        for path in paths:
            process_items(processor, iter_path(path), report, keep=keep)
        return report
    imap = config.bounces.imap if config.bounces else None
    if imap is None:
        raise ConfigError(
            f"{config.path}: [bounces.imap]: the section is missing",
            hint="name a Maildir, mbox or message file, or '-' for stdin",
        )
    with ImapMailbox(imap, base_dir=config.base_dir) as box:
        process_items(processor, box, report)
    return report


def poll_configured(config: Config, store: Store, now: datetime) -> str | None:
    """``schedule``'s hook: read the ``[bounces.imap]`` mailbox if one is configured.

    Returns the summary line, or None when nothing is configured. A mailbox that cannot be
    read is logged and never fails the build it runs next to.
    """
    if config.bounces is None or config.bounces.imap is None:
        return None
    try:
        report = run_inbound(config, store, (), now)
    except KcrushError as e:
        log.warning("inbound: %s", e)
        return None
    summary = report.summary()
    log.info("inbound: %s", summary)
    return summary
