"""``status``: what the store holds."""

from __future__ import annotations

import json
from typing import Any

import click

from ..cli import App, pass_app
from ..sources import list_states


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON, for scripts.")
@pass_app
def status(app: App, as_json: bool) -> None:
    """Records per category, the newest record, the store and its schema version."""
    store = app.store
    tz = app.config.site.tz
    newest = store.newest_record()
    info: dict[str, Any] = {
        "store": str(store.path),
        "schema_version": store.schema_version,
        "records": store.count_records(),
        "newest": None
        if newest is None
        else {
            "title": newest.title,
            "published": newest.published.astimezone(tz).isoformat(),
            "url": newest.url,
        },
        "categories": [
            {"name": name, "records": count, "newest": when.astimezone(tz).isoformat()}
            for name, count, when in store.category_counts()
        ],
    }
    info["sources"] = [
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
        for state in list_states(store)
    ]
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
    if info["sources"]:
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
