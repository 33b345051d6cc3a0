"""The writer of each feed format, by its name in ``feeds.formats``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kcrush_feeds.feeds.atom import render_atom
from kcrush_feeds.feeds.entries import Channel, Entry
from kcrush_feeds.feeds.jsonfeed import render_json
from kcrush_feeds.feeds.rss import render_rss

# Bump when the bytes a writer produces change for the same input, so ``build`` rewrites
# every feed once instead of trusting what it remembered about the old files.
FORMAT_VERSION = "3"  # 3: RSS and Atom written through feedgen

RENDERERS: dict[str, Callable[[Channel, Sequence[Entry]], bytes]] = {
    "rss": render_rss,
    "atom": render_atom,
    "json": render_json,
}
