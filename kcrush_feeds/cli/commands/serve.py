"""``serve``: the subscribe / confirm / unsubscribe / preferences endpoints over HTTP."""

from __future__ import annotations

import logging

import click

from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.errors import UsageError

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
@pass_app
def serve(app: App, host: str, port: int, root_path: str) -> None:
    """Serve the subscription endpoints (uvicorn) until stopped with Ctrl-C or SIGTERM.

    \b
    GET/POST /subscribe     the form; double opt-in by mail
    GET      /confirm       the link in the confirmation mail
    GET/POST /unsubscribe   one button; RFC 8058 one-click POST
    GET/POST /preferences   categories, pause, unsubscribe
    GET      /health        JSON, for monitoring
    """
    from kcrush_feeds import clock
    from kcrush_feeds.web.app import create_app  # local: every other command starts faster
    from kcrush_feeds.web.mail import check_smtp_reachable
    from kcrush_feeds.web.server import server

    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise UsageError(f"--root-path {root_path!r}: write it as /prefix (no trailing slash)")
    config = app.config
    config.require_subscriptions().secret()  # fail here, with the hint, not in the server
    config.require_smtp()
    web = create_app(config, config.database_path, clock.now)
    running = server(web, host=host, port=port, root_path=root_path)
    log.info(
        "serving on http://%s:%d%s (public: %s)",
        host,
        port,
        root_path,
        config.require_subscriptions().base_url,
    )
    check_smtp_reachable(config)  # once, at start: say it now, not at the first subscriber
    running.run()
