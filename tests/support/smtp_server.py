"""Real SMTP servers for tests: aiosmtpd on 127.0.0.1, a free port, a recording handler.

``SmtpServer`` runs aiosmtpd in a thread (its ``Controller``). What it accepted is in
``server.received`` (one ``Received`` per accepted message and recipient). Its
``Behaviour`` can be changed per test to misbehave the ways real servers do:

- ``tempfail``: {address: n} answers 451 to RCPT for that address n times, then accepts;
- ``reject``: addresses answered 550 at RCPT (a hard bounce);
- ``drop_after``: close the connection after n accepted messages on it;
- ``busy_after``: answer MAIL with "421 too busy" after n messages on a connection;
- ``refuse_connections``: the next n connections get "421 too many connections";
- ``slow``: seconds to wait before answering DATA (``slow_count`` times; -1 = always);
  a very long ``slow`` is a relay that takes the message and never answers;
- ``drop_data``: take the message after DATA, then close the connection without a reply
  (n times; -1 = always);
- ``tls="starttls"`` (required) or ``tls="implicit"`` with a trustme certificate;
- ``auth``: (user, password) that AUTH must present before MAIL.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt: str
    data: bytes
    connection: int

    @property
    def message(self) -> Message:
        return message_from_bytes(self.data)

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass
class Behaviour:
    tempfail: dict[str, int] = field(default_factory=dict)
    reject: set[str] = field(default_factory=set)
    drop_after: int | None = None
    refuse_connections: int = 0
    slow: float = 0.0
    slow_count: int = -1
    busy_after: int | None = None  # "421 too busy" to MAIL after n messages on a connection
    refusal: str = "421 4.7.0 Too many connections, try again later"  # the refusing greeting
    drop_data: int = 0  # queue the message, then drop the line before replying (-1: always)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        b = self.server.behaviour
        if b.busy_after is not None and getattr(session, "kc_count", 0) >= b.busy_after:
            with self.server.lock:
                self.server.refusals.append((address, 421))
            return "421 4.3.2 Too busy, closing connection"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        b = self.server.behaviour
        with self.server.lock:
            if b.tempfail.get(address, 0) > 0:
                b.tempfail[address] -= 1
                self.server.refusals.append((address, 451))
                return "451 4.7.1 Greylisted, try again later"
            if address in b.reject:
                self.server.refusals.append((address, 550))
                return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        b = self.server.behaviour
        data = envelope.original_content or b""
        number = getattr(session, "kc_number", 0)
        with self.server.lock:
            # Recorded before any delay: a slow server has queued the message already,
            # and the client that gives up waiting lost only the 250.
            for rcpt in envelope.rcpt_tos:
                self.server.received.append(
                    Received(str(envelope.mail_from), rcpt, bytes(data), number)
                )
        with self.server.lock:
            drop = b.drop_data != 0
            if b.drop_data > 0:
                b.drop_data -= 1
        if drop and server.transport is not None:
            server.transport.close()  # the message is queued; its 250 never leaves
            await asyncio.sleep(3600)  # nothing more on this connection
        if b.slow and b.slow_count != 0:
            with self.server.lock:
                if b.slow_count > 0:
                    b.slow_count -= 1
            await asyncio.sleep(b.slow)
        session.kc_count = getattr(session, "kc_count", 0) + 1  # type: ignore[attr-defined]
        if b.drop_after is not None and session.kc_count >= b.drop_after:  # type: ignore[attr-defined]
            # Accepted, and then the line goes dead before the client sends anything else.
            loop = asyncio.get_running_loop()
            transport = server.transport
            if transport is not None:
                loop.call_soon(transport.close)
        return "250 2.0.0 Ok: queued"


class _SMTP(SMTP):
    """aiosmtpd's server, plus a "421 too many connections" greeting on demand."""

    owner: SmtpServer

    async def _handle_client(self) -> None:
        owner = self.owner
        assert self.session is not None
        if not owner.started:  # Controller.start()'s own probe, answered before it returns
            await super()._handle_client()
            return
        with owner.lock:
            owner.connections += 1
            self.session.kc_number = owner.connections  # type: ignore[attr-defined]
            refuse = owner.behaviour.refuse_connections > 0
            if refuse:
                owner.behaviour.refuse_connections -= 1
                owner.refused_connections += 1
        if refuse:
            await self.push(owner.behaviour.refusal)
            assert self.transport is not None
            self.transport.close()
            return
        await super()._handle_client()


class _Controller(Controller):
    def __init__(self, owner: SmtpServer, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(_Handler(owner), **kwargs)

    def factory(self) -> SMTP:
        smtp = _SMTP(self.handler, **self.SMTP_kwargs)
        smtp.owner = self.owner
        return smtp


class SmtpServer:
    """A recording aiosmtpd server on 127.0.0.1; ``with SmtpServer() as server: ...``."""

    def __init__(
        self,
        *,
        tls: str = "none",
        auth: tuple[str, str] | None = None,
        ca: trustme.CA | None = None,
        behaviour: Behaviour | None = None,
    ) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.behaviour = behaviour or Behaviour()
        self.received: list[Received] = []
        self.refusals: list[tuple[str, int]] = []
        self.connections = 0
        self.refused_connections = 0
        self.logins: list[str] = []
        self.lock = threading.Lock()
        self.started = False
        self.ca = ca or trustme.CA()
        self.tls = tls
        kwargs: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "localhost",
            "ready_timeout": 10.0,
            "data_size_limit": None,
            "timeout": 30,
        }
        if tls != "none":
            cert = self.ca.issue_cert("localhost", "127.0.0.1")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
            if tls == "starttls":
                kwargs.update(tls_context=context, require_starttls=True)
            else:
                kwargs.update(ssl_context=context)
        if auth is not None:
            user, password = auth

            def authenticator(
                server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
            ) -> AuthResult:
                ok = (
                    isinstance(data, LoginPassword)
                    and data.login.decode() == user
                    and data.password.decode() == password
                )
                if ok:
                    with self.lock:
                        self.logins.append(user)
                return AuthResult(success=ok, handled=False)  # handled=True: no reply

            kwargs.update(
                auth_required=True, authenticator=authenticator, auth_require_tls=tls == "starttls"
            )
        self._controller = _Controller(self, **kwargs)

    def start(self) -> SmtpServer:
        self._controller.start()
        self.started = True
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> SmtpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ca_file(self, directory: Any) -> str:
        """Write the CA certificate (PEM) into ``directory``; its path."""
        path = f"{directory}/test-ca.pem"
        self.ca.cert_pem.write_to_path(path)
        return path

    # --- what was received -------------------------------------------------------------

    def recipients(self) -> list[str]:
        with self.lock:
            return [r.rcpt for r in self.received]

    def counts(self) -> Counter[str]:
        return Counter(self.recipients())

    def settle(self, quiet: float = 0.3) -> None:
        """Wait until nothing new arrived for ``quiet`` seconds: a client killed after
        writing a whole message leaves it in the socket for the server to accept."""
        import time

        seen = -1
        while seen != len(self.received):
            seen = len(self.received)
            time.sleep(quiet)

    def wait_for(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` messages were received (for subprocess tests)."""
        import time

        deadline = time.monotonic() + timeout
        while len(self.received) < n and time.monotonic() < deadline:
            time.sleep(0.01)


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[SmtpServer]:
    server = SmtpServer(**kwargs)
    with server:
        yield server
