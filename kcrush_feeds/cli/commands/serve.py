"""``serve``: the subscribe / confirm / unsubscribe / preferences endpoints over HTTP."""

from __future__ import annotations

import logging
import socket

import click

from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.errors import KcrushError, UsageError

log = logging.getLogger("kcrush_feeds.serve")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--root-path",
    default="",
    metavar="PREFIX",
    help="The path prefix a reverse proxy serves this under, e.g. /newsletter.",
)
@click.option(
    "--header-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600),
    metavar="SECONDS",
    help="Close a connection whose request headers take longer than this.",
)
@click.option(
    "--keep-alive",
    default=5,
    show_default=True,
    type=click.IntRange(1, 3600),
    metavar="SECONDS",
    help="Close a connection left idle this long after a response.",
)
@click.option(
    "--max-connections",
    default=512,
    show_default=True,
    type=click.IntRange(1, 1_000_000),
    metavar="N",
    help="Open connections at most; past it the oldest idle one is closed.",
)
@pass_app
def serve(
    app: App,
    host: str,
    port: int,
    root_path: str,
    header_timeout: float,
    keep_alive: int,
    max_connections: int,
) -> None:
    """Serve the subscription endpoints (uvicorn) until stopped with Ctrl-C or SIGTERM.

    \b
    GET/POST /subscribe     the form; double opt-in by mail
    GET      /confirm       the link in the confirmation mail
    GET/POST /unsubscribe   one button; RFC 8058 one-click POST
    GET/POST /preferences   categories, pause, unsubscribe
    GET/POST /approve       the link in a proof: a button approves the digest
    POST     /webhooks/mailgun, /webhooks/postmark, /webhooks/ses
                            the relays' bounce and complaint notifications
    GET      /health        JSON, for monitoring
    """
    from kcrush_feeds import clock
    from kcrush_feeds.store.db import Store
    from kcrush_feeds.web.app import create_app  # local: every other command starts faster
    from kcrush_feeds.web.mail import check_smtp_reachable
    from kcrush_feeds.web.server import server

    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise UsageError(f"--root-path {root_path!r}: write it as /prefix (no trailing slash)")
    config = app.config
    config.require_subscriptions().secret()  # fail here, with the hint, not in the server
    config.require_smtp()
    # Open the store once here: a store that cannot be opened is a clear error line, not a
    # traceback from inside the server's startup.
    Store.open(config.database_path).close()
    web = create_app(config, config.database_path, clock.now)
    listening = _listen(host, port)
    port = listening.getsockname()[1]
    running = server(
        web,
        host=host,
        port=port,
        root_path=root_path,
        header_timeout=header_timeout,
        keep_alive=keep_alive,
        max_connections=max_connections,
    )
    log.info(
        "serving on http://%s:%d%s (public: %s)",
        host,
        port,
        root_path,
        config.require_subscriptions().base_url,
    )
    check_smtp_reachable(config)  # once, at start: say it now, not at the first subscriber
    running.run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a port in use is one clear error line."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as e:
        raise KcrushError(
            f"cannot listen on {host}:{port}: {e.strerror or e}",
            hint="is another server using this port? choose one with --port",
        ) from e
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening
