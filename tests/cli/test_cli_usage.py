"""A first-time user's ordinary mistakes get usage errors and plain messages (issue 15)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.project import EXAMPLES, ROOT, Project


def _cli(project: Project, *args: str) -> list[str]:
    return [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), *args]


@pytest.mark.parametrize(
    "args",
    [("status",), ("subscribers", "list"), ("subscribers", "export")],
    ids=" ".join,
)
def test_a_closed_pipe_ends_a_listing_quietly(project: Project, args: tuple[str, ...]) -> None:
    """`status | head -1`: the reader went away; exit 0 and say nothing (a real pipe)."""
    project.run("import", str(EXAMPLES / "records.jsonl"))
    project.run("subscribers", "import", str(EXAMPLES / "subscribers.csv"))
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first byte: every write is EPIPE
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run(
            _cli(project, *args), stdout=write, stderr=subprocess.PIPE, env=env, timeout=60
        )
    finally:
        os.close(write)
    assert proc.stderr.decode() == ""
    assert proc.returncode == 0


def test_a_closed_pipe_with_head(project: Project) -> None:
    """The same through a shell pipeline, as the user types it."""
    project.run("import", str(EXAMPLES / "records.jsonl"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = " ".join(_cli(project, "status")) + " | head -1; echo ${PIPESTATUS[0]} >&2"
    proc = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.stdout.startswith("store:")
    assert proc.stderr.strip() == "0"


@pytest.mark.parametrize("week", ["2024-W60", "2024-W00", "2021-W53", "2024-w9"])
def test_preview_of_a_week_that_does_not_exist_is_a_usage_error(
    project: Project, week: str, tmp_path: Path
) -> None:
    result = project.run("preview", "--week", week, "--out", str(tmp_path / "p"))
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output
    assert week in result.output
    if week == "2021-W53":
        assert "2021-W01 to 2021-W52" in result.output
    elif week != "2024-w9":
        assert "2024-W01 to 2024-W52" in result.output


def _typo_in_a_section(project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace('categories = ["kpop-interviews"]', 'categories = ["kpop-interview"]'),
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    "args", [("status",), ("status", "--json"), ("preview",), ("send", "--dry-run")], ids=" ".join
)
def test_a_typo_in_a_section_category_is_a_config_error(
    project: Project, args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.run("import", str(EXAMPLES / "records.jsonl"))
    _typo_in_a_section(project)
    monkeypatch.chdir(tmp_path)  # preview and --dry-run write here
    monkeypatch.setenv("KCRUSH_FEEDS_NOW", "2024-02-27T09:00:00-08:00")
    result = project.run(*args)
    assert result.exit_code == 2, result.output
    assert "digest.sections[1].categories: 'kpop-interview'" in result.output
    assert "did you mean 'kpop-interviews'?" in result.output


def test_a_section_may_name_a_stored_record_category(project: Project) -> None:
    project.run("import", str(EXAMPLES / "records.jsonl"))
    text = project.config_path.read_text(encoding="utf-8")
    project.config_path.write_text(
        text.replace('categories = ["kpop-interviews"]', 'categories = ["k-pop interviews"]'),
        encoding="utf-8",
    )
    assert project.run("status").exit_code == 0


def test_build_warns_of_a_section_typo_and_still_builds(project: Project) -> None:
    project.run("import", str(EXAMPLES / "records.jsonl"))
    _typo_in_a_section(project)
    result = project.run("build")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "did you mean 'kpop-interviews'?" in result.output


@pytest.mark.parametrize(
    ("old", "new", "key", "suggestion"),
    [
        ('title = "KCrush"', 'titel = "KCrush"', "site.titel", "title"),
        (
            'categories = ["kpop-articles"]',
            'categorys = ["kpop-articles"]',
            "digest.sections[0].categorys",
            "categories",
        ),
        ('first_window = "7d"', 'first_windw = "7d"', "digest.first_windw", "first_window"),
        ('from = "KCrush', 'form = "KCrush', "digest.form", "from"),
    ],
)
def test_an_unknown_config_key_gets_did_you_mean(
    project: Project, old: str, new: str, key: str, suggestion: str
) -> None:
    text = project.config_path.read_text(encoding="utf-8")
    assert old in text
    project.config_path.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = project.run("status")
    assert result.exit_code == 2
    assert f"{key}: unknown key (did you mean {suggestion!r}?)" in result.output


def test_a_missing_config_names_the_directory_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from kcrush_feeds.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KCRUSH_FEEDS_CONFIG", str(tmp_path / "etc" / "kcrush.toml"))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert f"looked in {tmp_path / 'etc'}" in result.output
    assert "from $KCRUSH_FEEDS_CONFIG" in result.output
    monkeypatch.delenv("KCRUSH_FEEDS_CONFIG")
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 2
    assert f"looked in {tmp_path}" in result.output and "./config.toml" in result.output


def test_config_given_a_directory_gets_a_hint(project: Project) -> None:
    from click.testing import CliRunner

    from kcrush_feeds.cli.main import main

    result = CliRunner().invoke(main, ["--config", str(project.dir), "status"])
    assert result.exit_code == 2
    assert "is a directory" in result.output
    assert f"--config {project.dir / 'config.toml'}" in result.output


def test_a_jsonl_line_missing_its_brace_is_reported_at_its_end(project: Project) -> None:
    line = (EXAMPLES / "records.jsonl").read_text(encoding="utf-8").splitlines()[0]
    cut = line.rstrip().removesuffix("}")
    path = project.write("cut.jsonl", line + "\n" + cut + "\n")
    result = project.run("import", str(path))
    assert result.exit_code == 1
    assert f"{path}:2: line: not valid JSON: Expecting ',' delimiter at column {len(cut) + 1}" in (
        result.output
    )


def test_status_columns_line_up_for_korean_and_emoji_names(
    project: Project, write_jsonl: Callable[..., Path]
) -> None:
    from wcwidth import wcswidth

    names = ["K-Pop Articles", "케이팝 인터뷰", "🎤 Live", "e\u0301cole"]
    path = write_jsonl(
        "wide.jsonl",
        *(
            {
                "url": f"https://www.kcrush.com/{i}",
                "title": f"Story {i}",
                "published": "2024-02-01T10:00:00Z",
                "categories": [name],
            }
            for i, name in enumerate(names)
        ),
    )
    assert project.run("import", str(path)).exit_code == 0
    lines = project.run("status").output.splitlines()
    start = lines.index("categories:") + 1
    rows = lines[start : start + len(names)]
    assert len(rows) == len(names) and all(r.startswith("  ") for r in rows)
    # The count column ends in the same terminal cell on every row.
    ends = {wcswidth(row[: row.index("  newest")]) for row in rows}
    assert len(ends) == 1, rows


def test_records_csv_holds_the_same_records_as_records_jsonl(project: Project) -> None:
    assert "30 added" in project.run("import", str(EXAMPLES / "records.jsonl")).output
    again = project.run("import", str(EXAMPLES / "records.csv"))
    assert again.exit_code == 0, again.output
    assert "imported: 0 added, 0 updated, 30 unchanged, 0 rejected" in again.output


def test_preview_since_gathers_the_samples_of_a_past_week(project: Project, tmp_path: Path) -> None:
    project.run("import", str(EXAMPLES / "records.jsonl"))
    out = tmp_path / "p"
    plain = project.run("preview", "--week", "2024-W09", "--out", str(out))
    assert "1 of 1 items" in plain.output
    wide = project.run("preview", "--week", "2024-W09", "--since", "2023-01-01", "--out", str(out))
    assert wide.exit_code == 0, wide.output
    assert "30 of 30 items" in wide.output
    text = (out / "digest-2024-W09.txt").read_text(encoding="utf-8")
    assert "this week" not in text
    assert "published from January 18, 2023 to February 26, 2024" in text
    bad = project.run("preview", "--since", "yesterday", "--out", str(out))
    assert bad.exit_code == 2 and "expected a date such as 2023-01-01" in bad.output
