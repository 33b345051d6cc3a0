"""Signed tokens: round trip, tampering, other purposes and addresses, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from kcrush_feeds.tokens import TokenError, sign, verify, verify_claim

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


def _other_spellings(token: str) -> list[str]:
    """Spellings of the same bytes (or of junk) that a lenient decoder would accept."""
    payload, mac = token.split(".")
    out = [
        f"{payload}.{mac}=",
        f"{payload}.{mac}==",
        f"{payload}=.{mac}",
        token.replace("-", "+").replace("_", "/"),
        f"{payload}.{mac[:5]}!{mac[5:]}",
        f"{payload}.{mac[:5]} {mac[5:]}",
        f"{payload}.{mac}A",
        f"{payload}.{mac[:-1]}",
    ]
    # The last character of the MAC carries 2 unused bits (16 bytes = 22 characters):
    # every other character with the same 4 high bits decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(mac[-1])
    out += [f"{payload}.{mac[:-1]}{c}" for c in alphabet if alphabet.index(c) >> 4 == last >> 4]
    return [t for t in out if t != token]


@pytest.mark.parametrize("purpose", ["unsubscribe", "preferences"])
def test_a_token_has_exactly_one_spelling(purpose: str) -> None:
    for address in ("minji.kim@example.com", "a@b.co", "jordan.lee+news@example.org"):
        token = sign(SECRET, purpose, address)  # type: ignore[arg-type]
        assert verify(SECRET, purpose, token) == address  # type: ignore[arg-type]
        spellings = _other_spellings(token)
        assert len(spellings) >= 10
        for other in spellings:
            with pytest.raises(TokenError):
                verify(SECRET, purpose, other)  # type: ignore[arg-type]


def test_a_confirm_token_gives_back_its_generation() -> None:
    expires = NOW + timedelta(days=7)
    token = sign(SECRET, "confirm", "a@example.com", expires=expires, generation="1709000000")
    claim = verify_claim(SECRET, "confirm", token, now=NOW)
    assert (claim.address, claim.generation) == ("a@example.com", "1709000000")
    assert claim.expires == int(expires.timestamp())
    old = sign(SECRET, "confirm", "a@example.com", expires=expires)
    assert verify_claim(SECRET, "confirm", old, now=NOW).generation is None


def _legacy(purpose: str, body: str) -> str:
    """A token as links were signed before payloads were encrypted (base64 of the body)."""
    import base64
    import hashlib
    import hmac

    payload = base64.urlsafe_b64encode(body.encode()).rstrip(b"=").decode()
    message = f"kcrush-feeds/{purpose}\n{payload}".encode()
    mac = hmac.new(SECRET, message, hashlib.sha256).digest()[:16]
    return f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_a_token_does_not_show_the_address() -> None:
    import base64

    address = "minji.kim@example.com"
    token = sign(SECRET, "unsubscribe", address)
    payload = token.split(".")[0]
    for n in range(3):  # base64 of the address at any alignment
        shifted = base64.urlsafe_b64encode(b"x" * n + address.encode()).decode()[4:20]
        assert shifted not in payload
    assert "minji" not in token.lower()
    # Deterministic all the same, and each purpose looks different.
    assert token == sign(SECRET, "unsubscribe", address)
    assert payload != sign(SECRET, "preferences", address).split(".")[0]


def test_links_signed_before_encryption_keep_working() -> None:
    old = _legacy("unsubscribe", "minji.kim@example.com")
    assert verify(SECRET, "unsubscribe", old) == "minji.kim@example.com"
    expires = int((NOW + timedelta(days=7)).timestamp())
    old_confirm = _legacy("confirm", f"a@example.com\n{expires}")
    assert verify(SECRET, "confirm", old_confirm, now=NOW) == "a@example.com"
    with pytest.raises(TokenError):
        verify(SECRET, "preferences", old)
