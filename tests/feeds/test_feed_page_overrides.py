"""The feed pages are templates an editor can override (``feeds.templates_dir``), like the
email and the archive: an edited override rewrites the pages at the next build, and only
the pages (the feeds' bytes do not depend on them)."""

from __future__ import annotations

from pathlib import Path

from tests.support.project import EXAMPLES, Project

ENV = {"KCRUSH_FEEDS_NOW": "2024-03-01T00:00:00+00:00"}


def test_an_override_replaces_one_page_template_and_rewrites_only_the_pages(
    project: Project,
) -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        'base_url = "https://www.kcrush.com/feeds"\n',
        'base_url = "https://www.kcrush.com/feeds"\ntemplates_dir = "my-feeds"\n',
    )
    project.write_config(text)
    (project.dir / "my-feeds").mkdir()
    assert project.run("import", str(EXAMPLES / "records.jsonl"), env=ENV).exit_code == 0
    assert project.run("build", env=ENV).exit_code == 0
    out: Path = project.config.output_dir
    feed_before = (out / "all" / "atom.xml").read_bytes()
    (project.dir / "my-feeds" / "page.css").write_text(".page { color: #123456; }\n")
    result = project.run("build", env=ENV)
    assert result.exit_code == 0, result.output
    written = {line.split()[-1] for line in result.output.splitlines() if line.startswith("wrote")}
    assert "style.css" in written
    assert not {name for name in written if name.endswith((".xml", ".json"))}
    css = (out / "style.css").read_text(encoding="utf-8")
    assert ".page { color: #123456; }" in css and ".masthead" in css
    assert (out / "all" / "atom.xml").read_bytes() == feed_before
    # A whole page replaced: the editor's feed.html.
    (project.dir / "my-feeds" / "feed.html").write_text("<p>{{ channel.title }}</p>\n")
    result = project.run("build", env=ENV)
    assert "wrote    all/index.html" in result.output, result.output
    assert (out / "all" / "index.html").read_text(encoding="utf-8") == "<p>KCrush</p>\n"


def test_a_missing_templates_dir_is_a_config_error(project: Project) -> None:
    text = project.config_path.read_text(encoding="utf-8").replace(
        'base_url = "https://www.kcrush.com/feeds"\n',
        'base_url = "https://www.kcrush.com/feeds"\ntemplates_dir = "nowhere"\n',
    )
    project.write_config(text)
    result = project.run("build", env=ENV)
    assert result.exit_code == 2
    assert "feeds.templates_dir" in result.stderr and "is not a directory" in result.stderr
