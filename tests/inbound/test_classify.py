"""Classifying returned mail: the shapes real MTAs send, ARF, mailto, auto-replies, bad input.

``classify`` is pure (bytes and the secret in, a verdict out), so these tests run it on
messages built as each system writes them (tests/mail_shapes.py). Which of the shapes
``flufl.bounce`` recognises on its own is checked too, next to the strict RFC 3464 path.
"""

from __future__ import annotations

import email
from collections.abc import Callable

import pytest
from flufl.bounce import all_failures

from kcrush_feeds.inbound.classify import MAX_MESSAGE, classify
from kcrush_feeds.tokens import sign, sign_delivery, verify_delivery, verp_sender
from tests.support import mail_shapes as shapes

SECRET = b"test-secret-0123456789abcdef"
TOKEN = sign_delivery(SECRET, 3, 17)
VERP = verp_sender("bounces@kcrush.com", TOKEN)
RCPT = "reader@example.org"

# (shape, builder, the path that reads it, status code found)
HARD: list[tuple[str, Callable[[str, str], bytes], str, str]] = [
    ("postfix", shapes.postfix, "rfc3464", "5.1.1"),
    ("exim", shapes.exim, "rfc3464", "5.1.1"),
    ("exim-plain", shapes.exim_plain, "flufl.bounce", "5.1.1"),
    ("sendmail", shapes.sendmail, "rfc3464", "5.1.1"),
    ("exchange", shapes.exchange, "rfc3464", "5.5.0"),
    ("gmail", shapes.gmail, "rfc3464", "5.1.1"),
    ("yahoo", shapes.yahoo, "flufl.bounce", ""),
]


def test_verp_token_is_short_signed_and_names_the_delivery() -> None:
    token = sign_delivery(SECRET, 999_999_999_999, 999_999_999_999)
    local = verp_sender("bounces@kcrush.com", token).partition("@")[0]
    assert len(local.encode()) <= 64
    assert verify_delivery(SECRET, token) == (999_999_999_999, 999_999_999_999)
    assert verify_delivery(SECRET, TOKEN.upper()) == (3, 17)  # a case-folding MTA
    assert f"bounces+{TOKEN}@kcrush.com" == VERP


@pytest.mark.parametrize(("shape", "build", "path", "status"), HARD, ids=[h[0] for h in HARD])
def test_hard_bounces_of_each_mta(
    shape: str, build: Callable[[str, str], bytes], path: str, status: str
) -> None:
    raw = build(VERP, RCPT)
    verdict = classify(raw, SECRET)
    assert verdict.kind == "hard", verdict
    assert verdict.delivery == (3, 17)
    assert verdict.detector == path
    assert verdict.status_code == status
    assert verdict.recipient == RCPT
    assert verdict.diagnostic  # the remote server's words are kept
    # flufl.bounce alone finds the failing recipient in every one of these shapes.
    temporary, permanent = all_failures(email.message_from_bytes(raw))
    assert permanent == {RCPT.encode()} and not temporary


@pytest.mark.parametrize("build", [shapes.postfix, shapes.exim, shapes.sendmail, shapes.gmail])
def test_failed_with_a_4xx_status_is_a_soft_bounce(build: Callable[..., bytes]) -> None:
    raw = build(VERP, RCPT, status="4.2.2")
    verdict = classify(raw, SECRET)
    assert (verdict.kind, verdict.status_code, verdict.delivery) == ("soft", "4.2.2", (3, 17))
    # flufl.bounce calls any "failed" permanent: only the RFC 3464 reading tells them apart.
    assert all_failures(email.message_from_bytes(raw))[1] == {RCPT.encode()}


def test_a_delayed_warning_is_ignored() -> None:
    verdict = classify(shapes.gmail(VERP, RCPT, status="4.4.1", action="delayed"), SECRET)
    assert verdict.kind == "warning" and verdict.understood
    assert "not a failure" in verdict.reason


def test_arf_complaint_by_the_verp_address() -> None:
    verdict = classify(shapes.arf(VERP, RCPT), SECRET)
    assert (verdict.kind, verdict.delivery, verdict.detector) == ("complaint", (3, 17), "arf")


