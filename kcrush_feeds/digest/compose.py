"""Compose the digest email: Jinja templates -> inlined HTML + plain text -> RFC 5322 bytes.

Built for speed by design. Everything that is the same for all subscribers who see the same
items (the subject, both bodies with their CSS inlined, their quoted-printable encoding, the
MIME frame) is prepared once per distinct selection of items. The templates are rendered
with *slots* (random placeholders such as ``kcfslotemail<nonce>x``) where the per-subscriber
bits go (name, address, signed links). Each body is quoted-printable encoded once, in
segments cut at the slots; per subscriber only the short slot values are encoded and joined
in between, each framed by QP soft line breaks (``=`` CRLF, which decoders remove), so no
line exceeds 76 characters and the body decodes exactly to the rendered text with the
values in place. Assembling a message is then a few joins of bytes, not an ``EmailMessage``
per subscriber.

Headers and quoted-printable come from the one mail writer, ``digest.mime``.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import css_inline
import jinja2
from jinja2.exceptions import SecurityError

from kcrush_feeds import templating
from kcrush_feeds.config import Config
from kcrush_feeds.dates import local_date, long_date
from kcrush_feeds.digest import clip, utm
from kcrush_feeds.digest.editing import Editorial, apply
from kcrush_feeds.digest.mime import address_header, fold_header, header_text, part_headers, qp
from kcrush_feeds.errors import ConfigError, KcrushError
from kcrush_feeds.model import Digest, DigestItem, Subscriber, sections_of
from kcrush_feeds.text import truncate
from kcrush_feeds.tokens import sign
from kcrush_feeds.weeks import period_bounds

UNSUBSCRIBE_PATH = "/unsubscribe"
PREFERENCES_PATH = "/preferences"
# Slot names: what differs per subscriber. Templates see them as subscriber.<name> or as
# top-level <name>; the value is substituted after rendering.
SLOTS = ("greeting_name", "name", "email", "unsubscribe_url", "preferences_url")
# A random part, drawn when this process starts, after every record, note and template it
# renders was written: text from the store can never spell a slot, so it is always shown as
# written and never filled with a subscriber's address or links. (The slot texts never
# reach a message: every one is replaced.)
_SLOT_NONCE = secrets.token_hex(12)
_SLOT_TEXT = {name: f"kcfslot{name.replace('_', '')}{_SLOT_NONCE}x" for name in SLOTS}
_SLOT_RE = re.compile("|".join(re.escape(text) for text in _SLOT_TEXT.values()))
_SLOT_BY_TEXT = {text: name for name, text in _SLOT_TEXT.items()}
_SOFT_BREAK = b"=\r\n"
_BLANK_LINES_RE = re.compile(r"\n{3,}")


class TemplateError(KcrushError):
    """An email template cannot be loaded or rendered (names the file and line)."""


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    subscriber_id: int
    recipient: str  # the envelope recipient (RCPT TO)
    message_id: str  # with angle brackets, as in the header
    data: bytes  # the whole message, RFC 5322, CRLF line ends, 7-bit


@dataclass(frozen=True, slots=True)
class SectionView:
    """A section as templates see it: ``section.title``, ``section.items``."""

    title: str
    items: tuple[DigestItem, ...]


@dataclass(frozen=True, slots=True)
class RenderedDigest:
    """One subscriber's digest as text (for ``preview``): subject, plain text, HTML."""

    subject: str
    text: str
    html: str
    html_bytes: int = 0  # of the HTML part as it goes out (the clip guard's measure)
    cut: tuple[clip.MoreLink, ...] = ()  # sections cut to stay under digest.max_html_bytes


# --- bodies encoded once ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Body:
    """A body encoded once: QP segments with slot names between them."""

    segments: tuple[bytes, ...]  # len(slots) + 1
    slots: tuple[str, ...]

    @classmethod
    def encode(cls, text: str) -> _Body:
        segments: list[bytes] = []
        slots: list[str] = []
        start = 0
        for match in _SLOT_RE.finditer(text):
            segments.append(qp(text[start : match.start()]))
            slots.append(_SLOT_BY_TEXT[match.group()])
            start = match.end()
        segments.append(qp(text[start:]))
        return cls(tuple(segments), tuple(slots))

    def fill(self, values: Mapping[str, bytes]) -> bytes:
        """The encoded body with each slot's (already encoded) value in place."""
        if not self.slots:
            return self.segments[0]
        parts = [self.segments[0]]
        for slot, segment in zip(self.slots, self.segments[1:], strict=True):
            parts += (_SOFT_BREAK, values[slot], _SOFT_BREAK, segment)
        return b"".join(parts)


# --- templates ---------------------------------------------------------------------------


