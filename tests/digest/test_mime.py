"""The one mail writer (``digest.mime``) as the web's confirmation mails use it."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest

from kcrush_feeds.digest.mime import address_header, fold_header, raw_header, text_message
from tests.support.mailcheck import HOSTILE_NAMES, one_mailbox

STRICT = email.policy.default.clone(raise_on_defect=True)


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=STRICT)
    assert isinstance(message, EmailMessage)
    return message


def test_text_message_round_trips_names_subject_and_body() -> None:
    body = "Bonjour Chloé,\n\n" + "a long line " * 20 + "\nend\n"
    data = text_message(
        [
            address_header("From", "KCrush Weekly", "newsletter@kcrush.com"),
            address_header("To", "Martin, Chloé", "chloe@example.org"),
            fold_header("Subject", "Confirmez votre abonnement à KCrush\nWeekly"),
            raw_header("Auto-Submitted", "auto-replied"),
        ],
        body,
    )
    assert data.isascii()
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = _parse(data)
    (to,) = message["To"].addresses
    # Encoded as a quoted string (one mailbox for every reader): a strict one shows quotes.
    assert (to.display_name, to.addr_spec) == ('"Martin, Chloé"', "chloe@example.org")
    assert one_mailbox(data, "To") == ("Martin, Chloé", "chloe@example.org")
    assert message["Subject"] == "Confirmez votre abonnement à KCrush Weekly"
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content().replace("\r\n", "\n") == body


def test_short_ascii_body_goes_as_7bit() -> None:
    data = text_message([address_header("To", "", "reader@example.com")], "Hello.\nBye.\n")
    assert data.endswith(b"Content-Transfer-Encoding: 7bit\r\n\r\nHello.\r\nBye.\r\n")
    assert _parse(data).get_content().replace("\r\n", "\n") == "Hello.\nBye.\n"


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("header", ["From", "To", "Reply-To"])
def test_a_hostile_display_name_is_one_mailbox_for_every_reader(name: str, header: str) -> None:
    data = text_message([address_header(header, name, "real@example.com")], "x\n")
    assert data.isascii()
    _, address = one_mailbox(data, header)
    assert address == "real@example.com"
