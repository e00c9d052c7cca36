"""Rollups: exact per-minute counters, and histograms whose percentiles are within 1 % of exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mysetlist_slo import count_below, ingest_file, latency_percentiles

START = datetime(2026, 11, 2, tzinfo=UTC)


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


def test_histogram_percentiles_within_one_percent(store, tmp_path, latencies) -> None:
    """p50/p95/p99 from the histograms are within 1 % of numpy's exact percentiles."""
    status = np.full(len(latencies), 200)
    ingest_file(store, write_export(tmp_path / "r.parquet", latencies, status))
    got = latency_percentiles(store, START, START + timedelta(days=1), (0.5, 0.95, 0.99))
    assert list(got["samples"]) == [len(latencies)] * 3
    exact_ms = latencies / 1000
    for q, value in zip(got["quantile"], got["latency_ms"], strict=True):
        nearest_rank = np.percentile(exact_ms, 100 * q, method="inverted_cdf")
        interpolated = np.percentile(exact_ms, 100 * q)  # numpy's default, linear
        assert value <= nearest_rank and (nearest_rank - value) / nearest_rank < 0.01
        assert abs(value - interpolated) / interpolated < 0.01


@pytest.mark.parametrize("threshold_ms", [200, 100, 2.5, 123, 999, 1000, 80.1])
def test_good_count_at_three_digit_threshold_is_exact(store, tmp_path, latencies,
                                                      threshold_ms) -> None:
    """Requests faster than any 3-significant-digit threshold are counted exactly."""
    ingest_file(store, write_export(tmp_path / "r.parquet", latencies,
                                    np.full(len(latencies), 200)))
    below, total = count_below(store, threshold_ms, START, START + timedelta(days=1))
    assert total == len(latencies)
    assert below == int((latencies < round(threshold_ms * 1000)).sum())


def test_buckets_round_down_to_three_significant_digits(store, tmp_path) -> None:
    """123.456 ms lands in the 123 ms bucket and 2,468 ms in 2,460 ms (DESIGN.md's examples)."""
    us = np.array([123_456, 2_468_000, 999, 1_000, 1_009, 0, 100_000_000])
    ingest_file(store, write_export(tmp_path / "r.parquet", us, np.full(len(us), 200)))
    buckets = store.execute(
        "SELECT bucket_us, sum(count) FROM latency_histogram GROUP BY 1 ORDER BY 1").fetchall()
    assert buckets == [(0, 1), (999, 1), (1_000, 2), (123_000, 1), (2_460_000, 1),
                       (100_000_000, 1)]


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
