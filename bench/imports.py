"""Import benchmark: JSON Lines into an empty store, and into a full one with 1% changed.

Baseline: the same rows parsed with the stdlib ``json`` and written with a plain
``sqlite3`` ``executemany`` into the same schema, with the pragmas the import uses
(WAL, ``synchronous=NORMAL``) and a commit every ``importer.BATCH`` rows. It does no
validation, normalising or change detection: it is what the import costs if it did nothing
but store.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.data import END, record_row, write_jsonl
from bench.harness import Row, measure

NOW = END + timedelta(days=1)
TZ = "America/Los_Angeles"


def prepare(data: Path, n: int) -> dict[str, Any]:
    """Write the input files and the two full stores the "1% changed" cases start from."""
    data.mkdir(parents=True, exist_ok=True)
    base = write_jsonl(data / f"records-{n}.jsonl", n)
    changed = write_jsonl(data / f"records-{n}-changed.jsonl", n, changed_every=100)
    full_product = data / f"import-full-product-{n}.db"
    full_baseline = data / f"import-full-baseline-{n}.db"
    if not full_product.exists():
        _product(base, full_product.with_suffix(".part"), fresh=True)
        full_product.with_suffix(".part").replace(full_product)
    if not full_baseline.exists():
        _baseline(base, full_baseline.with_suffix(".part"), fresh=True)
        full_baseline.with_suffix(".part").replace(full_baseline)
    return {
        "n": n,
        "base": str(base),
        "changed": str(changed),
        "full_product": str(full_product),
        "full_baseline": str(full_baseline),
        "work": str(data / "work"),
    }


def _work_db(params: dict[str, Any], name: str, template: str | None) -> Path:
    work = Path(params["work"])
    work.mkdir(parents=True, exist_ok=True)
    db = work / name
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    if template:
        shutil.copyfile(template, db)
    return db


# --- the product ---------------------------------------------------------------------------


def _product(source: Path, db: Path, *, fresh: bool) -> tuple[float, Any]:
    from kcrush_feeds.records.importer import import_files
    from kcrush_feeds.store.db import Store

    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    with Store.open(db) as store:
        start = time.perf_counter()
        report = import_files(store, [str(source)], tz=ZoneInfo(TZ), now=NOW)
        seconds = time.perf_counter() - start
    if report.rejected:
        raise RuntimeError(f"import rejected records: {report.rejected[:3]}")
    return seconds, report


def product_empty(params: dict[str, Any]) -> dict[str, Any]:
    db = _work_db(params, "product.db", None)
    seconds, report = _product(Path(params["base"]), db, fresh=False)
    assert report.added == params["n"], report.summary()
    return {"seconds": seconds, "count": params["n"], "summary": report.summary()}


def product_changed(params: dict[str, Any]) -> dict[str, Any]:
    db = _work_db(params, "product.db", params["full_product"])
    seconds, report = _product(Path(params["changed"]), db, fresh=False)
    assert report.updated == len(range(0, params["n"], 100)), report.summary()
    return {"seconds": seconds, "count": params["n"], "summary": report.summary()}


# --- the baseline --------------------------------------------------------------------------


def _baseline(source: Path, db: Path, *, fresh: bool) -> float:
    from kcrush_feeds.records.importer import BATCH as batch
    from kcrush_feeds.store.db import migrations
    from kcrush_feeds.store.records import RECORD_COLUMNS

    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")  # as Store.bulk() does for an import
    if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
        for version, _, sql in migrations():
            conn.executescript(f"BEGIN;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
    insert = (
        f"INSERT OR REPLACE INTO records ({RECORD_COLUMNS}, fingerprint, source, first_seen, "
        f"changed_at) VALUES ({','.join('?' * 18)})"
    )
    insert_cat = (
        "INSERT OR REPLACE INTO record_categories (record_id, category_key, name, published) "
        "VALUES (?,?,?,?)"
    )
    stamp = int(NOW.timestamp())
    start = time.perf_counter()
    rows: list[tuple[Any, ...]] = []
    cats: list[tuple[str, str, str, int]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(insert, rows)
        conn.executemany(insert_cat, cats)
        conn.execute("COMMIT")
        rows.clear()
        cats.clear()

    with source.open("rb") as f:
        for line in f:
            raw = json.loads(line)
            row = record_row(raw)
            rows.append((*row, "", str(source), stamp, stamp))
            published = row[3]
            cats.extend((raw["id"], c.casefold(), c, published) for c in raw["categories"])
            if len(rows) >= batch:
                flush()
    if rows:
        flush()
    seconds = time.perf_counter() - start
    conn.close()
    return seconds


def baseline_empty(params: dict[str, Any]) -> dict[str, Any]:
    db = _work_db(params, "baseline.db", None)
    return {"seconds": _baseline(Path(params["base"]), db, fresh=False), "count": params["n"]}


def baseline_changed(params: dict[str, Any]) -> dict[str, Any]:
    db = _work_db(params, "baseline.db", params["full_baseline"])
    return {"seconds": _baseline(Path(params["changed"]), db, fresh=False), "count": params["n"]}


def rows(n: int, data: Path, repeat: int) -> list[Row]:
    """Measure both import cases and their baselines, ``repeat`` times each."""
    print(f"import: preparing {n:,} records in {data} ...", file=sys.stderr, flush=True)
    params = prepare(data, n)
    target = "time <= 3.00x, >= 20,000/s"

    def check(row: Row) -> bool:
        return (row.ratio or 0) <= 3.0 and row.rate >= 20_000

    out: list[Row] = []
    for case, label in (("empty", "empty store"), ("changed", "full store, 1% changed")):
        base = Row("import", "  baseline: json + sqlite3 executemany")
        row = Row("import", f"import {n:,}, {label}", baseline=base, target=target, check=check)
        print(f"import: {label} ...", file=sys.stderr, flush=True)
        # Interleaved, so a slow minute on a shared machine hits both sides alike.
        for _ in range(repeat):
            measure(base, f"bench.imports:baseline_{case}", params, 1)
            measure(row, f"bench.imports:product_{case}", params, 1)
        out += [row, base]
    return out
