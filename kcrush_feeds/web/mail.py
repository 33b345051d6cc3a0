"""The mails ``serve`` sends: composed with the one mail writer, sent through the SMTP pool.

A confirmation (or "you are subscribed already") mail is a plain-text Jinja template from
``templates/web`` whose ``subject`` variable is the subject. It is written by
``digest.mime``, like the digest, and sent by ``delivery.smtp.SmtpPool`` with ``[smtp]``'s
rate limit and retries, after the answer went out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any, Protocol
from urllib.parse import urlsplit

import jinja2

from kcrush_feeds.config import Config
from kcrush_feeds.digest.mime import address_header, fold_header, raw_header, text_message
from kcrush_feeds.errors import KcrushError
from kcrush_feeds.model import Outcome, SendResult, Subscriber

log = logging.getLogger("kcrush_feeds.web.app")


class Mailer(Protocol):
    """Sends one message (RFC 5322 bytes) to one recipient; what became of it."""

    async def start(self) -> None: ...

    async def send(self, recipient: str, data: bytes) -> SendResult: ...

    async def aclose(self) -> None: ...


class SmtpMailer:
    """The digest's SMTP pool (``smtp.SmtpPool``), open while the server runs.

    The pool keeps a few connections, reconnects idle or dropped ones, and applies
    ``[smtp]``'s rate limit and retries, exactly as for the digest.
    """

    def __init__(self, config: Config) -> None:
        from kcrush_feeds.delivery.smtp import (  # local: only a running server needs SMTP
            SmtpPool,
            SmtpSettings,
        )

        settings = SmtpSettings.from_config(config.require_smtp(), base_dir=config.base_dir)
        # Transactional mail has its own address, in From and in the envelope.
        self._pool = SmtpPool(settings, sender=parseaddr(config.transactional_from)[1])

    async def start(self) -> None:
        await self._pool.__aenter__()

    async def send(self, recipient: str, data: bytes) -> SendResult:
        """The server's answer; a server that cannot be reached (or refuses us as a
        sender) is a temporary failure: the outbox retries it."""
        try:
            return await self._pool.send(recipient, data)
        except KcrushError as e:
            return SendResult(Outcome.DEFERRED, e.message, 1)
        except Exception as e:
            # Runs after the answer went out: nobody else would ever hear of this failure.
            log.exception("mail to %s not sent", recipient)
            return SendResult(Outcome.DEFERRED, f"{type(e).__name__}: {e}", 1)

    async def aclose(self) -> None:
        await self._pool.aclose()


def check_smtp_reachable(config: Config, *, timeout: float = 3.0) -> bool:
    """At start, once: can a TCP connection to ``[smtp]`` host:port be opened?

    Logs one warning when it cannot (confirmation mail would fail until it can) and
    returns False; the server starts all the same (the relay may come up later).
    """
    import socket

    smtp = config.require_smtp()
    try:
        with socket.create_connection((smtp.host, smtp.port), timeout=timeout):
            return True
    except OSError as e:
        log.warning(
            "the SMTP server %s:%d cannot be reached (%s): confirmation mail is not sent "
            "until it can",
            smtp.host,
            smtp.port,
            e.strerror or e,
        )
        return False


class Mails:
    """Composes the plain-text mails from their templates, as RFC 5322 bytes."""

    def __init__(
        self,
        env: jinja2.Environment,
        config: Config,
        *,
        list_name: str,
        now: Callable[[], datetime],
    ) -> None:
        self.env = env
        self.config = config
        self.list_name = list_name
        self.now = now

    def compose(self, template: str, to: Subscriber, **context: Any) -> bytes:
        """A plain-text mail from ``template`` (its ``subject`` variable is the subject)."""
        now = self.now()
        module = self.env.get_template(template).make_module(
            {
                "site": self.config.site,
                "list_name": self.list_name,
                "subscriber": to,
                **context,
            }
        )
        subject = str(getattr(module, "subject", self.list_name))
        digest = self.config.require_digest()
        headers = [address_header("From", *parseaddr(self.config.transactional_from))]
        headers.append(address_header("To", to.name, to.email))
        if digest.reply_to:
            headers.append(address_header("Reply-To", *parseaddr(digest.reply_to)))
        headers += [
            fold_header("Subject", subject),
            fold_header("Date", format_datetime(now)),
            raw_header("Message-ID", make_msgid(domain=urlsplit(self.config.site.url).hostname)),
            # RFC 3834: an automatic answer to a request, so vacation responders stay quiet.
            raw_header("Auto-Submitted", "auto-replied"),
        ]
        return text_message(headers, str(module).strip() + "\n")
