"""``status``: what the store holds."""

from __future__ import annotations

import json
from typing import Any

import click

from kcrush_feeds.cli.context import App, pass_app
from kcrush_feeds.delivery.lock import holder
from kcrush_feeds.store import records as store_records
from kcrush_feeds.store.bounces import digest_outcomes
from kcrush_feeds.store.digests import last_digests
from kcrush_feeds.store.sources import list_states
from kcrush_feeds.subscriptions.subscribers import count_by_status


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, for scripts.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Records per category, the newest record, the store and its schema version."""
    store = app.store
    tz = app.config.site.tz
    newest = store_records.newest(store)
    info: dict[str, Any] = {
        "store": str(store.path),
        "schema_version": store.schema_version,
        "records": store_records.count(store),
        "newest": None
        if newest is None
        else {
            "title": newest.title,
            "published": newest.published.astimezone(tz).isoformat(),
            "url": newest.url,
        },
        "categories": [
            {"name": name, "records": count, "newest": when.astimezone(tz).isoformat()}
            for name, count, when in store_records.category_counts(store)
        ],
    }
    info.update(_digest_status(app))
    info.update(_sources_status(app))
    info.update(_send_status(app))
    info.update(_returned_mail_status(app))
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False, indent=2))
        return
    click.echo(f"store:    {info['store']} (schema {info['schema_version']})")
    click.echo(f"records:  {info['records']}")
    if newest is not None:
        click.echo(f"newest:   {info['newest']['published'][:16]}  {newest.title}")
    if info["categories"]:
        click.echo("categories:")
        width = max(len(c["name"]) for c in info["categories"])
        for c in info["categories"]:
            click.echo(f"  {c['name']:<{width}}  {c['records']:>6}  newest {c['newest'][:10]}")
    _show_digest_status(info)
    _show_send_status(info)
    _show_returned_mail(info)
    _show_sources_status(info)


def _digest_status(app: App) -> dict[str, Any]:
    """Subscribers by status and the last digest with its deliveries."""
    tz = app.config.site.tz
    last = next(last_digests(app.store), None)
    return {
        "subscribers": count_by_status(app.store),
        "last_digest": None
        if last is None
        else {
            "period": last.period,
            "created": last.created_at.astimezone(tz).isoformat(),
            "items": last.items,
            "status": last.status,
            "deliveries": last.deliveries,
        },
    }


def _show_digest_status(info: dict[str, Any]) -> None:
    counts = info["subscribers"]
    shown = ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "none"
    click.echo(f"subscribers: {shown}")
    last = info["last_digest"]
    if last is None:
        click.echo("last digest: none yet")
        return
    deliveries = ", ".join(f"{n} {k}" for k, n in last["deliveries"].items())
    click.echo(
        f"last digest: {last['period']} ({last['status']}), created {last['created'][:16]}, "
        f"{last['items']} items; deliveries: {deliveries}"
    )


def _send_status(app: App) -> dict[str, Any]:
    """Whether a ``send`` is running right now (it holds the lock next to the store)."""
    pid = holder(app.config.database_path, "send")
    return {"send": {"running": pid is not None, "pid": pid or None}}


def _show_send_status(info: dict[str, Any]) -> None:
    send = info["send"]
    if send["running"]:
        who = f" (pid {send['pid']})" if send["pid"] else ""
        click.echo(f"send: running now{who}")


def _sources_status(app: App) -> dict[str, Any]:
    """Each import source: its last successful import, its cursor and its last error."""
    tz = app.config.site.tz
    return {
        "sources": [
            {
                "name": state.name,
                "kind": state.kind,
                "url": state.url,
                "last_success": None
                if state.last_success is None
                else state.last_success.astimezone(tz).isoformat(),
                "cursor": state.cursor,
                "last_error": state.last_error,
                "last_summary": state.last_summary,
            }
            for state in list_states(app.store)
        ]
    }


def _show_sources_status(info: dict[str, Any]) -> None:
    if not info["sources"]:
        return
    click.echo("sources:")
    for src in info["sources"]:
        when = src["last_success"][:16] if src["last_success"] else "never"
        line = f"  {src['name']} ({src['kind']}): last success {when}"
        if src["cursor"]:
            line += f", cursor {src['cursor']}"
        click.echo(line)
        if src["last_summary"]:
            click.echo(f"    last import: {src['last_summary']}")
        if src["last_error"]:
            error = src["last_error"].replace("\n", "\n    ")
            click.echo(f"    last error: {error}")


COMPLAINT_RATE_WARNING = 0.001  # 0.1%: Gmail and Yahoo act at 0.3%; warn well before


def _returned_mail_status(app: App) -> dict[str, Any]:
    """Per digest: deliveries next to the bounces, complaints and unsubscribes they got."""
    digests = []
    warnings = []
    for d in digest_outcomes(app.store):
        digests.append(
            {
                "period": d.period,
                "sent": d.sent,
                "deferred": d.deferred,
                "failed": d.failed,
                "hard_bounces": d.hard,
                "soft_bounces": d.soft,
                "complaints": d.complaints,
                "unsubscribes": d.unsubscribes,
                "complaint_rate": round(d.complaint_rate, 6),
            }
        )
        if d.complaint_rate > COMPLAINT_RATE_WARNING:
            warnings.append(
                f"digest {d.period}: complaint rate {d.complaint_rate:.2%} "
                f"({d.complaints} of {d.sent}) is over {COMPLAINT_RATE_WARNING:.1%}"
            )
    return {"digests": digests, "warnings": warnings}


def _show_returned_mail(info: dict[str, Any]) -> None:
    if not info["digests"]:
        return
    click.echo("digests:")
    for d in info["digests"]:
        click.echo(
            f"  {d['period']}: sent {d['sent']}, deferred {d['deferred']}, failed {d['failed']}; "
            f"bounces {d['hard_bounces']} hard, {d['soft_bounces']} soft; "
            f"complaints {d['complaints']}; unsubscribes {d['unsubscribes']}"
        )
    for line in info["warnings"]:
        click.echo(f"warning: {line}")
