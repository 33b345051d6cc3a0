"""``preview``: the digest as one subscriber would get it, written to files; nothing sent."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.config import Config
from kcrush_feeds.delivery.approval import load_editorial
from kcrush_feeds.digest.compose import DigestComposer, preview_subscriber
from kcrush_feeds.digest.select import compute_digest
from kcrush_feeds.errors import UsageError
from kcrush_feeds.store.digests import load_digest
from kcrush_feeds.subscriptions.subscribers import get_subscriber
from kcrush_feeds.weeks import check_period, period_bounds, period_of


@click.command()
@click.option(
    "--subscriber",
    "email",
    default=None,
    metavar="EMAIL",
    help="Render for this subscriber (their name, categories and links).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("preview"),
    show_default=True,
    help="Directory to write the files into.",
)
@click.option(
    "--week",
    default=None,
    metavar="YYYY-Www",
    help="The digest of that ISO week, as it would be at the end of that week.",
)
@click.option(
    "--since",
    default=None,
    metavar="DATE",
    help="Gather what was published since DATE (YYYY-MM-DD, in site.timezone) instead of "
    "the last digest.first_window: a first look at older records, such as the samples. "
    "Only for a first digest that was not created yet.",
)
@pass_app
def preview(app: App, email: str | None, out: Path, week: str | None, since: str | None) -> None:
    """Write the digest that would go out now (or in --week) as .html, .txt and .eml.

    Sends nothing and marks nothing: a digest that was not yet created is computed, not
    stored. Without --subscriber, a stand-in reader who takes every category is used.

    \b
    The sample records are from 2023 and early 2024. To see their digest:
      kcrush-feeds preview --week 2024-W09 --since 2023-01-01
    """
    config = app.config
    store = app.store
    app.check_sections()  # a typo there would silently empty a section
    now = clock.now()
    if week is not None:
        try:
            check_period(week)
        except ValueError as e:
            raise UsageError(f"--week {e}") from e
    period = week or period_of(now, config.site.tz)
    stored = load_digest(store, period)
    if since is not None:
        if stored is not None:
            raise UsageError(
                f"--since: the {period} digest was created already; it is shown as it is"
            )
        config = with_window_since(config, since, now, period)
    digest = stored or compute_digest(store, config, now, period=period)
    if digest is None:
        click.echo(f"nothing new for {period}: there would be no digest")
        return
    if email is None:
        subscriber = preview_subscriber()
    else:
        found = get_subscriber(store, email)
        if found is None:
            raise UsageError(f"--subscriber {email}: no such subscriber")
        subscriber = found
    composer = DigestComposer(
        config, digest, now=now, editorial=load_editorial(config, store, digest)
    )
    rendered = composer.render(subscriber)
    message = composer.compose(subscriber)
    if rendered is None or message is None:
        click.echo(f"{subscriber.email}: nothing in the {period} digest for their categories")
        return
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"digest-{period}"
    paths = [stem.with_suffix(s) for s in (".html", ".txt", ".eml")]
    paths[0].write_text(rendered.html, encoding="utf-8")
    paths[1].write_text(rendered.text, encoding="utf-8")
    paths[2].write_bytes(message.data)
    shown = len(composer.digest.items_for(subscriber.categories))
    state = "stored" if digest.stored else "not yet created; computed for this preview"
    click.echo(
        f"digest {period} ({state}): {shown} of {len(digest.items)} items for {subscriber.email}"
    )
    click.echo(f"subject: {rendered.subject}")
    limit = config.require_digest().max_html_bytes
    click.echo(f"html: {rendered.html_bytes:,} bytes (digest.max_html_bytes {limit:,})")
    for link in rendered.cut:
        click.echo(f"cut to stay under the limit: {link.title}: {link.count} items -> {link.url}")
    for path in paths:
        click.echo(f"wrote {path}")


def with_window_since(config: Config, since: str, now: datetime, period: str) -> Config:
    """``config`` with a ``digest.first_window`` that reaches back to ``since``."""
    try:
        day = date.fromisoformat(since)
    except ValueError as e:
        raise UsageError(f"--since {since!r}: expected a date such as 2023-01-01") from e
    tz = config.site.tz
    start = datetime.combine(day, time(0, 0), tz)
    _, end = period_bounds(period, tz)
    moment = min(now, end - timedelta(seconds=1))  # where compute_digest judges the week
    if start >= moment:
        raise UsageError(f"--since {since}: that is after the {period} digest would be made")
    digest = config.require_digest()
    return config.model_copy(
        update={"digest": digest.model_copy(update={"first_window": moment - start})}
    )
