"""Files kcrush-feeds creates, against a hostile machine (issue 18, part B): the store, its
WAL and the lock file are private (0600); ``init`` never writes through a symlink."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from click.testing import CliRunner

from kcrush_feeds.cli.main import main
from kcrush_feeds.delivery.lock import lock_path, run_lock
from kcrush_feeds.store.db import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_its_wal_and_the_lock_are_created_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask, which would give 0644
    try:
        database = tmp_path / "store.db"
        with Store.open(database) as store:
            with store.transaction() as conn:
                conn.execute("CREATE TABLE t (x)")
            created = [database, database.with_name("store.db-wal")]
            for path in created:
                assert path.exists(), path
                assert _mode(path) == 0o600, (path, oct(_mode(path)))
        with run_lock(database):
            assert _mode(lock_path(database, "send")) == 0o600
    finally:
        os.umask(old)


def test_init_refuses_a_symlinked_config(tmp_path: Path) -> None:
    target = tmp_path / "site"
    target.mkdir()
    elsewhere = tmp_path / "elsewhere.toml"
    (target / "config.toml").symlink_to(elsewhere)  # dangling: "does not exist"
    result = CliRunner().invoke(main, ["init", str(target)])
    assert result.exit_code == 1, result.output
    assert "already exists" in result.output
    assert not elsewhere.exists()
    assert not (target / "templates").exists()
