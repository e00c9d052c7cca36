"""Rollups: exact per-minute counters, and sketches whose percentiles are within 1 % of exact."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo import count_below, ingest_file, latency_percentiles, open_store
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.latency import exact_share
from mysetlist_slo.store.rollups import ZERO_BUCKET, sketch_index

START = datetime(2026, 11, 2, tzinfo=UTC)
GAMMA_EXACT = Fraction(101, 99)


def write_export(path: Path, us: np.ndarray, status: np.ndarray, paths: list[str] | None = None,
                 seconds: np.ndarray | None = None) -> Path:
    """Write a canonical Parquet export of requests with the given latencies in microseconds."""
    n = len(us)
    if seconds is None:
        seconds = np.arange(n) % (6 * 3600)  # spread over six hours
    ts = np.datetime64(START.replace(tzinfo=None), "us") + seconds.astype("timedelta64[s]")
    pq.write_table(pa.table({
        "timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "path": paths or ["/api/shows/1"] * n,
        "status": status,
        "duration_ms": us / 1000,
    }), path)
    return path


@pytest.fixture(name="latencies", scope="module")
def fixture_latencies() -> np.ndarray:
    """200,000 log-normal latencies (median 80 ms, heavy tail), integer microseconds."""
    rng = np.random.default_rng(7)
    return np.round(rng.lognormal(np.log(80_000), 0.9, 200_000)).astype(np.int64)


def bucket_of(us: int) -> int:
    """The sketch bucket of ``us`` by exact rational arithmetic (no floating point): the i with
    gamma^(i-1) < us <= gamma^i, gamma = 101/99; 0 us is the zero bucket."""
    if us == 0:
        return ZERO_BUCKET
    i = round(math.log(us) / math.log(101 / 99))  # a first guess, settled exactly below
    while GAMMA_EXACT ** i < us:
        i += 1
    while GAMMA_EXACT ** (i - 1) >= us:
        i -= 1
    return i


def test_percentiles_within_one_percent(store, tmp_path, latencies) -> None:
    """p50/p95/p99 from the sketches are within 1 % of numpy's exact nearest-rank percentiles."""
    status = np.full(len(latencies), 200)
    ingest_file(store, write_export(tmp_path / "r.parquet", latencies, status))
    got = latency_percentiles(store, START, START + timedelta(days=1), (0.5, 0.95, 0.99))
    assert list(got["samples"]) == [len(latencies)] * 3
    exact_ms = latencies / 1000
    for q, value in zip(got["quantile"], got["latency_ms"], strict=True):
        nearest_rank = np.percentile(exact_ms, 100 * q, method="inverted_cdf")
        assert abs(value - nearest_rank) <= 0.01 * nearest_rank


# Latencies on and next to bucket edges (the integers around gamma^k), and ordinary ones.
_EDGES = sorted({v for k in range(0, 1200, 7) for e in [float(GAMMA_EXACT ** k)]
                 for v in (int(e), int(e) + 1) if v < 10**10})
_LATENCY = st.one_of(st.sampled_from(_EDGES), st.integers(0, 10**8))


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(us=st.lists(_LATENCY, min_size=1, max_size=400),
       quantiles=st.lists(st.floats(0.001, 1.0), min_size=1, max_size=4, unique=True))
def test_percentiles_within_one_percent_any_sample(tmp_path_factory, us, quantiles) -> None:
    """For any latencies (bucket edges included) and quantiles, each percentile is within 1 %
    of numpy's nearest-rank percentile of the raw values (0 us reads back as 0)."""
    folder = tmp_path_factory.mktemp("sketch")
    con = open_store(folder / "s.duckdb")
    try:
        values = np.array(us, dtype=np.int64)
        ingest_file(con, write_export(folder / "r.parquet", values, np.full(len(values), 200)))
        got = latency_percentiles(con, START, START + timedelta(days=1), quantiles)
    finally:
        con.close()
    for q, value in zip(got["quantile"], got["latency_ms"], strict=True):
        exact = float(np.quantile(values / 1000, q, method="inverted_cdf"))
        assert abs(value - exact) <= 0.01 * exact * (1 + 1e-9), (q, value, exact)


def test_buckets_follow_the_log_mapping(store, tmp_path) -> None:
    """Each latency lands in the bucket i with gamma^(i-1) < v <= gamma^i, checked in exact
    rational arithmetic, bucket edges up to 10^10 us included."""
    us = np.array([123_456, 2_468_000, 999, 1_000, 1_009, 0, 1, 2, 100_000_000, *_EDGES])
    ingest_file(store, write_export(tmp_path / "r.parquet", us, np.full(len(us), 200)))
    got = dict(store.execute(
        "SELECT bucket, sum(count) FROM latency_sketch GROUP BY 1").fetchall())
    expected: dict[int, int] = {}
    for v in us:
        expected[bucket_of(int(v))] = expected.get(bucket_of(int(v)), 0) + 1
    assert got == expected
    # numpy's reading of the mapping (the bench's baseline) agrees with the exact one too
    assert [int(b) for b in sketch_index(us)] == [bucket_of(int(v)) for v in us]


