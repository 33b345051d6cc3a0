"""Running the app: uvicorn, configured for ``serve`` (imported only when a server starts).

uvicorn closes a connection that stays idle after a response (``timeout_keep_alive``), but
not one that never finishes sending its request headers, and it accepts connections
without limit: a few hundred slow or silent sockets would hold every file descriptor.
``_Guard`` adds the two missing limits:

- the headers of each request must arrive within ``header_timeout`` seconds of the
  connection (or of the previous response), and its body within as long again after
  the headers, else the connection is closed (a form is a few KiB: a body that trickles
  in one byte at a time is the same attack as slow headers);
- past ``max_connections`` open connections, the oldest idle one (no request in progress)
  is closed to make room, so a flood of idle sockets never locks out a real request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.auto import AutoHTTPProtocol

HEADER_TIMEOUT = 10.0  # seconds for a request's headers: a real client needs well under one
KEEP_ALIVE = 5  # seconds an idle connection is kept after a response (uvicorn's default)
MAX_CONNECTIONS = 512  # open connections; more push out the oldest idle one

log = logging.getLogger("kcrush_feeds.web.app")


class _Guard(asyncio.Protocol):
    """The two limits, on top of uvicorn's HTTP protocol (httptools when installed, else
    h11: ``uvicorn.protocols.http.auto``); ``_protocol`` puts them together."""

    header_timeout: float = HEADER_TIMEOUT
    max_connections: int = MAX_CONNECTIONS
    # What uvicorn's protocols have (set in their __init__ / connection_made):
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    connections: set[Any]
    cycle: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._reading_body = False
        self._opened = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._make_room()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._arm()  # the next request on this connection has the same deadline

    def handle_events(self) -> None:  # h11: a request's headers were parsed here
        super().handle_events()  # type: ignore[misc]
        self._headers_arrived()

    def on_headers_complete(self) -> None:  # httptools: the same moment
        super().on_headers_complete()  # type: ignore[misc]
        self._headers_arrived()

    def _headers_arrived(self) -> None:
        if self._busy() and not self._reading_body:
            self._disarm()
            self._reading_body = True
            self._header_timer = self.loop.call_later(self.header_timeout, self._body_late)

    def _body_late(self) -> None:
        self._header_timer = None
        if self._busy() and self.cycle.more_body and not self.transport.is_closing():
            self.transport.close()

    def _busy(self) -> bool:
        """A request's headers arrived and its response is not finished."""
        return self.cycle is not None and not self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._reading_body = False
        if not self.transport.is_closing():
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._busy() and not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        """Close the oldest idle connections while there are more than allowed."""
        excess = len(self.connections) - self.max_connections
        if excess <= 0:
            return
        idle = sorted(
            (c for c in self.connections if isinstance(c, _Guard) and not c._busy()),
            key=lambda c: c._opened,
        )
        for connection in idle[:excess]:
            connection.transport.close()
        if excess > len(idle):
            log.warning("%d connections open, all busy: refusing one", len(self.connections))
            self.transport.close()


def _protocol(header_timeout: float, max_connections: int) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with ``_Guard``'s limits."""
    return type(
        "ServeProtocol",
        (_Guard, AutoHTTPProtocol),
        {"header_timeout": header_timeout, "max_connections": max_connections},
    )


def server(
    app: ASGIApp,
    *,
    host: str,
    port: int,
    root_path: str,
    header_timeout: float = HEADER_TIMEOUT,
    keep_alive: int = KEEP_ALIVE,
    max_connections: int = MAX_CONNECTIONS,
) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``host:port`` under ``root_path``, logging through
    our handlers; ``.run()`` serves until Ctrl-C or SIGTERM."""
    _adopt_logging()
    protocol = _protocol(header_timeout, max_connections)
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            root_path=root_path,
            http=protocol,
            timeout_keep_alive=keep_alive,
            # Forwarded headers are handled by the app, from subscriptions.trusted_proxies
            # only; uvicorn's default would believe any local peer.
            proxy_headers=False,
            server_header=False,
            date_header=True,
            log_config=None,  # our logging setup (cli.setup_logging) stays in charge
            access_log=False,
            timeout_graceful_shutdown=10,
        )
    )


def _adopt_logging() -> None:
    """uvicorn's own messages (startup errors, exceptions in a request) through our handler."""
    ours = logging.getLogger("kcrush_feeds")
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = ours.handlers
        logger.propagate = False
        # Its startup chatter only under -v: our own line says where we listen.
        logger.setLevel(ours.level if ours.level <= logging.DEBUG else logging.WARNING)
