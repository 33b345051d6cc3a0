"""Shared fixtures; the helpers behind them live in ``tests/support``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.support.project import BASE_CONFIG, Project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.setenv("KCRUSH_TEST_SECRET", "test-secret-0123456789abcdef")
    monkeypatch.delenv("KCRUSH_FEEDS_NOW", raising=False)
    p = Project(tmp_path, CliRunner())
    p.write_config(BASE_CONFIG)
    return p


@pytest.fixture
def write_jsonl(project: Project) -> Callable[..., Path]:
    import json

    def write(name: str, *records: dict[str, object]) -> Path:
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        return project.write(name, lines)

    return write


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--regen-golden",
        action="store_true",
        default=False,
        help="Rewrite the golden files in tests/golden/ from the current output.",
    )


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    """True under ``pytest --regen-golden`` (or KCRUSH_REGEN_GOLDEN=1): rewrite golden files."""
    import os

    return bool(request.config.getoption("--regen-golden")) or (
        os.environ.get("KCRUSH_REGEN_GOLDEN") == "1"
    )
