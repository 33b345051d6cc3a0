"""Read posts from a WordPress site through its REST API (``/wp-json/wp/v2/posts``).

What is asked, page by page (``X-WP-TotalPages`` says how many)::

    GET {site}/wp-json/wp/v2/posts?per_page=100&page=N&orderby=id&order=asc
        &_embed=author,wp:term,wp:featuredmedia[&modified_after=...|&after=...]

In post id order: the id is unique, so no two pages share a post. WordPress sorts
``orderby=modified`` (or ``date``) on that column alone, and a Bulk Edit gives 150 posts a
few shared seconds that MySQL returns in a different order for each page: pages then
overlap and posts are never listed. ``posts()`` also checks that the listing came back
whole (every id once, as many as ``X-WP-Total``) and says why when it did not
(``incomplete``). Category ids that ``_embedded`` lacks are resolved through
``/wp-json/wp/v2/categories?include=...``.

A post becomes a raw record (the same dict a JSONL line would give) for
``records.normalize``, so the same validation applies:

- ``id``: the post's ``guid.rendered`` (``https://site/?p=123``): stable when the title or
  slug changes, and the same guid WordPress's own RSS feed carries, so switching between
  the feed and the API never duplicates a post. A post without one gets
  ``wordpress:{host}:{id}``.
- ``url`` <- ``link``; ``title`` <- ``title.rendered`` (entities such as ``&#8220;`` are
  decoded once, by ``normalize``); ``summary`` <- ``excerpt.rendered`` as plain text;
  ``content_html`` <- ``content.rendered``; ``published``/``updated`` <- ``date_gmt`` /
  ``modified_gmt`` read as UTC; categories and tags by name from ``wp:term``; authors from
  ``author``; the image from ``wp:featuredmedia`` (``source_url``, ``alt_text``,
  ``mime_type``, ``media_details.filesize`` when WordPress reports it).
"""

from __future__ import annotations

import email.utils
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from kcrush_feeds.sources.http import FetchError, HttpClient, Response
from kcrush_feeds.text import plain_text

log = logging.getLogger("kcrush_feeds.sources.wordpress")

PER_PAGE = 100  # the most WordPress allows
EMBED = "author,wp:term,wp:featuredmedia"
LIVE_STATUSES = frozenset({"publish", "future"})  # "future": stored, shown when its time comes
# With credentials we ask for every status a reader of the site could once have seen, so a
# post unpublished, made private or trashed is reported and withdrawn.
ALL_STATUSES = "publish,future,draft,pending,private,trash"
# What WordPress answers when it will not show the statuses (or the edit context) asked for.
# A wrong application password is no login at all, so with credentials configured these
# mean the site did not accept them: 6.1 wraps the status sanitizer's refusal in a
# ``400 rest_invalid_param`` naming the ``status`` parameter.
_REFUSED_CODES = frozenset(
    {
        "rest_forbidden_status",
        "rest_forbidden_context",
        "incorrect_password",
        "invalid_username",
        "invalid_email",
        "application_passwords_disabled",
        "rest_not_logged_in",
    }
)
_REFUSED_PARAMS = frozenset({"status", "context"})
_MORE_RE = re.compile(r"\s*\[(?:…|&hellip;|\.\.\.)\]\s*$")


class WordPressError(FetchError):
    """The site answered, but not as a WordPress REST API would."""


@dataclass(frozen=True, slots=True)
class Post:
    """One post as read: its record id, status, and the raw record (None when withdrawn)."""

    wp_id: int
    record_id: str
    status: str
    modified: datetime | None
    raw: dict[str, Any] | None

    @property
    def live(self) -> bool:
        return self.status in LIVE_STATUSES


@dataclass(frozen=True, slots=True)
class PostPage:
    page: int
    total_pages: int
    total: int | None
    posts: tuple[Post, ...]
    url: str
    answered: datetime | None = None  # the reply's ``Date`` header

    def newest_modified(self, until: datetime) -> datetime | None:
        """The newest ``modified_gmt`` not after ``until``.

        A post created scheduled carries its future publish date as its modified date:
        taking it as the cursor would skip every change until that date.
        """
        dates = [p.modified for p in self.posts if p.modified is not None and p.modified <= until]
        return max(dates) if dates else None


def api_root(site: str) -> str:
    """``https://site[/path]`` -> ``https://site[/path]/wp-json`` (a ``/wp-json`` given is kept)."""
    base = site.strip().rstrip("/")
    marker = base.find("/wp-json")
    if marker >= 0:
        base = base[:marker]
    return f"{base}/wp-json"


