#!/usr/bin/env python3
"""Engine benchmark: the same request lake rolled up by DuckDB (embedded) and by Spark local[2].

It generates N seeded synthetic requests (bench_ingest.py's generator: 12 MySetlist routes over
7 days), writes them as a lake (``requests/date=D/part-K.parquet``, 4 files a day), then runs
``mysetlist-slo rollup --engine duckdb`` and ``--engine spark --master local[2]`` each in a
fresh child process, sampling the resident memory of the whole process tree (Python and, for
Spark, the JVM it starts; from /proc, so Linux only) every 50 ms. It prints wall seconds (JVM
start included), rows/s, peak RSS of the tree, and the Spark/DuckDB ratios. It is a benchmark:
it asserts only that the two outputs hold the same rows.

    .venv/bin/python bench/bench_engines.py --requests 1M
    .venv/bin/python bench/bench_engines.py --requests 1M 10M --conf spark.driver.memory=6g
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
# bench_ingest.py's generator: the same synthetic requests as the ingest benchmark.
_ingest_bench = importlib.import_module("bench_ingest")
draw_requests, export_table, requests_count = (
    _ingest_bench.draw_requests, _ingest_bench.export_table, _ingest_bench.requests_count)

FILES_PER_DAY = 4
REGIONS = ["eu-west", "us-east"]
CACHE = ["HIT", "MISS", "DYNAMIC"]


def write_lake(lake: Path, n: int) -> None:
    """Write ``n`` synthetic requests into ``lake`` in the lake contract's layout."""
    cols = draw_requests(n)
    table = export_table(cols)
    rng = np.random.default_rng(7)
    rows = pa.table({
        "ts": table["timestamp"], "method": table["method"], "target": table["path"],
        "status": table["status"].cast(pa.int16()),
        "duration_us": pa.array(np.round(cols["duration_ms"] * 1000).astype(np.int64)),
        "upstream_us": pa.array(np.round(cols["upstream_ms"] * 1000).astype(np.int64)),
        "bytes": table["bytes"], "client": table["client"], "user_agent": table["user_agent"],
        "region": pc.take(pa.array(REGIONS), pa.array(rng.integers(0, 2, n))),
        "cache_status": pc.take(pa.array(CACHE), pa.array(rng.integers(0, 3, n))),
        "source_sha256": pa.array(["0" * 64] * n, pa.string()),
        "line": pa.array(np.arange(1, n + 1), pa.int64()),
    })
    dates = pc.strftime(rows["ts"], "%Y-%m-%d")
    for date in sorted(set(dates.to_pylist())):
        day = rows.filter(pc.equal(dates, date))
        folder = lake / "requests" / f"date={date}"
        folder.mkdir(parents=True)
        step = -(-day.num_rows // FILES_PER_DAY)
        for k in range(FILES_PER_DAY):
            pq.write_table(day.slice(k * step, step), folder / f"part-{k}.parquet")


@dataclass
class Run:
    """One engine's run: wall time and the peak RSS of its process tree."""

    engine: str
    seconds: float
    peak_mib: float


def tree_rss(root: int) -> int:
    """Return the resident bytes of process ``root`` and all its descendants (Linux /proc)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # ended while we looked
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


def measure(engine: str, lake: Path, out: Path, conf: list[str]) -> Run:
    """Run the rollup CLI in a child process; sample its process tree's RSS every 50 ms."""
    command = [sys.executable, "-m", "mysetlist_slo", "rollup", "--engine", engine,
               "--lake", str(lake), "--out", str(out)]
    if engine == "spark":
        command += ["--master", "local[2]", *(f"--conf={c}" for c in conf)]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = 0
    while child.poll() is None:
        peak = max(peak, tree_rss(child.pid))
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    if child.returncode:
        raise SystemExit(f"{engine} failed:\n{child.stderr.read().decode()[-3000:]}")
    return Run(engine, seconds, peak / 2**20)


def same_rows(left: Path, right: Path) -> bool:
    """Return whether both outputs hold the same rows in every table (order aside)."""
    for table in ("request_counts", "request_good", "latency_sketch", "region_counts",
                  "region_latency_sketch", "cache_counts"):
        frames = []
        for out in (left, right):
            parts = [pq.read_table(p) for p in sorted((out / table).glob("date=*/*.parquet"))]
            frame = pa.concat_tables(parts).to_pandas()
            frames.append(frame.sort_values(list(frame.columns)).reset_index(drop=True))
        if not frames[0].equals(frames[1]):
            return False
    return True


def main() -> None:
    """Parse the options, run both engines per N and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", nargs="+", type=requests_count, default=[1_000_000])
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting for the Spark run (repeatable)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-engines-"))
    try:
        print(f"{'N':>11} {'engine':<7} {'wall s':>8} {'rows/s':>11} {'peak RSS MiB':>13}")
        for n in args.requests:
            lake = work / f"lake-{n}"
            if not lake.exists():
                write_lake(lake, n)
            runs = [measure(engine, lake, work / f"out-{engine}-{n}", args.conf)
                    for engine in ("duckdb", "spark")]
            for run in runs:
                print(f"{n:>11,} {run.engine:<7} {run.seconds:>8.1f} "
                      f"{n / run.seconds:>11,.0f} {run.peak_mib:>13,.0f}")
            duck, spark = runs
            print(f"{'':>11} spark/duckdb: time x{spark.seconds / duck.seconds:.1f}, "
                  f"peak RSS x{spark.peak_mib / duck.peak_mib:.1f}; same rows: "
                  f"{same_rows(work / f'out-duckdb-{n}', work / f'out-spark-{n}')}", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
