"""``build``: write the feeds, their pages, OPML, the archive; ping the hub; print what changed."""

from __future__ import annotations

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app


@click.command()
@click.option(
    "--prune",
    is_flag=True,
    help="Remove the files of feeds that are no longer configured (or whose category is gone).",
)
@pass_app
def build(app: App, prune: bool) -> None:
    """Write every feed under feeds.output_dir, and the archive under archive.output_dir.

    One feed per configured category, one per unconfigured record category (unless
    feeds.auto_categories = false) and "all", in each of feeds.formats, each with a page
    (index.html), plus feeds.opml, index.html and style.css. With [archive], every sent
    digest as a page, an index and the archive feeds. With feeds.websub_hub, the hub is
    pinged for each feed that changed. A file whose content did not change is not rewritten.
    """
    # Imported here: lxml and nh3 add ~60 ms to the start of every other command.
    from kcrush_feeds.archive.publish import publish
    from kcrush_feeds.feeds.slugs import CLASH_HINT

    published = publish(app.config, app.store, clock.now(), prune=prune)
    report = published.feeds
    # The feeds do not depend on the digest's sections: say what is wrong, build anyway.
    for problem in app.section_problems():
        click.echo(f"warning: {app.config.path}: {problem}", err=True)
    for clash in report.clashes:  # that feed only: every other feed was built
        click.echo(f"error: {clash}; not built\n  hint: {CLASH_HINT}", err=True)
    for name in report.stale:
        click.echo(
            f"warning: stale {name} (no feed writes it any more; build --prune removes it)",
            err=True,
        )
    pings = published.pings
    if pings is not None:
        for topic, why in pings.failed:
            click.echo(
                f"warning: WebSub hub {pings.hub}: {topic}: {why} (pinged again at the next build)",
                err=True,
            )
    if app.verbosity < 0:  # -q: cron mails whatever is printed; say only what needs a person
        if report.clashes:
            raise click.exceptions.Exit(1)
        return
    for name in report.written:
        click.echo(f"wrote    {name}")
    for name in report.removed:
        click.echo(f"removed  {name}")
    archive = published.archive
    if archive is not None:
        for name in archive.written:
            click.echo(f"wrote    archive/{name}")
    if not report.changed and not (archive is not None and archive.changed):
        click.echo(f"nothing changed in {report.output_dir}")
    click.echo(f"build: {report.summary()}")
    if archive is not None:
        click.echo(f"build: {archive.summary()}")
    if pings is not None and (pings.pinged or pings.failed):
        click.echo(f"build: {pings.summary()}")
    if report.clashes:
        raise click.exceptions.Exit(1)
