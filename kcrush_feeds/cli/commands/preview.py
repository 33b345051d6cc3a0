"""``preview``: the digest as one subscriber would get it, written to files; nothing sent."""

from __future__ import annotations

import re
from pathlib import Path

import click

from kcrush_feeds import clock
from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.delivery.approval import load_editorial
from kcrush_feeds.digest.compose import DigestComposer, preview_subscriber
from kcrush_feeds.digest.select import compute_digest
from kcrush_feeds.errors import UsageError
from kcrush_feeds.store.digests import load_digest
from kcrush_feeds.subscriptions.subscribers import get_subscriber
from kcrush_feeds.weeks import period_of


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
@click.option("--week", default=None, metavar="YYYY-Www", help="The digest of that ISO week.")
@pass_app
def preview(app: App, email: str | None, out: Path, week: str | None) -> None:
    """Write the digest that would go out now (or in --week) as .html, .txt and .eml.

    Sends nothing and marks nothing: a digest that was not yet created is computed, not
    stored. Without --subscriber, a stand-in reader who takes every category is used.
    """
    config = app.config
    store = app.store
    now = clock.now()
    if week is not None and not re.fullmatch(r"\d{4}-W\d{2}", week):
        raise UsageError(f"--week {week!r}: expected an ISO week such as 2024-W09")
    period = week or period_of(now, config.site.tz)
    digest = load_digest(store, period) or compute_digest(store, config, now, period=period)
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
