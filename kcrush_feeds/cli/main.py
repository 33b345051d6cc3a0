"""The ``kcrush-feeds`` command line: a thin layer over the library.

It finds and loads the config, opens the store, calls the library and turns
``KcrushError`` into a one-line message and the exit status the README documents.
A traceback is shown only under ``-v``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import click

from kcrush_feeds import __version__
from kcrush_feeds.cli.context import App
from kcrush_feeds.errors import EXIT_FAILED, KcrushError
from kcrush_feeds.text import show, show_lines

log = logging.getLogger("kcrush_feeds")


class CommandError(click.ClickException):
    """A ``KcrushError`` on its way out, keeping its exit status."""

    def __init__(self, error: KcrushError) -> None:
        # Messages quote what others wrote (a config key, an SMTP server's reply): shown
        # with control characters escaped, so no escape sequence reaches the terminal.
        text = show(error.message)
        if error.hint is not None:
            text += f"\n  hint: {show(error.hint)}"
        super().__init__(text)
        self.exit_code = error.exit_code  # type: ignore[misc]  # per instance, not per class

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class Group(click.Group):
    """Maps library errors to exit codes; unexpected errors get one line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KcrushError as e:
            if _verbosity(ctx) > 0:
                log.debug("traceback", exc_info=True)
            raise CommandError(e) from e
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:
            if _verbosity(ctx) > 0:
                raise
            click.echo(
                f"error: internal error: {type(e).__name__}: {show(str(e))} "
                "(run again with -v for the traceback)",
                err=True,
            )
            ctx.exit(EXIT_FAILED)


def _verbosity(ctx: click.Context) -> int:
    app = ctx.find_object(App)
    return app.verbosity if app else 0


class _Formatter(logging.Formatter):
    """Plain messages on a terminal; ISO 8601 timestamped lines for cron and services."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def format(self, record: logging.LogRecord) -> str:
        message = show_lines(record.getMessage())
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if self.tty:
            return (
                message
                if record.levelno < logging.WARNING
                else f"{record.levelname.lower()}: {message}"
            )
        from datetime import UTC, datetime

        stamp = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="seconds")
        return f"{stamp} {record.levelname} {message}"


def setup_logging(verbosity: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(sys.stderr.isatty()))
    root = logging.getLogger("kcrush_feeds")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel(
        logging.DEBUG if verbosity > 0 else logging.WARNING if verbosity < 0 else logging.INFO
    )


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    "config_option",
    metavar="FILE",
    envvar=None,
    help="Config file (default: $KCRUSH_FEEDS_CONFIG, else ./config.toml).",
)
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.version_option(__version__, prog_name="kcrush-feeds")
@click.pass_context
def main(ctx: click.Context, config_option: str | None, verbose: int, quiet: bool) -> None:
    """Per-category RSS, Atom and JSON feeds and a weekly email digest for KCrush.

    \b
    Typical use:
      kcrush-feeds init site/            # a working config.toml and templates
      kcrush-feeds import posts.jsonl    # load records into the store
      kcrush-feeds build                 # write the feeds
      kcrush-feeds send                  # the weekly digest (from cron)
    """
    verbosity = -1 if quiet else verbose
    setup_logging(verbosity)
    app = App(config_option, verbosity)
    ctx.obj = app
    ctx.call_on_close(app.close)


def _register() -> None:
    from kcrush_feeds.cli.commands import (
        build,
        inbound,
        init,
        preview,
        records,
        schedule,
        send,
        serve,
        status,
        subscribers,
    )

    for command in (
        init.init,
        records.import_command,
        status.status,
        subscribers.subscribers,
        preview.preview,
        build.build,
        send.send,
        serve.serve,
        schedule.schedule,
        inbound.inbound,
    ):
        main.add_command(command)


_register()
