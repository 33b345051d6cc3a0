"""WebSub: a real hub on 127.0.0.1 records the publish pings ``build`` sends: one per changed
feed (the archive's included), none on a no-op rebuild, a failing hub is a warning and the
next build pings again what it missed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from lxml import etree

from bench.issues import seed_issues
from kcrush_feeds.feeds.websub import PENDING_NAME
from kcrush_feeds.store.db import Store
from tests.support.archive import ARCHIVE, ARCHIVE_BASE
from tests.support.project import EXAMPLES, Project
from tests.support.smtp_server import free_port

ENV = {"KCRUSH_FEEDS_NOW": "2024-03-01T00:00:00+00:00"}
FEEDS = "https://www.kcrush.com/feeds"
FEED_FILES = ("rss.xml", "atom.xml", "feed.json")
ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass
class Hub:
    url: str
    status: int = 204
    pings: list[dict[str, list[str]]] = field(default_factory=list)

    def topics(self) -> list[str]:
        assert all(p["hub.mode"] == ["publish"] for p in self.pings)
        return [p["hub.url"][0] for p in self.pings]


@pytest.fixture
def hub() -> Iterator[Hub]:
    state = Hub("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            assert self.headers["Content-Type"] == "application/x-www-form-urlencoded"
            state.pings.append(parse_qs(self.rfile.read(length).decode()))
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hub"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def with_hub(project: Project, hub_url: str) -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        f'base_url = "{FEEDS}"\n', f'base_url = "{FEEDS}"\nwebsub_hub = "{hub_url}"\n'
    )
    project.write_config(text + ARCHIVE)


def feed_urls(*slugs: str) -> set[str]:
    return {f"{FEEDS}/{slug}/{name}" for slug in slugs for name in FEED_FILES}


ARCHIVE_FEEDS = {f"{ARCHIVE_BASE}/{name}" for name in FEED_FILES}


def test_pings_once_per_changed_feed_none_on_noop_and_retries_after_a_500(
    project: Project, hub: Hub, write_jsonl: object
) -> None:
    with_hub(project, hub.url)
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    with Store.open(project.config.database_path) as store:
        seed_issues(store, 2)
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    slugs = [p.parent.name for p in sorted(project.config.output_dir.glob("*/rss.xml"))]
    expected = feed_urls(*slugs) | ARCHIVE_FEEDS
    assert sorted(hub.topics()) == sorted(expected)  # each changed feed exactly once
    # Every feed names the hub next to rel="self".
    # (Parsed, not compared as text: any writer's attribute order will do.)
    for slug in slugs:
        for name in ("rss.xml", "atom.xml"):
            doc = etree.parse(str(project.config.output_dir / slug / name))
            links = {
                link.get("rel"): link.get("href")
                for link in doc.iter(f"{{{ATOM_NS}}}link")
                if link.getparent() is not None
                and link.getparent().tag in ("channel", f"{{{ATOM_NS}}}feed")
            }
            assert links["hub"] == hub.url
            assert links["self"] == f"{FEEDS}/{slug}/{name}"
    feed = json.loads((project.config.output_dir / "all" / "feed.json").read_bytes())
    assert feed["hubs"] == [{"type": "WebSub", "url": hub.url}]

    hub.pings.clear()
    result = project.run("build", env=ENV)
    assert result.exit_code == 0 and "nothing changed" in result.output, result.output
    assert hub.pings == []  # a no-op rebuild pings nothing

    # One record changes while the hub fails: a warning, not a failed build.
    raw = next(
        json.loads(line)
        for line in (EXAMPLES / "records.jsonl").read_text(encoding="utf-8").splitlines()
        if "Best K-indie Artists" in line
    )
    raw["title"] = "Best K-indie Artists (updated)"
    path = project.write("change.jsonl", json.dumps(raw) + "\n")
    assert "1 updated" in project.run("import", str(path), env=ENV).output
    hub.status = 500
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    changed = feed_urls("all", "kpop-articles")
    assert set(hub.topics()) == changed and len(hub.pings) == len(changed)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: WebSub")]
    assert len(warnings) == len(changed) and all("HTTP 500" in w for w in warnings)
    pending = json.loads((project.config.output_dir / PENDING_NAME).read_text())["pending"]
    assert set(pending) == changed

    # The hub is back: the next build (nothing new) pings exactly what was missed.
    hub.status = 202
    hub.pings.clear()
    result = project.run("build", env=ENV)
    assert result.exit_code == 0 and "nothing changed" in result.output, result.output
    assert sorted(hub.topics()) == sorted(changed)
    assert not (project.config.output_dir / PENDING_NAME).exists()
    hub.pings.clear()
    project.run("build", env=ENV)
    assert hub.pings == []


def test_an_unreachable_hub_warns_quickly_and_the_build_succeeds(project: Project) -> None:
    with_hub(project, f"http://127.0.0.1:{free_port()}/hub")  # nothing listens there
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    started = time.monotonic()
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 30
    assert "warning: WebSub hub" in result.stderr and "ConnectError" in result.stderr
    pending = json.loads((project.config.output_dir / PENDING_NAME).read_text())["pending"]
    slugs = [p.parent.name for p in sorted(project.config.output_dir.glob("*/rss.xml"))]
    assert set(pending) == feed_urls(*slugs) | ARCHIVE_FEEDS


def test_without_a_hub_nothing_is_pinged_and_feeds_name_none(project: Project) -> None:
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    assert project.run("build", env=ENV).exit_code == 0
    out: Path = project.config.output_dir
    assert 'rel="hub"' not in (out / "all" / "atom.xml").read_text(encoding="utf-8")
    assert "hubs" not in json.loads((out / "all" / "feed.json").read_bytes())
    assert not (out / PENDING_NAME).exists()
