"""DKIM: every message ``send`` delivers (and every proof) verifies with dkimpy against the
public key, over the exact bytes the real aiosmtpd server received; bad keys are config
errors (exit 2)."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kcrush_feeds.delivery.dkim import SIGNED_HEADERS, DkimSigner, relaxed_body
from kcrush_feeds.errors import ConfigError
from tests.support.editors import ENV, setup
from tests.support.project import Project
from tests.support.smtp_server import SmtpServer, smtp_server

SELECTOR = "k1"
DOMAIN = "kcrush.com"


def keypair(fmt: serialization.PrivateFormat) -> tuple[bytes, bytes]:
    """(private key PEM in ``fmt``, the DNS TXT record publishing its public half)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def dns_for(record: bytes) -> object:
    """A ``dnsfunc`` for dkimpy that knows only our selector (no network)."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def signed_headers(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    line = next(h for h in unfolded.split("\r\n") if h.lower().startswith("dkim-signature:"))
    tags = dict(
        part.strip().split("=", 1) for part in line.split(":", 1)[1].split(";") if "=" in part
    )
    assert tags["c"] == "relaxed/relaxed" and tags["d"] == DOMAIN and tags["s"] == SELECTOR
    return [h.strip() for h in tags["h"].split(":")]


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_every_digest_and_proof_verifies(
    project: Project, server: SmtpServer, fmt: serialization.PrivateFormat
) -> None:
    pem, record = keypair(fmt)
    project.write("dkim.key", pem)
    setup(project, server, digest='approval = "required"\neditors = ["ed@kcrush.com"]')
    project.append_config(
        f'[smtp.dkim]\ndomain = "{DOMAIN}"\nselector = "{SELECTOR}"\nkey_file = "dkim.key"\n'
    )
    assert project.run("send", env=ENV).exit_code == 75  # the proof
    assert project.run("digest", "approve", env=ENV).exit_code == 0
    sent = project.run("send", env=ENV)
    assert sent.exit_code == 0
    assert "signing process" not in sent.output  # it started, signed and ended quietly
    assert sorted(r.rcpt for r in server.received) == [
        "all@example.org",
        "articles@example.org",
        "ed@kcrush.com",
    ]
    for received in server.received:
        assert received.data.count(b"DKIM-Signature:") == 1  # once per message
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.rcpt
        headers = signed_headers(received.data)
        assert headers[:5] == ["from", "to", "subject", "date", "message-id"]
        assert {"list-id", "list-unsubscribe", "list-unsubscribe-post"} <= set(headers)
        # Changed in transit: the signature no longer holds.
        tampered = received.data.replace(b"Subject: ", b"Subject: RE: ", 1)
        assert not dkim.verify(tampered, dnsfunc=dns_for(record))


def test_a_bad_or_missing_key_is_a_config_error(project: Project, server: SmtpServer) -> None:
    setup(project, server)
    project.append_config(
        f'[smtp.dkim]\ndomain = "{DOMAIN}"\nselector = "{SELECTOR}"\nkey_file = "dkim.key"\n'
    )
    missing = project.run("send", env=ENV)
    assert missing.exit_code == 2
    assert "smtp.dkim.key_file: cannot read" in missing.stderr
    project.write(
        "dkim.key", "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    )
    bad = project.run("send", env=ENV)
    assert bad.exit_code == 2
    assert "smtp.dkim.key_file: not a usable RSA private key" in bad.stderr
    assert server.received == []


def test_the_signature_covers_the_exact_bytes(tmp_path: Path) -> None:
    pem, record = keypair(serialization.PrivateFormat.PKCS8)
    signer = DkimSigner.checked(DOMAIN, SELECTOR, pem, where="test")
    message = (
        b"From: KCrush <hello@kcrush.com>\r\nTo: a@example.org\r\nSubject: Hi\r\n"
        b"Date: Tue, 27 Feb 2024 09:00:00 -0800\r\nMessage-ID: <x@kcrush.com>\r\n\r\nHello\r\n"
    )
    signed = signer.sign(message)
    assert signed.endswith(message)
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    with pytest.raises(ConfigError):
        DkimSigner.checked(DOMAIN, SELECTOR, b"garbage", where="test")


def test_serve_signs_the_confirmation_and_welcome_mail(tmp_path: Path) -> None:
    from tests.support.serve import SmtpSink, link_in, start_server, subscribe

    pem, record = keypair(serialization.PrivateFormat.TraditionalOpenSSL)
    site = tmp_path / "site"
    site.mkdir()
    (site / "dkim.key").write_bytes(pem)
    dkim_section = (
        f'\n[smtp.dkim]\ndomain = "{DOMAIN}"\nselector = "{SELECTOR}"\nkey_file = "dkim.key"\n'
    )
    with SmtpSink() as smtp:
        server = start_server(site, smtp, smtp_extra=dkim_section)
        try:
            with server.client() as client:
                assert subscribe(client, "signed@example.com").status_code == 200
                confirm = smtp.wait_for("signed@example.com")[0]
                assert client.get(link_in(confirm, "confirm")).status_code == 200
            smtp.wait_for("signed@example.com", count=2)
        finally:
            server.stop()
    assert len(smtp.messages) == 2
    for caught in smtp.messages:
        assert caught.data.count(b"DKIM-Signature:") == 1
        assert dkim.verify(caught.data, dnsfunc=dns_for(record)), caught.message["Subject"]
    welcome = smtp.messages[1].data
    assert "list-unsubscribe-post" in signed_headers(welcome)


HEAD = (
    b"From: KCrush <hello@kcrush.com>\r\nTo: a@example.org\r\nSubject:  The week\t on KCrush \r\n"
    b"Date: Tue, 27 Feb 2024 09:00:00 -0800\r\nMessage-ID: <x@kcrush.com>\r\n"
    b"List-Id: KCrush <digest.kcrush.com>\r\n"
    b"List-Unsubscribe: <https://kcrush.com/unsubscribe?token=abc>,\r\n"
    b" <mailto:unsubscribe@kcrush.com>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
)
BODIES = [
    b"Hello\r\n",
    b"",
    b"\r\n\r\n\r\n",
    b"no line end at the end  ",
    b"  leading\t\tand trailing \t \r\n\r\n  \r\n\r\n",
    b"bare\nline feeds \n\n",
    b'<table>\r\n    <tr>\r\n\t\t<td style=3D"padding:  8px">  K-Pop  =\r\n</td>\r\n'
    b"    </tr>\r\n</table>   \r\n" * 400,
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_signature_is_byte_for_byte_dkimpys(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our faster steps (OpenSSL's RSA, the key parsed once, ``relaxed_body``, the header
    parsed alone) change nothing: the same key at the same second, the same signature."""
    pem, record = keypair(serialization.PrivateFormat.TraditionalOpenSSL)
    monkeypatch.setattr(dkim.time, "time", lambda: 1_709_053_200.0)
    message = HEAD + b"\r\n" + body
    ours = DkimSigner.checked(DOMAIN, SELECTOR, pem, where="test").signature(message)
    theirs = dkim.sign(
        message,
        SELECTOR.encode(),
        DOMAIN.encode(),
        pem,
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[*SIGNED_HEADERS[:-1]],  # every one of them but List-Archive
        linesep=b"\r\n",
    )
    assert ours == theirs
    assert dkim.verify(ours + message, dnsfunc=dns_for(record))


