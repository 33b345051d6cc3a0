"""What one returned message is: a pure function of its bytes (and the signing secret).

The order matters, and says why:

1. ``multipart/report`` first, because it is the one shape with a standard:
   ``report-type=feedback-report`` is an ARF complaint (RFC 5965) and
   ``report-type=delivery-status`` a DSN (RFC 3464), read strictly with the stdlib
   ``email`` package: each per-recipient block's ``Action`` and ``Status`` decide
   (failed + 5.x.x hard, failed + 4.x.x soft, delayed/delivered/relayed only a warning).
2. A message that looks like a bounce (from MAILER-DAEMON or postmaster, an
   ``X-Failed-Recipients`` header, a delivery-failure subject) but is no standard DSN goes
   to ``flufl.bounce``, the bounce detectors of GNU Mailman, which know the ad-hoc shapes
   of many MTAs (old Exim, Yahoo, qmail, Microsoft...).
3. Auto-replies (RFC 3834 ``Auto-Submitted``, ``X-Autoreply``, out-of-office subjects)
   are ignored. They come before 4 because an out-of-office reply often quotes the digest,
   List-Unsubscribe token and all.
4. A mail carrying ``unsubscribe-TOKEN`` (the mailto of ``List-Unsubscribe``) in its
   subject or body is an unsubscribe request when the token verifies.

Which delivery a bounce or complaint is about comes only from a signed token: the VERP
envelope address the report was sent to, or (a feedback loop that reports to the plain
address) the List-Unsubscribe token of the attached original. A token that does not verify
makes the message "not understood"; nothing ever trusts a recipient address in a header.
"""

from __future__ import annotations

import email
import logging
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import errors as email_errors
from email.header import decode_header, make_header
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from typing import Literal

from flufl.bounce import all_failures

from kcrush_feeds.tokens import TokenError, delivery_tokens, verify, verify_delivery

# flufl.bounce logs a detector's exception with its traceback before re-raising it; the
# exception is caught below and reported in one line, so its own log stays quiet.
logging.getLogger("flufl.bounce").addHandler(logging.NullHandler())
logging.getLogger("flufl.bounce").propagate = False

