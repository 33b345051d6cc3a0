"""Archive benchmark: the newsletter's archive built from 500 sent issues, and the no-op
rebuild of feeds + archive (what every ``build`` of ``schedule`` does when nothing is new).

Full archive build: 500 sent digests of 8 items each (``bench.issues.seed_issues``): 500
issue pages, 10 index pages, 3 feeds and the stylesheet, from an empty output directory,
every file fsynced and renamed as the product always does. Target: 2 s.

No-op rebuild of feeds + archive: ``archive.publish.publish`` (feeds, then archive) over
output directories a first build wrote, on the build benchmark's stores of 10k ... 1M records
with the 500 issues added (dated 2010-2019, older than every bench record, so no feed
changes). Target: 0.3 s, flat with the store size.
"""

from __future__ import annotations

import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.builds import NOW
from bench.builds import prepare as prepare_build
from bench.harness import Row, measure

ISSUES = 500
FIRST = datetime(2010, 1, 4, 17, 0, tzinfo=UTC)  # 500 weeks end in 2019: before every record


def _archive_config(params: dict[str, Any], out: Path) -> Path:
    path = Path(params["config"]).with_name(f"config-archive-{params['n']}.toml")
    text = Path(params["config"]).read_text(encoding="utf-8")
    path.write_text(
        text
        + f'\n[archive]\noutput_dir = "{out}"\n'
        + 'base_url = "https://www.kcrush.com/newsletter/archive"\n',
        encoding="utf-8",
    )
    return path


def _seed(db: Path) -> None:
    from bench.issues import seed_issues
    from kcrush_feeds.store.archive import sent_issues
    from kcrush_feeds.store.db import Store

    with Store.open(db, create=False) as store:
        if not sent_issues(store):  # once per cached store
            seed_issues(store, ISSUES, first=FIRST)


def prepare(data: Path, n: int) -> dict[str, Any]:
    params = prepare_build(data, n)
    _seed(Path(params["db"]))
    out = Path(params["out"]).with_name(f"archive-{n}")
    params["archive_out"] = str(out)
    params["archive_config"] = str(_archive_config(params, out))
    return params


def product_full(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.archive.build import build_archive
    from kcrush_feeds.config import load_config
    from kcrush_feeds.store.db import Store

    shutil.rmtree(params["archive_out"], ignore_errors=True)
    config = load_config(Path(params["archive_config"]))
    with Store.open(Path(params["db"]), create=False) as store:
        start = time.perf_counter()
        report = build_archive(config, store, NOW)
        seconds = time.perf_counter() - start
    assert report.issues == ISSUES and len(report.written) == ISSUES + 10 + 3 + 1, report
    return {"seconds": seconds, "count": ISSUES, "summary": report.summary()}


def product_nochange(params: dict[str, Any]) -> dict[str, Any]:
    from kcrush_feeds.archive.publish import publish
    from kcrush_feeds.config import load_config
    from kcrush_feeds.store.db import Store

    config = load_config(Path(params["archive_config"]))
    with Store.open(Path(params["db"]), create=False) as store:
        if not (Path(params["archive_out"]) / ".build-state.json").exists():
            publish(config, store, NOW)  # the first build, untimed
        start = time.perf_counter()
        published = publish(config, store, NOW)
        seconds = time.perf_counter() - start
    assert published.archive is not None
    assert not published.feeds.written and not published.archive.written, published.summary()
    return {"seconds": seconds, "count": params["n"], "summary": published.summary()}


def rows(n: int, rebuild: tuple[int, ...], data: Path, repeat: int) -> list[Row]:
    print(f"archive: preparing {ISSUES} sent issues ...", file=sys.stderr, flush=True)
    params = prepare(data, rebuild[0])
    full = Row(
        "archive",
        f"archive {ISSUES} issues: full build (issues)",
        target="<= 2.000 s",
        check=lambda r: r.seconds <= 2.0,
    )
    out = [measure(full, "bench.archives:product_full", params, repeat)]
    for m in rebuild:
        print(f"archive: no-op feeds + archive, {m:,} records ...", file=sys.stderr, flush=True)
        p = params if m == rebuild[0] else prepare(data, m)
        shutil.rmtree(p["archive_out"], ignore_errors=True)
        nochange = Row(
            "archive",
            f"build {m:,} + archive {ISSUES}: no-op rebuild (records)",
            target="<= 0.300 s",
            check=lambda r: r.seconds <= 0.3,
            show_rate=False,
        )
        out.append(measure(nochange, "bench.archives:product_nochange", p, repeat))
    return out