def test_sketch_rows_grow_with_slots_not_requests(store, tmp_path) -> None:
    """Ten times the requests in the same hour add no sketch rows beyond the distinct buckets:
    each 5-minute slot has one row per occupied bucket."""
    rng = np.random.default_rng(11)
    rows = []
    for n, name in ((20_000, "small"), (200_000, "large")):
        us = np.round(rng.lognormal(np.log(80_000), 0.5, n)).astype(np.int64)
        seconds = rng.integers(0, 3600, n)
        ingest_file(store, write_export(tmp_path / f"{name}.parquet", us, np.full(n, 200),
                                        seconds=seconds))
        written = store.execute("SELECT count(*) FROM latency_sketch WHERE ingest_id = "
                                "(SELECT max(id) FROM ingests)").fetchall()[0][0]
        slots = seconds // 300
        distinct = len({(int(s), bucket_of(int(v))) for s, v in zip(slots, us, strict=True)})
        assert written == distinct
        rows.append(written)
    assert rows[1] < 1.5 * rows[0] and rows[1] <= 12 * 400


@pytest.mark.parametrize("threshold_ms", [200, 100, 2.5, 123, 999, 1000, 80.1])
def test_good_count_at_configured_threshold_is_exact(store, tmp_path, latencies,
                                                     threshold_ms) -> None:
    """Requests faster than a threshold configured at ingest are counted exactly."""
    config = parse_config(f"latency_thresholds_ms: [{threshold_ms}]")
    ingest_file(store, write_export(tmp_path / "r.parquet", latencies,
                                    np.full(len(latencies), 200)), config=config)
    below, total = count_below(store, threshold_ms, START, START + timedelta(days=1))
    assert total == len(latencies)
    assert below == int((latencies < round(threshold_ms * 1000)).sum())
    assert exact_share(store, threshold_ms, START, START + timedelta(days=1)) == 1.0


@pytest.mark.parametrize("threshold_ms", [150, 123.4, 80.1, 333])
def test_good_count_at_unconfigured_threshold_is_within_a_bucket(store, tmp_path, latencies,
                                                                 threshold_ms) -> None:
    """A threshold not configured at ingest is estimated from the sketch: the count lies between
    the exact counts at threshold / 1.01 and threshold / 0.99, and is flagged as not exact."""
    config = parse_config("latency_thresholds_ms: [200]")
    ingest_file(store, write_export(tmp_path / "r.parquet", latencies,
                                    np.full(len(latencies), 200)), config=config)
    below, total = count_below(store, threshold_ms, START, START + timedelta(days=1))
    t_us = threshold_ms * 1000
    assert total == len(latencies)
    assert int((latencies <= t_us / 1.01).sum()) <= below <= int((latencies < t_us / 0.99).sum())
    assert exact_share(store, threshold_ms, START, START + timedelta(days=1)) == 0.0


def test_minute_counters_are_exact(store, tmp_path) -> None:
    """Requests, 5xx, 4xx and good counts per minute and route match a count of the raw rows."""
    rng = np.random.default_rng(3)
    n = 50_000
    seconds = rng.integers(0, 3 * 3600, n)
    status = rng.choice([200, 201, 304, 404, 429, 500, 502, 503], n,
                        p=[0.8, 0.05, 0.05, 0.04, 0.02, 0.02, 0.01, 0.01])
    paths = rng.choice(["/show/1", "/show/2", "/artist/x", "/api/search?q=a"], n).tolist()
    us = rng.integers(1_000, 400_000, n)
    ingest_file(store, write_export(tmp_path / "r.parquet", us, status, paths, seconds))
    got = store.execute("""
        SELECT epoch(minute)::BIGINT AS m, route,
               sum(requests), coalesce(sum(requests) FILTER (WHERE status >= 500), 0),
               coalesce(sum(requests) FILTER (WHERE status BETWEEN 400 AND 499), 0)
        FROM request_counts GROUP BY ALL ORDER BY ALL""").fetchall()
    routes = {"/show/1": "/show/[id]", "/show/2": "/show/[id]", "/artist/x": "/artist/[slug]",
              "/api/search?q=a": "/api/search"}
    minute = int(START.timestamp()) + seconds // 60 * 60
    route = np.array([routes[p] for p in paths])
    expected = []
    for m in np.unique(minute):
        for r in np.unique(route):
            sel = (minute == m) & (route == r)
            if sel.any():
                expected.append((int(m), str(r), int(sel.sum()), int((sel & (status >= 500)).sum()),
                                 int((sel & (status >= 400) & (status < 500)).sum())))
    assert got == expected
    good = store.execute("SELECT sum(good) FROM request_good WHERE threshold_ms = 200").fetchall()
    assert good[0][0] == int(((us < 200_000) & (status < 500)).sum())  # answered requests only