Kind = Literal["hard", "soft", "warning", "complaint", "unsubscribe", "auto_reply", "unknown"]
MAX_MESSAGE = 10_000_000  # bytes: larger is no bounce we would act on (a 10 MB attachment)
_STATUS_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_SMTP_CODE_RE = re.compile(r"\b([45])[0-9][0-9][ -]")
_UNSUBSCRIBE_RE = re.compile(r"unsubscribe-([A-Za-z0-9_-]{4,600}\.[A-Za-z0-9_-]{8,64})")
_URL_TOKEN_RE = re.compile(r"[?&]token=([A-Za-z0-9_-]{4,600}\.[A-Za-z0-9_-]{8,64})")
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|delivery (status notification|failure|has failed|report)|returned mail|"
    r"failure notice|mail delivery failed|could not be delivered|nondeliver|"
    r"delivery problem|mail system error",
    re.IGNORECASE,
)
_DAEMONS = ("mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon", "mdaemon")
_AUTO_SUBJECT_RE = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[- ]?(reply|response|antwort)|"
    r"auto:|vacation|away from (the )?office|abwesenheit|r[ée]ponse automatique|absent)",
    re.IGNORECASE,
)
# Where the mail system writes the address a message was delivered to: the VERP token.
_RECIPIENT_HEADERS = (
    "Delivered-To",
    "X-Original-To",
    "Envelope-To",
    "X-Envelope-To",
    "Original-Recipient",
    "X-Original-Recipient",
    "To",
)
_TEXT_SCAN = 65536  # characters of a body searched for tokens and codes


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a message (or a webhook event) says, and about whom."""

    kind: Kind
    reason: str = ""  # one line: why not understood, or what it is
    delivery: tuple[int, int] | None = None  # (digest id, subscriber id) from a VERP token
    email: str | None = None  # from a verified List-Unsubscribe token
    message_id: str | None = None  # webhooks only: our Message-ID, looked up in the ledger
    status_code: str = ""
    diagnostic: str = ""
    reported_at: datetime | None = None
    detector: str = ""  # rfc3464, flufl.bounce, arf, mailto, rfc3834, or a webhook name
    recipient: str = ""  # the failed recipient the report names, for the log

    @property
    def understood(self) -> bool:
        return self.kind != "unknown"


def unknown(reason: str) -> Verdict:
    return Verdict("unknown", reason)


def parse(raw: bytes) -> Message:
    """The message as the stdlib ``email`` package reads it (compat32, as flufl.bounce wants)."""
    return email.message_from_bytes(raw)


def classify(raw: bytes, secret: bytes, *, envelope_recipient: str | None = None) -> Verdict:
    """What ``raw`` is. ``envelope_recipient``: the address the MTA delivered it to, when it
    says so (Postfix's ``$ORIGINAL_RECIPIENT`` for a pipe)."""
    if len(raw) > MAX_MESSAGE:
        return unknown(f"too large ({len(raw):,} bytes, over {MAX_MESSAGE:,}): not read")
    if not raw.strip():
        return unknown("empty message")
    msg = parse(raw)
    if not msg.keys():
        return unknown("malformed: no header block")
    if _truncated(msg):
        return unknown("truncated: a MIME part is never closed")
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type") or "").lower()
    if ctype == "multipart/report" and report_type == "feedback-report":
        return _arf(msg, secret, envelope_recipient)
    if ctype == "multipart/report" and report_type == "delivery-status":
        verdict = _dsn(msg)
        if verdict is not None:
            return _identify(verdict, msg, secret, envelope_recipient)
    if _looks_like_bounce(msg):
        verdict = _flufl(msg)
        if verdict is None:
            return unknown("looks like a bounce but names no recognisable recipient")
        if not verdict.understood:
            return verdict
        return _identify(verdict, msg, secret, envelope_recipient)
    if _auto_reply(msg):
        return Verdict("auto_reply", "an auto-reply (RFC 3834, out of office)", detector="rfc3834")
    return _unsubscribe(msg, secret)


# --- reading helpers ----------------------------------------------------------------------


def header(msg: Message, name: str) -> str:
    """A header as text, encoded words decoded, undecodable bytes replaced."""
    value = msg.get(name)
    if value is None:
        return ""
    try:
        return str(make_header(decode_header(str(value))))
    except (email_errors.HeaderParseError, LookupError, UnicodeError, ValueError):
        return str(value).encode("utf-8", "replace").decode("utf-8")


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_TRUNCATION = (email_errors.CloseBoundaryNotFoundDefect, email_errors.StartBoundaryNotFoundDefect)


def _truncated(msg: Message) -> bool:
    return any(isinstance(d, _TRUNCATION) for part in msg.walk() for d in part.defects)


def _text_of(msg: Message, limit: int = _TEXT_SCAN) -> str:
    """The decoded text/plain parts that are not the returned original, up to ``limit``."""
    chunks: list[str] = []
    size = 0
    for part in _own_parts(msg):
        if part.get_content_type() != "text/plain":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, "replace")
        except LookupError:
            text = payload.decode("utf-8", "replace")
        chunks.append(text[: limit - size])
        size += len(chunks[-1])
        if size >= limit:
            break
    return "\n".join(chunks)


def _own_parts(msg: Message) -> list[Message]:
    """The parts of ``msg`` itself, not descending into an attached message."""
    if not msg.is_multipart():
        return [msg]
    found: list[Message] = []
    for part in msg.get_payload():
        if not isinstance(part, Message):
            continue
        if part.get_content_maintype() == "message":
            continue
        found.extend(_own_parts(part) if part.is_multipart() else [part])
    return found


def _parts_of_type(msg: Message, ctype: str) -> list[Message]:
    return [part for part in msg.walk() if part.get_content_type() == ctype]


# --- DSN, strictly (RFC 3464) --------------------------------------------------------------


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    if isinstance(payload, str):  # some generators leave it as text: read it as blocks
        return [email.message_from_string(b) for b in re.split(r"\r?\n\s*\r?\n", payload) if b]
    return []


def _field(block: Message, name: str) -> str:
    return " ".join(header(block, name).split())


def _address(value: str) -> str:
    # "rfc822; user@example.com" -> user@example.com
    kind, sep, rest = value.partition(";")
    return parseaddr((rest if sep else kind).strip())[1]


