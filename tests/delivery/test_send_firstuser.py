"""``send`` as a first-time user meets it: no SMTP server yet, a relay without AUTH, a few
bad addresses in a big list (issue 15, findings 5 and 11). Real aiosmtpd, real store."""

from __future__ import annotations

import socket

from tests.support.project import EXAMPLES, Project
from tests.support.sending import NOW, smtp_section, subscribers_csv
from tests.support.smtp_server import SmtpServer, smtp_server


def send(project: Project, *args: str) -> tuple[int, str, str]:
    result = project.run("send", *args, env={"KCRUSH_FEEDS_NOW": NOW})
    return result.exit_code, result.stdout, result.stderr


def _closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _prepare(project: Project, smtp: str, n: int) -> None:
    project.append_config(smtp)
    env = {"KCRUSH_FEEDS_NOW": NOW}
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=env).exit_code == 0
    project.write("subs.csv", subscribers_csv(n))
    assert project.run("subscribers", "import", str(project.dir / "subs.csv")).exit_code == 0


def test_no_smtp_server_says_it_once_then_the_summary_and_status_shows_who_waits(
    project: Project,
) -> None:
    port = _closed_port()
    smtp = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\nconcurrency = 4\n'
        'rate_limit = 0\nretries = 2\nretry_delay = "0s"\n'
    )
    _prepare(project, smtp, 8)
    code, out, err = send(project)
    assert code == 75
    lines = [line for line in err.splitlines() if "connect" in line]
    assert len(lines) == 1, err  # one fact, one line; not one per connection and retry
    assert f"cannot connect to the SMTP server 127.0.0.1:{port} (3 attempts" in lines[0]
    assert "connection refused" in lines[0]
    assert "retrying" not in err
    assert out.strip() == (
        "digest 2024-W09: sent 0, deferred 0, failed 0, skipped 0 "
        "(the SMTP server could not be reached; 8 waiting for the next run)"
    ) or out.strip() == (
        "digest 2024-W09: the SMTP server could not be reached; 8 waiting for the next run"
    ), out
    status = project.run("status")
    assert "deliveries: 0 sent, 0 deferred, 0 failed, 8 waiting" in status.output
    assert "waiting: reader000@example.org, reader001@example.org" in status.output


def test_an_empty_username_means_no_authentication(project: Project) -> None:
    with smtp_server() as server:
        _prepare(project, smtp_section(server, username="", password_env="KCRUSH_UNSET_PW"), 3)
        code, out, err = send(project)
        assert code == 0, out + err
        assert "sent 3" in out
        assert server.counts() == {f"reader{i:03d}@example.org": 1 for i in range(3)}


def _refusing(server: SmtpServer, project: Project, n: int, refused: list[int]) -> None:
    _prepare(project, smtp_section(server), n)
    server.behaviour.reject.update(f"reader{i:03d}@example.org" for i in refused)


def test_a_few_permanent_refusals_are_recorded_and_still_exit_0(project: Project) -> None:
    with smtp_server() as server:
        _refusing(server, project, 30, [3, 17, 29])
        code, out, err = send(project)
        assert code == 0, out + err
        assert "sent 27, deferred 0, failed 3" in out
        for i in (3, 17, 29):
            assert f"reader{i:03d}@example.org: 550" in err


def test_every_recipient_refused_is_a_failed_run(project: Project) -> None:
    with smtp_server() as server:
        _refusing(server, project, 3, [0, 1, 2])
        code, out, _ = send(project)
        assert code == 1
        assert "sent 0, deferred 0, failed 3" in out


def test_subscribers_csv_categories_separated_by_commas(project: Project) -> None:
    project.write(
        "subs.csv",
        "email,name,categories,status\n"
        'a@example.org,A,"kpop-articles,kpop-interviews",active\n'
        "b@example.org,B,kpop-articles|kpop-interviews,active\n"
        'c@example.org,C," kpop-interviews , ",active\n',
    )
    result = project.run("subscribers", "import", str(project.dir / "subs.csv"))
    assert result.exit_code == 0, result.output
    listed = project.run("subscribers", "list").output
    assert "kpop-articles,kpop-interviews" in listed.splitlines()[0]
    assert "kpop-articles,kpop-interviews" in listed.splitlines()[1]
    assert "kpop-interviews" in listed.splitlines()[2]
