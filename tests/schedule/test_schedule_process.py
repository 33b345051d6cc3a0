"""``kcrush-feeds schedule`` as a real process (signals, logs), and the deployment examples
(the crontab lines run, the systemd unit verifies)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.project import EXAMPLES, Project
from tests.support.sending import prepare
from tests.support.smtp_server import smtp_server

ISO_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 (DEBUG|INFO|WARNING|ERROR) \S")
VENV_BIN = Path(sys.executable).parent


@dataclass
class Running:
    """A ``kcrush-feeds schedule`` process whose stderr lines are collected as they come."""

    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)

    def wait_for_line(self, needle: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if needle in line:
                    return line
            if self.process.poll() is not None and not any(needle in x for x in self.lines):
                break
            time.sleep(0.05)
        raise AssertionError(f"no line with {needle!r} in:\n" + "\n".join(self.lines))


@pytest.fixture
def start_schedule(project: Project) -> Iterator[Any]:
    started: list[Running] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Running:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kcrush_feeds",
                "--config",
                str(project.config_path),
                "schedule",
                *args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
            cwd=project.dir,
        )
        running = Running(process)

        def pump() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                running.lines.append(line.rstrip("\n"))

        threading.Thread(target=pump, daemon=True).start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def _store_is_sound(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_schedule_runs_logs_and_stops_cleanly_on_a_signal(
    project: Project, start_schedule: Any, sig: signal.Signals
) -> None:
    import feedparser

    project.append_config('[schedule]\nbuild_every = "1s"\n')
    imported = project.run("import", str(EXAMPLES / "records.jsonl"))
    assert imported.exit_code == 0, imported.output
    running = start_schedule()
    running.wait_for_line("schedule: started in America/Los_Angeles; build every 1s")
    first = running.wait_for_line("build: ok: ")
    assert "files written" in first and "next build at 20" in first
    running.wait_for_line("build: started")
    # Signal while builds keep coming every second: whatever is in flight finishes.
    time.sleep(1.2)
    running.process.send_signal(sig)
    assert running.process.wait(timeout=20) == 0
    running.wait_for_line("schedule: stopped")
    log = "\n".join(running.lines)
    assert f"schedule: {sig.name} received: stopping after the work in flight" in log
    assert "Traceback" not in log
    # Plain lines with ISO 8601 times, one per event (stderr is not a terminal here).
    assert running.lines and all(ISO_LINE.match(line) for line in running.lines), log
    # Nothing half-written: no temporary file left, every feed complete, the store sound.
    feeds = project.dir / "public" / "feeds"
    assert list(feeds.rglob("*.tmp")) == []
    xml = sorted(feeds.rglob("*.xml"))
    assert len(xml) >= 6
    for path in xml:
        if path.name.endswith((".xsl", "opml")):
            continue
        parsed = feedparser.parse(path.read_bytes())
        assert not parsed.bozo, (path, parsed.get("bozo_exception"))
        assert parsed.entries, path
    _store_is_sound(project.dir / "store.db")


def test_schedule_survives_a_failing_job_and_runs_it_again(
    project: Project, start_schedule: Any
) -> None:
    # A file source that does not exist fails every run; the process carries on.
    project.append_config(
        '[schedule]\nbuild_every = "1s"\n\n[[sources]]\ntype = "file"\npath = "missing.jsonl"\n'
    )
    running = start_schedule()
    failed = running.wait_for_line("missing.jsonl: fetched")
    assert " WARNING import: " in failed and "1 rejected" in failed
    running.wait_for_line("missing.jsonl: cannot open: No such file or directory")
    deadline = time.monotonic() + 20
    while sum("missing.jsonl: fetched" in x for x in running.lines) < 2:
        assert time.monotonic() < deadline, "\n".join(running.lines)
        assert running.process.poll() is None, "\n".join(running.lines)
        time.sleep(0.05)
    running.process.send_signal(signal.SIGTERM)
    assert running.process.wait(timeout=20) == 0


def test_schedule_with_a_bad_config_exits_2_at_once(project: Project) -> None:
    project.append_config('[schedule]\nbuild_every = "soon"\n')
    result = subprocess.run(
        [sys.executable, "-m", "kcrush_feeds", "--config", str(project.config_path), "schedule"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "schedule.build_every" in result.stderr


# --- the systemd unit ---------------------------------------------------------------------------


def _unit(path: Path) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def test_the_systemd_unit_has_what_a_service_needs() -> None:
    unit = _unit(EXAMPLES / "kcrush-feeds.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:] == ["schedule"]
    assert service["ExecStart"].split()[0].endswith("/bin/kcrush-feeds")
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert int(service["TimeoutStopSec"]) >= 60  # time to finish the message in flight
    assert service["User"] and service["User"] != "root"
    assert service["WorkingDirectory"].startswith("/")
    assert service["Environment"].startswith("KCRUSH_FEEDS_CONFIG=/")
    assert service["RestartPreventExitStatus"] == "2"
    assert unit["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_the_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this checkout's kcrush-feeds.
    text = (EXAMPLES / "kcrush-feeds.service").read_text(encoding="utf-8")
    text = text.replace("/srv/kcrush-feeds/.venv/bin/kcrush-feeds", str(VENV_BIN / "kcrush-feeds"))
    unit = tmp_path / "kcrush-feeds.service"
    unit.write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    # verify exits 0 on an unknown key but warns: no output at all is the bar.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


# --- the crontab lines ------------------------------------------------------------------------


def _cron_commands() -> dict[str, str]:
    commands = {}
    for raw in (EXAMPLES / "crontab").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        assert len(fields) == 6, line
        command = fields[5]
        verb = [w for w in shlex.split(command) if not w.startswith(">")][-1]
        commands[verb] = command
    return commands


def test_the_crontab_has_a_build_and_a_send_line() -> None:
    commands = _cron_commands()
    assert set(commands) == {"build", "send"}
    for command in commands.values():
        assert "--config /srv/kcrush-feeds/config.toml" in command  # cron starts in $HOME


@pytest.mark.parametrize("verb", ["build", "send"])
def test_the_crontab_line_runs_as_written(project: Project, tmp_path: Path, verb: str) -> None:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "SHELL": "/bin/sh"}
    with contextlib.ExitStack() as stack:
        if verb == "send":
            # A real SMTP server and three subscribers; "now" pinned to the digest time.
            server = stack.enter_context(smtp_server())
            prepare(project, server, 3)
            env["KCRUSH_FEEDS_NOW"] = "2024-02-26T11:00:00-08:00"
        secrets = tmp_path / "secrets.env"
        secrets.write_text("KCRUSH_TEST_SECRET=test-secret-0123456789abcdef\n", encoding="utf-8")
        command = (
            _cron_commands()[verb]
            .replace("/srv/kcrush-feeds/.venv/bin/kcrush-feeds", str(VENV_BIN / "kcrush-feeds"))
            .replace("/srv/kcrush-feeds/config.toml", str(project.config_path))
            .replace("/srv/kcrush-feeds/secrets.env", str(secrets))
        )
        # cron's environment: little more than HOME, and another working directory.
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == ""  # -q: no warnings, so no mail from cron
        if verb == "send":
            assert sorted(server.counts().values()) == [1, 1, 1]
            assert "sent 3" in result.stdout
        else:
            assert result.stdout == ""  # -q: the list of written files is not printed
            assert (project.dir / "public" / "feeds" / "feeds.opml").is_file()
