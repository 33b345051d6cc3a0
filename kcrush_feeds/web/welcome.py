"""The welcome mail: sent once after a subscriber confirms (``welcome.*`` templates).

``welcome.subject.txt``, ``welcome.txt`` and ``welcome.html`` live with the digest's
templates (``templates/email``, overridden by ``digest.templates_dir``). The mail comes
from ``subscriptions.from``, links the newest issue of the web archive when there is one,
and carries ``List-Unsubscribe`` (https and mailto) with the one-click header like the
digest. Its Message-ID is derived from the subscriber, so a retry is the same message.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

import css_inline

from kcrush_feeds.config import Config
from kcrush_feeds.digest.compose import TemplateError, make_environment
from kcrush_feeds.digest.mime import (
    address_header,
    alternative_message,
    fold_header,
    header_text,
    raw_header,
)
from kcrush_feeds.model import Subscriber
from kcrush_feeds.tokens import sign

_DAYS = {
    "mon": "Monday",
    "tue": "Tuesday",
    "wed": "Wednesday",
    "thu": "Thursday",
    "fri": "Friday",
    "sat": "Saturday",
    "sun": "Sunday",
}


class WelcomeMail:
    """Composes the welcome mail for one subscriber after another."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._html_env, self._text_env = make_environment(config)
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        subscriptions = config.require_subscriptions()
        self._secret = subscriptions.secret()
        self._base = subscriptions.base_url.rstrip("/")
        self._host = urlsplit(config.site.url).hostname or "localhost"
        self.sender = config.transactional_from
        digest = config.require_digest()
        first = digest.schedule.strip().lower().split()[0]
        self._day = _DAYS.get(first[:3], "week")
        self._list_id = digest.list_id or (
            f"{config.site.title} Weekly <weekly.{self._host.removeprefix('www.')}>"
        )

    def compose(
        self, subscriber: Subscriber, now: datetime, *, latest_issue_url: str | None
    ) -> bytes:
        """The whole message for ``subscriber`` (RFC 5322 bytes, CRLF, 7-bit)."""
        unsubscribe = sign(self._secret, "unsubscribe", subscriber.email)
        preferences = sign(self._secret, "preferences", subscriber.email)
        context: dict[str, Any] = {
            "site": self.config.site,
            "subscriber": subscriber,
            "latest_issue_url": latest_issue_url,
            "schedule_day": self._day,
            "unsubscribe_url": f"{self._base}/unsubscribe?token={unsubscribe}",
            "preferences_url": f"{self._base}/preferences?token={preferences}",
        }
        try:
            subject = header_text(
                self._text_env.get_template("welcome.subject.txt").render(context)
            )
            context["subject"] = subject
            text = self._text_env.get_template("welcome.txt").render(context)
            html = self._inliner.inline(self._html_env.get_template("welcome.html").render(context))
        except Exception as e:  # jinja's errors and the inliner's: name the template set
            raise TemplateError(f"welcome mail templates: {e}") from e
        seed = f"welcome|{subscriber.id}|{subscriber.key}"
        tag = hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
        from_domain = parseaddr(self.sender)[1].rpartition("@")[2] or self._host
        bounces = self.config.bounces
        mailto = (
            parseaddr(bounces.unsubscribe_address)[1]
            if bounces is not None and bounces.unsubscribe_address
            else f"unsubscribe@{from_domain}"
        )
        headers = [
            fold_header("Date", format_datetime(now.replace(microsecond=0))),
            address_header("From", *parseaddr(self.sender)),
            address_header("To", subscriber.name, subscriber.email),
        ]
        reply_to = self.config.require_digest().reply_to
        if reply_to:
            headers.append(address_header("Reply-To", *parseaddr(reply_to)))
        headers += [
            fold_header("Subject", subject),
            raw_header("Message-ID", f"<welcome.s{subscriber.id}.{tag}@{self._host}>"),
            fold_header("List-Id", self._list_id),
            b"List-Unsubscribe: <"
            + context["unsubscribe_url"].encode("ascii")
            + b">,\r\n <mailto:"
            + mailto.encode("ascii")
            + b"?subject=unsubscribe-"
            + unsubscribe.encode("ascii")
            + b">\r\n",
            raw_header("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            raw_header("Auto-Submitted", "auto-generated"),
        ]
        return alternative_message(
            headers, text.strip() + "\n", html, boundary=f"=_kcf_welcome_{tag}"
        )
