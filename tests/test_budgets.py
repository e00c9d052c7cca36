"""Error budgets: hand-worked numbers, windows, low traffic and no data."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mysetlist_slo import error_budget, error_budgets, ingest_file
from mysetlist_slo.config import parse_config

END = datetime(2026, 11, 23, tzinfo=UTC)


def config(objective: float = 99.9, window: str = "7d", min_events: int = 100,
           sli: str = "availability", extra: str = ""):
    return parse_config(f"""
min_events: {min_events}
slos:
  - {{name: s, sli: {sli}, objective: {objective}, window: {window}{extra}}}
""")


def test_hand_worked_budget() -> None:
    """1,000,000 requests with 700 errors against 99.9 % leave 30 % of the budget."""
    allowed, remaining = error_budget(1_000_000 - 700, 1_000_000, 99.9)
    assert allowed == pytest.approx(1000)
    assert remaining == pytest.approx(0.3)


def test_budget_from_the_store(store, tmp_path) -> None:
    """The same hand-worked case through ingest and SQL: 1,000,000 requests, 700 errors."""
    n = 1_000_000
    status = np.full(n, 200, dtype=np.int16)
    status[np.random.default_rng(0).choice(n, 700, replace=False)] = 503
    start = END - timedelta(days=6)
    ts = (np.datetime64(start.replace(tzinfo=None), "us")
          + (np.arange(n) * (5 * 86400 // n)).astype("timedelta64[s]"))
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                             "path": ["/"] * n, "status": status}), path)
    ingest_file(store, path)
    (row,) = error_budgets(store, config(), at=END).to_dict("records")
    assert (row["total"], row["bad"], row["status"]) == (n, 700, "ok")
    assert row["budget_remaining"] == pytest.approx(0.3)
    assert row["sli"] == pytest.approx(99.93)


def test_window_boundaries(store, write_log) -> None:
    """An event exactly at the window start counts; one exactly at the end does not."""
    start = END - timedelta(days=7)
    lines = [json.dumps({"timestamp": t.isoformat(), "path": "/", "status": s})
             for t, s in [(start, 500), (END, 500), (start + timedelta(hours=1), 200)]]
    ingest_file(store, write_log("r.jsonl", lines))
    (row,) = error_budgets(store, config(min_events=1), at=END).to_dict("records")
    assert (row["total"], row["bad"]) == (2, 1)


def test_no_data_is_not_perfect(store) -> None:
    """A window without events says 'no data', with no SLI, never 100 %."""
    (row,) = error_budgets(store, config(), at=END).to_dict("records")
    assert row["status"] == "no data" and row["sli"] is None
    assert row["minutes_with_data"] == 0


def test_not_enough_events(store, write_log) -> None:
    """Fewer events than min_events gives no verdict, even when all of them failed."""
    lines = [json.dumps({"timestamp": (END - timedelta(hours=1)).isoformat(), "path": "/",
                         "status": 500})] * 5
    ingest_file(store, write_log("r.jsonl", lines))
    (row,) = error_budgets(store, config(min_events=10), at=END).to_dict("records")
    assert row["status"] == "not enough events" and row["budget_remaining"] is None
    (row,) = error_budgets(store, config(min_events=5), at=END).to_dict("records")
    assert row["status"] == "breach" and row["budget_remaining"] < 0


def test_latency_sli_uses_route_filter_and_threshold(store, write_log) -> None:
    """Latency SLI: API requests under 200 ms over timed API requests; pages are not counted."""
    t = (END - timedelta(hours=2)).isoformat()
    rows = ([{"timestamp": t, "path": "/api/shows/1", "status": 200, "duration_ms": 199.9}] * 98
            + [{"timestamp": t, "path": "/api/shows/2", "status": 200, "duration_ms": 200}] * 2
            + [{"timestamp": t, "path": "/show/1", "status": 200, "duration_ms": 5000}] * 50)
    ingest_file(store, write_log("r.jsonl", [json.dumps(r) for r in rows]))
    cfg = config(objective=99, sli="latency", extra=", routes: ['/api/*'], threshold_ms: 200")
    (row,) = error_budgets(store, cfg, at=END).to_dict("records")
    assert (row["total"], row["good"]) == (100, 98)
    # 2 bad of an allowed 1: the budget is overspent by 100 %.
    assert row["budget_remaining"] == pytest.approx(-1.0)
    assert row["status"] == "breach"


def test_db_query_time_sli_from_statement_snapshots(store, tmp_path) -> None:
    """Between two snapshots 900 calls averaged 2 ms and 100 averaged 150 ms: against a
    100 ms threshold 900 of 1,000 calls are good."""
    t0 = END - timedelta(days=2)
    later = t0 + timedelta(days=1)
    path = tmp_path / "pss.csv"
    path.write_text("timestamp,queryid,query,calls,total_exec_time,mean_exec_time,rows\n"
                    f"{t0.isoformat()},a,q,100,200,2,1\n{t0.isoformat()},b,q,10,1500,150,1\n"
                    f"{later.isoformat()},a,q,1000,2000,2,1\n"
                    f"{later.isoformat()},b,q,110,16500,150,1\n")
    ingest_file(store, path)
    cfg = config(objective=99, sli="db_query_time", extra=", threshold_ms: 100", min_events=1)
    (row,) = error_budgets(store, cfg, at=END).to_dict("records")
    assert (row["good"], row["total"]) == (900, 1000)
    assert row["status"] == "breach"  # 10 % slow against 1 % allowed
