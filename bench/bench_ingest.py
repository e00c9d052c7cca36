#!/usr/bin/env python3
"""Ingest benchmark: the package against a plain-pandas baseline, on Parquet and nginx text.

It generates N synthetic MySetlist requests (seeded: every run sees the same data), writes them
as a Parquet export and as an nginx access log, then measures each step in a fresh child process:

* ``package parquet`` and ``package nginx``: ``open_store`` on a new DuckDB file,
  ``ingest_file``, ``close`` (which checkpoints the store to disk);
* ``pandas parquet`` and ``pandas nginx``: read the file with pandas, then compute the same
  per-minute rollups in plain pandas (request counts and sums, the 5-minute latency sketch's
  buckets, requests under 200 ms).

It prints wall time, rows/s and peak RSS of each step, the package/pandas ratios and whether the
targets are reached. It is a benchmark, not a test: nothing about speed is asserted.

    .venv/bin/python bench/bench_ingest.py --requests 200000   # smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any, BinaryIO

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import mysetlist_slo
from mysetlist_slo import ingest_file, load_config, open_store
from mysetlist_slo.demo import ARTISTS, USER_AGENTS, VENUES  # the same names as the demo

SEED = 20261010
# Bump when the generated data changes, so that inputs kept by --keep are not reused stale.
GENERATOR_VERSION = 2
START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday; the data spans the 7 days after it
SPAN_US = 7 * 24 * 3600 * 1_000_000
CHUNK_ROWS = 500_000  # rows turned into Arrow strings at a time, to bound generation memory

PARQUET_NAME = "requests.parquet"
NGINX_NAME = "access.log"
MANIFEST_NAME = "inputs.json"

GOOD_THRESHOLD_US = 200_000
COUNTED_THRESHOLDS = len(load_config().all_thresholds_ms)  # "good" counters the package keeps
TARGET_PARQUET_SPEEDUP = 10.0
TARGET_NGINX_LINES_PER_S = 1_000_000
TARGET_PEAK_RSS_KIB = 1 << 20  # 1 GiB, whatever the file size
CHILD_POLL_S = 1.0


@dataclass(frozen=True)
class Route:
    """A route of the synthetic app: how its paths look, its traffic share, its latency."""

    prefix: str
    param: str  # "id", "artist", "venue" or "" (no parameter)
    suffix: str
    share: float
    median_ms: float
    method: str = "GET"


ROUTES = [
    Route("/", "", "", 0.10, 160),
    Route("/artist/", "artist", "", 0.16, 190),
    Route("/artist/", "artist", "/setlists", 0.05, 210),
    Route("/show/", "id", "", 0.12, 120),
    Route("/venue/", "venue", "", 0.04, 170),
    Route("/setlist/", "id", "", 0.06, 150),
    Route("/search", "", "", 0.04, 140),
    Route("/api/artists/", "artist", "", 0.09, 45),
    Route("/api/shows/", "id", "", 0.10, 40),
    Route("/api/setlists/", "id", "", 0.07, 48),
    Route("/api/votes/", "id", "", 0.03, 55, "POST"),
    Route("/_next/image", "", "", 0.14, 8),
]
STATUSES = [200, 404, 500, 502]
STATUS_SHARES = [0.987, 0.009, 0.003, 0.001]
CLIENT_PREFIXES = ["203.0.113.", "198.51.100.", "192.0.2."]
AGENT_SHARES = [0.38, 0.2, 0.22, 0.12, 0.05, 0.03]  # one per demo user agent

# Route templating for the pandas baseline: numeric segments become [id] (as the package's
# segment rules do) and the slug routes of the package's default config become [slug], so both
# sides group by the same routes and their rollups can be compared.
ID_SEGMENT = r"/\d+"
SLUG_ROUTE = r"^(/artist|/venue|/api/artists)/[^/]+"
NGINX_COLUMNS = ["client", "ident", "user", "time", "zone", "request", "status", "bytes",
                 "referer", "user_agent", "request_time", "upstream_time"]
LN_GAMMA = np.log(101 / 99)  # the latency sketch's bucket growth: 1 % relative accuracy


# ---------------------------------------------------------------------------------------------
# Input generation (not measured)


def draw_requests(n: int, seed: int = SEED, span_us: int = SPAN_US) -> dict[str, np.ndarray]:
    """Return the random columns of ``n`` requests spread over ``span_us`` microseconds from
    START, drawn all at once so chunking is invisible."""
    rng = np.random.default_rng(seed)
    shares = np.array([r.share for r in ROUTES])
    route = rng.choice(len(ROUTES), n, p=shares / shares.sum())
    median_ms = np.array([r.median_ms for r in ROUTES])[route]
    # Microsecond resolution, as exporters write it; it also keeps ms * 1000 off rounding ties.
    duration_ms = np.round(rng.lognormal(np.log(median_ms), 0.6), 3)
    return {
        "ts_us": int(START.timestamp()) * 1_000_000 + np.sort(rng.integers(0, span_us, n)),
        "route": route,
        "param": rng.integers(1, 250_000, n),  # the id, or (modulo) the index of a slug
        "status": rng.choice(STATUSES, n, p=STATUS_SHARES),
        "duration_ms": duration_ms,
        "upstream_ms": np.round(duration_ms * rng.uniform(0.85, 0.98, n), 3),
        "bytes": rng.lognormal(np.log(9000), 0.9, n).astype(np.int64),
        "client": rng.integers(0, len(CLIENT_PREFIXES) * 254, n),
        "agent": rng.choice(len(USER_AGENTS), n, p=AGENT_SHARES),
        "referred": rng.random(n) < 0.5,
    }


def _take(values: list[str], indices: np.ndarray) -> pa.Array:
    return pc.take(pa.array(values, pa.string()), pa.array(indices))


def _paths(route: np.ndarray, param: np.ndarray) -> pa.Array:
    """Return the request path of each row: the route's prefix, parameter value and suffix."""
    kind = np.array([r.param for r in ROUTES])[route]
    value = pc.if_else(
        pa.array(kind == "id"), pa.array(param).cast(pa.string()),
        pc.if_else(pa.array(kind == "artist"), _take(ARTISTS, param % len(ARTISTS)),
                   pc.if_else(pa.array(kind == "venue"), _take(VENUES, param % len(VENUES)),
                              "")))
    return pc.binary_join_element_wise(_take([r.prefix for r in ROUTES], route), value,
                                       _take([r.suffix for r in ROUTES], route), "")


