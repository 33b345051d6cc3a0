"""A real browser (Debian's headless Chromium, driven by Selenium as in test_serve_browser)
opens an issue page of the archive, served over HTTP from 127.0.0.1 with real images, at
1200 and at 375 px: no horizontal scrolling, every image loaded and sized in its aspect
ratio, and the subscribe form posts to a real ``serve`` (which, as for any form posted from
another page, shows its own form filled in: one more click and the confirmation is sent)."""

from __future__ import annotations

import os
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bench.issues import seed_issues
from kcrush_feeds.archive.build import build_archive
from kcrush_feeds.config import load_config
from kcrush_feeds.store.db import Store
from tests.support.archive import shows
from tests.support.browser import MISSING, WHY, headless_chromium
from tests.support.serve import Server, SmtpSink, start_server

pytestmark = pytest.mark.skipif(MISSING, reason=WHY)
WIDTHS = (1200, 375)
# Set KCRUSH_SCREENSHOTS=DIR to keep the screenshots (issue-1200.png, issue-375.png).
SCREENSHOTS = os.environ.get("KCRUSH_SCREENSHOTS")


def png(width: int, height: int) -> bytes:
    """A solid PNG of ``width`` x ``height`` (stdlib only)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xc2\x18\x5b" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


IMAGE = png(640, 360)


class _Static(SimpleHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.startswith("/img/"):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(IMAGE)))
            self.end_headers()
            self.wfile.write(IMAGE)
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    """(serve, the static server's URL, an issue's period), the archive built."""
    public = tmp_path / "public"
    public.mkdir()
    static = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Static, directory=str(public)))
    web = f"http://127.0.0.1:{static.server_address[1]}"
    thread = threading.Thread(target=static.serve_forever, daemon=True)
    thread.start()
    with SmtpSink() as smtp:
        server = start_server(tmp_path / "site", smtp)
        try:
            config_path = server.directory / "config.toml"
            with config_path.open("a", encoding="utf-8") as f:
                f.write(
                    f'\n[archive]\noutput_dir = "{public / "newsletter"}"\n'
                    f'base_url = "{web}/newsletter"\n'
                )
            config = load_config(config_path)
            with Store.open(config.database_path) as store:
                periods = seed_issues(store, 3, images=f"{web}/img")
                build_archive(config, store, datetime(2030, 1, 1, tzinfo=UTC))
            yield server, web, periods[1]
        finally:
            server.stop()
            static.shutdown()
            static.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


MEASURE = """
const doc = document.documentElement;
const main = document.querySelector('main').getBoundingClientRect();
return {
  scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth, main: main.width,
  images: [...document.images].map(img => {
    const r = img.getBoundingClientRect();
    return {complete: img.complete, nw: img.naturalWidth, nh: img.naturalHeight,
            w: r.width, h: r.height, left: r.left, right: r.right};
  }),
};
"""


def test_issue_page_fits_1200_and_375_and_its_form_posts(
    browser: Any, site: tuple[Server, str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server, web, period = site
    url = f"{web}/newsletter/{period}/"
    for width in WIDTHS:
        browser.set_window_size(width, 900)
        browser.get(url)
        WebDriverWait(browser, 10).until(
            lambda d: d.execute_script(
                "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"
            )
        )
        m = browser.execute_script(MEASURE)
        assert m["scrollWidth"] <= m["clientWidth"], (width, m)  # no horizontal scroll
        assert len(m["images"]) == 4
        for img in m["images"]:
            assert (img["nw"], img["nh"]) == (640, 360)  # loaded
            assert img["left"] >= 0 and img["right"] <= m["clientWidth"]
            assert abs(img["h"] / img["w"] - 360 / 640) < 0.02  # in its aspect ratio
            if width == 1200:
                assert img["w"] == 160  # a thumbnail beside the text
            else:
                assert img["w"] > 300  # the whole column on a phone
        dir_ = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
        height = browser.execute_script("return document.documentElement.scrollHeight")
        browser.set_window_size(width, min(int(height), 4000))
        assert browser.save_screenshot(str(dir_ / f"issue-{width}.png"))
    # The subscribe form posts to serve (at 375 px, as on a phone).
    browser.set_window_size(375, 900)
    browser.get(url)
    browser.find_element(By.ID, "subscribe-email").send_keys("min.ji@example.com")
    browser.find_element(By.CSS_SELECTOR, "form.subscribe button[type=submit]").click()
    # serve has no CSRF cookie for a form from another page: its own form, filled in.
    WebDriverWait(browser, 10).until(lambda d: d.current_url.startswith(server.url))
    assert browser.find_element(By.ID, "email").get_attribute("value") == "min.ji@example.com"
    browser.find_element(By.XPATH, "//button[normalize-space()='Subscribe']").click()
    assert shows(browser, "h1", "Check your inbox")
    pending = server.subscriber("min.ji@example.com")
    assert pending is not None and pending.status == "pending"
