"""Render benchmark: digest messages composed per second, against rendering from scratch.

10,000 subscribers of a 10-item digest, a third each with one of three category choices
(everything; the two K-Pop feeds; three drama and film feeds). The product
(``compose.DigestComposer.compose``) renders once per distinct selection and assembles each
message from pre-encoded parts. The baseline renders every message from scratch: the
product's own Jinja templates and CSS inlining (``DigestComposer.render``, which renders
anew on every call), then an ``email.message.EmailMessage`` (text + HTML alternative, the
same headers) serialised with ``policy.SMTP``.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from bench.data import END, config_toml, digest_store
from bench.harness import Row, measure

NOW = END + timedelta(days=1)
SECRET_ENV = "KCRUSH_BENCH_SECRET"


def prepare(data: Path, subscribers: int) -> dict[str, Any]:
    data.mkdir(parents=True, exist_ok=True)
    db = digest_store(data / f"digest-{subscribers}.db", subscribers)
    work = data / "work"
    config = data / "config.toml"
    config.write_text(config_toml(work / "digest.db", data / "feeds"), encoding="utf-8")
    return {"n": subscribers, "db": str(db), "config": str(config), "work": str(work)}


def open_work_digest(params: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    """(config, digest, subscribers) from a fresh copy of the prepared store."""
    from kcrush_feeds.config import load_config
    from kcrush_feeds.digest.select import open_digest
    from kcrush_feeds.store.db import Store
    from kcrush_feeds.subscriptions.subscribers import iter_subscribers

    os.environ.setdefault(SECRET_ENV, "bench-secret-0123456789abcdef")
    work = Path(params["work"])
    work.mkdir(parents=True, exist_ok=True)
    db = work / "digest.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(params["db"], db)
    config = load_config(Path(params["config"]))
    with Store.open(db) as store:
        digest = open_digest(store, config, NOW)
        subscribers = list(iter_subscribers(store, status="active"))
    assert digest is not None, "no digest: the prepared store has nothing new"
    return config, digest, subscribers


def product(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.digest.compose import DigestComposer

    config, digest, subscribers = open_work_digest(params)
    start = time.perf_counter()
    composer = DigestComposer(config, digest, now=NOW)
    size = count = 0
    for subscriber in subscribers:
        message = composer.compose(subscriber)
        if message is not None:
            size += len(message.data)
            count += 1
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "count": count,
        "bytes": size // max(count, 1),
        "items": len(digest.items),
    }


def scratch(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.digest.compose import DigestComposer

    config, digest, subscribers = open_work_digest(params)
    limit = params.get("scratch_limit") or len(subscribers)
    subscribers = subscribers[:limit]
    start = time.perf_counter()
    composer = DigestComposer(config, digest, now=NOW)
    settings = config.require_digest()
    size = count = 0
    for subscriber in subscribers:
        rendered = composer.render(subscriber)  # Jinja + css-inline, every time
        if rendered is None:
            continue
        links = composer.links(subscriber)
        msg = EmailMessage(policy=policy.SMTP)
        msg["Subject"] = rendered.subject
        msg["From"] = settings.from_addr
        msg["To"] = subscriber.email
        msg["Message-ID"] = composer.message_id(subscriber)
        msg["List-Unsubscribe"] = f"<{links['unsubscribe_url']}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg.set_content(rendered.text, cte="quoted-printable")
        msg.add_alternative(rendered.html, subtype="html", cte="quoted-printable")
        size += len(msg.as_bytes())
        count += 1
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "count": count, "bytes": size // max(count, 1)}


def rows(subscribers: int, data: Path, repeat: int) -> list[Row]:
    label = f"render {subscribers:,} subscribers, 3 selections"
    target = "time <= 0.10x"
    print(f"render: preparing {subscribers:,} subscribers ...", file=sys.stderr, flush=True)
    params = prepare(data, subscribers)
    # From scratch costs milliseconds a message: a tenth of the subscribers (at least 300)
    # gives a stable rate; the table compares per-message times.
    scratch_params = {**params, "scratch_limit": max(300, subscribers // 10)}
    base = Row("render", "  baseline: from scratch (Jinja, css-inline, EmailMessage)")
    row = Row("render", label, baseline=base, target=target, check=lambda r: (r.ratio or 9) <= 0.1)
    print("render ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        measure(base, "bench.renders:scratch", scratch_params, 1)
        measure(row, "bench.renders:product", params, 1)
    return [row, base]