def _clients(client: np.ndarray) -> pa.Array:
    host = pa.array(client % 254 + 1).cast(pa.string())
    return pc.binary_join_element_wise(_take(CLIENT_PREFIXES, client // 254), host, "")


def export_table(cols: dict[str, np.ndarray]) -> pa.Table:
    """Return the rows as a table with the package's canonical export columns."""
    return pa.table({
        "timestamp": pa.array(cols["ts_us"], pa.timestamp("us", tz="UTC")),
        "method": _take([r.method for r in ROUTES], cols["route"]),
        "path": _paths(cols["route"], cols["param"]),
        "status": pa.array(cols["status"], pa.int32()),
        "duration_ms": pa.array(cols["duration_ms"], pa.float64()),
        "bytes": pa.array(cols["bytes"], pa.int64()),
        "upstream_ms": pa.array(cols["upstream_ms"], pa.float64()),
        "client": _clients(cols["client"]),
        "user_agent": _take(USER_AGENTS, cols["agent"]),
    })


def _seconds_text(ms: np.ndarray) -> pa.Array:
    """Return nginx's millisecond-resolution seconds ("0.123") for durations in ms."""
    whole_ms = np.round(ms).astype(np.int64)
    seconds = pa.array(whole_ms // 1000).cast(pa.string())
    fraction = pc.utf8_lpad(pa.array(whole_ms % 1000).cast(pa.string()), 3, "0")
    return pc.binary_join_element_wise(seconds, fraction, ".")


def nginx_lines(table: pa.Table, cols: dict[str, np.ndarray]) -> pa.Array:
    """Return one nginx "combined" line with the two timings per row, each ending in "\\n"."""
    when = pc.strftime(pa.array(cols["ts_us"] // 1_000_000, pa.timestamp("s", tz="UTC")),
                       format="%d/%b/%Y:%H:%M:%S %z")
    referer = pc.if_else(pa.array(cols["referred"]), "https://mysetlist.example/", "-")
    return pc.binary_join_element_wise(
        table["client"].combine_chunks(), " - - [", when, '] "',
        table["method"].combine_chunks(), " ", table["path"].combine_chunks(), ' HTTP/1.1" ',
        pa.array(cols["status"]).cast(pa.string()), " ",
        pa.array(cols["bytes"]).cast(pa.string()), ' "', referer, '" "',
        table["user_agent"].combine_chunks(), '" ',
        _seconds_text(cols["duration_ms"]), " ", _seconds_text(cols["upstream_ms"]), "\n",
        "",  # the separator
    )


def write_lines(handle: BinaryIO, lines: pa.Array) -> None:
    """Write newline-terminated lines without making a Python string per line.

    A string array keeps its values back to back in one data buffer, so the slice between the
    first and the last offset is exactly the file content.
    """
    if lines.null_count:
        raise ValueError("a generated line is null")
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1,
                            offset=lines.offset * 4)
    handle.write(memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]])


def span_us(n: int, rate: float | None) -> int:
    """Return the time ``n`` requests span: a week, or ``n / rate`` seconds at ``rate`` req/s."""
    return SPAN_US if rate is None else max(1, round(n / rate * 1_000_000))


def generate_inputs(workdir: Path, n: int, rate: float | None = None) -> None:
    """Write the Parquet export and the nginx log of ``n`` requests (over a week, or at
    ``rate`` requests a second) into ``workdir``."""
    cols = draw_requests(n, span_us=span_us(n, rate))
    schema = export_table({k: v[:0] for k, v in cols.items()}).schema
    with pq.ParquetWriter(workdir / PARQUET_NAME, schema) as parquet, \
            open(workdir / NGINX_NAME, "wb") as log:
        for start in range(0, n, CHUNK_ROWS):
            chunk = {k: v[start:start + CHUNK_ROWS] for k, v in cols.items()}
            table = export_table(chunk)
            parquet.write_table(table)
            write_lines(log, nginx_lines(table, chunk))


def ensure_inputs(workdir: Path, n: int, rate: float | None = None) -> str:
    """Generate the inputs unless ``workdir`` holds those of the same N, rate and generator;
    say which."""
    manifest = workdir / MANIFEST_NAME
    wanted: dict[str, object] = {"generator": GENERATOR_VERSION, "seed": SEED, "requests": n}
    if rate is not None:
        wanted["rate"] = rate
    present = all((workdir / name).exists() for name in (MANIFEST_NAME, PARQUET_NAME, NGINX_NAME))
    if present and json.loads(manifest.read_text("utf-8")) == wanted:
        return "reused from an earlier run"
    manifest.unlink(missing_ok=True)  # a half-written set must never look complete
    started = time.perf_counter()
    generate_inputs(workdir, n, rate)
    manifest.write_text(json.dumps(wanted), "utf-8")
    return f"generated in {time.perf_counter() - started:.1f} s (not measured)"


# ---------------------------------------------------------------------------------------------
# Measured steps (each runs in its own child process)


@dataclass
class Measurement:
    """What one step did: rows, wall time, memory, and a summary of the rollups it computed."""

    step: str
    rows: int
    seconds: float
    start_rss_kib: int  # peak RSS before the step: interpreter and imports
    peak_rss_kib: int
    check: dict[str, int]
    note: str = ""
    store_bytes: int = 0  # the DuckDB file after close (package steps)
    # CPU seconds of the process over the same span as ``seconds`` (all threads: DuckDB's
    # too). Unlike wall time, they hardly depend on what else the machine runs.
    cpu_seconds: float = 0.0


def peak_rss_kib() -> int:
    """Return this process's peak resident set size so far, in KiB.

    On Linux this is VmHWM, the peak of the process's own memory map. ru_maxrss is no good in a
    spawned child there: spawn forks the parent before exec, and Linux carries the forked copy's
    peak (the parent's whole RSS, generated inputs included) over into the child's ru_maxrss.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text("ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])  # "VmHWM:   123456 kB"
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # macOS reports bytes


def _fresh_db(path: Path) -> None:
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)


def package_check(db: Path) -> dict[str, int]:
    """Return totals of the rollups in the store at ``db``, partial rows merged."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute("""
            SELECT
                (SELECT sum(requests) FROM request_counts),
                (SELECT sum(duration_sum_us) FROM request_counts),
                (SELECT sum(bytes_sum) FROM request_counts),
                (SELECT count(*) FROM (SELECT DISTINCT minute, route, status
                                       FROM request_counts)),
                (SELECT count(*) FROM (SELECT DISTINCT slot, route, bucket
                                       FROM latency_sketch)),
                (SELECT sum(good) FROM request_good WHERE threshold_ms = 200),
                (SELECT count(DISTINCT route) FROM request_counts)
        """).fetchone()
    finally:
        con.close()
    names = ["requests", "duration_sum_us", "bytes_sum", "count_groups", "histogram_groups",
             "good_200ms", "routes"]
    return dict(zip(names, (int(v or 0) for v in row or ()), strict=True))


def package_step(step: str, workdir: Path, input_name: str) -> Measurement:
    """Ingest one input file into a new store with the package's public API."""
    db = workdir / f"{step.replace(' ', '-')}.duckdb"
    _fresh_db(db)
    start_kib = peak_rss_kib()
    started, cpu_started = time.perf_counter(), time.process_time()
    con = open_store(db)
    con.execute("SET enable_progress_bar = false")  # its bars would clutter the report
    opened = time.perf_counter()
    result = ingest_file(con, workdir / input_name)
    ingested = time.perf_counter()
    con.close()  # part of the cost: closing checkpoints the store to its file
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    peak = peak_rss_kib()
    note = (f"open_store {opened - started:.3f} s, ingest_file {ingested - opened:.3f} s, "
            f"close {finished - ingested:.3f} s; {result.rejected} rejected")
    return Measurement(step, result.loaded + result.rejected, finished - started, start_kib, peak,
                       package_check(db), note, db.stat().st_size, cpu)


@dataclass
class PandasRollup:
    """The baseline's rollups, shaped like the package's tables."""

    counts: pd.DataFrame  # (minute, route, status) -> requests, duration_sum_us, bytes_sum
    histogram: pd.Series  # (slot, route, bucket) -> count
    good: pd.Series  # (minute, route) -> requests under 200 ms

    def save(self, workdir: Path, fmt: str) -> None:
        """Write the rollups as Parquet, for the row-by-row cross-check with the store."""
        self.counts.reset_index().to_parquet(workdir / f"pandas-{fmt}-counts.parquet")
        self.histogram.rename("count").reset_index().to_parquet(
            workdir / f"pandas-{fmt}-histogram.parquet")
        self.good.rename("good").reset_index().to_parquet(workdir / f"pandas-{fmt}-good.parquet")

    def check(self) -> dict[str, int]:
        """Return the same totals as ``package_check``."""
        return {
            "requests": int(self.counts["requests"].sum()),
            "duration_sum_us": int(self.counts["duration_sum_us"].sum()),
            "bytes_sum": int(self.counts["bytes_sum"].sum()),
            "count_groups": len(self.counts),
            "histogram_groups": len(self.histogram),
            "good_200ms": int(self.good.sum()),
            "routes": int(self.counts.index.get_level_values("route").nunique()),
        }


def sketch_bucket(us: np.ndarray) -> np.ndarray:
    """Return the latency sketch's bucket of non-negative integer microseconds (the package's
    mapping): ceil(log base 101/99 of us), and -32768 for 0 us."""
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(us.astype(np.float64)) / LN_GAMMA)
    return np.where(us == 0, -32768, index).astype(np.int64)


