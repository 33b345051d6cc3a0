"""Every workaround feedgen 1.0.0 needs, in one place. rss.py and atom.py write their feeds
through ``feedgen.feed.FeedGenerator`` / ``FeedEntry`` and call these helpers wherever
feedgen's default or behaviour would change what a reader sees.

Each workaround names its defect; ``tests/feeds/test_feeds_feedgen.py`` has a test for each that
fails without it, and a canary showing the defect is still there in the installed feedgen
(when a canary fails after an upgrade, that workaround can go).

Most fixes run in an extension registered with feedgen's own mechanism
(``register_extension``): its ``extend_rss``/``extend_atom`` hooks receive the lxml element
feedgen just built for the channel or for each entry, after feedgen wrote its own children.
Extension instances are created by feedgen without arguments, so each one is handed its
owner (the ``FeedGenerator`` or ``FeedEntry``, by weak reference: no cycle keeps a feed's
entries alive) right after, and reads the values to restore through the owner's getters.
"""

from __future__ import annotations

import weakref
from datetime import datetime

from feedgen.entry import FeedEntry
from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from kcrush_feeds.feeds.entries import Channel, rfc822
from kcrush_feeds.model import Image

# The name our extension is registered under (feedgen sets it as an attribute: fg.kcrush).
NAMESPACE = "kcrush"
# feedgen's Atom documents are built with unqualified tags (the default namespace is an
# attribute on the root), so the extensions look for "link", not "{Atom}link".
_LINK_ATTRIBUTES = ("rel", "type", "hreflang", "title", "length")


def new_feed(generator: str, *, rss: bool, stylesheet: str | None) -> FeedGenerator:
    """A ``FeedGenerator`` with feedgen's defaults replaced by deliberate values."""
    fg = FeedGenerator()
    fg.register_extension(NAMESPACE, _FeedFixes, _EntryFixes, atom=not rss, rss=rss)
    fixes: _FeedFixes = getattr(fg, NAMESPACE)
    fixes.owner = weakref.ref(fg)
    fixes.stylesheet = stylesheet
    # Defect: <generator> defaults to "python-feedgen", in Atom with feedgen's uri and
    # version: name ours, without either.
    fg.generator(generator)
    # Defect: RSS <docs> defaults to the RSS board's URL. Cleared: an empty value is falsy,
    # and feedgen writes the element only when the value is truthy.
    fg.docs("")
    return fg


def set_updated(fg: FeedGenerator, moment: datetime) -> None:
    """Defect: the feed's ``updated`` / ``lastBuildDate`` default to now() when the
    ``FeedGenerator`` is created, so every build would write new bytes. Always set."""
    fg.updated(moment)


def set_rss_links(fg: FeedGenerator, *, self_url: str, self_type: str, site_url: str) -> None:
    """Defect: the RSS channel ``<link>`` is the href of whichever ``link()`` was called
    last, whatever its rel. The self link (written as atom:link) first, the site last, so
    ``<link>`` is the site, as RSS 2.0 says."""
    fg.link(href=self_url, rel="self", type=self_type)
    fg.link(href=site_url, rel="alternate")


def rss_description(channel: Channel) -> str:
    """Defect: feedgen refuses to write an RSS channel without a description (RSS 2.0 only
    asks for the element). A channel made in code without one says its title; ``build``
    always has a description."""
    return channel.description or channel.title


def add_entry(fg: FeedGenerator) -> FeedEntry:
    """Defect: ``add_entry()`` prepends by default, which would reverse the feed. Append,
    so entries stay in the order given (newest first)."""
    fe = fg.add_entry(order="append")
    fixes: _EntryFixes = getattr(fe, NAMESPACE)
    fixes.owner = weakref.ref(fe)
    return fe


def set_atom_dates(
    fe: FeedEntry, published: datetime, updated: datetime, *, updated_text: str | None = None
) -> None:
    """Defect: a ``FeedEntry``'s ``updated`` defaults to now(). Always set, with
    ``published``.

    ``updated_text`` is not about a defect: it replaces the text of the Atom ``<updated>``
    with the same instant written differently, for entries updated in the same second
    (atom.py says why).
    """
    fe.published(published)
    fe.updated(updated)
    getattr(fe, NAMESPACE).updated_text = updated_text


