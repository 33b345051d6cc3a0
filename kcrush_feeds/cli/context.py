"""The context object every command receives: the config and the store, loaded on first use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click

from kcrush_feeds.config import Config, find_config, load_config
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
        return find_config(self.config_option)

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.config.database_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


pass_app = click.make_pass_decorator(App)