def pandas_rollup(ts: pd.Series, path: pd.Series, status: pd.Series, duration_us: pd.Series,
                  body_bytes: pd.Series) -> PandasRollup:
    """Compute the per-minute rollups the package stores, in plain pandas."""
    route = (path.str.replace(ID_SEGMENT, "/[id]", regex=True)
             .str.replace(SLUG_ROUTE, r"\1/[slug]", regex=True))
    frame = pd.DataFrame({"minute": ts.dt.floor("min"), "route": route, "status": status,
                          "duration_us": duration_us, "bytes": body_bytes})
    # sort=False: the package does not sort its rollups either.
    counts = frame.groupby(["minute", "route", "status"], sort=False).agg(
        requests=("duration_us", "size"), duration_sum_us=("duration_us", "sum"),
        bytes_sum=("bytes", "sum"))
    # Latency is that of answered requests: a fast 5xx is an availability failure.
    answered = frame[frame["status"] < 500]
    buckets = pd.Series(sketch_bucket(answered["duration_us"].to_numpy()), index=answered.index,
                        name="bucket")
    histogram = answered.groupby(
        [answered["minute"].dt.floor("5min"), answered["route"], buckets], sort=False).size()
    good = (answered["duration_us"] < GOOD_THRESHOLD_US).groupby(
        [answered["minute"], answered["route"]], sort=False).sum()
    return PandasRollup(counts, histogram, good)