def _span_label(items: tuple[DigestItem, ...], tz: Any) -> str:
    """When the stories were published, as the intro says it: "from May 2, 2023 to
    February 26, 2024", or "on February 26, 2024". Not "this week": a first digest (or
    one after a pause) gathers older stories, and the mail must not say otherwise."""
    if not items:
        return ""
    oldest = long_date(min(item.published for item in items), tz)
    newest = long_date(max(item.published for item in items), tz)
    return f"on {newest}" if oldest == newest else f"from {oldest} to {newest}"


def template_dirs(config: Config) -> list[Path]:
    """Where templates are looked up, first match wins: the configured directory, if any."""
    digest = config.require_digest()
    if digest.templates_dir is None:
        return []
    directory = config.resolve(digest.templates_dir)
    if not directory.is_dir():
        raise ConfigError(
            f"{config.path}: digest.templates_dir: {directory} is not a directory",
            hint="create it (copy templates/email/ from 'kcrush-feeds init'), or remove the key",
        )
    return [directory]


def make_environment(config: Config) -> tuple[jinja2.Environment, jinja2.Environment]:
    """(HTML environment with autoescaping, text environment), both StrictUndefined; the
    configured templates directory first, the built-in templates for any file it lacks."""
    templates = templating.loader("templates/email", template_dirs(config))
    tz = config.site.tz
    envs = []
    for autoescape in (True, False):
        env = templating.environment(templates, autoescape=autoescape, keep_trailing_newline=True)
        env.filters["shortdate"] = lambda moment: local_date(moment, tz)
        env.filters["longdate"] = lambda moment: long_date(moment, tz)
        envs.append(env)
    return envs[0], envs[1]


