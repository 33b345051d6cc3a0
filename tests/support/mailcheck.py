"""Reading a written mail's address headers the ways real mail readers do (issue 18, #7).

A strict reader (the email package's default policy) parses the header, then decodes each
encoded word. Many readers do it the other way round: decode the whole header, then parse
the addresses. A display name must never become a second mailbox for either.
"""

from __future__ import annotations

import email
import email.policy
from email.header import decode_header, make_header
from email.utils import getaddresses

# Names a stranger can type into the form, each trying to add or replace a mailbox.
HOSTILE_NAMES = [
    "김민지 <evil@attacker.example>",
    "Kim <evil@attacker.example>",
    "Martin, Chloé",
    "김민지, evil@attacker.example",
    'Chloé "x" <evil@attacker.example>',
    "김" * 40 + " <evil@attacker.example>",
    "=?utf-8?q?x?= <evil@attacker.example>",
    "=?utf-8?b?IiA8ZXZpbEBhdHRhY2tlci5leGFtcGxlPiwg?= x",  # decodes to '" <evil@...>, '
    'x\\" <evil@attacker.example>',
    "evil@attacker.example",
    "a\r\nBcc: evil@attacker.example",
    "<evil@attacker.example>;, (x) [y]: z@attacker.example",
    "\\",
    '"',
]


def one_mailbox(data: bytes, header: str) -> tuple[str, str]:
    """The (name, address) of ``header`` in the mail ``data``, asserting that every way of
    reading it finds exactly that one mailbox; the name as a decode-first reader shows it."""
    strict = email.message_from_bytes(data, policy=email.policy.default)
    assert len(strict.get_all(header) or []) == 1, f"{header} appears more than once"
    mailboxes = strict[header].addresses
    assert len(mailboxes) == 1, f"strict reader: {mailboxes}"
    address = mailboxes[0].addr_spec
    raw = email.message_from_bytes(data, policy=email.policy.compat32)[header]
    as_written = getaddresses([str(raw)])
    assert [a for _, a in as_written] == [address], f"parse-first reader: {as_written}"
    decoded = str(make_header(decode_header(str(raw))))
    naive = getaddresses([decoded])
    assert [a for _, a in naive] == [address], f"decode-first reader: {naive} from {decoded!r}"
    for other in ("Bcc", "Cc"):
        assert strict[other] is None, f"a {other} header appeared"
    return naive[0][0], address
