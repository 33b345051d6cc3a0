"""Inbound benchmark: returned mail processed per second, against only parsing it.

A Maildir of N delivery status notifications in Postfix's shape (80% hard 5.1.1, 20% soft
4.2.2), each sent to the signed VERP address of one delivery of a store with N subscribers.
The product is ``inbound.run.run_inbound`` on that Maildir: read, classify (RFC 3464),
verify the token, record the outcome in SQLite (one transaction each), move the file to
``cur/``. The baseline only parses each file with ``email.message_from_binary_file``.
Every run works on a fresh copy (untimed), since the product moves files and writes.
Memory: the product is also run on a tenth of the messages; flat means about the same peak.
"""

from __future__ import annotations

import email
import os
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import Row, measure

SECRET_ENV = "KCRUSH_BENCH_SECRET"
SECRET = "bench-secret-0123456789abcdef"
NOW = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = """\
[site]
title = "KCrush"
url = "https://www.kcrush.com"

[storage]
database = "store.db"

[feeds]
base_url = "https://www.kcrush.com/feeds"

[subscriptions]
base_url = "https://www.kcrush.com/newsletter"
secret_env = "KCRUSH_BENCH_SECRET"

[bounces]
address = "bounces@kcrush.com"
"""


def prepare(data: Path, n: int) -> dict[str, Any]:
    """A store with ``n`` delivered subscribers and a Maildir of ``n`` DSNs (cached)."""
    from kcrush_feeds.store.db import Store
    from kcrush_feeds.tokens import sign_delivery, verp_sender
    from tests.support.mail_shapes import postfix

    base = data / f"inbound-{n}"
    ready = base / "ready"
    if ready.exists():
        return {"base": str(base), "n": n}
    shutil.rmtree(base, ignore_errors=True)
    (base / "Maildir" / "new").mkdir(parents=True)
    (base / "Maildir" / "cur").mkdir()
    (base / "Maildir" / "tmp").mkdir()
    (base / "config.toml").write_text(CONFIG, encoding="utf-8")
    with Store.open(base / "store.db"):
        pass
    conn = sqlite3.connect(base / "store.db")
    sent = int(NOW.timestamp()) - 3600
    conn.execute(
        "INSERT INTO digests (id, period, created_at, since, until, status) "
        "VALUES (1, '2024-W09', ?, 0, ?, 'done')",
        (sent, sent),
    )
    conn.executemany(
        "INSERT INTO subscribers (id, email, email_key, status, created_at, updated_at) "
        "VALUES (?, ?, ?, 'active', 0, 0)",
        ((i, f"reader{i}@example.org", f"reader{i}@example.org") for i in range(1, n + 1)),
    )
    conn.executemany(
        "INSERT INTO deliveries (digest_id, subscriber_id, status, message_id, attempts, "
        "updated_at, sent_at) VALUES (1, ?, 'sent', ?, 1, ?, ?)",
        ((i, f"<m{i}@x>", sent, sent) for i in range(1, n + 1)),
    )
    conn.commit()
    conn.close()
    secret = SECRET.encode()
    for i in range(1, n + 1):
        verp = verp_sender("bounces@kcrush.com", sign_delivery(secret, 1, i))
        status = "4.2.2" if i % 5 == 0 else "5.1.1"
        name = f"{1709300000 + i}.M{i}P1.bench"
        (base / "Maildir" / "new" / name).write_bytes(
            postfix(verp, f"reader{i}@example.org", status)
        )
    ready.touch()
    return {"base": str(base), "n": n}


def _work_copy(params: dict[str, Any], limit: int) -> Path:
    """A fresh copy of the store and of the first ``limit`` messages."""
    base = Path(params["base"])
    work = base / "work"
    shutil.rmtree(work, ignore_errors=True)
    (work / "Maildir" / "cur").mkdir(parents=True)
    (work / "Maildir" / "tmp").mkdir()
    (work / "Maildir" / "new").mkdir()
    for path in sorted((base / "Maildir" / "new").iterdir())[:limit]:
        shutil.copyfile(path, work / "Maildir" / "new" / path.name)
    shutil.copyfile(base / "store.db", work / "store.db")
    shutil.copyfile(base / "config.toml", work / "config.toml")
    return work


def product(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.config import load_config
    from kcrush_feeds.inbound.run import run_inbound
    from kcrush_feeds.store.db import Store

    os.environ.setdefault(SECRET_ENV, SECRET)
    limit = int(params.get("limit") or params["n"])
    work = _work_copy(params, limit)
    config = load_config(work / "config.toml")
    with Store.open(config.database_path) as store:
        start = time.perf_counter()
        report = run_inbound(config, store, [work / "Maildir"], NOW)
        seconds = time.perf_counter() - start
        bounced = store.conn.execute(
            "SELECT count(*) FROM subscribers WHERE status = 'bounced'"
        ).fetchone()[0]
    if report.not_understood:
        raise SystemExit(f"{report.not_understood} not understood: {report.problems[:3]}")
    return {"seconds": seconds, "count": report.total, "bounced": bounced}


def baseline(params: dict[str, Any]) -> dict[str, Any]:
    new = Path(params["base"]) / "Maildir" / "new"
    paths = sorted(new.iterdir())
    start = time.perf_counter()
    count = 0
    for path in paths:
        with path.open("rb") as f:
            email.message_from_binary_file(f)
        count += 1
    return {"seconds": time.perf_counter() - start, "count": count}


def rows(n: int, data: Path, repeat: int) -> list[Row]:
    print(f"inbound: preparing {n:,} DSNs ...", file=sys.stderr, flush=True)
    params = prepare(data, n)
    base = Row("inbound", "  baseline: email.message_from_binary_file only")
    row = Row(
        "inbound",
        f"inbound {n:,} DSNs (Maildir)",
        baseline=base,
        target=">= 1,000/s, time <= 3.00x",
        check=lambda r: r.rate >= 1000 and (r.ratio or 9) <= 3.0,
    )
    small = Row("inbound", f"  inbound {max(n // 10, 1):,} DSNs (memory: same peak)", baseline=base)
    print("inbound ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        measure(base, "bench.inbound:baseline", params, 1)
        measure(row, "bench.inbound:product", params, 1)
    measure(small, "bench.inbound:product", {**params, "limit": max(n // 10, 1)}, 1)
    return [row, small, base]
