"""A real HTTP server on 127.0.0.1 serving WordPress-shaped REST responses and feeds.

The WordPress shape follows the documented REST schema of ``/wp-json/wp/v2/posts``
(developer.wordpress.org/rest-api/reference/posts/ and the linking-and-embedding page):
``title``/``excerpt``/``content``/``guid`` are ``{"rendered": ...}`` objects with
HTML-escaped text (``&#8220;``, ``&amp;``), ``date_gmt``/``modified_gmt`` are ISO 8601
without an offset, ``categories``/``tags`` are term ids, and ``_embed`` adds
``_embedded.author`` (users), ``_embedded["wp:term"]`` (one list per taxonomy) and
``_embedded["wp:featuredmedia"]`` (attachments with ``source_url``, ``alt_text``,
``mime_type`` and ``media_details.filesize``). Collections carry ``X-WP-Total`` and
``X-WP-TotalPages``; a page past the end is a 400 ``rest_post_invalid_page_number``.
Posts come from examples/records.jsonl, so the fixtures read like the magazine.

What WordPress 6.x does that a sync must survive, reproduced as a real site showed it
(tests/test_wordpress_real.py drives the real thing):

- ``orderby=date``/``modified`` sort on that column alone: posts sharing a second come back
  in whatever order MySQL picks for each query, so one tie can straddle two pages
  differently on each request (``_tie_order``). ``orderby=id`` is unique.
- ``after``/``modified_after`` filter on the publish and modification dates.
- The cron publish of a scheduled post changes its status only: ``modified`` stays the time
  the editor pressed "Schedule" (``cron_publish``). A post *created* scheduled has
  ``modified`` equal to its future date (``create_scheduled``). A Bulk Edit gives many posts
  a few shared seconds (``bulk_edit``).
- Wrong credentials are no login at all: asking an anonymous request for ``status=draft``
  is answered ``400 rest_invalid_param`` (the sanitizer's ``rest_forbidden_status``
  wrapped), not 401.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import html
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# --- the server ------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request the server received."""

    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    at: float


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    declared_length: int | None = None  # a Content-Length larger than the body: cut short
    gzip: bool = False


Handler = Callable[[Seen], Reply]


class FixtureServer:
    """Routes by path; ``queue`` puts one-shot replies in front of a route."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.queued: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.clock: datetime | None = None  # the time the Date header gives (default: now)
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                request = Seen(
                    parts.path,
                    {k: v[-1] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    time.monotonic(),
                )
                with server.lock:
                    server.seen.append(request)
                    queue = server.queued.get(parts.path)
                    reply = queue.pop(0) if queue else None
                if reply is None:
                    handler = server.routes.get(parts.path)
                    reply = handler(request) if handler else Reply(404, b'{"code":"rest_no_route"}')
                self._send(reply, request)

            def _send(self, reply: Reply, request: Seen) -> None:
                body = reply.body
                headers = dict(reply.headers)
                if reply.gzip and "gzip" in request.headers.get("accept-encoding", ""):
                    body = gzip.compress(body)
                    headers["Content-Encoding"] = "gzip"
                self.send_response(reply.status)
                for name, value in headers.items():
                    self.send_header(name, value)
                length = reply.declared_length if reply.declared_length is not None else len(body)
                self.send_header("Content-Length", str(length))
                if reply.declared_length is not None:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                if reply.declared_length is not None:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def date_time_string(self, timestamp: float | None = None) -> str:
                if server.clock is not None and timestamp is None:
                    timestamp = server.clock.timestamp()
                return super().date_time_string(timestamp)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def queue(self, path: str, *replies: Reply) -> None:
        with self.lock:
            self.queued.setdefault(path, []).extend(replies)

    def requests(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def start(self) -> FixtureServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def serve() -> Iterator[FixtureServer]:
    server = FixtureServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- WordPress --------------------------------------------------------------------------------

POSTS_PATH = "/wp-json/wp/v2/posts"
CATEGORIES_PATH = "/wp-json/wp/v2/categories"

CATEGORIES = {
    1: "K-Pop Articles",
    2: "K-Pop Interviews",
    3: "Film &amp; TV",  # term names are HTML-escaped too
    4: "Fashion",
    5: "K-Drama",
    7: "Featured Interview",  # never embedded: must be asked of /categories
}
_CATEGORY_IDS = {"K-Pop Articles": 1, "K-Pop Interviews": 2, "Film": 3, "Fashion": 4, "K-Drama": 5}
TAGS = {11: "iKON", 12: "BIFF 2023"}
AUTHORS = {1: "KCrush Staff", 2: "Carolyn Hinds"}


def wp_escape(text: str) -> str:
    """What WordPress's wptexturize + esc_html do to a plain title."""
    return (
        html.escape(text, quote=False)
        .replace("“", "&#8220;")
        .replace("”", "&#8221;")
        .replace("’", "&#8217;")
        .replace("‘", "&#8216;")
        .replace("–", "&#8211;")
    )


