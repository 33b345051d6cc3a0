"""Deterministic synthetic data of realistic sizes: records, subscribers, stores.

Titles are about 60 characters and mix English, Korean and emoji; excerpts about 300
characters; bodies about 5 KB of HTML; 30 record categories with a skewed distribution
(a few big ones, a long tail), one or two per record. Everything comes from a seeded
``random.Random``, so two runs measure the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

SEED = 20240226
END = datetime(2024, 2, 26, 9, 0, tzinfo=UTC)  # the newest record; the bench's "now" follows
SPAN = timedelta(days=4 * 365)  # records are spread over four years before END

CATEGORIES: tuple[tuple[str, str], ...] = (
    ("kpop-articles", "K-Pop Articles"),
    ("kpop-interviews", "K-Pop Interviews"),
    ("kdrama-reviews", "K-Drama Reviews"),
    ("kdrama-news", "K-Drama News"),
    ("film", "Asian Film"),
    ("film-festivals", "Film Festivals"),
    ("concerts", "Concert Reports"),
    ("albums", "Album Reviews"),
    ("mv-reactions", "MV Reactions"),
    ("variety", "Variety Shows"),
    ("fashion", "Fashion"),
    ("beauty", "K-Beauty"),
    ("food", "Korean Food"),
    ("travel", "Travel in Korea"),
    ("language", "Learn Korean"),
    ("webtoons", "Webtoons"),
    ("books", "Books"),
    ("jpop", "J-Pop"),
    ("cpop", "C-Pop"),
    ("thai-drama", "Thai Drama"),
    ("anime", "Anime"),
    ("games", "Games"),
    ("fandom", "Fandom"),
    ("charts", "Charts"),
    ("awards", "Awards"),
    ("debuts", "Debuts"),
    ("comebacks", "Comebacks"),
    ("opinion", "Opinion"),
    ("kpop-news-ko", "케이팝 뉴스"),
    ("photo-essays", "Photo Essays 📸"),
)
"""(slug, record category name) of the 30 categories; the slug of the Korean one is ASCII
in the config (slugs are ASCII), the record category name is what the records carry."""

_ARTISTS = (
    "BTS", "BLACKPINK", "NewJeans", "Stray Kids", "SEVENTEEN", "IVE", "aespa", "TWICE",
    "iKON", "ATEEZ", "LE SSERAFIM", "ENHYPEN", "(G)I-DLE", "Red Velvet", "MAMAMOO",
    "아이유", "방탄소년단", "뉴진스", "세븐틴", "에스파",
)
_PHRASES = (
    "announce a world tour", "drop a surprise single", "break a streaming record",
    "talk about their new album", "return with a bold concept", "light up the stage in Seoul",
    "share behind-the-scenes stories", "top the Billboard chart", "open up about fame",
    "celebrate their anniversary", "headline a festival in Las Vegas", "reveal a teaser",
)
_KOREAN = (
    "컴백 소식", "월드 투어", "새 앨범", "인터뷰", "무대 뒤", "팬미팅", "첫 정규",
    "뮤직비디오", "신곡 발표", "기록 경신",
)
_EMOJI = ("🎤", "🔥", "💜", "✨", "🎬", "📸", "🇰🇷", "🎶", "💿", "🌸", "👑", "🥳")
_WORDS = (
    "the", "stage", "fans", "album", "song", "tour", "Seoul", "member", "concept", "music",
    "video", "dance", "chart", "night", "story", "first", "new", "live", "arena", "drama",
    "episode", "season", "director", "film", "festival", "crowd", "energy", "vocal", "rap",
    "teaser", "comeback", "debut", "label", "agency", "trainee", "survival", "show", "award",
    "무대", "팬", "노래", "앨범", "공연", "드라마", "영화", "감독", "배우", "음악",
)


def _sentence(rng: random.Random, words: int) -> str:
    text = " ".join(rng.choice(_WORDS) for _ in range(words))
    return text[0].upper() + text[1:] + "."


def _paragraph_pool(rng: random.Random, size: int = 200) -> list[str]:
    pool = []
    for i in range(size):
        sentences = " ".join(_sentence(rng, rng.randint(8, 16)) for _ in range(rng.randint(3, 5)))
        if i % 3 == 0:
            word = rng.choice(_ARTISTS)
            sentences = sentences.replace(" the ", f" <strong>{word}</strong> ", 1)
        if i % 4 == 0:
            sentences += (
                f' Read <a href="https://www.kcrush.com/tag/{i}/">more about it</a> '
                f"{rng.choice(_EMOJI)}."
            )
        pool.append(f"<p>{sentences}</p>")
    return pool


@dataclass(frozen=True)
class Generator:
    """Makes record dicts (the JSON an editor would import) for record numbers 0..n-1.

    Record ``n-1`` is the newest. ``body_bytes`` is the target size of ``content_html``.
    """

    n: int
    seed: int = SEED
    body_bytes: int = 5_000
    span: timedelta = SPAN  # from the oldest record to the newest (END)

    def records(self, *, changed_every: int = 0, full_from: int = 0) -> Iterator[dict[str, Any]]:
        """All ``n`` records, oldest first; with ``changed_every=k``, every k-th gets a new
        title. Records before ``full_from`` get bodies of a tenth of ``body_bytes``."""
        rng = random.Random(self.seed)
        pool = _paragraph_pool(rng)
        summaries = [_sentence(rng, 60)[:299] + "…" for _ in range(500)]
        avg = sum(len(p.encode()) for p in pool) / len(pool)
        k_full = max(1, round(self.body_bytes / avg))
        k_small = max(1, round(self.body_bytes / 10 / avg))
        weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(CATEGORIES))]
        names = [name for _, name in CATEGORIES]
        step = self.span / max(self.n, 1)
        choice, randint = rng.choice, rng.randint
        for i in range(self.n):
            published = END - step * (self.n - 1 - i)
            cats = rng.choices(names, weights, k=choice((1, 1, 2)))
            title = (
                f"{choice(_ARTISTS)} {choice(_PHRASES)}: {choice(_KOREAN)}, "
                f"{choice(_KOREAN)} {choice(_EMOJI)} (No. {i})"
            )
            if changed_every and i % changed_every == 0:
                title += " (updated)"
            slug = f"post-{i}"
            url = f"https://www.kcrush.com/{published:%Y/%m}/{slug}/"
            paragraphs = rng.choices(pool, k=k_full if i >= full_from else k_small)
            body = (
                f"<h2>{choice(_KOREAN)} {choice(_EMOJI)}</h2>{paragraphs[0]}"
                f'<figure><img src="https://www.kcrush.com/wp-content/uploads/{slug}-1.jpg" '
                f'alt="{choice(_ARTISTS)} live"><figcaption>{choice(_KOREAN)}'
                f"</figcaption></figure>{''.join(paragraphs[1:])}"
            )
            yield {
                "id": url,
                "url": url,
                "title": title,
                "published": published.isoformat(),
                "categories": list(dict.fromkeys(cats)),
                "summary": choice(summaries),
                "content_html": body,
                "image": {
                    "url": f"https://www.kcrush.com/wp-content/uploads/{slug}.jpg",
                    "alt": f"{choice(_ARTISTS)} on stage",
                    "type": "image/jpeg",
                    "length": randint(80_000, 400_000),
                },
                "authors": [choice(("KCrush Staff", "Jiwoo Kim", "Alex Park", "민지 이"))],
                "tags": rng.sample(_KOREAN, 2),
            }


def write_jsonl(path: Path, n: int, *, changed_every: int = 0) -> Path:
    """Write ``n`` records as JSON Lines (skipped if the file is already there)."""
    if path.exists():
        return path
    tmp = path.with_suffix(".part")
    with tmp.open("w", encoding="utf-8") as f:
        for record in Generator(n).records(changed_every=changed_every):
            f.write(json.dumps(record, ensure_ascii=False))
            f.write("\n")
    tmp.replace(path)
    return path


def fill_store_directly(
    path: Path, n: int, *, full_bodies: int = 100_000, span: timedelta = SPAN
) -> Path:
    """A store of ``n`` records written with ``executemany`` straight into the product schema.

    Faster than ``import`` for big stores (no normalising, no fingerprints of the real
    kind): the build benchmark needs the rows, not the import path. Only the newest
    ``full_bodies`` records get ~5 KB bodies; older ones get ~500 bytes (a tenth), to keep a
    1,000,000-record store at a few GB rather than 5.
    """
    if path.exists():
        return path
    from kcrush_feeds.store import RECORD_COLUMNS, Store

    tmp = path.with_name(path.name + ".part")
    tmp.unlink(missing_ok=True)
    with Store.open(tmp) as store:
        conn = store.conn
        conn.execute("PRAGMA synchronous = OFF")  # setting up, not measuring
        stamp = int(END.timestamp())
        rows: list[tuple[Any, ...]] = []
        cat_rows: list[tuple[str, str, str, int]] = []
        conn.execute("BEGIN")
        for raw in Generator(n, span=span).records(full_from=max(0, n - full_bodies)):
            row = _row(raw)
            fingerprint = hashlib.blake2b(repr(row).encode(), digest_size=16).hexdigest()
            rows.append((*row, fingerprint, "bench", stamp, stamp))
            cat_rows.extend((row[0], c.casefold(), c, row[3]) for c in raw["categories"])
            if len(rows) >= 5_000:
                _insert(conn, RECORD_COLUMNS, rows, cat_rows)
        _insert(conn, RECORD_COLUMNS, rows, cat_rows)
        conn.execute("COMMIT")
    tmp.replace(path)
    for suffix in ("-wal", "-shm"):
        Path(str(tmp) + suffix).unlink(missing_ok=True)
    return path


def _row(raw: dict[str, Any]) -> tuple[Any, ...]:
    """The ``records`` columns (``RECORD_COLUMNS`` order) for one generated record."""
    published = int(datetime.fromisoformat(raw["published"]).timestamp())
    image = raw["image"]
    return (
        raw["id"],
        raw["url"],
        raw["title"],
        published,
        published,
        raw["summary"],
        raw["content_html"],
        image["url"],
        image["alt"],
        image["type"],
        image["length"],
        json.dumps(raw["categories"], ensure_ascii=False),
        json.dumps(raw["authors"], ensure_ascii=False),
        json.dumps(raw["tags"], ensure_ascii=False),
    )


def _insert(
    conn: sqlite3.Connection,
    columns: str,
    rows: list[tuple[Any, ...]],
    cat_rows: list[tuple[str, str, str, int]],
) -> None:
    conn.executemany(
        f"INSERT INTO records ({columns}, fingerprint, source, first_seen, changed_at) "
        f"VALUES ({','.join('?' * 18)})",
        rows,
    )
    conn.executemany(
        "INSERT OR REPLACE INTO record_categories (record_id, category_key, name, published) "
        "VALUES (?,?,?,?)",
        cat_rows,
    )
    rows.clear()
    cat_rows.clear()


def digest_store(path: Path, subscribers: int) -> Path:
    """A store for the digest: 400 records over the last 60 days (a 10-item digest in the
    week before ``END``) and ``subscribers`` active subscribers with three kinds of choice.
    """
    if path.exists():
        return path
    tmp = path.with_name(path.name + ".records")
    fill_store_directly(tmp, 400, span=timedelta(days=60))
    conn = sqlite3.connect(tmp, isolation_level=None)
    stamp = int(END.timestamp()) - 86_400 * 30
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO subscribers (email, email_key, name, status, categories, created_at, "
        "updated_at, confirmed_at, origin) VALUES (?,?,?,'active',?,?,?,?,'import')",
        (
            (
                email,
                email.casefold(),
                ("Reader", "독자 민지", "")[i % 3] + (f" {i}" if i % 3 != 2 else ""),
                None if cats is None else json.dumps(cats),
                stamp,
                stamp,
                stamp,
            )
            for i, (email, cats) in enumerate(subscriber_rows(subscribers))
        ),
    )
    conn.execute("COMMIT")
    conn.close()
    tmp.replace(path)
    return path


def subscriber_rows(n: int, seed: int = SEED) -> Iterator[tuple[str, list[str] | None]]:
    """(email, category slugs or None for all) for ``n`` subscribers, three kinds of choice.

    A third want everything, a third the two K-Pop feeds, a third three drama/film feeds:
    the "3 different category selections" of the render benchmark.
    """
    selections: tuple[list[str] | None, ...] = (
        None,
        ["kpop-articles", "kpop-interviews"],
        ["kdrama-reviews", "kdrama-news", "film"],
    )
    rng = random.Random(seed)
    for i in range(n):
        yield f"reader{i:07d}.{rng.randrange(10**6):06d}@example.com", selections[i % 3]


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string


def config_toml(db: Path, out: Path, *, smtp_port: int = 25, concurrency: int = 1) -> str:
    """A config with the 30 categories, 3 formats, 50 items per feed and a local relay."""
    lines = [
        "[site]",
        'title = "KCrush"',
        'url = "https://www.kcrush.com"',
        'description = "K-Pop, K-Drama and Asian film and culture"',
        'timezone = "America/Los_Angeles"',
        "",
        "[storage]",
        f"database = {_q(str(db))}",
        "",
        "[feeds]",
        f"output_dir = {_q(str(out))}",
        'base_url = "https://www.kcrush.com/feeds"',
        'formats = ["rss", "atom", "json"]',
        "items_per_feed = 50",
    ]
    for slug, name in CATEGORIES:
        lines += [
            "",
            "[[feeds.categories]]",
            f"slug = {_q(slug)}",
            f"title = {_q(name)}",
            f"match = [{_q(name)}]",
        ]
    lines += [
        "",
        "[digest]",
        'schedule = "mon 09:00"',
        'first_window = "7d"',
        'from = "KCrush Weekly <newsletter@kcrush.com>"',
        'reply_to = "editors@kcrush.com"',
        "max_items = 10",
        "",
        "[[digest.sections]]",
        'title = "K-Pop"',
        'categories = ["kpop-articles", "kpop-interviews"]',
        "",
        "[[digest.sections]]",
        'title = "Drama and film"',
        'categories = ["kdrama-reviews", "kdrama-news", "film"]',
        "",
        "[smtp]",
        'host = "127.0.0.1"',
        f"port = {smtp_port}",
        'tls = "none"',
        f"concurrency = {concurrency}",
        "rate_limit = 0",
        "",
        "[subscriptions]",
        'base_url = "https://www.kcrush.com/newsletter"',
        'secret_env = "KCRUSH_BENCH_SECRET"',
        "",
    ]
    return "\n".join(lines)
