"""Make record HTML safe to put in a feed or an email (nh3, the Ammonia sanitiser).

Scripts, styles, iframes, forms, event handlers and ``javascript:`` URLs go; relative
links and image sources are resolved against the record's own URL so they work in a
feed reader or a mail client, far from the site.
"""

from __future__ import annotations

import re
from html import escape as htmlescape
from html import unescape as htmlunescape
from urllib.parse import urljoin

import nh3

# Tags whose content is dropped along with the tag (the rest keep their text).
_DROP_WITH_CONTENT = frozenset(
    {
        "script",
        "style",
        "iframe",
        "object",
        "embed",
        "noscript",
        "template",
        "form",
        "textarea",
        "select",
        "button",
    }
)
_ALLOWED_TAGS = frozenset(nh3.ALLOWED_TAGS) - _DROP_WITH_CONTENT
_ATTRIBUTES = {
    "a": {"href", "title", "hreflang"},
    "img": {"src", "alt", "title", "width", "height"},
    "abbr": {"title"},
    "acronym": {"title"},
    "blockquote": {"cite"},
    "q": {"cite"},
    "del": {"cite", "datetime"},
    "ins": {"cite", "datetime"},
    "time": {"datetime"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start", "reversed"},
    "li": {"value"},
}
_SCHEMES = {"http", "https", "mailto"}

# One Cleaner for every record: building one per record (each has its own base URL) or
# resolving through a Python callback both cost more than cleaning itself. Relative URLs
# pass through the Cleaner and are resolved afterwards in its output, where every
# attribute is written as name="value".
_CLEANER = nh3.Cleaner(
    tags=set(_ALLOWED_TAGS),
    clean_content_tags=set(_DROP_WITH_CONTENT),
    attributes={tag: set(attrs) for tag, attrs in _ATTRIBUTES.items()},
    url_schemes=set(_SCHEMES),
    link_rel="noopener noreferrer",
)
# A literal space rather than \b: the regex engine then skips ahead on one character,
# about five times faster on a 5 KB body (nh3 always separates attributes by a space).
_URL_ATTR = re.compile(r' (href|src|cite)="([^"]*)"')
_ABSOLUTE = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")


def sanitize_html(html: str, base_url: str) -> str:
    """``html`` with everything unsafe removed and relative URLs made absolute."""
    if not html:
        return ""
    cleaned = _CLEANER.clean(html).strip()

    def resolve(match: re.Match[str]) -> str:
        url = match[2]
        if _ABSOLUTE.match(url):
            return match[0]
        absolute = urljoin(base_url, htmlunescape(url))
        return f' {match[1]}="{htmlescape(absolute)}"'

    return _URL_ATTR.sub(resolve, cleaned) if '="' in cleaned else cleaned
