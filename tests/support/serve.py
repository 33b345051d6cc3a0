"""What the ``serve`` tests share: a real SMTP sink, a real ``kcrush-feeds serve`` process.

The server runs as a subprocess of the real command on a free 127.0.0.1 port, with the
``[subscriptions] base_url`` pointing at itself, so the links in the mails it sends can be
followed as they are. Its confirmation mails go to an aiosmtpd server on another free port.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from kcrush_feeds.config import load_config
from kcrush_feeds.model import Subscriber
from kcrush_feeds.store.db import Store
from kcrush_feeds.subscriptions import subscribers
from tests.support.project import BASE_CONFIG

SECRET_ENV = "KCRUSH_TEST_SECRET"
SECRET = "test-secret-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Caught:
    recipients: list[str]
    message: EmailMessage
    raw: bytes = b""  # as it came over SMTP


class _Recorder:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(Caught(list(envelope.rcpt_tos), parsed, envelope.content))  # type: ignore[arg-type]
            self.sink.arrived.notify_all()
        return "250 2.0.0 OK"


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message."""

    port: int = field(default_factory=free_port)
    messages: list[Caught] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)
        self.controller = Controller(_Recorder(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            return [c.message for c in self.messages if address in c.recipients]

    def raw_to(self, address: str) -> list[bytes]:
        """The messages to ``address`` as they came over SMTP."""
        with self.lock:
            return [c.raw for c in self.messages if address in c.recipients]

    def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[EmailMessage]:
        """The first ``count`` messages to ``address``, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                found = [c.message for c in self.messages if address in c.recipients]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no mail #{count} to {address} within {timeout}s")
                self.arrived.wait(left)


def body_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def link_in(message: EmailMessage, path: str) -> str:
    """The URL ending in ``/{path}?token=...`` in the message's text."""
    match = re.search(rf"https?://\S+/{path}\?token=[A-Za-z0-9_.-]+", body_of(message))
    assert match, f"no /{path} link in:\n{body_of(message)}"
    return match.group(0)


def write_config(directory: Path, *, base_url: str, smtp_port: int, extra: str = "") -> Path:
    text = BASE_CONFIG.replace(
        'base_url = "https://www.kcrush.com/newsletter"',
        f'base_url = "{base_url}"\n{extra}',
    )
    text += f"""
[smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
rate_limit = 0
retries = 1
concurrency = 4
"""
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Server:
    """``kcrush-feeds serve`` running in a subprocess; ``client`` talks to it."""

    directory: Path
    port: int
    smtp: SmtpSink
    process: subprocess.Popen[bytes]
    root_path: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=15.0, **kwargs)

    def store(self) -> Store:
        return Store.open(load_config(self.directory / "config.toml").database_path)

    def subscriber(self, address: str) -> Subscriber | None:
        with self.store() as store:
            return subscribers.get_subscriber(store, address)

    def log(self) -> str:
        return (self.directory / "serve.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    directory: Path,
    smtp: SmtpSink,
    *,
    extra: str = "",
    root_path: str = "",
    base_url: str | None = None,
    args: tuple[str, ...] = (),
) -> Server:
    """Write a config into ``directory`` and start ``kcrush-feeds serve`` on a free port."""
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    write_config(
        directory,
        base_url=base_url or f"http://127.0.0.1:{port}{root_path}",
        smtp_port=smtp.port,
        extra=extra,
    )
    env = {**os.environ, SECRET_ENV: SECRET}
    env.pop("KCRUSH_FEEDS_NOW", None)
    command = [
        sys.executable,
        "-m",
        "kcrush_feeds",
        "--config",
        str(directory / "config.toml"),
        "serve",
        "--port",
        str(port),
    ]
    command += list(args)
    if root_path:
        command += ["--root-path", root_path]
    log = (directory / "serve.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(directory, port, smtp, process, root_path)
    deadline = time.monotonic() + 20
    while True:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"serve did not answer within 20 s:\n{server.log()}")
        time.sleep(0.05)


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF field in the page"
    return match.group(1)


def subscribe(
    client: httpx.Client,
    address: str,
    *,
    name: str = "",
    categories: Iterator[str] | list[str] | None = None,
    **fields: str,
) -> httpx.Response:
    """What a browser does: load the form (cookie + token), then post it."""
    page = client.get("/subscribe")
    assert page.status_code == 200, page.text
    data: dict[str, Any] = {
        "email": address,
        "name": name,
        "csrf_token": csrf_from(page.text),
        **fields,
    }
    if categories is not None:
        data["categories"] = list(categories)
    return client.post("/subscribe", data=data)