def test_every_rollup_row_matches_the_raw_rows(store, tmp_path) -> None:
    """Every row of every request rollup (counts, good counts, sketches, per region, per cache
    outcome) equals a plain pandas rollup of the raw rows, untimed requests and 5xx included."""
    rng = np.random.default_rng(19)
    n = 30_000
    seconds = rng.integers(0, 2 * 3600, n)
    ts = pd.Timestamp(START) + pd.to_timedelta(seconds, unit="s")
    status = rng.choice([200, 304, 404, 500, 502], n, p=[0.8, 0.05, 0.05, 0.05, 0.05])
    paths = rng.choice(["/show/1", "/show/2", "/artist/x", "/api/search?q=a"], n)
    us = rng.integers(0, 900_000, n).astype(float)
    us[rng.random(n) < 0.1] = np.nan  # requests without a duration: counted, not timed
    body = rng.integers(0, 10_000, n)
    region = rng.choice(np.array(["eu", "us", None], dtype=object), n)
    cache = rng.choice(np.array(["HIT", "MISS", None], dtype=object), n)
    pq.write_table(pa.table({
        "timestamp": pa.array(ts.to_numpy(), pa.timestamp("us", tz="UTC")),
        "path": paths, "status": status, "bytes": body,
        "duration_ms": pa.array(us / 1000, pa.float64(), from_pandas=True),  # NaN: null
        "region": pa.array(region, pa.string()), "cache_status": pa.array(cache, pa.string()),
    }), tmp_path / "r.parquet")
    config = parse_config("latency_thresholds_ms: [100, 251]")
    ingest_file(store, tmp_path / "r.parquet", config=config)

    # No route patterns configured: ids collapse, the rest is its own template.
    routes = {"/show/1": "/show/[id]", "/show/2": "/show/[id]", "/artist/x": "/artist/x",
              "/api/search?q=a": "/api/search"}
    raw = pd.DataFrame({"minute": (seconds // 60) * 60 + int(START.timestamp()),
                        "route": [routes[p] for p in paths], "status": status, "us": us,
                        "bytes": body, "region": region, "cache": cache})
    raw["slot"] = raw["minute"] // 300 * 300
    raw["bucket"] = np.where(raw["us"].isna(), 0, sketch_index(raw["us"].fillna(1)))
    answered = raw[raw["us"].notna() & (raw["status"] < 500)]

    def rows(query: str) -> list[tuple]:
        return sorted(store.execute(query).fetchall())

    def frame_rows(frame: pd.DataFrame) -> list[tuple]:
        return sorted(tuple(int(v) if isinstance(v, (int, np.integer, float, np.floating))
                            else v for v in row) for row in frame.itertuples(index=False))

    counts = raw.groupby(["minute", "route", "status"]).agg(
        requests=("us", "size"), timed=("us", "count"), duration=("us", "sum"),
        bytes=("bytes", "sum")).reset_index()
    assert rows("SELECT epoch(minute)::BIGINT, route, status, requests, timed, duration_sum_us,"
                " bytes_sum FROM request_counts") == frame_rows(counts)
    good = [(m, r, t, int((g["us"] < t * 1000).sum()))
            for (m, r), g in answered.groupby(["minute", "route"]) for t in (100, 251)]
    assert rows("SELECT epoch(minute)::BIGINT, route, threshold_ms, good "
                "FROM request_good") == sorted(good)
    sketch = answered.groupby(["slot", "route", "bucket"]).size().reset_index()
    assert rows("SELECT epoch(slot)::BIGINT, route, bucket, count "
                "FROM latency_sketch") == frame_rows(sketch)
    regional = raw[raw["region"].notna()]
    region_counts = regional.groupby(["minute", "region", "status"]).agg(
        requests=("us", "size"), timed=("us", "count"), duration=("us", "sum")).reset_index()
    assert rows("SELECT epoch(minute)::BIGINT, region, status, requests, timed, "
                "duration_sum_us FROM region_counts") == frame_rows(region_counts)
    region_sketch = answered[answered["region"].notna()].groupby(
        ["slot", "region", "bucket"]).size().reset_index()
    assert rows("SELECT epoch(slot)::BIGINT, region, bucket, count "
                "FROM region_latency_sketch") == frame_rows(region_sketch)
    cached = raw[raw["cache"].notna()].groupby(["minute", "route", "cache"]).agg(
        requests=("us", "size"), bytes=("bytes", "sum")).reset_index()
    assert rows("SELECT epoch(minute)::BIGINT, route, cache_status, requests, bytes_sum "
                "FROM cache_counts") == frame_rows(cached)
