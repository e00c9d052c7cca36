#!/usr/bin/env python3
"""Report benchmark: store size per million requests and the weekly report's analysis time,
at several traffic levels of the same week.

For each level (default 1 M and 10 M requests a week; ``--requests 1M,10M,100M`` for more) it
generates two weeks of seeded synthetic requests as one Parquet export per day, loads them with
``ingest_file`` into a new store, and measures, the analysis in a fresh process:

* store bytes per million requests stored (the file after ``close``, which checkpoints it), and
  the rows of the rollup tables;
* the analysis of the second week's report: every code cell of ``weekly_slo_report.ipynb``
  executed in this process (``display`` does nothing), without a Jupyter kernel or the HTML
  export. Imports are made before the clock starts; the time is the best of ``--repeat`` runs.

It prints each level beside the first, as ratios: the aim is an analysis time within 2x from the
smallest to the largest level, and bytes per million requests that fall as traffic grows. It is a
benchmark, not a test: nothing about speed is asserted.

    .venv/bin/python bench/bench_report.py                      # 1 M and 10 M, a few minutes
    .venv/bin/python bench/bench_report.py --requests 200k,2M   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SEED = 20261126
# Two weeks are loaded and the second is reported: the report compares with the week before, and
# the capacity outlook needs more than a week of history.
START = datetime(2026, 9, 28, tzinfo=UTC)  # Monday of ISO week 2026-W40
WEEK = "2026-W41"
DAYS = 14
DAY_US = 24 * 3600 * 1_000_000
NOTEBOOK = (Path(__file__).resolve().parents[1] / "mysetlist_slo" / "report" / "notebooks"
            / "weekly_slo_report.ipynb")
ROLLUP_TABLES = ["request_counts", "request_good", "latency_sketch", "region_counts",
                 "region_latency_sketch"]

# The synthetic app: route prefix (a numeric id follows when it ends in "/"), share, median ms.
ROUTES = [("/", 0.10, 160), ("/artist/", 0.16, 190), ("/show/", 0.12, 120),
          ("/venue/", 0.04, 170), ("/setlist/", 0.06, 150), ("/search", 0.04, 140),
          ("/api/artists/", 0.09, 45), ("/api/shows/", 0.10, 40), ("/api/setlists/", 0.07, 48),
          ("/api/votes/", 0.03, 55), ("/api/search", 0.05, 90), ("/_next/image", 0.14, 8)]
STATUSES, STATUS_SHARES = [200, 304, 404, 500, 502], [0.97, 0.015, 0.011, 0.003, 0.001]


def parse_count(text: str) -> int:
    """Return a request count written as 200000, 200k, 10M or 1.5M."""
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def write_day(path: Path, n: int, day: int, rng: np.random.Generator) -> None:
    """Write ``n`` requests of day ``day`` of the week as a canonical Parquet export."""
    shares = np.array([share for _, share, _ in ROUTES])
    route = rng.choice(len(ROUTES), n, p=shares / shares.sum())
    median = np.array([m for _, _, m in ROUTES], dtype=np.float64)[route]
    prefixes = pc.take(pa.array([p for p, _, _ in ROUTES]), pa.array(route))
    ids = pa.array(rng.integers(1, 100_000, n)).cast(pa.string())
    with_id = np.array([p.endswith("/") and p != "/" for p, _, _ in ROUTES])[route]
    paths = pc.if_else(pa.array(with_id), pc.binary_join_element_wise(prefixes, ids, ""),
                       prefixes)
    start_us = int(START.timestamp()) * 1_000_000 + day * DAY_US
    ts = np.sort(rng.integers(0, DAY_US, n)) + start_us
    table = pa.table({
        "timestamp": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "method": pa.array(np.where(route == 9, "POST", "GET")),
        "path": paths,
        "status": pa.array(rng.choice(STATUSES, n, p=STATUS_SHARES).astype(np.int16)),
        "duration_ms": pa.array(np.round(rng.lognormal(np.log(median), 0.6), 3)),
        "bytes": pa.array(rng.lognormal(np.log(9000), 0.9, n).astype(np.int64)),
        "region": pa.array(rng.choice(["eu-west", "us-east"], n, p=[0.6, 0.4])),
    })
    pq.write_table(table, path)


def build_store(workdir: Path, requests: int) -> dict[str, Any]:
    """Generate the week's requests and load them into a new store; return its measures."""
    from mysetlist_slo import ingest_file, load_config, open_store

    db = workdir / f"report-{requests}.duckdb"
    for stale in (db, db.with_name(db.name + ".wal")):
        stale.unlink(missing_ok=True)
    rng = np.random.default_rng(SEED + requests)
    per_day = np.full(DAYS, requests // 7)  # ``requests`` a week
    config = load_config()
    con = open_store(db)
    generate_s = ingest_s = 0.0
    try:
        for day, n in enumerate(per_day):
            export = workdir / f"requests-{requests}-day{day}.parquet"
            started = time.perf_counter()
            write_day(export, int(n), day, rng)
            loaded = time.perf_counter()
            ingest_file(con, export, config=config)
            ingest_s += time.perf_counter() - loaded
            generate_s += loaded - started
            export.unlink()
        rows = {t: int(con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0])
                for t in ROLLUP_TABLES}
        buckets = con.execute("""
            SELECT avg(n), max(n) FROM (
                SELECT slot, route, count(DISTINCT bucket) AS n FROM latency_sketch
                GROUP BY ALL)""").fetchall()[0]
    finally:
        con.close()
    return {"db": str(db), "requests": requests, "stored": int(per_day.sum()),
            "bytes": db.stat().st_size, "rows": rows,
            "generate_s": generate_s, "ingest_s": ingest_s,
            "buckets_per_slot_route": (float(buckets[0] or 0), int(buckets[1] or 0))}