def test_relaxed_body_is_dkimpys_canonicalisation() -> None:
    """``relaxed_body`` against dkimpy's own ``Relaxed.canonicalize_body`` on 5,000
    generated bodies of spaces, tabs, line ends (CRLF, bare CR and LF) and text."""
    pieces = [b" ", b"  ", b"\t", b"\r\n", b"\r", b"\n", b"a", b"=\r\n", b"K-Pop", b" \t "]
    rng = random.Random(6376)
    for _ in range(5_000):
        body = b"".join(rng.choices(pieces, k=rng.randrange(0, 40)))
        assert relaxed_body(body) == dkim.canonicalization.Relaxed.canonicalize_body(body), body


# Signing processes that fail: one that exits at once, one that answers once and dies.
_EXITS = "import sys; sys.exit(3)"
_DIES_AFTER_ONE = (
    "import sys\n"
    "from kcrush_feeds.delivery import dkim\n"
    "frame, sent = dkim._frame, []\n"
    "def once(data):\n"
    "    sent.append(data)\n"
    "    if len(sent) > 2:\n"  # the "ready" frame, one answer, then gone
    "        sys.exit(3)\n"
    "    return frame(data)\n"
    "dkim._frame = once\n"
    "dkim.serve_signing()\n"
)


@pytest.mark.parametrize("worker", [_EXITS, _DIES_AFTER_ONE], ids=["exits", "dies-mid-run"])
def test_a_signing_process_that_stops_is_replaced_by_signing_in_process(
    project: Project, server: SmtpServer, monkeypatch: pytest.MonkeyPatch, worker: str
) -> None:
    """The signing process is a real process, here one that fails. ``send`` goes on signing
    in a thread of its own: every subscriber gets one message, and every one verifies."""
    import kcrush_feeds.delivery.dkim as signing

    pem, record = keypair(serialization.PrivateFormat.PKCS8)
    project.write("dkim.key", pem)
    setup(project, server)
    project.write("more.csv", "email\n" + "".join(f"r{i}@example.org\n" for i in range(30)))
    assert (
        project.run("subscribers", "import", str(project.dir / "more.csv"), env=ENV).exit_code == 0
    )
    project.append_config(
        f'[smtp.dkim]\ndomain = "{DOMAIN}"\nselector = "{SELECTOR}"\nkey_file = "dkim.key"\n'
    )
    monkeypatch.setattr(signing, "_WORKER", worker)
    result = project.run("send", env=ENV)
    assert result.exit_code == 0, result.output
    if worker == _EXITS:
        assert "DKIM: the signing process stopped" in result.output
        assert "signing in this process instead" in result.output
    recipients = [r.rcpt for r in server.received]
    assert len(recipients) == len(set(recipients)) == 32
    for received in server.received:
        assert received.data.count(b"DKIM-Signature:") == 1
        assert dkim.verify(received.data, dnsfunc=dns_for(record)), received.rcpt
