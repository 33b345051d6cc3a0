"""Make record HTML safe to put in a feed or an email (nh3, the Ammonia sanitiser).

Scripts, styles, iframes, forms, event handlers and ``javascript:`` URLs go; relative
links and image sources are resolved against the record's own URL so they work in a
feed reader or a mail client, far from the site.
"""

from __future__ import annotations

from functools import lru_cache

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


@lru_cache(maxsize=256)
def _cleaner(base_url: str) -> nh3.Cleaner:
    return nh3.Cleaner(
        tags=set(_ALLOWED_TAGS),
        clean_content_tags=set(_DROP_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in _ATTRIBUTES.items()},
        url_schemes=set(_SCHEMES),
        link_rel="noopener noreferrer",
        url_relative=("rewrite_with_base", base_url),
    )


def sanitize_html(html: str, base_url: str) -> str:
    """``html`` with everything unsafe removed and relative URLs made absolute."""
    if not html:
        return ""
    return _cleaner(base_url).clean(html).strip()