def set_rss_pub_date(fe: FeedEntry, published: datetime) -> None:
    """Defect: feedgen writes RSS dates through ``feedgen.util.formatRFC2822``, which gives
    "+0000" and switches the whole process's locale (``LC_ALL``) to C and back around each
    date (``locale.setlocale`` is not thread-safe). Item dates are not given to feedgen: the
    item hook writes ``<pubDate>`` as RFC 822 with "GMT" and English names whatever the
    locale (``email.utils``). The channel's ``lastBuildDate`` cannot be left out (it would
    be now()); its text is rewritten the same way in the channel hook."""
    getattr(fe, NAMESPACE).pub_date = rfc822(published)


def set_rss_enclosure(fe: FeedEntry, image: Image) -> None:
    """Defect: ``enclosure()`` writes ``length="None"`` when no length is given. Always pass
    one: 0 when unknown, as RSS readers expect."""
    fe.enclosure(url=image.url, length=str(max(image.length, 0)), type=image.type)


class _FeedFixes(BaseExtension):  # type: ignore[misc]  # feedgen has no type hints
    """The channel (RSS) or feed (Atom) hook."""

    def __init__(self) -> None:
        self.owner: weakref.ref[FeedGenerator] | None = None
        self.stylesheet: str | None = None

    def _stylesheet(self, root: etree._Element) -> None:
        # Defect: feedgen has no way to write a processing instruction (its own XML parser
        # even drops them): add <?xml-stylesheet?> before the root element.
        if self.stylesheet is not None:
            instruction = f'type="text/xsl" href="{self.stylesheet}"'
            root.addprevious(etree.ProcessingInstruction("xml-stylesheet", instruction))

    def extend_rss(self, rss: etree._Element) -> etree._Element:
        self._stylesheet(rss)
        # Defect: "+0000" and the process-wide locale switch (see set_rss_pub_date): the
        # text is rewritten as RFC 822 with "GMT".
        # Defect: it always writes a lastBuildDate (now() unless set); a feed without items
        # has none, as before (its build date would be made up).
        last_build = rss.find("channel/lastBuildDate")
        fg = self.owner() if self.owner is not None else None
        if last_build is not None and fg is not None:
            if fg.entry():
                last_build.text = rfc822(fg.updated())
            else:
                last_build.getparent().remove(last_build)
        return rss

    def extend_atom(self, feed: etree._Element) -> etree._Element:
        self._stylesheet(feed)
        return feed


class _EntryFixes(BaseEntryExtension):  # type: ignore[misc]  # feedgen has no type hints
    """The item (RSS) or entry (Atom) hook."""

    def __init__(self) -> None:
        self.owner: weakref.ref[FeedEntry] | None = None
        self.updated_text: str | None = None
        self.pub_date: str | None = None

    def extend_rss(self, item: etree._Element) -> etree._Element:
        # Defect: "+0000" and the process-wide locale switch (set_rss_pub_date).
        if self.pub_date is not None:
            etree.SubElement(item, "pubDate").text = self.pub_date
        return item

    def extend_atom(self, entry: etree._Element) -> etree._Element:
        # Defect (upstream issues #135, #143): FeedEntry.atom_entry() rebinds its loop
        # variable to the new <link> element before reading rel/type/hreflang/title/length
        # from it, so every entry link loses them: an image enclosure becomes a second
        # alternate link (an invalid feed). Restored from the entry's own link() data, which
        # feedgen keeps intact and writes in the same order (strict: if that ever changes,
        # fail rather than put a rel on the wrong link).
        fe = self.owner() if self.owner is not None else None
        if fe is not None:
            links = fe.link() or []
            for element, data in zip(entry.iterchildren("link"), links, strict=True):
                for name in _LINK_ATTRIBUTES:
                    value = data.get(name)
                    if value:
                        element.set(name, value)
        if self.updated_text is not None:
            updated = entry.find("updated")
            if updated is not None:
                updated.text = self.updated_text
        return entry