def pandas_parquet_step(step: str, workdir: Path) -> Measurement:
    """Read the Parquet export with pandas and roll it up."""
    start_kib = peak_rss_kib()
    started, cpu_started = time.perf_counter(), time.process_time()
    # Only the columns the rollup uses: what a pandas user would write, and it favours pandas.
    frame = pd.read_parquet(workdir / PARQUET_NAME,
                            columns=["timestamp", "path", "status", "duration_ms", "bytes"])
    read = time.perf_counter()
    duration_us = (frame["duration_ms"] * 1000).round().astype("int64")
    rollup = pandas_rollup(frame["timestamp"], frame["path"], frame["status"], duration_us,
                           frame["bytes"])
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    peak = peak_rss_kib()
    note = f"read {read - started:.3f} s, rollup {finished - read:.3f} s"
    rollup.save(workdir, "parquet")  # after the clock: not part of the baseline's cost
    return Measurement(step, len(frame), finished - started, start_kib, peak, rollup.check(),
                       note, cpu_seconds=cpu)


def pandas_nginx_step(step: str, workdir: Path) -> Measurement:
    """Read the nginx log with pandas.read_csv and roll it up."""
    start_kib = peak_rss_kib()
    started, cpu_started = time.perf_counter(), time.process_time()
    # Space-separated with quoted fields; "[time" and "zone]" come out as two columns.
    frame = pd.read_csv(workdir / NGINX_NAME, sep=" ", header=None, names=NGINX_COLUMNS,
                        quotechar='"', usecols=["time", "zone", "request", "status", "bytes",
                                                "request_time"])
    read = time.perf_counter()
    ts = pd.to_datetime(frame["time"] + " " + frame["zone"], format="[%d/%b/%Y:%H:%M:%S %z]",
                        utc=True)
    path = frame["request"].str.extract(r"^\S+ (\S+)", expand=False)
    duration_us = (frame["request_time"] * 1_000_000).round().astype("int64")
    rollup = pandas_rollup(ts, path, frame["status"], duration_us, frame["bytes"])
    finished, cpu = time.perf_counter(), time.process_time() - cpu_started
    peak = peak_rss_kib()
    note = f"read_csv {read - started:.3f} s, parse and rollup {finished - read:.3f} s"
    rollup.save(workdir, "nginx")  # after the clock: not part of the baseline's cost
    return Measurement(step, len(frame), finished - started, start_kib, peak, rollup.check(),
                       note, cpu_seconds=cpu)