def _render(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], source: str | None = None
) -> str:
    try:
        template = env.from_string(source) if source is not None else env.get_template(name)
        return template.render(context)
    except jinja2.TemplateSyntaxError as e:
        raise TemplateError(f"{e.filename or name}:{e.lineno}: {e.message}") from e
    except jinja2.UndefinedError as e:
        raise TemplateError(
            f"{name}: {e.message}", hint="see docs/digest.md for the names templates can use"
        ) from e
    except jinja2.TemplateNotFound as e:
        raise TemplateError(f"{name}: template not found") from e
    except SecurityError as e:
        raise TemplateError(f"{name}: not allowed in a template: {e}") from e


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Everything shared by the subscribers who see the same items."""

    subject: str
    head: bytes  # Subject and the MIME headers, after the per-subscriber ones
    text_open: bytes  # boundary and part headers before the text body
    text: _Body
    html_open: bytes
    html: _Body
    close: bytes


class DigestComposer:
    """Composes ``digest`` for one subscriber after another, rendering once per selection."""

    def __init__(
        self,
        config: Config,
        digest: Digest,
        *,
        now: datetime,
        editorial: Editorial | None = None,
        proof_url: str | None = None,
        from_addr: str | None = None,
    ) -> None:
        """``editorial``: the editor's note, subject, pins and drops, applied here.
        ``proof_url``: compose a proof for the editors (a banner with this approve link);
        ``from_addr``: another From (proofs come from ``subscriptions.from``)."""
        self.config = config
        self.editorial = editorial or Editorial()
        self.digest = apply(digest, self.editorial).digest if editorial else digest
        self.now = now
        self.proof_url = proof_url
        # What the clip guard did, per distinct selection (for preview and send to report).
        self.fitted: dict[tuple[str, ...], clip.Fitted] = {}
        settings = config.require_digest()
        subscriptions = config.require_subscriptions()
        self._secret = subscriptions.secret()
        self._base = subscriptions.base_url.rstrip("/")
        self._tz = config.site.tz
        self._html_env, self._text_env = make_environment(config)
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        site_host = urlsplit(config.site.url).hostname or "localhost"
        self._host = site_host
        self._tagger = utm.Tagger.from_config(config, digest.period)
        from_name, from_addr = parseaddr(from_addr or settings.from_addr)
        self._from_domain = from_addr.rpartition("@")[2] or site_host
        bounces = config.bounces
        self._unsubscribe_mailto = (
            parseaddr(bounces.unsubscribe_address)[1]
            if bounces is not None and bounces.unsubscribe_address
            else f"unsubscribe@{self._from_domain}"
        )
        list_id = settings.list_id or (
            f"{config.site.title} Weekly <weekly.{site_host.removeprefix('www.')}>"
        )
        head = [
            fold_header("Date", format_datetime(now.astimezone(self._tz).replace(microsecond=0))),
            address_header("From", from_name, from_addr),
        ]
        self._common_head = b"".join(head)
        after_to = []
        if settings.reply_to:
            reply_name, reply_addr = parseaddr(settings.reply_to)
            after_to.append(address_header("Reply-To", reply_name, reply_addr))
        self._after_to = b"".join(after_to)
        self._list_id = fold_header("List-Id", list_id)
        # The archive (issue 13): the issue's public page, and List-Archive (RFC 2369).
        archive = config.archive
        self._archive_base = None if archive is None else archive.base_url.rstrip("/")
        if self._archive_base is not None:
            self._list_id += fold_header("List-Archive", f"<{self._archive_base}/>")
        self._cache: dict[tuple[str, ...], _Prepared | None] = {}

    # --- per selection -----------------------------------------------------------------

    def _context(
        self, items: tuple[DigestItem, ...], more: tuple[clip.MoreLink, ...] = ()
    ) -> dict[str, Any]:
        config = self.config
        start, _ = period_bounds(self.digest.period, self._tz)
        titles = [item.title for item in items]
        preheader = " · ".join(titles[:3]) + (
            f" and {len(titles) - 3} more" if len(titles) > 3 else ""
        )
        slots = {name: _SLOT_TEXT[name] for name in SLOTS}
        return {
            "site": {
                "title": config.site.title,
                "url": config.site.url,
                "description": config.site.description,
                "language": config.site.language,
                "url_label": urlsplit(config.site.url).netloc,
                "image": config.site.image,
            },
            "digest": self.digest,
            "period": self.digest.period,
            "week_label": f"Week of {long_date(start, self._tz)}",
            "span_label": _span_label(items, self._tz),
            "items": items,
            "sections": [
                SectionView(title, tuple(section_items))
                for title, section_items in sections_of(items)
            ],
            "preheader": truncate(preheader, 150),
            "feeds_url": config.feeds.base_url,
            # "View in browser": None without [archive], and in a proof (the page exists
            # only once the digest went out); templates test it with {% if %}.
            "archive_url": None
            if self._archive_base is None or self.proof_url
            else f"{self._archive_base}/{self.digest.period}/",
            "subscriber": slots,
            "unsubscribe_url": slots["unsubscribe_url"],
            "preferences_url": slots["preferences_url"],
            "note": self.editorial.note,
            "proof": {"approve_url": self.proof_url} if self.proof_url else None,
            "more": more,
        }

    def _subject(self, context: Mapping[str, Any]) -> str:
        if self.editorial.subject:
            subject = header_text(self.editorial.subject)
        else:
            source = self.config.require_digest().subject
            subject = header_text(_render(self._text_env, "subject.txt", context, source))
        return f"[Proof] {subject}" if self.proof_url else subject

    def _render_html(self, items: tuple[DigestItem, ...], more: tuple[clip.MoreLink, ...]) -> str:
        context = self._context(items, more)
        context["subject"] = self._subject(context)
        html = _render(self._html_env, "digest.html", context)
        try:
            html = self._inliner.inline(html)
        except ValueError as e:
            raise TemplateError(f"digest.html: cannot inline its CSS: {e}") from e
        return self._tagger.html(html.replace("\r\n", "\n"))

    def _render_selection(self, items: tuple[DigestItem, ...]) -> tuple[str, str, str, clip.Fitted]:
        """Subject, text and HTML of a selection, cut by the clip guard if need be."""
        fitted = clip.fit(
            items,
            self._render_html,
            self.config.require_digest().max_html_bytes,
            url=self._more_url(),
            slots=lambda html: len(_SLOT_RE.findall(html)),
        )
        context = self._context(fitted.items, fitted.more)
        subject = self._subject(context)
        context["subject"] = subject
        text = self._tagger.text(_render(self._text_env, "digest.txt", context))
        self.fitted[tuple(item.record_id for item in items)] = fitted
        return subject, _tidy_text(text), fitted.html, fitted

    def _more_url(self) -> str:
        """Where a cut section's link goes: the archive issue once there is an archive,
        else the site."""
        archive = getattr(self.config, "archive", None)  # [archive] lands with the archive
        base = getattr(archive, "base_url", None)
        if isinstance(base, str):
            return f"{base.rstrip('/')}/{self.digest.period}/"
        return self.config.site.url

    def _prepare(self, items: tuple[DigestItem, ...]) -> _Prepared:
        subject, text, html, _ = self._render_selection(items)
        selection = hashlib.blake2b(
            "\n".join(i.record_id for i in items).encode(), digest_size=8
        ).hexdigest()
        # "=_" cannot occur in quoted-printable text, so the boundary never clashes.
        boundary = f"=_kcf_{self.digest.period}_{selection}"
        head = fold_header("Subject", subject)
        mime = (
            b"MIME-Version: 1.0\r\n"
            b'Content-Type: multipart/alternative; boundary="' + boundary.encode() + b'"\r\n\r\n'
            b"This is a multi-part message in MIME format.\r\n"
        )
        part = b"\r\n--" + boundary.encode() + b"\r\n"
        return _Prepared(
            subject=subject,
            head=head + mime,
            text_open=part + part_headers("plain") + b"\r\n",
            text=_Body.encode(text),
            html_open=part + part_headers("html") + b"\r\n",
            html=_Body.encode(html),
            close=b"\r\n--" + boundary.encode() + b"--\r\n",
        )

    def _prepared(self, subscriber: Subscriber) -> _Prepared | None:
        items = self.digest.items_for(subscriber.categories)
        if not items:
            return None
        key = tuple(item.record_id for item in items)
        prepared = self._cache.get(key)
        if prepared is None:
            prepared = self._cache[key] = self._prepare(items)
        return prepared

    # --- per subscriber ----------------------------------------------------------------

    def links(self, subscriber: Subscriber) -> dict[str, str]:
        """The subscriber's signed unsubscribe and preferences URLs and the unsubscribe token."""
        unsubscribe = sign(self._secret, "unsubscribe", subscriber.email)
        preferences = sign(self._secret, "preferences", subscriber.email)
        return {
            "unsubscribe_token": unsubscribe,
            "unsubscribe_url": f"{self._base}{UNSUBSCRIBE_PATH}?token={unsubscribe}",
            "preferences_url": f"{self._base}{PREFERENCES_PATH}?token={preferences}",
        }

    def _values(self, subscriber: Subscriber, links: Mapping[str, str]) -> dict[str, str]:
        name = header_text(subscriber.name)
        return {
            "greeting_name": name or "there",
            "name": name,
            "email": subscriber.email,
            "unsubscribe_url": links["unsubscribe_url"],
            "preferences_url": links["preferences_url"],
        }

    def message_id(self, subscriber: Subscriber) -> str:
        """``<digest-PERIOD.sID.HASH@host>``: the same on every retry of this delivery
        (``<proof-...>`` for a proof)."""
        seed = f"{self.digest.id}|{self.digest.period}|{subscriber.id}|{subscriber.key}"
        kind = "digest"
        if self.proof_url:
            # Each proof is a new message (its link names the revision): a client that
            # drops a repeated Message-ID must still show the proof of an edit.
            seed, kind = f"{seed}|{self.proof_url}", "proof"
        digest = hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
        return f"<{kind}-{self.digest.period}.s{subscriber.id}.{digest}@{self._host}>"

    def compose(self, subscriber: Subscriber) -> OutgoingMessage | None:
        """The finished message for ``subscriber``; None when nothing in the digest is for
        them (their categories have nothing new)."""
        prepared = self._prepared(subscriber)
        if prepared is None:
            return None
        links = self.links(subscriber)
        values = self._values(subscriber, links)
        text_values = {k: qp(v) for k, v in values.items()}
        html_values = {k: qp(html_lib.escape(v, quote=True)) for k, v in values.items()}
        message_id = self.message_id(subscriber)
        token = links["unsubscribe_token"]
        data = b"".join(
            (
                self._common_head,
                address_header("To", subscriber.name, subscriber.email),
                self._after_to,
                b"Message-ID: " + message_id.encode("ascii") + b"\r\n",
                self._list_id,
                b"List-Unsubscribe: <" + links["unsubscribe_url"].encode("ascii") + b">,\r\n"
                b" <mailto:"
                + self._unsubscribe_mailto.encode("ascii")
                + b"?subject=unsubscribe-"
                + token.encode("ascii")
                + b">\r\n",
                b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
                prepared.head,
                prepared.text_open,
                prepared.text.fill(text_values),
                prepared.html_open,
                prepared.html.fill(html_values),
                prepared.close,
            )
        )
        return OutgoingMessage(subscriber.id, subscriber.email, message_id, data)

    def render(self, subscriber: Subscriber) -> RenderedDigest | None:
        """The subscriber's subject, text and HTML as strings (for ``preview``)."""
        items = self.digest.items_for(subscriber.categories)
        if not items:
            return None
        subject, text, html, fitted = self._render_selection(items)
        values = self._values(subscriber, self.links(subscriber))
        html = _SLOT_RE.sub(lambda m: html_lib.escape(values[_SLOT_BY_TEXT[m.group()]]), html)
        return RenderedDigest(
            subject,
            _SLOT_RE.sub(lambda m: values[_SLOT_BY_TEXT[m.group()]], text),
            html,
            len(html.encode("utf-8")),
            fitted.more,
        )


def _tidy_text(text: str) -> str:
    """Line ends normalised, trailing spaces and runs of blank lines removed."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return _BLANK_LINES_RE.sub("\n\n", "\n".join(lines)).strip("\n") + "\n"


def preview_subscriber(
    email: str = "reader@example.com", name: str = "Reader", categories: Iterable[str] | None = None
) -> Subscriber:
    """A stand-in subscriber for a preview when no real one is named."""
    return Subscriber(0, email, name, "active", None if categories is None else tuple(categories))