def _dsn(msg: Message) -> Verdict | None:
    """The per-recipient verdict of a standard DSN; None when it has no recipient block."""
    found: list[Verdict] = []
    fallback_date = _date(header(msg, "Date"))
    for part in _parts_of_type(msg, "message/delivery-status"):
        blocks = _blocks(part)
        message_date = _date(_field(blocks[0], "Arrival-Date")) if blocks else None
        for block in blocks:
            action = _field(block, "Action").lower().split(" ")[0]
            if not action:
                continue
            status = _STATUS_RE.search(_field(block, "Status"))
            code = status.group(0) if status else ""
            diagnostic = _field(block, "Diagnostic-Code")
            kind_of_code, _, diagnostic_text = diagnostic.partition(";")
            diagnostic = (diagnostic_text if kind_of_code.strip().isalpha() else diagnostic).strip()
            recipient = _address(_field(block, "Original-Recipient")) or _address(
                _field(block, "Final-Recipient")
            )
            when = _date(_field(block, "Last-Attempt-Date")) or message_date or fallback_date
            kind: Kind
            if action in ("failed", "failure", "error"):
                kind = _failure_kind(code, diagnostic)
            elif action in ("delayed", "delivered", "relayed", "expanded"):
                kind = "warning"
            else:
                continue
            found.append(
                Verdict(
                    kind,
                    f"DSN: {action} {code}".strip(),
                    status_code=code,
                    diagnostic=diagnostic[:500],
                    reported_at=when,
                    detector="rfc3464",
                    recipient=recipient,
                )
            )
    if not found:
        return None
    for kind in ("hard", "soft", "warning"):
        for verdict in found:
            if verdict.kind == kind:
                if kind == "warning":
                    return Verdict(
                        "warning",
                        f"a delivery notice ({verdict.reason}), not a failure: ignored",
                        detector="rfc3464",
                        recipient=verdict.recipient,
                    )
                return verdict
    return None


# --- other bounce shapes (flufl.bounce) ----------------------------------------------------


def _looks_like_bounce(msg: Message) -> bool:
    sender = parseaddr(header(msg, "From"))[1].lower()
    return (
        sender.partition("@")[0] in _DAEMONS
        or bool(msg.get("X-Failed-Recipients"))
        or header(msg, "Return-Path").strip() == "<>"
        or bool(_BOUNCE_SUBJECT_RE.search(header(msg, "Subject")))
        or msg.get_content_type() == "multipart/report"
    )


def _flufl(msg: Message) -> Verdict | None:
    try:
        temporary, permanent = all_failures(msg)
    except Exception as e:
        # Heuristic detectors run on hostile input: whatever one of them trips over, the
        # message is "not understood", kept and logged, never a traceback that stops the run.
        return unknown(f"flufl.bounce could not read it ({type(e).__name__})")
    if not (temporary or permanent):
        return None
    recipient = next(iter(sorted(permanent or temporary))).decode("ascii", "replace")
    if not permanent:
        return Verdict(
            "warning",
            "a delay warning, not a failure: ignored",
            detector="flufl.bounce",
            recipient=recipient,
        )
    text = _text_of(msg)
    status = _STATUS_RE.search(text)
    code = status.group(0) if status and status.group(1) != "2" else ""
    line = _diagnostic_line(text)
    return Verdict(
        _failure_kind(code, line),
        f"bounce ({code or 'no status code'})",
        status_code=code,
        diagnostic=line,
        reported_at=_date(header(msg, "Date")),
        detector="flufl.bounce",
        recipient=recipient,
    )


def _failure_kind(status: str, diagnostic: str) -> Kind:
    """A failure with a 4.x.x status (or, with none, a 4xx reply) is soft; else hard."""
    if status:
        return "soft" if status.startswith("4") else "hard"
    reply = _SMTP_CODE_RE.search(diagnostic + " ")
    return "soft" if reply is not None and reply.group(1) == "4" else "hard"


def _diagnostic_line(text: str) -> str:
    for line in text.splitlines():
        if _SMTP_CODE_RE.search(line + " ") or _STATUS_RE.search(line):
            return " ".join(line.split())[:500]
    return ""


# --- who it is about -------------------------------------------------------------------------


def _token_candidates(msg: Message, envelope_recipient: str | None) -> list[str]:
    texts = [envelope_recipient or ""]
    texts += [str(v) for name in _RECIPIENT_HEADERS for v in (msg.get_all(name) or [])]
    seen: list[str] = []
    for text in texts:
        for token in delivery_tokens(text):
            if token not in seen:
                seen.append(token)
    return seen


