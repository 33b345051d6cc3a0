"""Send benchmark: the whole ``send`` (compose, SMTP pool, ledger) against raw clients.

Sinks on 127.0.0.1 (see ``sinks``): Postfix's ``smtp-sink`` (C) and aiosmtpd, and a sink
that waits 10 ms before every reply. Baselines, measured in the same run against the same
sink: raw ``aiosmtplib`` sending the same number of prebuilt messages (the product's own
composed bytes, one per category selection) over the same number of reused connections
with no ledger; and stdlib ``smtplib`` over one connection. Peak memory is measured at
10,000 and 100,000 subscribers: it must stay flat.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.data import END, config_toml, digest_store
from bench.harness import Row, measure
from bench.sinks import Sink, start_aiosmtpd, start_fast_sink, start_slow_sink

NOW = END + timedelta(days=1)
SECRET_ENV = "KCRUSH_BENCH_SECRET"
SENDER = "newsletter@kcrush.com"


def dkim_key(data: Path) -> Path:
    """A 2048-bit RSA key for the DKIM rows, made once (PKCS#8 PEM)."""
    path = data / "dkim.key"
    if not path.exists():
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return path


def prepare(
    data: Path, subscribers: int, sink: Sink, concurrency: int, *, dkim: bool = False
) -> dict[str, Any]:
    data.mkdir(parents=True, exist_ok=True)
    db = digest_store(data / f"digest-{subscribers}.db", subscribers)
    work = data / "work"
    suffix = "-dkim" if dkim else ""
    config = data / f"config-{subscribers}-{sink.port}-{concurrency}{suffix}.toml"
    text = config_toml(
        work / "send.db", data / "feeds", smtp_port=sink.port, concurrency=concurrency
    )
    if dkim:
        text += (
            '\n[smtp.dkim]\ndomain = "kcrush.com"\nselector = "k1"\n'
            f"key_file = {str(dkim_key(data))!r}\n"
        ).replace("'", '"')
    config.write_text(text, encoding="utf-8")
    return {
        "n": subscribers,
        "db": str(db),
        "config": str(config),
        "work": str(work),
        "port": sink.port,
        "concurrency": concurrency,
    }


def _fresh_db(params: dict[str, Any]) -> Path:
    work = Path(params["work"])
    work.mkdir(parents=True, exist_ok=True)
    db = work / "send.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    shutil.copyfile(params["db"], db)
    return db


def product(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.config import load_config
    from kcrush_feeds.delivery.send import send_digest
    from kcrush_feeds.store.db import Store

    os.environ.setdefault(SECRET_ENV, "bench-secret-0123456789abcdef")
    db = _fresh_db(params)
    config = load_config(Path(params["config"]))
    with Store.open(db) as store:
        start = time.perf_counter()
        report = send_digest(config, store, NOW)
        seconds = time.perf_counter() - start
        ledger = store.conn.execute(
            "SELECT count(*) FROM deliveries WHERE status = 'sent'"
        ).fetchone()[0]
    sent = int(getattr(report, "sent", ledger))
    assert ledger == sent == params["n"], f"sent {sent}, ledger {ledger}, expected {params['n']}"
    return {"seconds": seconds, "count": sent}


def _prebuilt(params: dict[str, Any]) -> tuple[list[bytes], list[str]]:
    """The product's composed bytes for one subscriber of each selection, and every
    subscriber's address: what the raw clients send, untimed."""
    from kcrush_feeds.config import load_config
    from kcrush_feeds.digest.compose import DigestComposer
    from kcrush_feeds.digest.select import open_digest
    from kcrush_feeds.store.db import Store
    from kcrush_feeds.subscriptions.subscribers import iter_subscribers

    os.environ.setdefault(SECRET_ENV, "bench-secret-0123456789abcdef")
    db = _fresh_db(params)
    config = load_config(Path(params["config"]))
    with Store.open(db) as store:
        digest = open_digest(store, config, NOW)
        assert digest is not None
        composer = DigestComposer(config, digest, now=NOW)
        subscribers = list(iter_subscribers(store, status="active"))
    messages = []
    for subscriber in subscribers[:3]:
        message = composer.compose(subscriber)
        assert message is not None
        messages.append(message.data)
    return messages, [s.email for s in subscribers]


def raw_aiosmtplib(params: dict[str, Any]) -> dict[str, Any]:
    import aiosmtplib

    messages, recipients = _prebuilt(params)

    async def run() -> int:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(len(recipients)):
            queue.put_nowait(i)
        sent = 0

        async def connection() -> None:
            nonlocal sent
            client = aiosmtplib.SMTP(
                hostname="127.0.0.1", port=params["port"], use_tls=False, start_tls=False
            )
            await client.connect()
            try:
                while True:
                    try:
                        i = queue.get_nowait()
                    except asyncio.QueueEmpty:
                        return
                    await client.sendmail(SENDER, [recipients[i]], messages[i % 3])
                    sent += 1
            finally:
                await client.quit()

        await asyncio.gather(*(connection() for _ in range(params["concurrency"])))
        return sent

    start = time.perf_counter()
    sent = asyncio.run(run())
    return {"seconds": time.perf_counter() - start, "count": sent}


def raw_smtplib(params: dict[str, Any]) -> dict[str, Any]:
    messages, recipients = _prebuilt(params)
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", params["port"]) as client:
        for i, recipient in enumerate(recipients):
            client.sendmail(SENDER, [recipient], messages[i % 3])
    return {"seconds": time.perf_counter() - start, "count": len(recipients)}


def _pair(
    label: str,
    params: dict[str, Any],
    repeat: int,
    *,
    smtplib_too: bool = False,
) -> list[Row]:
    conns = params["concurrency"]
    base = Row("send", f"  baseline: raw aiosmtplib, {conns} connections")
    row = Row(
        "send", label, baseline=base, target="time <= 1.25x", check=lambda r: (r.ratio or 9) <= 1.25
    )
    single = Row("send", "  baseline: smtplib, 1 connection")
    print(f"send: {label} ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        measure(base, "bench.sends:raw_aiosmtplib", params, 1)
        measure(row, "bench.sends:product", params, 1)
        if smtplib_too:
            measure(single, "bench.sends:raw_smtplib", params, 1)
    return [row, base, single] if smtplib_too else [row, base]


def _dkim_pair(data: Path, subscribers: int, sink: Sink, repeat: int) -> list[Row]:
    """``send`` with ``[smtp.dkim]`` against the same ``send`` without it (same sink):
    target at least 0.6x the throughput, i.e. time <= 1.67x. The per-message cost of
    signing is the difference of the two medians over the messages sent."""
    n = max(1, subscribers // 5)  # two sends per repeat: a fifth of the subscribers each
    plain = prepare(data, n, sink, 4)
    signed = prepare(data, n, sink, 4, dkim=True)
    base = Row("send", f"  baseline: send {n:,} without DKIM")
    row = Row(
        "send",
        f"send {n:,} -> {sink.kind}, DKIM (rsa-sha256 2048)",
        baseline=base,
        target="time <= 1.67x",
        check=lambda r: (r.ratio or 9) <= 1.67,
    )
    print(f"send: {row.label} ...", file=sys.stderr, flush=True)
    for _ in range(repeat):
        measure(base, "bench.sends:product", plain, 1)
        measure(row, "bench.sends:product", signed, 1)
    if row.samples and base.samples:
        cost = (row.seconds - base.seconds) / n * 1000
        row.note = f"signing costs {cost:.1f} ms per message"
    return [row, base]


def rows(
    subscribers: int, memory: tuple[int, ...], data: Path, repeat: int, *, install: bool = True
) -> list[Row]:
    out: list[Row] = []
    sink = start_fast_sink(install=install)
    try:
        params = prepare(data, subscribers, sink, 4)
        label = f"send {subscribers:,} -> {sink.kind}, 4 conn."
        out += _pair(label, params, repeat, smtplib_too=True)
        if sink.note:
            out[-3].note = sink.note
        out += _dkim_pair(data, subscribers, sink, repeat)
        for n in memory:
            if n == subscribers:
                continue
            print(f"send: {n:,} subscribers, peak memory ...", file=sys.stderr, flush=True)
            p = prepare(data, n, sink, 4)
            first = out[0]  # the send to ``subscribers``: memory must not grow from it

            def flat(r: Row, first: Row = first) -> bool:
                grown = bool(first.samples) and r.peak_mb > 1.25 * first.peak_mb
                return r.peak_mb < 150 and not grown

            mem = Row(
                "send",
                f"send {n:,} -> {sink.kind}: peak memory",
                target="< 150 MB, flat",
                check=flat,
            )
            out.append(measure(mem, "bench.sends:product", p, 1))
    finally:
        sink.stop()
    small = max(1, subscribers // 5)
    sink = start_aiosmtpd()
    try:
        params = prepare(data, small, sink, 4)
        out += _pair(f"send {small:,} -> aiosmtpd, 4 conn.", params, repeat)
    finally:
        sink.stop()
    sink = start_slow_sink(0.010)
    try:
        params = prepare(data, small, sink, 16)
        out += _pair(f"send {small:,} -> {sink.kind}, 16 conn.", params, repeat)
    finally:
        sink.stop()
    return out
