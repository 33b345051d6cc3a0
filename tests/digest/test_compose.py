"""The digest email: golden files, parsed back strictly, headers one by one, links resolved."""

from __future__ import annotations

import email
import email.policy
import random
import re
import time
from collections.abc import Callable
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import lxml.html
import pytest

from kcrush_feeds.config import Config
from kcrush_feeds.digest.compose import _SLOT_TEXT, DigestComposer, _Body
from kcrush_feeds.digest.select import open_digest
from kcrush_feeds.errors import KcrushError
from kcrush_feeds.model import Digest, Subscriber
from kcrush_feeds.records.importer import import_files
from kcrush_feeds.store.db import Store
from kcrush_feeds.tokens import TokenError, verify
from tests.support.mailcheck import HOSTILE_NAMES, one_mailbox
from tests.support.project import GOLDEN, Project

NOW = datetime.fromisoformat("2024-02-26T09:00:00-08:00")
SECRET = b"test-secret-0123456789abcdef"
STRICT = email.policy.default.clone(raise_on_defect=True)

RECORDS: list[dict[str, Any]] = [
    {
        "id": "bts-jin",
        "url": "https://www.kcrush.com/jin-solo-comeback/",
        "title": "진 (Jin) announces a solo comeback 🎤✨",
        "published": "2024-02-25T10:00:00",
        "categories": ["K-Pop Articles"],
        "summary": '<p>Big news for <b>ARMY</b>: <a href="/tag/jin/">Jin</a> is back.'
        "<script>alert(1)</script></p>",
        "image": {"url": "https://www.kcrush.com/img/jin.jpg", "alt": "Jin on stage"},
    },
    {
        "id": "webridge",
        "url": "https://www.kcrush.com/webridge-las-vegas/",
        "title": "WeBRIDGE Makes a Positive Start in Las Vegas",
        "published": "2024-02-22T09:15:00",
        "categories": ["articles"],
        "summary": "On Friday, Infinite Prospects Entertainment launched its inaugural "
        "event at the Mandalay Bay Convention Center in Las Vegas, Nevada. " * 3,
    },
    {
        "id": "travelingwill",
        "url": "https://www.kcrush.com/kcrush-interview-with-travelingwill/",
        "title": "KCrush Interview with TravelingWill",
        "published": "2024-02-24T10:00:00",
        "categories": ["Featured-Interview", "Film"],
        "summary": "“All the Shows are Memorable for Me!” Kcrush America Interview.",
        "image": {"url": "https://www.kcrush.com/img/tw.jpg", "alt": "TravelingWill"},
    },
]
SUBSCRIBERS = {
    "all": Subscriber(7, "minji.kim@example.com", "김민지", "active", None),
    "interviews": Subscriber(42, "sam@example.org", "Sam Okafor", "active", ("kpop-interviews",)),
    "comma": Subscriber(3, "chloe@example.com", "Martin, Chloé", "active", ("kpop-articles",)),
}


@pytest.fixture
def digest(project: Project, write_jsonl: Callable[..., Path]) -> Digest:
    path = write_jsonl("records.jsonl", *RECORDS)
    config = project.config
    with Store.open(config.database_path) as store:
        assert import_files(store, [str(path)], tz=config.site.tz, now=NOW).ok
        made = open_digest(store, config, NOW)
    assert made is not None
    return made


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=STRICT)
    assert isinstance(message, EmailMessage)
    for part in message.walk():
        assert not part.defects, part.defects
    return message


def _mask(data: bytes) -> bytes:
    boundary = re.search(rb'boundary="([^"]+)"', data)
    assert boundary is not None
    data = data.replace(boundary.group(1), b"BOUNDARY")
    return re.sub(rb"^Date: [^\r\n]*", b"Date: MASKED", data, count=1, flags=re.M)


@pytest.mark.parametrize("who", ["all", "interviews"])
def test_golden_eml(project: Project, digest: Digest, who: str, regen_golden: bool) -> None:
    message = DigestComposer(project.config, digest, now=NOW).compose(SUBSCRIBERS[who])
    assert message is not None
    golden = GOLDEN / f"digest-{who}.eml"
    masked = _mask(message.data)
    if regen_golden:
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(masked)
    assert golden.exists(), f"{golden} is missing: write it with pytest --regen-golden"
    assert masked == golden.read_bytes(), f"{golden} differs (pytest --regen-golden)"


