"""Every command has help; errors map to exit codes without tracebacks."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from kcrush_feeds.cli.main import main
from tests.support.project import Project


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("path", _commands(main), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    command: click.Command = main
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 20, f"{path} needs real help text"


def test_version() -> None:
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0 and "kcrush-feeds" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    assert CliRunner().invoke(main, ["frobnicate"]).exit_code == 2


def test_init_writes_a_working_project_and_refuses_to_overwrite(tmp_path: object) -> None:
    from pathlib import Path

    target = Path(str(tmp_path)) / "site"
    runner = CliRunner()
    result = runner.invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert (target / "config.toml").is_file()
    assert (target / "kcrush-feeds.db").is_file()
    assert (target / "templates" / "email").is_dir()
    status = runner.invoke(main, ["--config", str(target / "config.toml"), "status"])
    assert status.exit_code == 0, status.output
    assert "records:  0" in status.output
    before = (target / "config.toml").read_bytes()
    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code == 1
    assert "already exists; init never overwrites" in again.output
    assert (target / "config.toml").read_bytes() == before


def test_status_json(project: Project) -> None:
    import json

    from tests.support.project import EXAMPLES

    project.run("import", str(EXAMPLES / "records.jsonl"))
    result = project.run("status", "--json")
    info = json.loads(result.output)
    assert info["records"] == 30
    assert info["schema_version"] >= 2
    names = {c["name"]: c["records"] for c in info["categories"]}
    assert names["K-Pop Interviews"] == 15 and names["K-Pop Articles"] == 15