def _gmt(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


@dataclass
class WordPressSite:
    """The posts of a fake site, served the way the REST API serves them."""

    base: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    # HTTP Basic for user "feeds", application password "abcd efgh ijkl mnop"
    auth: str = "Basic " + base64.b64encode(b"feeds:abcd efgh ijkl mnop").decode()

    def post(self, wp_id: int) -> dict[str, Any]:
        return next(p for p in self.posts if p["id"] == wp_id)

    def edit(self, wp_id: int, *, title: str, when: datetime) -> None:
        post = self.post(wp_id)
        post["title"] = {"rendered": wp_escape(title)}
        post["modified_gmt"] = _gmt(when)
        post["modified"] = post["modified_gmt"]

    def delete(self, wp_id: int) -> None:
        self.posts = [p for p in self.posts if p["id"] != wp_id]

    def schedule(self, wp_id: int, *, publish_at: datetime, pressed_at: datetime) -> None:
        """An editor scheduled an existing post at ``pressed_at`` to go live at ``publish_at``."""
        post = self.post(wp_id)
        post["status"] = "future"
        post["date_gmt"] = post["date"] = _gmt(publish_at)
        post["modified_gmt"] = post["modified"] = _gmt(pressed_at)

    def create_scheduled(self, wp_id: int, *, like: int, publish_at: datetime) -> None:
        """A post created as scheduled (wp_insert_post, REST, WP-CLI): modified = its date."""
        post = json.loads(json.dumps(self.post(like)))
        post["id"] = wp_id
        post["guid"] = {"rendered": f"{self.base}/?p={wp_id}"}
        post["slug"] += f"-{wp_id}"
        post["link"] = f"{self.base}/{post['slug']}/"
        post["status"] = "future"
        post["title"] = {"rendered": f"Scheduled {wp_id}"}
        post["date_gmt"] = post["date"] = _gmt(publish_at)
        post["modified_gmt"] = post["modified"] = _gmt(publish_at)
        post["_x_media"] = json.loads(json.dumps(self.post(like)["_x_media"]))
        self.posts.append(post)

    def cron_publish(self, wp_id: int) -> None:
        """What wp-cron's wp_publish_post does: the status changes, ``modified`` does not."""
        self.post(wp_id)["status"] = "publish"

    def bulk_edit(self, wp_ids: list[int], *, start: datetime, seconds: int = 4) -> None:
        """A Bulk Edit of ``wp_ids``: each post saved in turn, ``seconds`` distinct modified
        times between them (150 posts gave 4 on a real site)."""
        for n, wp_id in enumerate(wp_ids):
            post = self.post(wp_id)
            post["title"] = {"rendered": post["title"]["rendered"] + " (bulk edited)"}
            when = start + timedelta(seconds=n * seconds // len(wp_ids))
            post["modified_gmt"] = post["modified"] = _gmt(when)

    # --- handlers ---

    def handle_posts(self, request: Seen) -> Reply:
        q = request.query
        per_page = int(q.get("per_page", "10"))
        page = int(q.get("page", "1"))
        if not 1 <= per_page <= 100:
            return _error(
                400,
                "rest_invalid_param",
                "per_page must be between 1 (inclusive) and 100 (inclusive)",
            )
        statuses = {"publish"}
        if "status" in q:
            statuses = set(q["status"].split(","))
            # A wrong application password is no login: the request is anonymous, and the
            # status sanitizer's refusal comes back wrapped in a 400, as in WordPress 6.1.
            if statuses != {"publish"} and request.headers.get("authorization") != self.auth:
                return _invalid_status()
        posts = [p for p in self.posts if p["status"] in statuses]
        for param, column in (("modified_after", "modified_gmt"), ("after", "date_gmt")):
            if param in q:
                after = datetime.fromisoformat(q[param].replace("Z", "+00:00"))
                posts = [
                    p
                    for p in posts
                    if datetime.fromisoformat(p[column]).replace(tzinfo=UTC) > after
                ]
        orderby = q.get("orderby", "date")
        descending = q.get("order", "desc") == "desc"
        if orderby == "id":
            posts = sorted(posts, key=lambda p: p["id"], reverse=descending)
        else:
            key = "modified_gmt" if orderby == "modified" else "date_gmt"
            # ORDER BY one column: MySQL returns ties in any order, and not the same order
            # for every LIMIT/OFFSET query.
            posts = sorted(posts, key=lambda p: _tie_order(p["id"], page))
            posts = sorted(posts, key=lambda p: p[key], reverse=descending)
        total = len(posts)
        pages = math.ceil(total / per_page)
        if page > max(pages, 1):
            return _error(
                400,
                "rest_post_invalid_page_number",
                "The page number requested is larger than the number of pages available.",
            )
        chunk = posts[(page - 1) * per_page : page * per_page]
        embed = "_embed" in q
        body = [self._render(p, embed) for p in chunk]
        return Reply(
            200,
            json.dumps(body).encode(),
            {
                "Content-Type": "application/json; charset=UTF-8",
                "X-WP-Total": str(total),
                "X-WP-TotalPages": str(pages),
            },
            gzip=True,
        )

    def handle_categories(self, request: Seen) -> Reply:
        wanted = [int(i) for i in request.query.get("include", "").split(",") if i]
        terms = [{"id": i, "name": CATEGORIES[i]} for i in wanted if i in CATEGORIES]
        return Reply(
            200,
            json.dumps(terms).encode(),
            {
                "Content-Type": "application/json; charset=UTF-8",
                "X-WP-Total": str(len(terms)),
                "X-WP-TotalPages": "1",
            },
        )

    def _render(self, post: dict[str, Any], embed: bool) -> dict[str, Any]:
        item = {k: v for k, v in post.items() if not k.startswith("_x_")}
        item["_links"] = {"self": [{"href": f"{self.base}{POSTS_PATH}/{post['id']}"}]}
        if not embed:
            return item
        embedded: dict[str, Any] = {
            "author": [
                {
                    "id": post["author"],
                    "name": AUTHORS[post["author"]],
                    "link": f"{self.base}/author/{post['author']}/",
                    "slug": "staff",
                }
            ],
            "wp:term": [
                [
                    {
                        "id": c,
                        "name": CATEGORIES[c],
                        "taxonomy": "category",
                        "link": f"{self.base}/category/{c}/",
                    }
                    for c in post["categories"]
                    if c != 7
                ],  # 7 is left out on purpose
                [
                    {
                        "id": t,
                        "name": TAGS[t],
                        "taxonomy": "post_tag",
                        "link": f"{self.base}/tag/{t}/",
                    }
                    for t in post["tags"]
                ],
            ],
        }
        media = post.get("_x_media")
        if media is not None:
            embedded["wp:featuredmedia"] = [media]
        item["_embedded"] = embedded
        return item


def _tie_order(wp_id: int, page: int) -> bytes:
    """An arbitrary but reproducible order of tied rows, different for each page asked."""
    return hashlib.sha256(f"{page}:{wp_id}".encode()).digest()


def _invalid_status() -> Reply:
    """WordPress 6.1's answer to ``status=draft,...`` from a request without a valid login."""
    body = {
        "code": "rest_invalid_param",
        "message": "Invalid parameter(s): status",
        "data": {
            "status": 400,
            "params": {"status": "Status is forbidden."},
            "details": {
                "status": {
                    "code": "rest_forbidden_status",
                    "message": "Status is forbidden.",
                    "data": {"status": 401},
                }
            },
        },
    }
    return Reply(
        400, json.dumps(body).encode(), {"Content-Type": "application/json; charset=UTF-8"}
    )


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        json.dumps({"code": code, "message": message, "data": {"status": status}}).encode(),
        {"Content-Type": "application/json; charset=UTF-8"},
    )


def example_records() -> list[dict[str, Any]]:
    with (EXAMPLES / "records.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def wordpress_site(server: FixtureServer, count: int = 230) -> WordPressSite:
    """``count`` posts (the 30 examples, then variations), several pages at per_page=100.

    Post 1001 has a curly-quoted title, 1002 an ampersand, 1003 a Korean title, 1004 no
    featured image, 1005 category 7 (never embedded), 1006 an image without filesize.
    """
    site = WordPressSite(server.url)
    examples = example_records()
    for n in range(count):
        rec = examples[n % len(examples)]
        wp_id = 1001 + n
        title = rec["title"] if n < len(examples) else f"{rec['title']} (part {n})"
        if wp_id == 1002:
            title = "BTS & BLACKPINK: A Tale of Two Fandoms"
        if wp_id == 1003:
            title = "방탄소년단 인터뷰: 새 앨범 이야기"
        slug = urlsplit(rec["url"]).path.strip("/") + ("" if n < len(examples) else f"-{n}")
        published = datetime.fromisoformat(rec["published"]) + timedelta(minutes=n)
        modified = published + timedelta(hours=1)
        categories = [_CATEGORY_IDS[c] for c in rec["categories"]]
        if wp_id == 1005:
            categories.append(7)
        image = rec.get("image")
        media = None
        if isinstance(image, dict) and wp_id != 1004:
            media = {
                "id": 5000 + n,
                "type": "attachment",
                "source_url": image["url"],
                "alt_text": image["alt"],
                "mime_type": image["type"],
                "media_type": "image",
                "media_details": {"width": 1200, "height": 800, "file": slug + ".jpg"},
            }
            if wp_id != 1006:
                media["media_details"]["filesize"] = image["length"]
        summary = rec.get("summary", "")
        site.posts.append(
            {
                "id": wp_id,
                "date": _gmt(published),  # the fake site runs on UTC
                "date_gmt": _gmt(published),
                "guid": {"rendered": f"{server.url}/?p={wp_id}"},
                "modified": _gmt(modified),
                "modified_gmt": _gmt(modified),
                "slug": slug,
                "status": "publish",
                "type": "post",
                "link": f"{server.url}/{slug}/",
                "title": {"rendered": wp_escape(title)},
                "content": {
                    "rendered": f"<p>{wp_escape(summary)}</p>\n<p>More to read.</p>\n",
                    "protected": False,
                },
                "excerpt": {
                    "rendered": f"<p>{wp_escape(summary.rstrip('…'))} [&hellip;]</p>\n",
                    "protected": False,
                },
                "author": 2 if rec.get("authors") == ["Carolyn Hinds"] else 1,
                "featured_media": 0 if media is None else media["id"],
                "comment_status": "open",
                "ping_status": "open",
                "sticky": False,
                "template": "",
                "format": "standard",
                "meta": [],
                "categories": categories,
                "tags": [11] if "iKON" in title else [12] if "BIFF" in title else [],
                "_x_media": media,
            }
        )
    server.route(POSTS_PATH, site.handle_posts)
    server.route(CATEGORIES_PATH, site.handle_categories)
    return site


# --- feeds ---------------------------------------------------------------------------------------


def rss_feed(records: list[dict[str, Any]], *, title: str = "KCrush") -> bytes:
    items = []
    for rec in records:
        published = datetime.fromisoformat(rec["published"]).astimezone(UTC)
        cats = "".join(f"<category>{escape(c)}</category>" for c in rec.get("categories", []))
        image = rec.get("image")
        enclosure = (
            f'<enclosure url="{escape(image["url"])}" length="{image["length"] or 0}"'
            f' type="{image["type"]}"/>'
            if isinstance(image, dict)
            else ""
        )
        items.append(
            f"<item><title>{escape(rec['title'])}</title><link>{escape(rec['url'])}</link>"
            f'<guid isPermaLink="true">{escape(rec["url"])}</guid>'
            f"<pubDate>{published.strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
            f"{cats}<description>{escape(rec.get('summary', ''))}</description>"
            f"{enclosure}</item>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>https://www.kcrush.com/</link>"
        f"<description>K-Pop</description>{''.join(items)}</channel></rss>"
    ).encode()


def atom_feed(records: list[dict[str, Any]], *, title: str = "KCrush Interviews") -> bytes:
    entries = []
    for rec in records:
        published = datetime.fromisoformat(rec["published"]).astimezone(UTC).isoformat()
        entries.append(
            f"<entry><id>{escape(rec['url'])}</id><title>{escape(rec['title'])}</title>"
            f'<link rel="alternate" href="{escape(rec["url"])}"/>'
            f"<published>{published}</published><updated>{published}</updated>"
            f"<author><name>{escape(rec['authors'][0])}</name></author>"
            f"<summary>{escape(rec.get('summary', ''))}</summary></entry>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        f"<id>https://www.kcrush.com/interviews</id><title>{escape(title)}</title>"
        f"<updated>2024-03-01T00:00:00Z</updated>{''.join(entries)}</feed>"
    ).encode()


@dataclass
class FeedEndpoint:
    """A feed at ``path`` answering conditional GETs by ETag and/or Last-Modified."""

    body: bytes
    content_type: str
    etag: str | None = '"v1"'
    last_modified: str | None = None

    def handle(self, request: Seen) -> Reply:
        headers = {"Content-Type": self.content_type}
        if self.etag:
            headers["ETag"] = self.etag
        if self.last_modified:
            headers["Last-Modified"] = self.last_modified
        if self.etag and request.headers.get("if-none-match") == self.etag:
            return Reply(304, b"", headers)
        if (
            not self.etag
            and self.last_modified
            and request.headers.get("if-modified-since") == self.last_modified
        ):
            return Reply(304, b"", headers)
        return Reply(200, self.body, headers, gzip=True)