# Each rollup of the store, partial rows (batches, files) merged, keyed as the baseline keys
# it; and the baseline's file of the same rollup. The histogram's query is the one to change
# with the package's latency layout (with ``sketch_bucket`` above).
ROLLUPS = {
    "counts": ("SELECT minute, route, status, sum(requests) AS requests, "
               "sum(duration_sum_us) AS duration_sum_us, sum(bytes_sum) AS bytes_sum "
               "FROM request_counts GROUP BY ALL", ["minute", "route", "status"]),
    "histogram": ("SELECT slot AS minute, route, bucket, sum(count) AS count "
                  "FROM latency_sketch GROUP BY ALL", ["minute", "route", "bucket"]),
    "good": (f"SELECT minute, route, sum(good) AS good FROM request_good "
             f"WHERE threshold_ms = {GOOD_THRESHOLD_US / 1000:g} GROUP BY ALL",
             ["minute", "route"]),
}


def compare_rollups(workdir: Path, fmt: str) -> dict[str, int]:
    """Return, per rollup, how many keys differ between the package's store and the baseline
    (a key on one side only, or any value different): every row is compared, in DuckDB."""
    db = workdir / f"package-{fmt}.duckdb"
    con = duckdb.connect(str(db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    differ = {}
    try:
        for name, (query, keys) in ROLLUPS.items():
            baseline = str(workdir / f"pandas-{fmt}-{name}.parquet")
            columns = con.execute(f"SELECT * FROM ({query}) LIMIT 0").description or []
            values = [c[0] for c in columns if c[0] not in keys]
            on = " AND ".join(f"p.{k} = b.{k}" for k in keys)
            unequal = " OR ".join(f"p.{v} IS DISTINCT FROM b.{v}" for v in values)
            differ[name] = int(con.execute(f"""
                WITH p AS ({query}),
                     b AS (SELECT * FROM read_parquet(?))
                SELECT count(*) FROM p FULL OUTER JOIN b ON {on}
                WHERE p.{keys[0]} IS NULL OR b.{keys[0]} IS NULL OR {unequal}
            """, [baseline]).fetchall()[0][0])
    finally:
        con.close()
    return differ


STEPS: dict[str, Callable[[str, Path], Measurement]] = {
    "package parquet": lambda step, workdir: package_step(step, workdir, PARQUET_NAME),
    "package nginx": lambda step, workdir: package_step(step, workdir, NGINX_NAME),
    "pandas parquet": pandas_parquet_step,
    "pandas nginx": pandas_nginx_step,
}
# Optional steps, on inputs the parent prepares (--scanner-urls, --repeat).
SCANNER_NAME = "scanners.log"
REPEATED_NAME = "repeated.log"
EXTRA_STEPS: dict[str, Callable[[str, Path], Measurement]] = {
    "package scanners": lambda step, workdir: package_step(step, workdir, SCANNER_NAME),
    "package repeated": lambda step, workdir: package_step(step, workdir, REPEATED_NAME),
}


def _child(step: str, workdir: str, results: Queue[tuple[str, Any]]) -> None:
    """Run one step and report it; the module's imports are done by now, as in every child."""
    try:
        results.put(("ok", {**STEPS, **EXTRA_STEPS}[step](step, Path(workdir))))
    except BaseException:
        results.put(("error", traceback.format_exc()))


def measure(step: str, workdir: Path) -> Measurement:
    """Run ``step`` in a fresh spawned process, so that its peak RSS is its own."""
    context = mp.get_context("spawn")
    results: Queue[tuple[str, Any]] = context.Queue()
    child = context.Process(target=_child, args=(step, str(workdir), results))
    child.start()
    try:
        while True:
            try:
                status, payload = results.get(timeout=CHILD_POLL_S)
                break
            except queue.Empty:
                if child.is_alive():
                    continue
                try:  # it may have reported just before exiting
                    status, payload = results.get(timeout=CHILD_POLL_S)
                    break
                except queue.Empty:
                    raise RuntimeError(f"{step}: child exited with code {child.exitcode} "
                                       "without a result (out of memory?)") from None
    finally:
        child.join()
    if status != "ok":
        raise RuntimeError(f"{step} failed in its child process:\n{payload}")
    return payload  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------------
# Report


@dataclass
class Report:
    """Collects the measurements of one N and prints them."""

    requests: int
    measurements: dict[str, Measurement] = field(default_factory=dict)
    differ: dict[str, dict[str, int]] = field(default_factory=dict)  # fmt -> rollup -> keys

    def row(self, m: Measurement) -> str:
        """Return the table row of one measurement."""
        rate = m.rows / m.seconds if m.seconds else float("inf")
        return (f"{m.step:<16} {m.rows:>11,} {m.seconds:>9.3f} {m.cpu_seconds:>9.2f} "
                f"{rate:>12,.0f} {m.peak_rss_kib / 1024:>13.1f} {m.start_rss_kib / 1024:>11.1f}")

    @staticmethod
    def header() -> str:
        """Return the table header."""
        return (f"{'step':<16} {'rows':>11} {'seconds':>9} {'CPU s':>9} {'rows/s':>12} "
                f"{'peak RSS MiB':>13} {'at start':>11}")  # at start: interpreter and imports

    def side_by_side(self, fmt: str) -> str:
        """Return one line: package and pandas rows/s, the speed-up, memory and store size."""
        package, baseline = self.measurements[f"package {fmt}"], self.measurements[f"pandas {fmt}"]
        speedup = baseline.seconds / package.seconds
        cpu_ratio = baseline.cpu_seconds / package.cpu_seconds if package.cpu_seconds else 0.0
        per_million = package.store_bytes / (self.requests / 1e6) / 2**20
        return (f"  {self.requests:>12,} {fmt:<8} {package.rows / package.seconds:>12,.0f} "
                f"{baseline.rows / baseline.seconds:>12,.0f} {speedup:>8.2f}x "
                f"{cpu_ratio:>8.2f}x "
                f"{package.peak_rss_kib / 1024:>10.0f} {baseline.peak_rss_kib / 1024:>10.0f} "
                f"{per_million:>10.1f}")

    @staticmethod
    def side_by_side_header() -> str:
        """Return the header of ``side_by_side``."""
        return (f"  {'requests':>12} {'format':<8} {'package/s':>12} {'pandas/s':>12} "
                f"{'speed-up':>9} {'CPU ratio':>9} {'RSS MiB':>10} {'pandas RSS':>10} "
                f"{'MiB/M req':>10}")

    def agreement(self, fmt: str) -> str:
        """Return whether every rollup row of the package and the baseline is the same."""
        differ = {name: n for name, n in self.differ[fmt].items() if n}
        package = self.measurements[f"package {fmt}"]
        if not differ:
            summary = ", ".join(f"{k} {v:,}" for k, v in package.check.items())
            return f"  {fmt:<8} same rollups, row by row ({summary})"
        return (f"  {fmt:<8} DIFFER (keys missing on one side or with other values): "
                + ", ".join(f"{name} {n:,}" for name, n in differ.items()))

    def targets(self) -> list[str]:
        """Return the target lines: information only, nothing is asserted."""
        parquet = (self.measurements["pandas parquet"].seconds
                   / self.measurements["package parquet"].seconds)
        cpu_parquet = (self.measurements["pandas parquet"].cpu_seconds
                       / self.measurements["package parquet"].cpu_seconds)
        nginx = self.measurements["package nginx"]
        lines_per_s = nginx.rows / nginx.seconds
        peak = max(m.peak_rss_kib for step, m in self.measurements.items()
                   if step.startswith("package"))
        return [
            f"  Parquet ingest >= {TARGET_PARQUET_SPEEDUP:g}x faster than pandas: "
            f"{'reached' if parquet >= TARGET_PARQUET_SPEEDUP else 'NOT reached'} "
            f"({parquet:.2f}x; CPU ratio {cpu_parquet:.2f}x)",
            f"  nginx text >= {TARGET_NGINX_LINES_PER_S:,} lines/s: "
            f"{'reached' if lines_per_s >= TARGET_NGINX_LINES_PER_S else 'NOT reached'} "
            f"({lines_per_s:,.0f} lines/s)",
            f"  package peak RSS <= 1 GiB: "
            f"{'reached' if peak <= TARGET_PEAK_RSS_KIB else 'NOT reached'} "
            f"({peak / 1024:,.0f} MiB)",
        ]


def machine() -> str:
    """Return the platform, CPU count, load and library versions."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{platform.platform()}, {os.cpu_count()} CPUs (load average {load} at the end), "
            f"Python {platform.python_version()}, "
            f"duckdb {duckdb.__version__}, pandas {pd.__version__}, "
            f"pyarrow {pa.__version__}, numpy {np.__version__}, "
            f"mysetlist-slo {mysetlist_slo.__version__}")


def package_fingerprint() -> str:
    """Return a short hash of the package's source, to tell which code a run measured.

    The package is installed editable, so a change to its files between two steps would make
    the steps measure different code; comparing this before and after the run catches that.
    """
    root = Path(mysetlist_slo.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_revision() -> str:
    """Return ``git describe`` of the package's checkout ("-dirty" if changed), or "no git"."""
    git = shutil.which("git")
    if git is None:
        return "no git"
    found = subprocess.run([git, "describe", "--always", "--dirty"], capture_output=True,
                           text=True, cwd=Path(mysetlist_slo.__file__).parent, check=False)
    return found.stdout.strip() or "no git"


def mib(path: Path) -> str:
    """Return the size of a file in MiB, as text."""
    return f"{path.stat().st_size / 2**20:.1f} MiB"


# ---------------------------------------------------------------------------------------------
# Inputs for the optional steps


def write_scanner_log(path: Path, urls: int, seed: int = SEED) -> None:
    """Write an nginx log of ``urls`` requests, each to a distinct random scanner path (as
    bots probing for /wp-login.php, /.env ... send): the route bound must hold them."""
    rng = np.random.default_rng(seed + 1)
    cols = draw_requests(urls, seed + 2)
    junk = pa.array(rng.integers(0, 10**12, urls)).cast(pa.string())
    prefixes = _take(["/wp-login.php/", "/.env.", "/admin/", "/phpmyadmin/", "/cgi-bin/"],
                     rng.integers(0, 5, urls))
    table = export_table(cols).set_column(2, "path", pc.binary_join_element_wise(
        prefixes, junk, pa.array(rng.integers(0, 10**6, urls)).cast(pa.string()), "-x"))
    with open(path, "wb") as log:
        write_lines(log, nginx_lines(table, cols))


def write_repeated(source: Path, target: Path, copies: int, gzipped: bool) -> None:
    """Write ``copies`` copies of ``source`` one after the other (gzip-compressed if asked):
    a file as large as wanted, in bounded memory, to show ingest memory does not grow."""
    import gzip

    with (gzip.open(target, "wb", compresslevel=1) if gzipped
          else open(target, "wb")) as out:
        for _ in range(copies):
            with open(source, "rb") as chunk_source:
                shutil.copyfileobj(chunk_source, out, 16 << 20)


# ---------------------------------------------------------------------------------------------
# Command line


def requests_count(text: str) -> int:
    """Return a request count given as 1000000, 1M or 100M."""
    text = text.strip().upper()
    scale = {"K": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    value = int(float(text[:-1] if scale > 1 else text) * scale)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_rate(text: str) -> float:
    """Return a request rate (requests a second), refusing one not above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number of requests a second")
    return value


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=requests_count, nargs="+", default=[1_000_000,
                                                                                 10_000_000],
                        metavar="N", help="synthetic requests, one run per N "
                        "(default 1M 10M; 100M is an option)")
    parser.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where inputs and stores are written (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the inputs and stores; a later run with the same --workdir "
                             "reuses the inputs")
    parser.add_argument("--rate", type=positive_rate, metavar="R",
                        help="requests a second (e.g. 1000, the plan's target traffic): N "
                             "requests span N / R seconds instead of a week, so minutes and "
                             "routes hold as many requests as the production logs would")
    parser.add_argument("--scanner-urls", type=requests_count, default=0, metavar="K",
                        help="also ingest a log of K distinct scanner URLs (e.g. 100K) and "
                             "show the routes stay within the configured bound")
    parser.add_argument("--repeat", type=int, default=0, metavar="K",
                        help="also ingest the largest N's nginx log repeated K times (a file "
                             "larger than memory), to show the peak RSS does not grow")
    parser.add_argument("--gzip", action="store_true",
                        help="with --repeat: gzip the repeated log (the 10 GB gzip case)")
    return parser.parse_args(argv)


def cleanup(workdir: Path, created: bool, keep: bool) -> None:
    """Remove what the run wrote, unless asked to keep it."""
    if keep:
        print(f"kept: {workdir}")
        return
    if created:
        shutil.rmtree(workdir, ignore_errors=True)
        return
    for folder in workdir.glob("n*"):
        shutil.rmtree(folder, ignore_errors=True)


def run_size(workdir: Path, n: int, rate: float | None = None) -> Report:
    """Measure every step on N requests (over a week, or at ``rate`` requests a second),
    cross-check the rollups and print the report."""
    workdir.mkdir(parents=True, exist_ok=True)
    report = Report(n)
    how = ensure_inputs(workdir, n, rate)
    density = ("over one week" if rate is None
               else f"at {rate:,g} requests a second ({span_us(n, rate) / 3.6e9:.1f} h)")
    print(f"\n=== N = {n:,} requests {density}")
    print(f"inputs: {PARQUET_NAME} {mib(workdir / PARQUET_NAME)}, "
          f"{NGINX_NAME} {mib(workdir / NGINX_NAME)}; {how}; in {workdir}")
    print(report.header(), flush=True)
    for step in STEPS:
        measurement = measure(step, workdir)
        report.measurements[step] = measurement
        print(report.row(measurement), flush=True)
    print("where the time went:")
    for step, m in report.measurements.items():
        print(f"  {step:<16} {m.note}")
    for fmt in ("parquet", "nginx"):
        report.differ[fmt] = compare_rollups(workdir, fmt)
    print("rollup cross-check (every row of every rollup, package store vs pandas result):")
    print(report.agreement("parquet"))
    print(report.agreement("nginx"))
    print("targets (information only):")
    print("\n".join(report.targets()))
    return report


def main(argv: list[str] | None = None) -> int:
    """Generate the inputs, measure every step, print the report; return 1 if the package's
    rollups differ from the baseline's anywhere, else 0."""
    args = parse_args(argv)
    created = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="bench_ingest_")) if created else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    fingerprint = package_fingerprint()
    reports: list[Report] = []
    try:
        print("mysetlist-slo ingest benchmark: each step runs in a fresh process; peak RSS "
              "includes the interpreter and imports (the 'at start' column)")
        print(f"(the package validates all 9 columns, keeps {COUNTED_THRESHOLDS} latency "
              "thresholds and writes a DuckDB file; the baseline reads only the 5 columns its "
              "rollups use, validates nothing and keeps its results in memory)")
        folder = (lambda n: f"n{n}") if args.rate is None else (lambda n: f"n{n}-r{args.rate:g}")
        for n in args.requests:
            reports.append(run_size(workdir / folder(n), n, args.rate))
        largest = workdir / folder(max(args.requests))
        if args.scanner_urls:
            write_scanner_log(largest / SCANNER_NAME, args.scanner_urls)
            m = measure("package scanners", largest)
            max_routes = load_config().routes.max_routes
            print(f"\n{args.scanner_urls:,} distinct scanner URLs: {m.check['routes']} routes "
                  f"stored (bound {max_routes} + '(other)'), peak RSS {m.peak_rss_kib / 1024:.0f}"
                  f" MiB, {m.rows / m.seconds:,.0f} lines/s")
        if args.repeat:
            name = REPEATED_NAME
            write_repeated(largest / NGINX_NAME, largest / name, args.repeat, args.gzip)
            m = measure("package repeated", largest)
            print(f"\nthe {max(args.requests):,}-line log x{args.repeat}"
                  f"{' (gzip)' if args.gzip else ''}: {m.rows:,} lines, {mib(largest / name)}, "
                  f"peak RSS {m.peak_rss_kib / 1024:.0f} MiB, {m.rows / m.seconds:,.0f} lines/s")
        print("\nside by side (rows/s; speed-up = pandas seconds / package seconds; CPU ratio "
              "= pandas CPU seconds / package CPU seconds; RSS = peak; MiB/M req = store file "
              "per million requests):")
        print(Report.side_by_side_header())
        for report in reports:
            print(report.side_by_side("parquet"))
            print(report.side_by_side("nginx"))
        print(f"\nmachine: {machine()}")
        print(f"package: git {git_revision()}, source {fingerprint}")
        if package_fingerprint() != fingerprint:
            print("WARNING: the package's source changed during the run; the steps may have "
                  "measured different code")
    finally:
        cleanup(workdir, created, args.keep)
    differ = [r for r in reports for fmt in r.differ if any(r.differ[fmt].values())]
    if differ:
        print("cross-check FAILED: the package's rollups differ from the baseline's")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
