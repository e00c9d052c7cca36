"""The schema step that turns 3-significant-digit minute histograms into 5-minute sketches, on a
store written by the previous version: percentiles stay within the documented 1.51 %, exact
counters are untouched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mysetlist_slo import count_below, latency_percentiles, open_store
from mysetlist_slo.resilience.regions import region_traffic
from mysetlist_slo.store.database import MIGRATIONS, latest_version, schema_version

START = datetime(2026, 11, 2, tzinfo=UTC)
SKETCH_STEP = next(i for i, step in enumerate(MIGRATIONS)
                   if any("CREATE TABLE latency_sketch" in s for s in step))

# The previous version's rollup SQL, kept here as data: its bucket was the latency in us rounded
# down to three significant digits, by this ladder of integer comparisons.
OLD_SIG3_FLOOR = "CASE WHEN v < 1000 THEN v " + " ".join(
    f"WHEN v < {10 ** (d + 1)} THEN v - v % {10 ** (d - 2)}" for d in range(3, 18)) + " END"
OLD_ROLLUPS = [
    f"""INSERT INTO latency_histogram
        SELECT 1, date_trunc('minute', ts), route, {OLD_SIG3_FLOOR}, count(*)
        FROM raw GROUP BY ALL""",
    f"""INSERT INTO region_latency
        SELECT 1, date_trunc('minute', ts), region, {OLD_SIG3_FLOOR}, count(*)
        FROM raw GROUP BY ALL""",
    """INSERT INTO request_counts
        SELECT 1, date_trunc('minute', ts), route, 200, count(*), count(*), sum(v), 0
        FROM raw GROUP BY ALL""",
    """INSERT INTO region_counts
        SELECT 1, date_trunc('minute', ts), region, 200, count(*), count(*), sum(v)
        FROM raw GROUP BY ALL""",
    """INSERT INTO request_good
        SELECT 1, date_trunc('minute', ts), route, 200.0, count(*) FILTER (WHERE v < 200000)
        FROM raw GROUP BY ALL""",
]


@pytest.fixture(name="old_store")
def fixture_old_store(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    """A store at the schema before the sketch step, filled by the old rollup SQL from 60,000
    raw requests over three hours on two routes and two regions (zero and sub-ms latencies too)."""
    rng = np.random.default_rng(5)
    n = 60_000
    raw = pd.DataFrame({
        "ts": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, 3 * 3600 * 10**6, n),
                                                    unit="us"),
        "route": rng.choice(["/show/[id]", "/api/search"], n),
        "region": rng.choice(["eu", "us"], n),
        "v": np.round(rng.lognormal(np.log(60_000), 1.2, n)).astype(np.int64),
    })
    raw.loc[:50, "v"] = 0
    raw.loc[51:300, "v"] = rng.integers(1, 1000, 250)
    db = tmp_path / "old.duckdb"
    con = open_store(db, migrations=MIGRATIONS[:SKETCH_STEP])
    try:
        assert schema_version(con) == SKETCH_STEP
        con.register("raw_frame", raw)
        con.execute("CREATE TEMP TABLE raw AS SELECT * FROM raw_frame")
        for statement in OLD_ROLLUPS:
            con.execute(statement)
    finally:
        con.close()
    return db, raw


def test_migration_converts_histograms_within_bound(old_store) -> None:
    """After the step, p50/p90/p99/p99.9 per route and per region are within 1.51 % of numpy's
    nearest-rank percentiles of the raw latencies, and the old tables are gone."""
    db, raw = old_store
    con = open_store(db)
    try:
        assert schema_version(con) == latest_version()
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert "latency_histogram" not in tables and "region_latency" not in tables
        end = START + timedelta(days=1)
        quantiles = (0.5, 0.9, 0.99, 0.999)
        for route in ("/show/[id]", "/api/search", "*"):
            got = latency_percentiles(con, START, end, quantiles, routes=[route])
            exact_us = raw["v"] if route == "*" else raw.loc[raw["route"] == route, "v"]
            assert list(got["samples"]) == [len(exact_us)] * len(quantiles)
            for q, value in zip(got["quantile"], got["latency_ms"], strict=True):
                exact = float(np.quantile(exact_us, q, method="inverted_cdf")) / 1000
                assert abs(value - exact) <= 0.0151 * exact, (route, q, value, exact)
        regions = region_traffic(con, START, end).set_index("region")
        for region, frame in raw.groupby("region"):
            for column, q in (("p50_latency_ms", 0.5), ("p95_latency_ms", 0.95)):
                exact = float(np.quantile(frame["v"], q, method="inverted_cdf")) / 1000
                assert abs(regions.loc[region, column] - exact) <= 0.0151 * exact
    finally:
        con.close()


def test_migration_keeps_exact_counters(old_store) -> None:
    """Counts at the configured 200 ms stay exact after the step, and zero latencies read 0."""
    db, raw = old_store
    con = open_store(db)
    try:
        end = START + timedelta(days=1)
        assert count_below(con, 200, START, end) == (int((raw["v"] < 200_000).sum()), len(raw))
        lowest = latency_percentiles(con, START, end, (0.0005,))
        assert lowest["latency_ms"].tolist() == [0.0]
    finally:
        con.close()
