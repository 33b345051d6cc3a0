"""Signed tokens: round trip, tampering, other purposes and addresses, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kcrush_feeds.tokens import TokenError, sign, verify

SECRET = b"test-secret-0123456789abcdef"
NOW = datetime(2024, 2, 26, 17, 0, tzinfo=UTC)


def test_round_trip_gives_the_address_back_and_is_url_safe() -> None:
    token = sign(SECRET, "unsubscribe", "Minji.Kim@Example.com")
    assert verify(SECRET, "unsubscribe", token) == "minji.kim@example.com"
    assert verify(SECRET, "unsubscribe", token, email="MINJI.KIM@example.com")
    assert all(c.isalnum() or c in "-_." for c in token)
    # Deterministic, so a retried message carries the same links.
    assert token == sign(SECRET, "unsubscribe", "minji.kim@example.com")


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the MAC
        lambda t: "x" + t,  # the payload
        lambda t: t.replace(".", ""),  # the structure
        lambda t: t + "." + t,
        lambda t: "",
        lambda t: "%%%.%%%",
    ],
)
def test_a_tampered_token_is_refused(tamper: object) -> None:
    token = sign(SECRET, "unsubscribe", "minji.kim@example.com")
    with pytest.raises(TokenError):
        verify(SECRET, "unsubscribe", tamper(token))  # type: ignore[operator]


def test_a_token_for_another_address_purpose_or_secret_is_refused() -> None:
    token = sign(SECRET, "preferences", "minji.kim@example.com")
    other = sign(SECRET, "preferences", "jordan.lee@example.org")
    with pytest.raises(TokenError, match="another address"):
        verify(SECRET, "preferences", token, email="jordan.lee@example.org")
    with pytest.raises(TokenError):
        verify(SECRET, "unsubscribe", token)
    with pytest.raises(TokenError):
        verify(b"another-secret-0123456789", "preferences", token)
    # Swapping the payload of one token onto another's MAC breaks it.
    forged = other.split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(TokenError):
        verify(SECRET, "preferences", forged)


def test_confirm_tokens_expire() -> None:
    with pytest.raises(ValueError, match="must expire"):
        sign(SECRET, "confirm", "a@example.com")
    token = sign(SECRET, "confirm", "a@example.com", expires=NOW + timedelta(days=7))
    assert verify(SECRET, "confirm", token, now=NOW + timedelta(days=6)) == "a@example.com"
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, "confirm", token, now=NOW + timedelta(days=8))
    with pytest.raises(TokenError):
        verify(SECRET, "confirm", token)  # no clock to check against
