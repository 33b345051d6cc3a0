"""``init``: a working config, editable templates and an empty store."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import click

from kcrush_feeds.config import load_config
from kcrush_feeds.errors import KcrushError
from kcrush_feeds.store.db import Store


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path) -> None:
    """Write DIRECTORY/config.toml, DIRECTORY/templates/email/ and an empty store.

    Never overwrites: if any of them exists, nothing is written.
    """
    package = resources.files("kcrush_feeds")
    config_path = directory / "config.toml"
    templates = directory / "templates" / "email"
    example = package.joinpath("skeleton", "config.example.toml").read_text(encoding="utf-8")
    # The example's database path, resolved the way load_config will resolve it.
    # is_symlink too: a dangling DIR/config.toml link "does not exist", and writing to it
    # would create whatever file it points at.
    existing = [p for p in (config_path, templates) if p.exists() or p.is_symlink()]
    if existing:
        raise KcrushError(
            f"{existing[0]} already exists; init never overwrites anything",
            hint="choose another directory, or remove what is there",
        )
    directory.mkdir(parents=True, exist_ok=True)
    try:
        # "x": O_CREAT | O_EXCL, which also refuses a symlink created since the check.
        with config_path.open("x", encoding="utf-8") as f:
            f.write(example)
    except FileExistsError as e:
        raise KcrushError(f"{config_path} already exists; init never overwrites anything") from e
    source = package.joinpath("templates", "email")
    with resources.as_file(source) as source_dir:
        shutil.copytree(source_dir, templates)
    config = load_config(config_path)  # after the templates: the config names their folder
    if config.database_path.exists():
        config_path.unlink()
        shutil.rmtree(templates)
        raise KcrushError(f"{config.database_path} already exists; init never overwrites it")
    Store.open(config.database_path).close()
    click.echo(f"wrote {config_path}")
    click.echo(f"wrote {templates}/")
    click.echo(f"created the store {config.database_path}")
    click.echo("next: edit config.toml, then 'kcrush-feeds import FILE' and 'kcrush-feeds build'")
