"""OPML 2.0: the subscription list of every feed, as bytes, written with lxml. Pure: values
in, bytes out."""

from __future__ import annotations

from collections.abc import Sequence

from lxml import etree

from kcrush_feeds.feeds.entries import Listing


def preferred_format(formats: Sequence[str]) -> str:
    """The format OPML subscribes to: the first XML format configured, else JSON."""
    return next((f for f in formats if f in ("rss", "atom")), formats[0])


def render_opml(title: str, site_url: str, listings: Sequence[Listing]) -> bytes:
    """OPML 2.0: one subscription outline per feed, in its preferred format.

    One outline per feed, not per format: a reader importing the file would otherwise
    subscribe to the same feed two or three times.
    """
    opml = etree.Element("opml", {"version": "2.0"})
    head = etree.SubElement(opml, "head")
    etree.SubElement(head, "title").text = title
    body = etree.SubElement(opml, "body")
    for listing in listings:
        fmt = preferred_format(list(listing.urls))
        outline = etree.SubElement(
            body,
            "outline",
            {
                "type": "rss",
                "text": listing.title,
                "title": listing.title,
                "xmlUrl": listing.urls[fmt],
                "htmlUrl": site_url,
            },
        )
        if listing.description:
            outline.set("description", listing.description)
    data: bytes = etree.tostring(
        opml.getroottree(), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return data
