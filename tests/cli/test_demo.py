"""``make demo`` keeps its promises, and ``make serve-demo`` works as the demo says (issue 15,
findings 7 and 8): all 30 samples in the digest, honest dates, pictures shipped in
``examples/images`` that the demo's HTML finds, and the demo mails' preferences and
unsubscribe links answered by a real ``serve`` (followed with httpx)."""

from __future__ import annotations

import mailbox
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.support.project import EXAMPLES, ROOT


def _two_free_ports() -> int:
    """A port P such that P and P + 1 are both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two adjacent free ports")


@dataclass
class Demo:
    out: Path
    port: int
    printed: str

    def mails(self) -> list[EmailMessage]:
        box = mailbox.Maildir(self.out / "maildir", create=False)
        return [
            message_from_bytes(box.get_bytes(key), policy=policy.default)  # type: ignore[misc]
            for key in sorted(box.keys())
        ]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    port = _two_free_ports()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KCRUSH_FEEDS_NOW", None)
    proc = subprocess.run(
        [sys.executable, "-m", "kcrush_feeds.demo", str(EXAMPLES), str(out), "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return Demo(out, port, proc.stdout)


@pytest.fixture(scope="module")
def served(demo: Demo) -> Iterator[Demo]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (demo.out.parent / "serve-demo.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "kcrush_feeds.demo", "serve", str(demo.out)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (demo.out.parent / "serve-demo.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{demo.port}/health", timeout=1).is_success:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve-demo did not answer within 30 s"
            time.sleep(0.1)
        yield demo
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def test_the_demo_digest_holds_every_sample_and_says_when_they_are_from(demo: Demo) -> None:
    assert "30 items; deliveries: 6 sent" in demo.printed
    text = _text(demo.mails()[0])
    assert "this week" not in text
    assert "published from" in text and "2023" in text and "February 26, 2024" in text


def test_the_demo_ends_by_saying_how_to_open_the_subscription_pages(demo: Demo) -> None:
    tail = demo.printed[demo.printed.index("Where to look:") :]
    assert "make serve-demo" in tail
    assert f"http://127.0.0.1:{demo.port}/preferences?token=" in tail
    assert f"http://127.0.0.1:{demo.port}/unsubscribe?token=" in tail


def test_the_demo_html_references_pictures_shipped_in_examples(demo: Demo) -> None:
    shipped = {p.name for p in (EXAMPLES / "images").glob("*.png")}
    assert shipped and all((EXAMPLES / "images" / n).stat().st_size < 50_000 for n in shipped)
    html = _html(demo.mails()[0])
    sources = re.findall(r'<img[^>]+src="([^"]+)"', html)
    assert sources
    for src in sources:
        assert src.startswith(f"http://127.0.0.1:{demo.port + 1}/images/"), src
        assert src.rsplit("/", 1)[1] in shipped
        assert (demo.out / "images" / src.rsplit("/", 1)[1]).is_file()
    preview = next((demo.out / "preview").glob("*.html")).read_text(encoding="utf-8")
    assert f"http://127.0.0.1:{demo.port + 1}/images/" in preview


def test_serve_demo_answers_the_links_of_the_demo_mails(served: Demo) -> None:
    mail = served.mails()[0]
    address = str(mail["To"]).split("<")[-1].rstrip(">")
    links = re.findall(rf"http://127\.0\.0\.1:{served.port}/\S+", _text(mail))
    preferences = next(u for u in links if "/preferences?token=" in u)
    unsubscribe = next(u for u in links if "/unsubscribe?token=" in u)
    assert preferences in served.printed  # the end of the demo printed the same link
    with httpx.Client(timeout=15) as client:
        page = client.get(preferences)
        assert page.status_code == 200, page.text
        assert address in page.text and "preferences" in page.text.lower()
        page = client.get(unsubscribe)
        assert page.status_code == 200, page.text
        assert "Unsubscribe" in page.text
        html = _html(mail)
        picture = re.findall(r'<img[^>]+src="([^"]+)"', html)[0]
        got = client.get(picture)
        assert got.status_code == 200 and got.headers["content-type"] == "image/png"
        index = client.get(f"http://127.0.0.1:{served.port + 1}/feeds/index.html")
        assert index.status_code == 200