def posts_params(
    page: int,
    modified_after: datetime | None = None,
    *,
    published_after: datetime | None = None,
    every_status: bool = False,
) -> dict[str, str | int]:
    """The query of one page of posts (documented in docs/sources.md)."""
    params: dict[str, str | int] = {
        "per_page": PER_PAGE,
        "page": page,
        "orderby": "id",  # unique: see the module docstring
        "order": "asc",
        "_embed": EMBED,
    }
    if modified_after is not None:
        params["modified_after"] = format_utc(modified_after)
    if published_after is not None:
        params["after"] = format_utc(published_after)
    if every_status:
        params["status"] = ALL_STATUSES
    return params


def format_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def parse_gmt(value: object) -> datetime | None:
    """WordPress ``*_gmt`` fields carry no offset; they are UTC."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def http_date(value: str | None) -> datetime | None:
    """An HTTP ``Date`` header as an aware UTC datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class WordPressSite:
    """The REST API of one site, read through ``client``."""

    def __init__(
        self,
        client: HttpClient,
        site: str,
        *,
        auth: tuple[str, str] | None = None,
        credentials: str = "the configured username and password",
    ) -> None:
        """``credentials`` names where ``auth`` comes from, for the error if it is refused."""
        self.client = client
        self.auth = auth
        self.credentials = credentials
        self.site = site
        self.root = api_root(site)
        self.host = urlsplit(self.root).hostname or "site"
        self.requests = 0
        self.urls: list[str] = []  # every request made, in order
        # After posts(): None if the listing was read whole, else why it was not.
        self.incomplete: str | None = "not read yet"
        self._categories: dict[int, str] = {}

    @property
    def complete(self) -> bool:
        return self.incomplete is None

    def posts(
        self,
        *,
        modified_after: datetime | None = None,
        published_after: datetime | None = None,
    ) -> Iterator[PostPage]:
        """Every page of posts modified (or published) after the time given; all when None.

        Pages are followed by ``X-WP-TotalPages``; a site (or proxy) that drops the
        ``X-WP-*`` headers is paged until a short page. Afterwards ``incomplete`` is None
        when the listing is known whole: every page read, each post id listed once, and
        as many posts as ``X-WP-Total`` said, a count that stayed the same on every page.
        """
        url = f"{self.root}/wp/v2/posts"
        page = 1
        total_pages = 1
        first_total: int | None = None
        changed: str | None = None
        seen: set[int] = set()
        twice: list[int] = []
        self.incomplete = "the listing was not read to the end"
        while page <= total_pages:
            params = posts_params(
                page,
                modified_after,
                published_after=published_after,
                every_status=self.auth is not None,
            )
            try:
                response = self._get(url, params)
            except FetchError as e:
                if page > 1 and e.status == 400 and b"rest_post_invalid_page_number" in e.body:
                    # A page past the end: without headers that is the normal end; with
                    # them, posts were deleted while we paged and what shifted onto pages
                    # already read was missed.
                    self.incomplete = _verdict(first_total, changed, seen, twice, headers=False)
                    if first_total is not None and self.incomplete is None:
                        self.incomplete = f"page {page} of {total_pages} no longer exists"
                    return
                raise self._explain(e) from e
            items = self._json_list(response)
            total = _int_header(response, "x-wp-total")
            pages = _int_header(response, "x-wp-totalpages")
            # Without the header (a proxy dropped it), a full page means there may be more.
            more = page + 1 if len(items) >= PER_PAGE else page
            total_pages = more if pages is None else pages
            if page == 1:
                first_total = total
            elif total != first_total and changed is None:
                changed = f"X-WP-Total changed from {first_total} to {total}"
            missing = {cid for item in items for cid in _missing_category_ids(item)}
            if missing:
                self._resolve_categories(missing)
            posts = tuple(self._post(item, response.url) for item in items)
            for post in posts:
                if post.wp_id in seen:
                    twice.append(post.wp_id)
                seen.add(post.wp_id)
            yield PostPage(
                page,
                max(total_pages, page),
                total,
                posts,
                response.url,
                http_date(response.header("date")),
            )
            page += 1
        self.incomplete = _verdict(first_total, changed, seen, twice, headers=True)

    # --- one post -------------------------------------------------------------------

    def _post(self, item: Mapping[str, Any], where: str) -> Post:
        wp_id = item.get("id")
        if not isinstance(wp_id, int):
            raise WordPressError(
                where, "a post without a numeric id; is this a WordPress REST API?"
            )
        record_id = _record_id(item, self.host, wp_id)
        status = item.get("status") if isinstance(item.get("status"), str) else "publish"
        assert isinstance(status, str)
        modified = parse_gmt(item.get("modified_gmt"))
        if status not in LIVE_STATUSES:
            return Post(wp_id, record_id, status, modified, None)
        return Post(wp_id, record_id, status, modified, self._raw(item, record_id))

    def _raw(self, item: Mapping[str, Any], record_id: str) -> dict[str, Any]:
        embedded = item.get("_embedded") if isinstance(item.get("_embedded"), dict) else {}
        assert isinstance(embedded, dict)
        terms = _embedded_terms(embedded)
        categories = [
            terms[cid]["name"] if cid in terms else self._categories.get(cid)
            for cid in _ids(item.get("categories"))
        ]
        tags = [terms[tid]["name"] for tid in _ids(item.get("tags")) if tid in terms]
        if not item.get("categories"):  # a custom post type or a site without categories
            categories = [t["name"] for t in terms.values() if t.get("taxonomy") == "category"]
        published = parse_gmt(item.get("date_gmt"))
        updated = parse_gmt(item.get("modified_gmt"))
        raw: dict[str, Any] = {
            "id": record_id,
            "url": item.get("link"),
            "title": _rendered(item.get("title")),
            # A post never published has no date_gmt; its local ``date`` is read in the
            # site's time zone by normalize.
            "published": published.isoformat() if published else item.get("date"),
            "updated": updated.isoformat() if updated else None,
            "categories": [c for c in categories if c],
            "summary": _summary(_rendered(item.get("excerpt"))),
            "content_html": _rendered(item.get("content")),
            "authors": [
                a["name"]
                for a in _embedded_list(embedded, "author")
                if isinstance(a.get("name"), str)
            ],
            "tags": tags,
        }
        image = _image(embedded)
        if image is not None:
            raw["image"] = image
        return raw

    # --- requests -------------------------------------------------------------------

    def _get(self, url: str, params: Mapping[str, str | int]) -> Response:
        self.requests += 1
        self.urls.append(f"{url}?{urlencode(params, safe=',:')}")
        log.debug("GET %s", self.urls[-1])
        return self.client.get(
            url, params=params, headers={"Accept": "application/json"}, auth=self.auth
        )

    def _explain(self, error: FetchError) -> FetchError:
        """``_explain``, and with credentials a refusal of them said in so many words."""
        explained = _explain(error)
        if self.auth is None or not _refuses_credentials(error):
            return explained
        return FetchError(
            error.url,
            f"the site did not accept the credentials ({self.credentials}); "
            f"WordPress says {explained.reason}",
            status=error.status,
            body=error.body,
            hint="WordPress treats a wrong username or application password as no login "
            "at all, and then refuses to list unpublished posts. Check the user name and "
            "the application password (Users > Profile > Application Passwords) held in "
            "that environment variable. WordPress offers application passwords only over "
            "https (or on a site whose WP_ENVIRONMENT_TYPE is 'local')",
        )

    def _json_list(self, response: Response) -> list[dict[str, Any]]:
        try:
            data = json.loads(response.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise WordPressError(
                response.url,
                f"the reply is not valid JSON ({e}); {len(response.body):,} bytes received",
                status=response.status,
                hint="the site may be behind a login or a firewall page, or the reply "
                "was cut short; a later run will try again",
            ) from e
        if not isinstance(data, list) or not all(isinstance(i, dict) for i in data):
            raise WordPressError(
                response.url, "expected a JSON list of posts", status=response.status
            )
        return data

    def _resolve_categories(self, ids: set[int]) -> None:
        wanted = sorted(ids - set(self._categories))
        for start in range(0, len(wanted), PER_PAGE):
            chunk = wanted[start : start + PER_PAGE]
            response = self._get(
                f"{self.root}/wp/v2/categories",
                {"include": ",".join(map(str, chunk)), "per_page": PER_PAGE, "_fields": "id,name"},
            )
            for term in self._json_list(response):
                if isinstance(term.get("id"), int) and isinstance(term.get("name"), str):
                    self._categories[term["id"]] = term["name"]


# --- helpers ------------------------------------------------------------------------------


def _verdict(
    total: int | None, changed: str | None, seen: set[int], twice: list[int], *, headers: bool
) -> str | None:
    """Why a listing cannot be trusted to be whole, or None when it can."""
    if changed is not None:
        return f"{changed} while the pages were read"
    if twice:
        shown = ", ".join(map(str, twice[:5])) + (" ..." if len(twice) > 5 else "")
        return (
            f"post {twice[0]} was listed twice ({len(twice)} repeats: {shown}); "
            "the site does not page in a stable order"
        )
    if headers and total is not None and len(seen) != total:
        return f"X-WP-Total said {total} posts but {len(seen)} were listed"
    return None


def _wordpress_error(body: bytes) -> tuple[str, str, set[str]]:
    """WordPress's ``{"code", "message", "data": {"params"}}`` from an error body."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "", "", set()
    if not isinstance(data, dict) or not isinstance(data.get("code"), str):
        return "", "", set()
    extra = data.get("data")
    params = extra.get("params") if isinstance(extra, dict) else None
    names = set(params) if isinstance(params, dict) else set()
    return data["code"], plain_text(str(data.get("message", ""))), names


def _refuses_credentials(error: FetchError) -> bool:
    """A 400/401/403 about ``status`` or ``context`` (or the login itself)."""
    if error.status not in (400, 401, 403):
        return False
    code, message, params = _wordpress_error(error.body)
    if code in _REFUSED_CODES or params & _REFUSED_PARAMS:
        return True
    if code == "rest_invalid_param" and any(f" {p}" in message for p in _REFUSED_PARAMS):
        return True
    return error.status == 401  # the login was refused, whatever the plugin calls it


def _explain(error: FetchError) -> FetchError:
    """Add WordPress's own error (``{"code", "message"}``) and a hint to an HTTP error."""
    if error.status is None:
        return error
    code, message, _ = _wordpress_error(error.body)
    detail = f" ({code}: {message})" if code else ""
    hints = {
        401: "the REST API asks for a login: a security plugin may restrict it",
        403: "the REST API is forbidden: a security plugin or firewall may block it",
        404: "no REST API here: check the site's address, or whether the REST API is disabled",
    }
    return FetchError(
        error.url,
        error.reason + detail,
        status=error.status,
        body=error.body,
        hint=hints.get(error.status, error.hint),
    )


def _record_id(item: Mapping[str, Any], host: str, wp_id: int) -> str:
    guid = _rendered(item.get("guid")).strip()
    if guid and urlsplit(guid).scheme in ("http", "https"):
        return plain_text(guid)  # the guid is rendered: &#038; stands for &
    return f"wordpress:{host}:{wp_id}"


def _rendered(value: object) -> str:
    if isinstance(value, dict):
        rendered = value.get("rendered")
        return rendered if isinstance(rendered, str) else ""
    return value if isinstance(value, str) else ""


def _summary(excerpt_html: str) -> str:
    """The excerpt as plain text, WordPress's trailing ``[…]`` made a plain ellipsis."""
    text = plain_text(excerpt_html)
    return _MORE_RE.sub("…", text) if _MORE_RE.search(text) else text


def _ids(value: object) -> list[int]:
    return [v for v in value if isinstance(v, int)] if isinstance(value, list) else []


def _embedded_list(embedded: Mapping[str, Any], rel: str) -> list[dict[str, Any]]:
    """Embedded objects of ``rel``, minus error objects (a hidden author, a private image)."""
    value = embedded.get(rel)
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict) and "code" not in v]