def analyse(db: str, repeat: int) -> dict[str, Any]:
    """Run every code cell of the weekly notebook on ``db``; return the best wall time."""
    # The imports of the notebook are made before the clock starts: they are not analysis.
    import mysetlist_slo.report.notebook
    import mysetlist_slo.report.overview  # noqa: F401

    cells = [cell for cell in json.loads(NOTEBOOK.read_text())["cells"]
             if cell["cell_type"] == "code"]
    sources = ["".join(cell["source"]) for cell in cells]
    parameters = {"db": db, "config": "", "week": WEEK, "timezone": "", "title": "bench",
                  "top_n": 10}
    times: list[float] = []
    cells_s: list[float] = []
    for _ in range(repeat):
        scope: dict[str, Any] = {"display": lambda *args, **kwargs: None, **parameters}
        run = []
        for source in sources[1:]:  # the first cell holds the parameters, set above
            started = time.perf_counter()
            exec(compile(source, str(NOTEBOOK), "exec"), scope)  # noqa: S102
            run.append(time.perf_counter() - started)
        scope["ctx"].con.close()
        if not times or sum(run) < min(times):
            cells_s = run
        times.append(sum(run))
    slowest = sorted(range(len(cells_s)), key=lambda i: -cells_s[i])[:3]
    return {"analysis_s": min(times), "runs": times,
            "slowest_cells": [(sources[1 + i].splitlines()[0][:60], round(cells_s[i], 2))
                              for i in slowest]}


def machine() -> str:
    """Return a one-line description of the machine and library versions."""
    import pandas as pd

    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"DuckDB {duckdb.__version__}, pandas {pd.__version__}, pyarrow {pa.__version__}")


def main() -> int:
    """Build the stores, measure them, and print the table and the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", default="1M,10M",
                        help="comma-separated requests per week, e.g. 1M,10M,100M")
    parser.add_argument("--repeat", type=int, default=2, help="analysis runs per store (best)")
    parser.add_argument("--workdir", type=Path, help="where the stores go (default: temporary)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--analyse", metavar="DB", help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    if args.analyse:
        print(json.dumps(analyse(args.analyse, args.repeat)))
        return 0
    levels = [parse_count(part) for part in args.requests.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-report-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for requests in levels:
            built = build_store(workdir, requests)
            # A fresh process per analysis: no cache or memory left over from loading.
            child = subprocess.run([sys.executable, __file__, "--analyse", built["db"],
                                    "--repeat", str(args.repeat)], capture_output=True,
                                   text=True, check=False)
            if child.returncode != 0:
                sys.stderr.write(child.stderr)
                raise SystemExit(f"analysis of {built['db']} failed")
            built.update(json.loads(child.stdout.strip().splitlines()[-1]))
            results.append(built)
            print(f"# {requests:,} requests a week: loaded in {built['ingest_s']:.1f} s, "
                  f"analysed in {built['analysis_s']:.2f} s; slowest cells: "
                  f"{built['slowest_cells']}", file=sys.stderr)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"Weekly report analysis and store size, one ISO week ({WEEK}); {machine()}\n")
    header = (f"{'requests':>12} {'store MiB':>10} {'bytes/M req':>12} {'sketch rows':>12} "
              f"{'counts rows':>12} {'buckets/slot':>13} {'analysis s':>11} "
              f"{'x time':>7} {'x bytes/M':>10}")
    print(header)
    first = results[0]
    for r in results:
        per_million = r["bytes"] / (r["stored"] / 1e6)
        first_per_million = first["bytes"] / (first["stored"] / 1e6)
        avg_buckets, _ = r["buckets_per_slot_route"]
        print(f"{r['requests']:>12,} {r['bytes'] / 2**20:>10.1f} {per_million:>12,.0f} "
              f"{r['rows']['latency_sketch']:>12,} {r['rows']['request_counts']:>12,} "
              f"{avg_buckets:>13.0f} {r['analysis_s']:>11.2f} "
              f"{r['analysis_s'] / first['analysis_s']:>7.2f} "
              f"{per_million / first_per_million:>10.2f}")
    worst = max(r["analysis_s"] for r in results) / first["analysis_s"]
    verdict = "within" if worst <= 2 else "NOT within"
    print(f"\nanalysis time, the slowest level against the smallest level: {worst:.2f}x "
          f"({verdict} the 2x aim)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
