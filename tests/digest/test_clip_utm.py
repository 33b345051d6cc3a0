"""The Gmail clip guard with 40 long items, and UTM link attribution, through the real
``preview`` and ``send`` (real aiosmtpd)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.support.editors import ENV, parsed, part
from tests.support.project import Project
from tests.support.sending import smtp_section
from tests.support.smtp_server import SmtpServer, smtp_server

LONG = "A long excerpt of a very long story about the comeback of the year. " * 8


def forty_long_items(project: Project, server: SmtpServer, digest: str = "") -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        'reply_to = "editors@kcrush.com"\n', f'reply_to = "editors@kcrush.com"\n{digest}\n'
    )
    project.write_config(text)
    project.append_config(smtp_section(server))
    records = []
    for i in range(40):
        category = "interviews" if i % 2 else "articles"
        records.append(
            {
                "id": f"long-{i:02d}",
                "url": f"https://www.kcrush.com/long-{i:02d}/?ref=site#top",
                "title": f"Story {i:02d}: " + "the longest title of the week, " * 5,
                "published": f"2024-02-26T{i // 4:02d}:{i % 4 * 10:02d}:00-08:00",
                "categories": [category],
                "summary": f"<p>{LONG}</p>",
                "image": f"https://cdn.example.net/images/{'x' * 120}/{i}.jpg",
            }
        )
    project.write("long.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    assert project.run("import", str(project.dir / "long.jsonl"), env=ENV).exit_code == 0
    project.write("subs.csv", "email,name,categories,status\nreader@example.org,R,,active\n")
    assert project.run("subscribers", "import", str(project.dir / "subs.csv")).exit_code == 0


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with smtp_server() as s:
        yield s


def test_forty_long_items_are_cut_at_a_section_boundary(
    project: Project, server: SmtpServer
) -> None:
    forty_long_items(project, server)
    # Without the guard the HTML is well past Gmail's limit.
    loose = project.run("preview", "--out", str(project.dir / "loose"), env=ENV)
    assert loose.exit_code == 0
    project.write_config(
        project.config_path.read_text(encoding="utf-8").replace(
            'reply_to = "editors@kcrush.com"\n',
            'reply_to = "editors@kcrush.com"\nmax_html_bytes = 1000000\n',
        )
    )
    unlimited = project.run("preview", "--out", str(project.dir / "full"), env=ENV)
    full_size = int(re.search(r"html: ([\d,]+) bytes", unlimited.stdout)[1].replace(",", ""))  # type: ignore[index]
    assert full_size > 100_000, unlimited.stdout
    assert "cut to stay under the limit" not in unlimited.stdout

    # The default limit (100,000): preview says what was cut, and the size.
    lines = loose.stdout.splitlines()
    size = int(re.search(r"html: ([\d,]+) bytes", loose.stdout)[1].replace(",", ""))  # type: ignore[index]
    assert size <= 100_000
    cut = [line for line in lines if line.startswith("cut to stay under the limit")]
    assert cut == ["cut to stay under the limit: Interviews: 20 items -> https://www.kcrush.com"]

    project.write_config(
        project.config_path.read_text(encoding="utf-8").replace("max_html_bytes = 1000000\n", "")
    )
    assert project.run("send", env=ENV).exit_code == 0
    message = parsed(server.received[0].data)
    html = part(message, "html")
    assert len(html.encode("utf-8")) <= 100_000
    assert "More on KCrush" in html and "Interviews: 20 more stories" in html
    assert html.rstrip().endswith("</html>")  # the footer (unsubscribe) is there, whole
    assert "Unsubscribe" in html
    text = part(message, "plain")
    assert "MORE ON KCRUSH" in text and "Story 01" not in text and "Story 00" in text


def test_a_first_section_too_big_is_cut_between_items(project: Project, server: SmtpServer) -> None:
    forty_long_items(project, server, digest="max_html_bytes = 20000")
    result = project.run("preview", "--out", str(project.dir / "p"), env=ENV)
    assert result.exit_code == 0
    size = int(re.search(r"html: ([\d,]+) bytes", result.stdout)[1].replace(",", ""))  # type: ignore[index]
    assert size <= 20_000
    cut = {
        m[1]: int(m[2])
        for m in re.finditer(r"cut to stay under the limit: (\w[\w ]*): (\d+) items", result.stdout)
    }
    assert cut["Interviews"] == 20 and 0 < cut["New articles"] < 20
    html = (project.dir / "p" / "digest-2024-W09.html").read_text(encoding="utf-8")
    shown = len(re.findall(r'class="title"', html))
    assert shown + cut["New articles"] == 20


def test_utm_on_the_sites_own_links_only(project: Project, server: SmtpServer) -> None:
    forty_long_items(
        project,
        server,
        digest="max_html_bytes = 1000000\n[digest.utm]\n"
        'source = "kcrush-weekly"\nmedium = "email"\ncampaign = "weekly-{week}"',
    )
    assert project.run("send", env=ENV).exit_code == 0
    message = parsed(server.received[0].data)
    html, text = part(message, "html"), part(message, "plain")
    hrefs = [h.replace("&amp;", "&") for h in re.findall(r'href="([^"]+)"', html)]
    ours = [h for h in hrefs if urlsplit(h).hostname == "www.kcrush.com"]
    article = [h for h in ours if "/long-00/" in h]
    assert article, hrefs
    for href in article:
        parts = urlsplit(href)
        query = parse_qsl(parts.query)
        assert query == [
            ("ref", "site"),
            ("utm_source", "kcrush-weekly"),
            ("utm_medium", "email"),
            ("utm_campaign", "weekly-2024-W09"),
        ]
        assert parts.fragment == "top"
    # Other hosts (the image CDN) are untouched; nothing is tagged twice.
    assert all("utm_" not in h for h in hrefs if urlsplit(h).hostname != "www.kcrush.com")
    assert all(h.count("utm_source") <= 1 for h in hrefs)
    assert "https://www.kcrush.com/long-00/?ref=site&utm_source=kcrush-weekly" in text
    # The per-reader links (unsubscribe, preferences) carry no campaign: no tracking of anyone.
    assert all("utm_" not in h for h in hrefs if "token=" in h)