def _verp(msg: Message, secret: bytes, envelope_recipient: str | None) -> tuple[int, int] | str:
    """The delivery the VERP address names, or why there is none."""
    candidates = _token_candidates(msg, envelope_recipient)
    if not candidates:
        return "no signed envelope address (bounces+TOKEN@): cannot tell which delivery"
    for token in candidates:
        try:
            return verify_delivery(secret, token)
        except TokenError:
            continue
    return "the envelope token does not verify (forged or tampered): nothing changed"


def _identify(
    verdict: Verdict, msg: Message, secret: bytes, envelope_recipient: str | None
) -> Verdict:
    if verdict.kind == "warning":
        return verdict
    delivery = _verp(msg, secret, envelope_recipient)
    if isinstance(delivery, str):
        return unknown(f"{verdict.kind} bounce of {verdict.recipient or '?'}: {delivery}")
    return _replace(verdict, delivery=delivery)


def _replace(verdict: Verdict, **changes: object) -> Verdict:
    return replace(verdict, **changes)  # type: ignore[arg-type]


# --- ARF complaints (RFC 5965) ----------------------------------------------------------------


def _arf(msg: Message, secret: bytes, envelope_recipient: str | None) -> Verdict:
    fields: Message | None = None
    for part in _parts_of_type(msg, "message/feedback-report"):
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            fields = payload[0]
        elif isinstance(payload, str):
            fields = email.message_from_string(payload)
    if fields is None:
        return unknown("a feedback report without its message/feedback-report part")
    feedback_type = _field(fields, "Feedback-Type").lower()
    if feedback_type not in ("abuse", "fraud"):
        return unknown(f"a feedback report of type {feedback_type or '(none)'}: not acted on")
    when = _date(_field(fields, "Arrival-Date")) or _date(header(msg, "Date"))
    base = Verdict(
        "complaint",
        f"ARF complaint ({feedback_type})",
        reported_at=when,
        detector="arf",
        recipient=_address(_field(fields, "Original-Rcpt-To")),
    )
    delivery = _verp(msg, secret, envelope_recipient)
    if not isinstance(delivery, str):
        return _replace(base, delivery=delivery)
    original = _original_headers(msg)
    if original is not None:
        attached = _verp(original, secret, None)
        if not isinstance(attached, str):
            return _replace(base, delivery=attached)
        for token in _list_unsubscribe_tokens(header(original, "List-Unsubscribe")):
            try:
                address = verify(secret, "unsubscribe", token)
            except TokenError:
                continue
            return _replace(base, email=address)
        if _list_unsubscribe_tokens(header(original, "List-Unsubscribe")):
            return unknown("complaint: the List-Unsubscribe token does not verify: nothing changed")
    return unknown(f"complaint: {delivery}; and no List-Unsubscribe token in the original")


def _original_headers(msg: Message) -> Message | None:
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return email.message_from_bytes(payload)
    return None


def _list_unsubscribe_tokens(value: str) -> list[str]:
    return _UNSUBSCRIBE_RE.findall(value) + _URL_TOKEN_RE.findall(value)


# --- auto-replies (RFC 3834) and mailto unsubscribes -------------------------------------------


def _auto_reply(msg: Message) -> bool:
    submitted = header(msg, "Auto-Submitted").strip().lower()
    precedence = header(msg, "Precedence").strip().lower()
    return (
        (bool(submitted) and submitted != "no")
        or bool(msg.get("X-Autoreply") or msg.get("X-Autorespond"))
        or precedence == "auto_reply"
        or bool(_AUTO_SUBJECT_RE.search(header(msg, "Subject")))
    )


def _unsubscribe(msg: Message, secret: bytes) -> Verdict:
    subject = header(msg, "Subject")
    tokens = _UNSUBSCRIBE_RE.findall(subject)
    if not tokens:
        tokens = _UNSUBSCRIBE_RE.findall(_text_of(msg))
    for token in tokens:
        try:
            address = verify(secret, "unsubscribe", token)
        except TokenError:
            continue
        return Verdict(
            "unsubscribe",
            "an unsubscribe request (List-Unsubscribe mailto)",
            email=address,
            reported_at=_date(header(msg, "Date")),
            detector="mailto",
        )
    if tokens:
        return unknown("an unsubscribe request whose token does not verify: nothing changed")
    if "unsubscribe" in subject.lower():
        return unknown("asks to unsubscribe but carries no token: for a person to read")
    return unknown("not a bounce, complaint, auto-reply or unsubscribe request")
