"""Capacity sources (Prometheus, PgBouncer, pg_stat_statements) and the capacity plan."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from conftest import DEMO_END

from mysetlist_slo import IngestError, ingest_file, load_config, open_store
from mysetlist_slo.capacity.plan import (
    capacity_plan,
    fast_statement_share,
    pgbouncer_rates,
    statement_times,
)

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def test_prometheus_matrix_vector_and_text(store, tmp_path) -> None:
    """query_range (matrix), query (vector) and the text format all land as samples; NaN
    points are skipped, not stored as zero."""
    matrix = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "cpu", "pod": "web-1"},
         "values": [[1700000000, "0.5"], [1700000060, "NaN"], [1700000120, "0.7"]]}]}}
    vector = {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"__name__": "up", "job": "web"}, "value": [1700000000.5, "1"]}]}}
    text = ('# HELP http_requests_total Requests\n# TYPE http_requests_total counter\n'
            'http_requests_total{code="200",path="/<x>"} 1027 1700000000000\n')
    for name, body in (("m.json", json.dumps(matrix)), ("v.json", json.dumps(vector)),
                       ("metrics.prom", text)):
        (tmp_path / name).write_text(body)
        assert ingest_file(store, tmp_path / name).kind == "prometheus"
    rows = store.execute("SELECT name, labels, value, epoch(ts) FROM metrics "
                         "ORDER BY name, ts").fetchall()
    assert rows == [("cpu", '{"pod": "web-1"}', 0.5, 1700000000.0),
                    ("cpu", '{"pod": "web-1"}', 0.7, 1700000120.0),
                    ("http_requests_total", '{"code": "200", "path": "/<x>"}', 1027.0,
                     1700000000.0),
                    ("up", '{"job": "web"}', 1.0, 1700000000.5)]


def test_prometheus_error_response(store, tmp_path) -> None:
    """An API error response is refused, naming what it said."""
    path = tmp_path / "e.json"
    path.write_text(json.dumps({"status": "error", "data": {"resultType": "matrix",
                                                            "result": []}}))
    with pytest.raises(IngestError, match="status: 'error'"):
        ingest_file(store, path, kind="prometheus")


def stats_csv(rows: list[tuple[int, int, int]]) -> str:
    """SHOW STATS snapshots every 5 minutes: (total_xact_count, total_xact_time us, wait us)."""
    lines = ["timestamp,database,total_xact_count,total_query_count,total_received,"
             "total_sent,total_xact_time,total_query_time,total_wait_time"]
    for i, (count, busy, wait) in enumerate(rows):
        stamp = (T0 + timedelta(minutes=5 * i)).isoformat()
        lines.append(f"{stamp},app,{count},{count},0,0,{busy},{busy},{wait}")
    return "\n".join(lines) + "\n"


def test_pgbouncer_rates_survive_a_restart(store, tmp_path) -> None:
    """Counters are cumulative; when one goes down PgBouncer restarted and the new value is
    the increase. 600 transactions in 300 s is 2/s; 2,400,000 us over 600 is 4 ms."""
    path = tmp_path / "stats.csv"
    path.write_text(stats_csv([(1000, 4_000_000, 10_000), (1600, 6_400_000, 16_000),
                               (600, 2_400_000, 6_000), (1200, 4_800_000, 12_000)]))
    assert ingest_file(store, path).kind == "pgbouncer-stats"
    rates = pgbouncer_rates(store, T0, T0 + timedelta(hours=1))
    assert rates["tps"].tolist() == [2.0, 2.0, 2.0]
    assert rates["mean_xact_ms"].tolist() == [4.0, 4.0, 4.0]
    assert rates["mean_wait_ms"].tolist() == [0.01, 0.01, 0.01]
    assert rates["restarted"].tolist() == [False, True, False]


def test_statement_share_weighted_by_calls(store, tmp_path) -> None:
    """Two snapshots: 900 calls at 2 ms and 100 calls at 150 ms in between: 90 % fast."""
    path = tmp_path / "pss.csv"
    path.write_text("timestamp,queryid,query,calls,total_exec_time,mean_exec_time,rows\n"
                    f"{T0.isoformat()},a,\"SELECT 1\",100,200,2,100\n"
                    f"{T0.isoformat()},b,\"SELECT pg_sleep(0.15)\",10,1500,150,10\n"
                    f"{(T0 + timedelta(days=1)).isoformat()},a,\"SELECT 1\",1000,2000,2,1000\n"
                    f"{(T0 + timedelta(days=1)).isoformat()},b,\"SELECT pg_sleep(0.15)\",110,"
                    "16500,150,110\n")
    assert ingest_file(store, path).kind == "pg-statements"
    statements = statement_times(store, T0, T0 + timedelta(days=2))
    assert statements[["queryid", "calls", "mean_ms"]].values.tolist() == [
        ["b", 100, 150.0], ["a", 900, 2.0]]
    assert fast_statement_share(statements) == pytest.approx(0.9)


def test_snapshot_without_zone_is_rejected(store, tmp_path) -> None:
    """A snapshot time without an offset is refused with its line and field."""
    path = tmp_path / "stats.csv"
    path.write_text(stats_csv([(1, 1, 1)]).replace("+00:00", ""))
    with pytest.raises(IngestError, match=r"stats.csv:2: timestamp: no time zone offset"):
        ingest_file(store, path)


def test_capacity_plan_on_the_demo(demo_store_path) -> None:
    """The plan recovers the demo pods' CPU model and reads the pools and statements."""
    con = open_store(demo_store_path, read_only=True)
    plan = capacity_plan(con, load_config(), DEMO_END, history_days=14, horizon_days=7)
    con.close()
    assert plan.pod_model is not None
    assert plan.pod_model.idle_cores == pytest.approx(0.05, abs=0.01)
    assert plan.pod_model.cores_per_rps == pytest.approx(0.6, rel=0.05)  # the demo's own
    assert plan.hpa is not None and plan.hpa.configured_max_is_enough
    assert plan.hpa_concurrent_users is not None
    assert not plan.hpa_concurrent_users.configured_max_is_enough  # 1,000 req/s is far more
    assert plan.pool is not None and plan.pool.servers >= 1
    # The demo's statements take 99 of every 100.5 transactions fast, 1.5 slow (180 ms).
    assert plan.statements_fast_share == pytest.approx(0.99 / 1.005, abs=1e-3)
    assert "will not be enough" in plan.verdict
