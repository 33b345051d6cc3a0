"""The command line starts in a blink: `--version` and `--help` import no heavy module.

Each check runs in a fresh interpreter (this test process has imported everything already).
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from kcrush_feeds.cli.main import COMMANDS, main

HEAVY = (
    "pydantic",
    "starlette",
    "uvicorn",
    "aiosmtplib",
    "lxml",
    "nh3",
    "apscheduler",
    "feedgen",
    "jinja2",
    "httpx",
    "css_inline",
    "feedparser",
    "email_validator",
    "kcrush_feeds.config",
    "kcrush_feeds.store.db",
)

PROBE = """
import json, sys
from kcrush_feeds.cli.main import main
args = json.loads(sys.argv[1])
if args:
    try:
        main(args, prog_name="kcrush-feeds")
    except SystemExit:
        pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _loaded(*args: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args))],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(proc.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [(), ("--version",), ("--help",), ("frobnicate",)], ids=repr)
def test_no_heavy_module_is_imported(args: tuple[str, ...]) -> None:
    loaded = _loaded(*args)
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY)
    assert heavy == [], f"{args} imported {heavy}"


def test_a_command_imports_only_its_own_module() -> None:
    loaded = _loaded("status", "--help")
    modules = {f"kcrush_feeds.cli.commands.{module}" for module, _, _ in COMMANDS.values()}
    assert loaded & modules == {"kcrush_feeds.cli.commands.status"}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_help_line_is_the_commands_own(name: str) -> None:
    """`--help` lists COMMANDS' lines without importing: they must match the commands."""
    command = main.get_command(click.Context(main), name)
    assert command is not None
    assert command.get_short_help_str(limit=1000) == COMMANDS[name][2]
