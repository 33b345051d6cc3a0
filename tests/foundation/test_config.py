"""Config errors name the file, the key path and what is wrong, and exit 2."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kcrush_feeds.config import load_config, parse_duration
from kcrush_feeds.errors import ConfigError
from tests.support.project import BASE_CONFIG, Project


def test_example_config_is_valid_and_documents_every_section() -> None:
    from tests.support.project import ROOT

    config = load_config(ROOT / "config.example.toml")
    assert config.site.timezone == "America/Los_Angeles"
    assert [c.slug for c in config.feeds.categories] == ["kpop-articles", "kpop-interviews"]
    assert config.smtp is not None and config.smtp.password_env == "KCRUSH_SMTP_PASSWORD"
    assert config.digest is not None and config.digest.first_window == timedelta(days=7)
    assert config.database_path.is_absolute()
    assert config.bounces is not None and config.bounces.address == "bounces@kcrush.com"
    assert config.bounces.soft_window == timedelta(days=30)


def test_relative_paths_are_relative_to_the_config_file(project: Project) -> None:
    config = project.config
    assert config.database_path == project.dir / "store.db"
    assert config.output_dir == project.dir / "public" / "feeds"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ('timezone = "America/Los_Angeles"', 'timezone = "Mars/Olympus"'),
            "site.timezone: 'Mars/Olympus' is not an IANA time zone",
        ),
        (("items_per_feed", "items_per_feed = 'many'\n#"), "feeds.items_per_feed:"),
        (
            ('url = "https://www.kcrush.com"\n', 'url = "www.kcrush.com"\n'),
            "site.url: 'www.kcrush.com' is not an absolute http(s) URL",
        ),
        (
            ('from = "KCrush Weekly <newsletter@kcrush.com>"', 'from = "newsletter at kcrush"'),
            "digest.from: 'newsletter at kcrush' is not an address",
        ),
        (('schedule = "mon 09:00"', 'schedule = "someday"'), "digest.schedule: 'someday'"),
        (
            ('slug = "kpop-interviews"', 'slug = "K-Pop Interviews!"'),
            "feeds.categories[1].slug: 'K-Pop Interviews!' is not a slug",
        ),
        (('slug = "kpop-interviews"', 'slug = "kpop-articles"'), "is used twice"),
        (("[storage]", "[storrage]"), "storrage: unknown key"),
        (('title = "KCrush"\n', ""), "site.title: required key is missing"),
    ],
)
def test_config_errors_name_file_key_and_problem(
    project: Project, change: tuple[str, str], expected: str
) -> None:
    if change[0] == "items_per_feed":
        project.write_config(
            BASE_CONFIG.replace(
                'base_url = "https://www.kcrush.com/feeds"',
                'base_url = "https://www.kcrush.com/feeds"\nitems_per_feed = "many"',
            )
        )
    else:
        assert change[0] in BASE_CONFIG
        project.write_config(BASE_CONFIG.replace(change[0], change[1], 1))
    result = project.run("status")
    assert result.exit_code == 2
    assert result.output.startswith(f"error: {project.config_path}: ")
    assert expected in result.output
    assert "Traceback" not in result.output


def test_bad_toml_gives_line_and_exit_2(project: Project) -> None:
    project.write_config('[site]\ntitle = "KCrush\n')
    result = project.run("status")
    assert result.exit_code == 2
    assert "not valid TOML" in result.output and "line 2" in result.output


def test_missing_config_file_says_how_to_make_one(project: Project) -> None:
    project.config_path.unlink()
    result = project.run("status")
    assert result.exit_code == 2
    assert "config file not found" in result.output and "kcrush-feeds init" in result.output


def test_missing_secret_names_the_variable(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KCRUSH_TEST_SECRET")
    config = project.config
    assert config.subscriptions is not None
    with pytest.raises(ConfigError, match=r"KCRUSH_TEST_SECRET .*subscriptions\.secret_env"):
        config.subscriptions.secret()


def test_config_from_environment_variable(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from kcrush_feeds.cli.main import main

    monkeypatch.setenv("KCRUSH_FEEDS_CONFIG", str(project.config_path))
    result = CliRunner().invoke(main, ["status"])
    assert result.exit_code == 0, result.output
    assert str(project.dir / "store.db") in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", timedelta(days=7)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("2w", timedelta(weeks=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["soon", "7 days", "-1d", "", "7d tomorrow"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
