"""Link attribution: UTM parameters on the digest's links to the site's own host.

With ``[digest.utm]`` (``source``, ``medium``, ``campaign``, where ``{week}`` in the
campaign becomes the digest's week), every link to ``site.url``'s host gets
``utm_source``, ``utm_medium`` and ``utm_campaign``: the editors see in their analytics
which issue brought readers, and nobody is tracked as a person (the parameters are the
same for every reader). Links to other hosts are left alone; a link that already carries
a ``utm_`` parameter is never tagged twice; an existing query and fragment are kept.
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from kcrush_feeds.config import Config

_HREF_RE = re.compile(r'(\bhref=")([^"]*)(")', re.IGNORECASE)
_TEXT_URL_RE = re.compile(r"https?://[^\s<>\"')\]]+")


@dataclass(frozen=True, slots=True)
class Tagger:
    """Adds ``params`` to URLs on ``host`` (and its ``www.`` twin); no params: a no-op."""

    host: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_config(cls, config: Config, period: str) -> Tagger:
        host = (urlsplit(config.site.url).hostname or "").lower()
        digest = config.digest
        if digest is None or digest.utm is None:
            return cls(host)
        u = digest.utm
        return cls(
            host,
            (
                ("utm_source", u.source),
                ("utm_medium", u.medium),
                ("utm_campaign", u.campaign.replace("{week}", period)),
            ),
        )

    def _ours(self, hostname: str | None) -> bool:
        if not hostname:
            return False
        bare = self.host.removeprefix("www.")
        return hostname.lower() in (self.host, bare, f"www.{bare}")

    def url(self, url: str) -> str:
        """``url`` with the parameters, if it points at the site and has none of them."""
        if not self.params:
            return url
        try:
            parts = urlsplit(url)
        except ValueError:
            return url
        if parts.scheme not in ("http", "https") or not self._ours(parts.hostname):
            return url
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key.lower().startswith("utm_") for key, _ in query):
            return url
        extra = urlencode(self.params)
        joined = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit((parts.scheme, parts.netloc, parts.path, joined, parts.fragment))

    def html(self, page: str) -> str:
        """Every ``href`` in ``page`` (attribute values as HTML escapes them) tagged."""
        if not self.params:
            return page

        def tag(match: re.Match[str]) -> str:
            value = html_lib.unescape(match.group(2))
            tagged = self.url(value)
            if tagged == value:
                return match.group(0)
            return match.group(1) + html_lib.escape(tagged, quote=True) + match.group(3)

        return _HREF_RE.sub(tag, page)

    def text(self, body: str) -> str:
        """Every URL written out in a plain-text ``body`` tagged."""
        if not self.params:
            return body
        return _TEXT_URL_RE.sub(lambda m: self.url(m.group(0)), body)