def _embedded_terms(embedded: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """``wp:term`` is a list per taxonomy, each a list of terms."""
    terms: dict[int, dict[str, Any]] = {}
    groups = embedded.get("wp:term")
    if not isinstance(groups, list):
        return terms
    for group in groups:
        if not isinstance(group, list):
            continue
        for term in group:
            if (
                isinstance(term, dict)
                and isinstance(term.get("id"), int)
                and isinstance(term.get("name"), str)
            ):
                terms[term["id"]] = term
    return terms


def _missing_category_ids(item: Mapping[str, Any]) -> list[int]:
    embedded = item.get("_embedded") if isinstance(item.get("_embedded"), dict) else {}
    assert isinstance(embedded, dict)
    known = _embedded_terms(embedded)
    return [cid for cid in _ids(item.get("categories")) if cid not in known]


def _image(embedded: Mapping[str, Any]) -> dict[str, Any] | None:
    media = _embedded_list(embedded, "wp:featuredmedia")
    if not media:
        return None
    first = media[0]
    url = first.get("source_url")
    if not isinstance(url, str) or not url:
        return None
    image: dict[str, Any] = {"url": url}
    if isinstance(first.get("alt_text"), str):
        image["alt"] = first["alt_text"]
    if isinstance(first.get("mime_type"), str) and first["mime_type"]:
        image["type"] = first["mime_type"]
    details = first.get("media_details")
    if isinstance(details, dict):
        size = details.get("filesize")
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            image["length"] = size
    return image


def _int_header(response: Response, name: str) -> int | None:
    value = response.header(name)
    if value is not None and value.strip().isdigit():
        return int(value.strip())
    return None
