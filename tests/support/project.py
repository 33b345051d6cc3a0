"""A project directory with a real config file and a real SQLite store, driven through the CLI."""

from __future__ import annotations

import sqlite3
import textwrap
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner, Result

from kcrush_feeds.cli.main import main
from kcrush_feeds.config import Config, load_config
from kcrush_feeds.store.db import Store

ROOT = Path(__file__).resolve().parents[2]


EXAMPLES = ROOT / "examples"


BASE_CONFIG = """\
[site]
title = "KCrush"
url = "https://www.kcrush.com"
description = "K-Pop, K-Drama and Asian film and culture"
timezone = "America/Los_Angeles"

[storage]
database = "store.db"

[feeds]
output_dir = "public/feeds"
base_url = "https://www.kcrush.com/feeds"

[[feeds.categories]]
slug = "kpop-articles"
title = "K-Pop Articles"
match = ["K-Pop Articles", "articles"]

[[feeds.categories]]
slug = "kpop-interviews"
title = "K-Pop Interviews"
match = ["K-Pop Interviews", "interviews", "featured-interview"]

[digest]
schedule = "mon 09:00"
first_window = "7d"
from = "KCrush Weekly <newsletter@kcrush.com>"
reply_to = "editors@kcrush.com"

[[digest.sections]]
title = "New articles"
categories = ["kpop-articles"]

[[digest.sections]]
title = "Interviews"
categories = ["kpop-interviews"]

[subscriptions]
base_url = "https://www.kcrush.com/newsletter"
secret_env = "KCRUSH_TEST_SECRET"
"""


@dataclass
class Project:
    """A directory holding config.toml; ``run`` drives the real CLI against it."""

    dir: Path
    runner: CliRunner

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    def write_config(self, text: str) -> Path:
        self.config_path.write_text(textwrap.dedent(text), encoding="utf-8")
        return self.config_path

    def append_config(self, text: str) -> None:
        with self.config_path.open("a", encoding="utf-8") as f:
            f.write("\n" + textwrap.dedent(text))

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def write(self, name: str, content: str | bytes) -> Path:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def run(
        self, *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return self.runner.invoke(
            main,
            ["--config", str(self.config_path), *args],
            input=input,
            env=env,
            catch_exceptions=False,
        )


def rows(project: Project, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` read straight from the project's store file."""
    conn = sqlite3.connect(project.dir / "store.db")
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def sent_rows(project: Project) -> set[str]:
    """Addresses the store records as served ('sent') for any digest."""
    with Store.open(project.config.database_path) as store:
        return {
            email
            for (email,) in store.conn.execute(
                "SELECT s.email FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id "
                "WHERE d.status = 'sent'"
            )
        }


TESTS = ROOT / "tests"
GOLDEN = TESTS / "golden"