def test_arf_complaint_to_the_plain_address_by_the_list_unsubscribe_token() -> None:
    token = sign(SECRET, "unsubscribe", RCPT)
    header = (
        f"<https://www.kcrush.com/newsletter/unsubscribe?token={token}>, "
        f"<mailto:unsubscribe@kcrush.com?subject=unsubscribe-{token}>"
    )
    verdict = classify(shapes.arf("fbl@kcrush.com", RCPT, header), SECRET)
    assert (verdict.kind, verdict.email, verdict.delivery) == ("complaint", RCPT, None)


def test_arf_of_another_type_and_with_a_tampered_token_change_nothing() -> None:
    other = classify(shapes.arf(VERP, RCPT, feedback="not-spam"), SECRET)
    assert other.kind == "unknown" and "not-spam" in other.reason
    token = sign(SECRET, "unsubscribe", RCPT)
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    header = f"<mailto:unsubscribe@kcrush.com?subject=unsubscribe-{forged}>"
    tampered = classify(shapes.arf("fbl@kcrush.com", RCPT, header), SECRET)
    assert tampered.kind == "unknown" and "does not verify" in tampered.reason


@pytest.mark.parametrize("in_body", [False, True], ids=["subject", "body"])
def test_mailto_unsubscribe(in_body: bool) -> None:
    verdict = classify(shapes.mailto(sign(SECRET, "unsubscribe", RCPT), in_body=in_body), SECRET)
    assert (verdict.kind, verdict.email) == ("unsubscribe", RCPT)


@pytest.mark.parametrize("style", ["rfc3834", "outlook", "vacation", "x-autoreply"])
def test_auto_replies_are_ignored_even_when_they_quote_a_token(style: str) -> None:
    verdict = classify(shapes.auto_reply("newsletter@kcrush.com", style), SECRET)
    assert verdict.kind == "auto_reply"


def _forged_token() -> str:
    return "d3-17-" + "a" * 24


BAD: list[tuple[str, Callable[[], bytes], str]] = [
    ("malformed", lambda: b"this is not a message at all, just a line\r\n", "malformed"),
    ("empty", lambda: b"", "empty"),
    ("10 MB", lambda: shapes.postfix(VERP, RCPT) + b"x" * (MAX_MESSAGE + 1), "too large"),
    (
        "no recipient",
        lambda: (
            shapes.postfix(VERP, RCPT)
            .replace(b"Final-Recipient: rfc822; reader@example.org\r\n", b"")
            .replace(b"Original-Recipient: rfc822;reader@example.org\r\n", b"")
            .replace(b"Action: failed\r\n", b"")
        ),
        "no recognisable recipient",
    ),
    (
        "forged token",
        lambda: shapes.postfix(verp_sender("bounces@kcrush.com", _forged_token()), RCPT),
        "does not verify",
    ),
    (
        "tampered token",
        lambda: shapes.postfix(VERP.replace("d3-17-", "d3-18-"), RCPT),
        "does not verify",
    ),
    ("no token", lambda: shapes.postfix("bounces@kcrush.com", RCPT), "no signed envelope"),
    (
        "non-bounce",
        lambda: b"From: a@example.org\r\nTo: b@kcrush.com\r\nSubject: hello\r\n\r\nHi!\r\n",
        "not a bounce",
    ),
    (
        "non-UTF-8",
        lambda: (
            b"From: \xff\xfe@\xc0.org\r\nSubject: \xe9t\xe9 \x80\r\n"
            b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe\xfd\x00\x81\r\n"
        ),
        "not a bounce",
    ),
    (
        "truncated MIME",
        lambda: shapes.postfix(VERP, RCPT).rsplit(b"--4F2A12345", 1)[0][:-200],
        "truncated",
    ),
]


@pytest.mark.parametrize(("name", "build", "reason"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_not_understood_with_a_clear_reason(
    name: str, build: Callable[[], bytes], reason: str
) -> None:
    verdict = classify(build(), SECRET)
    assert verdict.kind == "unknown"
    assert reason in verdict.reason
    assert verdict.delivery is None and verdict.email is None
    assert "\n" not in verdict.reason
