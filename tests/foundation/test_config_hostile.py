"""Config values that used to end in "internal error" or silently turn a feature off
(issue 18, part B): each must be a config error, exit 2, ``FILE: key: reason``, through
the real CLI. And what must be accepted: a file that starts with a byte-order mark."""

from __future__ import annotations

import re

import pytest

from tests.support.project import Project

SMTP = '[smtp]\nhost = "127.0.0.1"\nport = 2525\ntls = "none"\n'


def _with(project: Project, section: str, line: str) -> None:
    """Put ``line`` into ``[section]`` of the project's config (adding the section)."""
    text = project.config_path.read_text(encoding="utf-8")
    if section == "smtp":
        text += "\n" + SMTP
    key = line.split(" = ", 1)[0]
    header = f"[{section}]\n"
    if key and re.search(rf"^{re.escape(key)} = ", text, flags=re.M):
        text = re.sub(rf"^{re.escape(key)} = .*$", lambda _: line, text, count=1, flags=re.M)
    elif header in text:
        text = text.replace(header, f"{header}{line}\n", 1)
    else:
        text += f"\n{header}{line}\n"
    project.config_path.write_text(text, encoding="utf-8")


def _config_error(project: Project, key: str) -> str:
    result = project.run("schedule", "--print")
    output = result.output
    assert result.exit_code == 2, output
    assert "internal error" not in output and "Traceback" not in output
    assert f"error: {project.config_path}: {key}" in output, output
    return output


DURATIONS = [
    ("smtp", "timeout"),
    ("smtp", "retry_delay"),
    ("schedule", "build_every"),
    ("schedule", "misfire_grace_time"),
    ("digest", "first_window"),
    ("subscriptions", "confirm_ttl"),
    ("subscriptions", "rate_limit_window"),
]


@pytest.mark.parametrize(("section", "key"), DURATIONS)
@pytest.mark.parametrize(
    "value", ['"99999999999d"', "inf", "-inf", "nan", "1e300", '"9999999999999999999999w"', "-1"]
)
def test_a_duration_out_of_bounds_is_a_config_error(
    project: Project, section: str, key: str, value: str
) -> None:
    _with(project, section, f"{key} = {value}")
    _config_error(project, f"{section}.{key}: ")


@pytest.mark.parametrize(
    ("section", "line", "key"),
    [
        ("smtp", 'timeout = "0s"', "smtp.timeout"),
        ("subscriptions", 'confirm_ttl = "0s"', "subscriptions.confirm_ttl"),
        ("subscriptions", 'rate_limit_window = "0s"', "subscriptions.rate_limit_window"),
        ("schedule", 'build_every = "0s"', "schedule.build_every"),
    ],
)
def test_a_duration_that_turns_a_feature_off_names_the_range(
    project: Project, section: str, line: str, key: str
) -> None:
    _with(project, section, line)
    output = _config_error(project, f"{key}: ")
    assert "out of range: between" in output


@pytest.mark.parametrize(
    ("section", "line", "key", "says"),
    [
        ("subscriptions", 'trusted_proxies = ["*"]', "subscriptions.trusted_proxies[0]", "IP"),
        (
            "subscriptions",
            'trusted_proxies = ["not-an-ip"]',
            "subscriptions.trusted_proxies[0]",
            "IP",
        ),
        (
            "subscriptions",
            'trusted_proxies = ["127.0.0.1", "10.0.0.1/8"]',
            "subscriptions.trusted_proxies[1]",
            "IP",
        ),
        ("feeds", "items_per_feed = true", "feeds.items_per_feed", "expected a number"),
        ("digest", "max_items = false", "digest.max_items", "expected a number"),
        ("subscriptions", 'templates_dir = "no-such-dir"', "subscriptions.templates_dir", "not"),
        ("digest", 'templates_dir = "no-such-dir"', "digest.templates_dir", "not"),
        ("smtp", 'ca_file = "no-such-ca.pem"', "smtp.ca_file", "not a file"),
    ],
)
def test_values_that_disable_a_feature_are_config_errors(
    project: Project, section: str, line: str, key: str, says: str
) -> None:
    _with(project, section, line)
    assert says in _config_error(project, f"{key}: ")


def test_a_config_that_is_not_utf8(project: Project) -> None:
    data = project.config_path.read_bytes().replace(b'title = "KCrush"', b'title = "KCrush \xff"')
    project.config_path.write_bytes(data)
    output = _config_error(project, "line 2: not UTF-8")
    assert "0xff" in output


def test_arrays_nested_100000_deep(project: Project) -> None:
    _with(project, "feeds", "formats = " + "[" * 100_000 + "]" * 100_000)
    _config_error(project, "not valid TOML: ")


def test_an_integer_of_5000_digits(project: Project) -> None:
    _with(project, "feeds", "items_per_feed = " + "9" * 5000)
    _config_error(project, "not valid TOML: ")


def test_a_byte_order_mark_is_accepted(project: Project) -> None:
    project.config_path.write_bytes(b"\xef\xbb\xbf" + project.config_path.read_bytes())
    _with(project, "smtp", "")
    result = project.run("schedule", "--print")
    assert result.exit_code == 0, result.output


def test_an_unknown_key_is_shown_with_its_control_characters_escaped(project: Project) -> None:
    _with(project, "site", '"\\u001b[2J\\u001b[31mevil\\u0007" = 1')
    output = _config_error(project, "site.\\x1b[2J\\x1b[31mevil\\x07: unknown key")
    assert "\x1b" not in output and "\x07" not in output


def test_the_durations_that_are_fine_still_load(project: Project) -> None:
    for section, line in [
        ("smtp", 'timeout = "1h"\nretry_delay = 0.01'),
        ("schedule", 'build_every = "1s"\nmisfire_grace_time = "0s"'),
        (
            "subscriptions",
            'confirm_ttl = "90d"\nrate_limit_window = "1s"\n'
            'trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1"]',
        ),
    ]:
        _with(project, section, line)
    result = project.run("schedule", "--print")
    assert result.exit_code == 0, result.output