def test_headers_one_by_one(project: Project, digest: Digest) -> None:
    config = project.config
    composer = DigestComposer(config, digest, now=NOW)
    subscriber = SUBSCRIBERS["all"]
    out = composer.compose(subscriber)
    assert out is not None
    assert out.recipient == "minji.kim@example.com"
    raw = out.data
    assert raw.isascii() and b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    m = _parse(raw)
    assert m["From"] == "KCrush Weekly <newsletter@kcrush.com>"
    assert m["From"].addresses[0].display_name == "KCrush Weekly"
    assert m["To"].addresses[0].display_name == "김민지"
    assert m["To"].addresses[0].addr_spec == "minji.kim@example.com"
    assert b"To: =?utf-8?" in raw  # RFC 2047
    assert m["Reply-To"] == "editors@kcrush.com"
    assert m["Date"].datetime == NOW
    assert m["Subject"] == ("KCrush Weekly: 진 (Jin) announces a solo comeback 🎤✨ (+2 more)")
    subject_line = re.search(rb"^Subject: .*(\r\n .*)*", raw, re.M)
    assert subject_line is not None and b"=?utf-8?" in subject_line.group()
    assert m["Message-ID"] == out.message_id
    assert re.fullmatch(r"<digest-2024-W09\.s7\.[0-9a-f]{12}@www\.kcrush\.com>", out.message_id)
    assert m["List-Id"] == "KCrush Weekly <weekly.kcrush.com>"
    assert m["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.findall(r"<([^>]+)>", str(m["List-Unsubscribe"]))
    assert https.startswith("https://www.kcrush.com/newsletter/unsubscribe?token=")
    token = parse_qs(urlsplit(https).query)["token"][0]
    assert verify(SECRET, "unsubscribe", token, email=subscriber.email)
    assert mailto == f"mailto:unsubscribe@kcrush.com?subject=unsubscribe-{token}"
    assert m["MIME-Version"] == "1.0"
    assert m.get_content_type() == "multipart/alternative"
    parts = list(m.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    # The same delivery retried: the same Message-ID (and bytes), a later Date.
    later = DigestComposer(config, digest, now=datetime.fromisoformat("2024-02-27T09:00:00-08:00"))
    again = later.compose(subscriber)
    assert again is not None and again.message_id == out.message_id
    other = composer.compose(SUBSCRIBERS["interviews"])
    assert other is not None and other.message_id != out.message_id


def test_html_part_links_images_and_sanitising(project: Project, digest: Digest) -> None:
    subscriber = SUBSCRIBERS["all"]
    out = DigestComposer(project.config, digest, now=NOW).compose(subscriber)
    assert out is not None
    html_part = _parse(out.data).get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script" not in html and "alert(1)" not in html
    assert "<style" in html and "@media" in html  # responsive rules kept for clients
    doc = lxml.html.fromstring(html)
    # CSS inlined: the elements carry their styles.
    assert "font-family" in (doc.xpath("//a[@class='title']")[0].get("style") or "")
    hrefs = [a.get("href") for a in doc.iter("a")]
    assert hrefs and all(urlsplit(h).scheme == "https" and urlsplit(h).netloc for h in hrefs)
    assert "https://www.kcrush.com/tag/jin/" in hrefs  # a relative link in a summary, resolved
    for record in RECORDS:
        assert record["url"] in hrefs
    images = list(doc.iter("img"))
    assert len(images) == 2 and all(i.get("width") and i.get("alt") for i in images)
    assert {i.get("alt") for i in images} == {"Jin on stage", "TravelingWill"}
    links = {a.text_content().strip(): a.get("href") for a in doc.iter("a")}
    for label, purpose in (
        ("Unsubscribe", "unsubscribe"),
        ("Choose your categories", "preferences"),
    ):
        url = urlsplit(links[label])
        assert url.netloc == "www.kcrush.com" and url.path == f"/newsletter/{purpose}"
        token = parse_qs(url.query)["token"][0]
        assert verify(SECRET, purpose, token) == subscriber.email  # type: ignore[arg-type]
        with pytest.raises(TokenError):
            verify(SECRET, purpose, token, email="sam@example.org")  # type: ignore[arg-type]
    assert "Hi 김민지," in doc.text_content()
    assert doc.xpath("//div[@class='preheader']")[0].text_content().startswith("진 (Jin)")
    assert "minji.kim@example.com" in doc.xpath("//td[@class='footer']")[0].text_content()


def test_text_part_is_written_for_reading(project: Project, digest: Digest) -> None:
    out = DigestComposer(project.config, digest, now=NOW).compose(SUBSCRIBERS["all"])
    assert out is not None
    text_part = _parse(out.data).get_body(("plain",))
    assert text_part is not None
    text = text_part.get_content().replace("\r\n", "\n")
    assert "<" not in text.replace("<https", "")  # no markup
    assert "Hi 김민지," in text
    assert "NEW ARTICLES\n============" in text and "INTERVIEWS\n==========" in text
    assert text.index("NEW ARTICLES") < text.index("INTERVIEWS")
    assert text.index("진 (Jin)") < text.index("WeBRIDGE")  # newest first
    assert "Read it: https://www.kcrush.com/jin-solo-comeback/" in text
    assert all(len(line) <= 78 for line in text.splitlines() if "https://" not in line)
    assert "Unsubscribe:            https://www.kcrush.com/newsletter/unsubscribe?token=" in text


def test_each_subscriber_gets_only_their_categories(project: Project, digest: Digest) -> None:
    composer = DigestComposer(project.config, digest, now=NOW)
    sam = composer.compose(SUBSCRIBERS["interviews"])
    assert sam is not None
    sam_text = _parse(sam.data).get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "TravelingWill" in sam_text and "WeBRIDGE" not in sam_text and "Jin" not in sam_text
    assert _parse(sam.data)["Subject"] == "KCrush Weekly: KCrush Interview with TravelingWill"
    chloe = composer.compose(SUBSCRIBERS["comma"])
    assert chloe is not None
    parsed = _parse(chloe.data)
    # A name with a comma and non-ASCII letters is encoded as a quoted string, so that a
    # reader that decodes before it parses sees one mailbox too; a strict one shows quotes.
    assert parsed["To"].addresses[0].display_name == '"Martin, Chloé"'
    assert one_mailbox(chloe.data, "To") == ("Martin, Chloé", "chloe@example.com")
    assert "TravelingWill" not in parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # A selection with nothing new: no message at all.
    nothing = Subscriber(9, "k@example.com", "", "active", ("no-such-feed",))
    assert composer.compose(nothing) is None


def test_no_header_injection_through_names_or_titles(project: Project, digest: Digest) -> None:
    composer = DigestComposer(project.config, digest, now=NOW)
    evil = Subscriber(5, "e@example.com", "Eve\r\nBcc: all@example.com", "active", None)
    out = composer.compose(evil)
    assert out is not None
    assert b"\r\nBcc:" not in out.data
    message = _parse(out.data)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "e@example.com"
    # A name is text in the HTML part, never markup.
    marked = Subscriber(6, "m@example.com", "<b>Mallory</b> & co", "active", None)
    out = composer.compose(marked)
    assert out is not None
    html = _parse(out.data).get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hi &lt;b&gt;Mallory&lt;/b&gt; &amp; co," in html and "<b>Mallory" not in html


def test_quoted_printable_slots_decode_exactly() -> None:
    """Random text with slots at random places: the assembled body decodes to the text with
    the values substituted, and no encoded line is longer than 76 characters."""
    rng = random.Random(4)
    alphabet = "abc é진🎤=.\t  <>&\"'" + "x" * 10
    slots = list(_SLOT_TEXT.items())
    for _ in range(300):
        pieces: list[str] = []
        expected: list[str] = []
        values: dict[str, str] = {
            name: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
            for name, _ in slots
        }
        for _ in range(rng.randint(0, 6)):
            chunk = "".join(rng.choice(alphabet + "\n") for _ in range(rng.randint(0, 200)))
            name, placeholder = rng.choice(slots)
            pieces += [chunk, placeholder]
            expected += [chunk, values[name]]
        tail = "".join(rng.choice(alphabet + "\n") for _ in range(rng.randint(0, 90)))
        pieces.append(tail)
        expected.append(tail)
        body = _Body.encode("".join(pieces))
        from kcrush_feeds.digest.mime import qp as _qp

        data = body.fill({k: _qp(v) for k, v in values.items()})
        assert all(len(line) <= 76 for line in data.split(b"\r\n"))
        message = email.message_from_bytes(
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" + data,
            policy=STRICT,
        )
        assert isinstance(message, EmailMessage)
        decoded = message.get_content().replace("\r\n", "\n")
        assert decoded == "".join(expected).replace("\r", "")


def test_composing_is_fast_per_subscriber(project: Project, digest: Digest) -> None:
    """Rendering happens once per selection; per subscriber only the slots are filled in."""
    composer = DigestComposer(project.config, digest, now=NOW)
    subscribers = [
        Subscriber(i, f"reader{i}@example.com", f"Reader {i}", "active",
                   None if i % 2 else ("kpop-interviews",))
        for i in range(2000)
    ]  # fmt: skip
    start = time.perf_counter()
    messages = [composer.compose(s) for s in subscribers]
    elapsed = time.perf_counter() - start
    assert all(m is not None for m in messages)
    assert len(composer._cache) == 2  # two distinct selections, rendered once each
    assert elapsed < 2.0, f"{elapsed / 2000 * 1e3:.3f} ms per message"


def test_templates_can_be_overridden(project: Project, digest: Digest) -> None:
    project.write("mytemplates/subject.txt", "{{ site.title }}: {{ items|length }} new 🎉\n")
    text = project.config_path.read_text(encoding="utf-8").replace(
        'reply_to = "editors@kcrush.com"',
        'reply_to = "editors@kcrush.com"\ntemplates_dir = "mytemplates"',
    )
    project.write_config(text)
    config: Config = project.config
    out = DigestComposer(config, digest, now=NOW).compose(SUBSCRIBERS["all"])
    assert out is not None
    parsed = _parse(out.data)
    assert parsed["Subject"] == "KCrush: 3 new 🎉"
    assert parsed.get_body(("html",)) is not None  # the built-in HTML template still used
    project.write("mytemplates/digest.txt", "{{ no_such_name }}\n")
    from kcrush_feeds.digest.compose import TemplateError

    with pytest.raises(TemplateError, match=r"digest\.txt"):
        DigestComposer(config, digest, now=NOW).compose(SUBSCRIBERS["all"])


def test_preview_writes_files_and_stores_nothing(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    path = write_jsonl("records.jsonl", *RECORDS)
    env = {"KCRUSH_FEEDS_NOW": "2024-02-26T09:00:00-08:00"}
    assert project.run("import", str(path), env=env).exit_code == 0
    project.run("subscribers", "add", "sam@example.org", "--name", "Sam",
                "--category", "kpop-interviews")  # fmt: skip
    out = project.dir / "preview"
    result = project.run("preview", "--out", str(out), env=env)
    assert result.exit_code == 0, result.output
    assert "digest 2024-W09 (not yet created; computed for this preview): 3 of 3 items" in (
        result.output
    )
    files = sorted(p.name for p in out.iterdir())
    assert files == ["digest-2024-W09.eml", "digest-2024-W09.html", "digest-2024-W09.txt"]
    assert "Hi Reader," in (out / "digest-2024-W09.txt").read_text(encoding="utf-8")
    assert "<table" in (out / "digest-2024-W09.html").read_text(encoding="utf-8")
    _parse((out / "digest-2024-W09.eml").read_bytes())
    mine = project.run("preview", "--subscriber", "SAM@example.org", "--out", str(out), env=env)
    assert "1 of 3 items for sam@example.org" in mine.output
    assert "TravelingWill" in (out / "digest-2024-W09.txt").read_text(encoding="utf-8")
    with Store.open(project.config.database_path) as store:
        assert store.conn.execute("SELECT count(*) FROM digests").fetchone()[0] == 0
        assert store.conn.execute("SELECT count(*) FROM deliveries").fetchone()[0] == 0
    empty = project.run("preview", "--week", "2024-W02", "--out", str(out), env=env)
    assert empty.output == "nothing new for 2024-W02: there would be no digest\n"
    bad = project.run("preview", "--week", "last week", env=env)
    assert bad.exit_code == 2 and "ISO week" in bad.output
    nobody = project.run("preview", "--subscriber", "nobody@example.com", env=env)
    assert nobody.exit_code == 2 and "no such subscriber" in nobody.output
    # Once the digest exists, preview shows the stored one, and status reports it.
    with Store.open(project.config.database_path) as store:
        assert open_digest(store, project.config, NOW) is not None
    stored = project.run("preview", "--week", "2024-W09", "--out", str(out), env=env)
    assert "digest 2024-W09 (stored)" in stored.output
    status = project.run("status", env=env).output
    assert "last digest: 2024-W09 (sending), created 2024-02-26T09:00, 3 items" in status
    assert "subscribers: 1 active" in status


def test_hostile_display_names_in_the_digest_are_one_mailbox(
    project: Project, digest: Digest
) -> None:
    composer = DigestComposer(project.config, digest, now=NOW)
    for number, name in enumerate(HOSTILE_NAMES):
        address = f"reader{number}@example.com"
        out = composer.compose(Subscriber(100 + number, address, name, "active", None))
        assert out is not None and out.recipient == address
        assert one_mailbox(out.data, "To")[1] == address
        assert one_mailbox(out.data, "From")[1] == "newsletter@kcrush.com"


@pytest.mark.parametrize("where", ["subject", "template"])
def test_templates_run_in_a_sandbox(
    project: Project, digest: Digest, tmp_path: Path, where: str
) -> None:
    marker = tmp_path / "pwned"
    payload = f"{{{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}}}"
    text = project.config_path.read_text(encoding="utf-8")
    if where == "subject":
        extra = f"subject = {payload!r}"
    else:
        project.write("mytemplates/subject.txt", payload + "\n")
        extra = 'templates_dir = "mytemplates"'
    project.write_config(
        text.replace('reply_to = "editors@kcrush.com"', f'reply_to = "editors@kcrush.com"\n{extra}')
    )
    with pytest.raises(KcrushError, match="not allowed in a template"):
        DigestComposer(project.config, digest, now=NOW).compose(SUBSCRIBERS["all"])
    assert not marker.exists()
