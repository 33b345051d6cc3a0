"""``serve``: the subscribe / confirm / unsubscribe / preferences endpoints over HTTP."""

from __future__ import annotations

import logging

import click

from kcrush_feeds.cli.main import App, pass_app
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
    import uvicorn  # local: every other command starts faster without it

    from kcrush_feeds import clock
    from kcrush_feeds.web.app import check_smtp_reachable, create_app

    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        raise UsageError(f"--root-path {root_path!r}: write it as /prefix (no trailing slash)")
    config = app.config
    config.require_subscriptions().secret()  # fail here, with the hint, not in the server
    config.require_smtp()
    web = create_app(config, config.database_path, clock.now)
    # uvicorn's own messages (startup errors, exceptions in a request) through our handler.
    ours = logging.getLogger("kcrush_feeds")
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = ours.handlers
        logger.propagate = False
        # Its startup chatter only under -v: our own line below says where we listen.
        logger.setLevel(ours.level if ours.level <= logging.DEBUG else logging.WARNING)
    log.info(
        "serving on http://%s:%d%s (public: %s)",
        host,
        port,
        root_path,
        config.require_subscriptions().base_url,
    )
    check_smtp_reachable(config)  # once, at start: say it now, not at the first subscriber
    server = uvicorn.Server(
        uvicorn.Config(
            web,
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
    server.run()
