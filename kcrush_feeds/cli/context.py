"""The context object every command receives: the config and the store, loaded on first use.

Nothing heavy at import time: the config module (pydantic) and the store are imported
when a command first asks for them, so `--version` and `--help` start in a blink.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from kcrush_feeds.config import Config
    from kcrush_feeds.store.db import Store


@dataclass
class App:
    """What every command needs, loaded on first use."""

    config_option: str | None
    verbosity: int
    _config: Config | None = field(default=None, init=False)
    _store: Store | None = field(default=None, init=False)

    @property
    def config_path(self) -> Path:
        from kcrush_feeds.config import find_config

        return find_config(self.config_option)

    @property
    def config(self) -> Config:
        if self._config is None:
            from kcrush_feeds.config import config_origin, load_config

            origin = config_origin(self.config_option)
            self._config = load_config(self.config_path, origin=origin)
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            from kcrush_feeds.store.db import Store

            self._store = Store.open(self.config.database_path)
        return self._store

    def section_problems(self) -> list[str]:
        """What is wrong with the digest sections' categories, given what the store holds."""
        from kcrush_feeds.digest.checks import section_problems

        return section_problems(self.config, self._record_categories())

    def check_sections(self) -> None:
        """Raise ``ConfigError`` (exit 2) if a digest section names no known category."""
        from kcrush_feeds.digest.checks import check_sections

        check_sections(self.config, self._record_categories())

    def _record_categories(self) -> list[str]:
        from kcrush_feeds.store.records import category_counts

        return [name for name, _, _ in category_counts(self.store)]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(App)
