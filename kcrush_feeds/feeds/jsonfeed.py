"""JSON Feed 1.1 as bytes, with the standard JSON encoder. Pure: values in, bytes out."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kcrush_feeds.feeds.entries import Channel, Entry, rfc3339

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


def render_json(channel: Channel, entries: Sequence[Entry]) -> bytes:
    """JSON Feed 1.1: feed_url, home_page_url, items with HTML content, image and authors."""
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": channel.title,
        "home_page_url": channel.site_url,
        "feed_url": channel.url("json"),
    }
    if channel.description:
        feed["description"] = channel.description
    if channel.image:
        feed["icon"] = channel.image
    feed["authors"] = [{"name": channel.site_title, "url": channel.site_url}]
    feed["language"] = channel.language
    if channel.hub:
        feed["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    items: list[dict[str, Any]] = []
    for entry in entries:
        item: dict[str, Any] = {"id": entry.id, "url": entry.url, "title": entry.title}
        # The spec wants content_html or content_text; the summary stands in for a
        # record without a body, and an empty text for one without either.
        if entry.content_html or entry.summary_html:
            item["content_html"] = entry.content_html or entry.summary_html
        else:
            item["content_text"] = ""
        summary = entry.summary_text
        if summary:
            item["summary"] = summary
        if entry.image is not None:
            item["image"] = entry.image.url
        item["date_published"] = rfc3339(entry.published)
        item["date_modified"] = rfc3339(entry.updated)
        if entry.authors:
            item["authors"] = [{"name": name} for name in entry.authors]
        if entry.categories:
            item["tags"] = list(entry.categories)
        items.append(item)
    feed["items"] = items
    # No indent: Python's C encoder only runs without one, and feeds are read by programs.
    return (json.dumps(feed, ensure_ascii=False) + "\n").encode("utf-8")
