"""Running the app: uvicorn, configured for ``serve`` (imported only when a server starts)."""

from __future__ import annotations

import logging

import uvicorn
from starlette.types import ASGIApp


def _adopt_logging() -> None:
    """uvicorn's own messages (startup errors, exceptions in a request) through our handler."""
    ours = logging.getLogger("kcrush_feeds")
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = ours.handlers
        logger.propagate = False
        # Its startup chatter only under -v: our own line says where we listen.
        logger.setLevel(ours.level if ours.level <= logging.DEBUG else logging.WARNING)


def server(app: ASGIApp, *, host: str, port: int, root_path: str) -> uvicorn.Server:
    """A uvicorn server for ``app`` on ``host:port`` under ``root_path``, logging through
    our handlers; ``.run()`` serves until Ctrl-C or SIGTERM."""
    _adopt_logging()
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            root_path=root_path,
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
