"""Build benchmark: every feed from a store of realistic records, and a rebuild with nothing
changed at several store sizes.

Full build: 30 categories plus "all", 3 formats, 50 items each, from a store of 100,000
records. Baseline: a minimal writer of the same documents with ``lxml.etree`` (and
``json`` for JSON Feed) reading the same 50 newest rows per feed with one query each, and
writing each file with a plain ``write_bytes``: no sanitising, no change detection, no
atomic replace or fsync, no OPML or index page.

No-change rebuild: a second ``build_feeds`` over an output directory the first one wrote.
Its cost must not grow with the store (target 0.3 s at 10k, 100k and 1M records). The
stores are written with ``executemany`` straight into the product schema
(``data.fill_store_directly``), not through ``import``, to save time.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from bench.data import CATEGORIES, END, config_toml, fill_store_directly
from bench.harness import Row, measure

NOW = END + timedelta(days=1)
ITEMS = 50


def prepare(data: Path, n: int) -> dict[str, Any]:
    data.mkdir(parents=True, exist_ok=True)
    db = fill_store_directly(data / f"store-{n}.db", n)
    out = data / f"out-{n}"
    config = data / f"config-{n}.toml"
    config.write_text(config_toml(db, out), encoding="utf-8")
    return {"n": n, "db": str(db), "out": str(out), "config": str(config)}


def _build(params: dict[str, Any]) -> tuple[float, Any]:
    from kcrush_feeds.config import load_config
    from kcrush_feeds.feeds.build import build_feeds
    from kcrush_feeds.store.db import Store

    config = load_config(Path(params["config"]))
    with Store.open(Path(params["db"]), create=False) as store:
        start = time.perf_counter()
        report = build_feeds(config, store, NOW)
        seconds = time.perf_counter() - start
    return seconds, report


def product_full(params: dict[str, Any]) -> dict[str, Any]:
    shutil.rmtree(params["out"], ignore_errors=True)
    seconds, report = _build(params)
    # Feed files only: each feed directory also holds its page (index.html).
    feeds = [n for n in report.written if n.count("/") == 1 and not n.endswith("/index.html")]
    assert len(feeds) == (len(CATEGORIES) + 1) * 3, report.summary()
    return {"seconds": seconds, "count": len(feeds), "summary": report.summary()}


def product_nochange(params: dict[str, Any]) -> dict[str, Any]:
    out = Path(params["out"])
    if not (out / ".build-state.json").exists():
        _build(params)  # the first build, untimed
    seconds, report = _build(params)
    assert not report.written, report.summary()
    return {"seconds": seconds, "count": params["n"], "summary": report.summary()}


# --- the baseline: a minimal lxml writer -----------------------------------------------------

ATOM = "http://www.w3.org/2005/Atom"
_COLUMNS = (
    "r.id, r.url, r.title, r.published, r.updated, r.summary, r.content_html, r.image_url, "
    "r.image_alt, r.image_type, r.image_length, r.categories, r.authors, r.tags"
)


def _rfc822(ts: int) -> str:
    return format_datetime(datetime.fromtimestamp(ts, UTC), usegmt=True)


def _rfc3339(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _rss(slug: str, title: str, rows: list[tuple[Any, ...]]) -> bytes:
    from lxml import etree

    nsmap = {
        "atom": ATOM,
        "content": "http://purl.org/rss/1.0/modules/content/",
        "dc": "http://purl.org/dc/elements/1.1/",
        "media": "http://search.yahoo.com/mrss/",
    }
    sub = etree.SubElement
    rss = etree.Element("rss", {"version": "2.0"}, nsmap=nsmap)
    ch = sub(rss, "channel")
    sub(ch, "title").text = title
    sub(ch, "link").text = "https://www.kcrush.com"
    sub(ch, "description").text = f"{title} from KCrush"
    sub(ch, f"{{{ATOM}}}link", href=f"https://www.kcrush.com/feeds/{slug}/rss.xml", rel="self")
    sub(ch, "language").text = "en"
    sub(ch, "lastBuildDate").text = _rfc822(rows[0][4]) if rows else ""
    for rid, url, t, pub, _upd, summary, content, img, alt, typ, length, cats, auth, tags in rows:
        item = sub(ch, "item")
        sub(item, "title").text = t
        sub(item, "link").text = url
        sub(item, "description").text = summary
        sub(item, f"{{{nsmap['content']}}}encoded").text = content
        for name in json.loads(auth):
            sub(item, f"{{{nsmap['dc']}}}creator").text = name
        for name in json.loads(cats) + json.loads(tags):
            sub(item, "category").text = name
        sub(item, "guid", isPermaLink="true").text = rid
        sub(item, "pubDate").text = _rfc822(pub)
        sub(item, "enclosure", url=img, length=str(length), type=typ)
        media = sub(item, f"{{{nsmap['media']}}}content", url=img, medium="image", type=typ)
        sub(media, f"{{{nsmap['media']}}}description", type="plain").text = alt
    body: bytes = etree.tostring(rss, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body


def _atom(slug: str, title: str, rows: list[tuple[Any, ...]]) -> bytes:
    from lxml import etree

    a = f"{{{ATOM}}}"
    sub = etree.SubElement
    feed = etree.Element(f"{a}feed", nsmap={None: ATOM})
    sub(feed, f"{a}id").text = f"https://www.kcrush.com/feeds/{slug}/atom.xml"
    sub(feed, f"{a}title").text = title
    sub(feed, f"{a}updated").text = _rfc3339(rows[0][4]) if rows else ""
    sub(feed, f"{a}link", rel="self", href=f"https://www.kcrush.com/feeds/{slug}/atom.xml")
    sub(sub(feed, f"{a}author"), f"{a}name").text = "KCrush"
    for rid, url, t, pub, upd, summary, content, img, alt, typ, length, cats, auth, tags in rows:
        el = sub(feed, f"{a}entry")
        sub(el, f"{a}id").text = rid
        sub(el, f"{a}title", type="text").text = t
        sub(el, f"{a}published").text = _rfc3339(pub)
        sub(el, f"{a}updated").text = _rfc3339(upd)
        sub(el, f"{a}link", rel="alternate", type="text/html", href=url)
        sub(el, f"{a}link", rel="enclosure", type=typ, href=img, length=str(length), title=alt)
        for name in json.loads(auth):
            sub(sub(el, f"{a}author"), f"{a}name").text = name
        for name in json.loads(cats) + json.loads(tags):
            sub(el, f"{a}category", term=name)
        sub(el, f"{a}summary", type="html").text = summary
        sub(el, f"{a}content", type="html").text = content
    body: bytes = etree.tostring(feed, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return body


def _json(slug: str, title: str, rows: list[tuple[Any, ...]]) -> bytes:
    items = [
        {
            "id": rid,
            "url": url,
            "title": t,
            "content_html": content,
            "summary": summary,
            "image": img,
            "date_published": _rfc3339(pub),
            "date_modified": _rfc3339(upd),
            "authors": [{"name": name} for name in json.loads(auth)],
            "tags": json.loads(cats) + json.loads(tags),
        }
        for rid, url, t, pub, upd, summary, content, img, _a, _t, _l, cats, auth, tags in rows
    ]
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": "https://www.kcrush.com",
        "feed_url": f"https://www.kcrush.com/feeds/{slug}/feed.json",
        "items": items,
    }
    return (json.dumps(feed, ensure_ascii=False) + "\n").encode()


def baseline_full(params: dict[str, Any]) -> dict[str, Any]:
    out = Path(params["out"] + "-baseline")
    shutil.rmtree(out, ignore_errors=True)
    from lxml import etree  # noqa: F401  # imported before the clock starts

    conn = sqlite3.connect(params["db"])
    cutoff = int(NOW.timestamp())
    start = time.perf_counter()
    feeds = [("all", "KCrush", None), *((s, n, n.casefold()) for s, n in CATEGORIES)]
    written = 0
    for slug, title, key in feeds:
        if key is None:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM records r WHERE r.withdrawn = 0 AND r.published <= ? "
                "ORDER BY r.published DESC, r.id LIMIT ?",
                (cutoff, ITEMS),
            ).fetchall()
        else:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM record_categories rc JOIN records r "
                "ON r.id = rc.record_id WHERE rc.category_key = ? AND rc.published <= ? "
                "AND r.withdrawn = 0 ORDER BY rc.published DESC, rc.record_id LIMIT ?",
                (key, cutoff, ITEMS),
            ).fetchall()
        folder = out / slug
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "rss.xml").write_bytes(_rss(slug, title, rows))
        (folder / "atom.xml").write_bytes(_atom(slug, title, rows))
        (folder / "feed.json").write_bytes(_json(slug, title, rows))
        written += 3
    seconds = time.perf_counter() - start
    conn.close()
    return {"seconds": seconds, "count": written}


def rows(n: int, rebuild: tuple[int, ...], data: Path, repeat: int) -> list[Row]:
    full_target = "time <= 1.50x"
    print(f"build: preparing a store of {n:,} records ...", file=sys.stderr, flush=True)
    params = prepare(data, n)
    base = Row("build", "  baseline: minimal lxml writer")
    row = Row(
        "build",
        f"build {n:,}: full build (files)",
        baseline=base,
        target=full_target,
        check=lambda r: (r.ratio or 99) <= 1.5,
    )
    print("build: full build ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        measure(base, "bench.builds:baseline_full", params, 1)
        measure(row, "bench.builds:product_full", params, 1)
    out = [row, base]
    for m in rebuild:
        print(f"build: no-change rebuild, {m:,} records ...", file=sys.stderr, flush=True)
        p = params if m == n else prepare(data, m)
        shutil.rmtree(p["out"], ignore_errors=True)
        nochange = Row(
            "build",
            f"build {m:,}: no-change rebuild (records)",
            target="<= 0.300 s",
            check=lambda r: r.seconds <= 0.3,
            show_rate=False,
        )
        out.append(measure(nochange, "bench.builds:product_nochange", p, repeat))
    return out
