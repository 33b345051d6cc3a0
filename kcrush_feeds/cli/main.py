"""The ``kcrush-feeds`` command line: a thin layer over the library.

It finds and loads the config, opens the store, calls the library and turns
``KcrushError`` into a one-line message and the exit status the README documents.
A traceback is shown only under ``-v``.

Start-up time matters (every cron line, ``status`` and tab-completion pays it), so this
module imports only click and the foundation: each command's module is imported when that
command runs (``LazyGroup``), and the config (pydantic) and the store when a command first
asks for them. ``--version`` and ``--help`` load neither.
"""

from __future__ import annotations

import errno
import importlib
import logging
import os
import sys
from typing import Any

import click

from kcrush_feeds import __version__
from kcrush_feeds.cli.context import App
from kcrush_feeds.errors import EXIT_FAILED, EXIT_OK, KcrushError
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
            result = super().invoke(ctx)
            sys.stdout.flush()  # a closed pipe shows here when the output was buffered
            return result
        except BrokenPipeError:
            # `status | head -1`: the reader has all it wanted. End quietly with 0, as
            # other Unix tools do, and keep Python from complaining again at exit when it
            # flushes the dead stdout.
            _silence_stdout()
            ctx.exit(EXIT_OK)
        except OSError as e:
            if e.errno != errno.EPIPE:
                return self._unexpected(ctx, e)
            _silence_stdout()
            ctx.exit(EXIT_OK)
        except KcrushError as e:
            if _verbosity(ctx) > 0:
                log.debug("traceback", exc_info=True)
            raise CommandError(e) from e
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            raise
        except Exception as e:
            return self._unexpected(ctx, e)

    def _unexpected(self, ctx: click.Context, e: Exception) -> Any:
        if _verbosity(ctx) > 0:
            raise e
        click.echo(
            f"error: internal error: {type(e).__name__}: {show(str(e))} "
            "(run again with -v for the traceback)",
            err=True,
        )
        ctx.exit(EXIT_FAILED)


# name -> (module, attribute, the one-line help `--help` lists). The line is kept here so
# `--help` need not import every command module; test_cli checks it matches the command.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "build": (
        "build",
        "build",
        "Write every feed under feeds.output_dir, and the archive under archive.output_dir.",
    ),
    "digest": ("digest", "digest", "The digests, and the editor's hand on the next one."),
    "import": ("records", "import_command", "Load records from files, feeds and WordPress sites."),
    "inbound": (
        "inbound",
        "inbound",
        "Process returned mail: bounces, complaints, unsubscribe requests.",
    ),
    "init": (
        "init",
        "init",
        "Write DIRECTORY/config.toml, DIRECTORY/templates/email/ and an empty store.",
    ),
    "preview": (
        "preview",
        "preview",
        "Write the digest that would go out now (or in --week) as .html, .txt and .eml.",
    ),
    "schedule": (
        "schedule",
        "schedule",
        "Run in the foreground: build every few minutes, send at the digest time.",
    ),
    "send": (
        "send",
        "send",
        "Send this week's digest to every active subscriber who has something in it.",
    ),
    "serve": (
        "serve",
        "serve",
        "Serve the subscription endpoints (uvicorn) until stopped with Ctrl-C or SIGTERM.",
    ),
    "status": (
        "status",
        "status",
        "Records per category, the newest record, the store and its schema version.",
    ),
    "subscribers": (
        "subscribers",
        "subscribers",
        "Manage the digest's subscribers (add, update, remove, list, import, export).",
    ),
}


class LazyGroup(Group):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMANDS:
            return None
        module_name, attribute, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"kcrush_feeds.cli.commands.{module_name}")
        command: click.Command = getattr(module, attribute)
        self.commands[cmd_name] = command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The list of commands from ``COMMANDS``, without importing any of them."""
        rows = [(name, COMMANDS[name][2]) for name in sorted(COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real file descriptor (CliRunner): nothing to flush
        pass


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


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
