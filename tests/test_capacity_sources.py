"""Capacity sources (Prometheus, PgBouncer, pg_stat_statements) and the capacity plan."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest
from conftest import DEMO_END

from mysetlist_slo import IngestError, ingest_file, load_config, open_store
from mysetlist_slo.capacity.plan import (
    capacity_plan,
    cpu_per_pod,
    fast_statement_share,
    mean_transaction_s,
    pgbouncer_rates,
    pgbouncer_waits,
    statement_times,
    transactions_per_request,
)
from mysetlist_slo.capacity.pools import erlang_c, size_pool
from mysetlist_slo.collect.landing import land
from mysetlist_slo.collect.postgres import SETTINGS
from mysetlist_slo.config.model import SloConfig
from mysetlist_slo.report.summaries import capacity_document, summary_markdown, validate
from mysetlist_slo.slo.sli import event_minutes
from mysetlist_slo.store.database import MIGRATIONS, latest_version, schema_version
from mysetlist_slo.store.snapshots import Snapshot

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


# Two roles (userid 10 and 20) run the same statement (queryid q1) in one database, 10 calls
# per hour each, every call 5 ms; snapshots hourly. Role 20's view is reset between the 2nd
# and 3rd snapshot (pg_stat_statements_reset for that user): its counter starts again.
TWO_ROLES = [
    # hour, userid, cumulative calls, cumulative ms
    (0, "10", 1000, 5000.0), (0, "20", 500, 2500.0),
    (1, "10", 1010, 5050.0), (1, "20", 510, 2550.0),
    (2, "10", 1020, 5100.0), (2, "20", 10, 50.0),
    (3, "10", 1030, 5150.0), (3, "20", 20, 100.0),
]


def statements_csv(rows: list[tuple[int, str, int, float]]) -> str:
    """pg_stat_statements snapshots with the view's full key; toplevel printed as psql does."""
    lines = ["timestamp,userid,dbid,queryid,toplevel,query,calls,total_exec_time,"
             "mean_exec_time,rows"]
    for hour, userid, calls, total in rows:
        stamp = (T0 + timedelta(hours=hour)).isoformat()
        lines.append(f"{stamp},{userid},16384,q1,t,\"SELECT 1\",{calls},{total},5,{calls}")
    return "\n".join(lines) + "\n"


def test_statement_deltas_per_role(store, tmp_path) -> None:
    """Two roles x 10 calls/h over 4 hourly snapshots are 60 calls (3 intervals x 2 roles x
    10), in the capacity plan and in the db-query-time SLI; role 20's reset is its own."""
    path = tmp_path / "pss.csv"
    path.write_text(statements_csv(TWO_ROLES))
    assert ingest_file(store, path).kind == "pg-statements"
    times = statement_times(store, T0, T0 + timedelta(hours=4))
    by_role = times.set_index("userid")
    assert by_role["calls"].to_dict() == {"10": 30, "20": 30}
    assert by_role["exec_ms"].to_dict() == {"10": 150.0, "20": 150.0}
    assert by_role["mean_ms"].to_dict() == {"10": 5.0, "20": 5.0}
    assert by_role["resets"].to_dict() == {"10": 0, "20": 1}
    slo = SloConfig(name="db", sli="db_query_time", threshold_ms=100, objective=99)
    events = event_minutes(store, slo, T0, T0 + timedelta(hours=4))
    assert events["total"].sum() == 60 and events["good"].sum() == 60


def test_statement_window_keeps_its_first_interval(store, tmp_path) -> None:
    """Differences are taken before the window is cut: a window starting at the 2nd snapshot
    holds the interval ending there (10 calls per role), not from the first snapshot in it."""
    path = tmp_path / "pss.csv"
    path.write_text(statements_csv(TWO_ROLES))
    ingest_file(store, path)
    times = statement_times(store, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert times.set_index("userid")["calls"].to_dict() == {"10": 10, "20": 10}


def test_same_statement_key_twice_in_a_snapshot_is_rejected(store, tmp_path) -> None:
    """An export without userid that holds two roles' rows of one queryid cannot be told
    apart: the second row is refused, naming its line and the key."""
    path = tmp_path / "pss.csv"
    path.write_text("timestamp,queryid,query,calls,total_exec_time\n"
                    f"{T0.isoformat()},q1,SELECT 1,1000,5000\n"
                    f"{T0.isoformat()},q1,SELECT 1,500,2500\n")
    with pytest.raises(IngestError, match=r"pss.csv:3: userid, dbid, queryid, toplevel: same "
                                          r"as line 2 in the same snapshot"):
        ingest_file(store, path)


def test_store_of_the_previous_version_migrates_statements(db_path, tmp_path) -> None:
    """A store written at the previous schema version (statements without userid, dbid,
    toplevel) opens at the latest version with its rows kept, read as one key per queryid,
    and takes the full key from new loads."""
    old = open_store(db_path, migrations=MIGRATIONS[:-1])
    old.execute("INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, "
                "loaded_at, seconds) VALUES (nextval('ingest_id_seq'), 'x', 'pg-statements', "
                "'old.csv', 0, 2, 0, now(), 0)")
    old.execute("INSERT INTO pg_statements (ingest_id, ts, queryid, query, calls, "
                "total_exec_time) VALUES (1, ?, 'q0', 'SELECT 0', 100, 200.0), "
                "(1, ?, 'q0', 'SELECT 0', 150, 300.0)", [T0, T0 + timedelta(hours=1)])
    old.close()
    con = open_store(db_path)
    try:
        assert schema_version(con) == latest_version()
        path = tmp_path / "pss.csv"
        path.write_text(statements_csv(TWO_ROLES))
        ingest_file(con, path)
        times = statement_times(con, T0, T0 + timedelta(hours=4))
        calls = {(r.userid if isinstance(r.userid, str) else None, r.queryid): r.calls
                 for r in times.itertuples()}
        assert calls == {(None, "q0"): 50, ("10", "q1"): 30, ("20", "q1"): 30}
        assert con.execute("SELECT count(*) FROM pg_statements WHERE toplevel").fetchone() == (8,)
    finally:
        con.close()


def show_stats(per_minute: dict[str, tuple[int, int, int]], minutes: int) -> str:
    """SHOW STATS every minute from T0; per database the increase per minute of
    (transactions, transaction time us, wait time us), starting from 1,000,000 each."""
    lines = ["timestamp,database,total_xact_count,total_query_count,total_received,"
             "total_sent,total_xact_time,total_query_time,total_wait_time"]
    for m in range(minutes + 1):
        stamp = (T0 + timedelta(minutes=m)).isoformat()
        for database, (xacts, busy, wait) in per_minute.items():
            count = 1_000_000 + m * xacts
            lines.append(f"{stamp},{database},{count},{count},0,0,{1_000_000 + m * busy},"
                         f"{1_000_000 + m * busy},{1_000_000 + m * wait}")
    return "\n".join(lines) + "\n"


def test_show_stats_sums_application_databases(store, tmp_path) -> None:
    """app1 60 tps of 2 ms, app2 40 tps of 7 ms, and the admin console: 100 tps (not the mean
    of rows), mean transaction (60 x 2 + 40 x 7) / 100 = 4 ms, mean wait 360,000 us over
    6,000 transactions = 0.06 ms; the admin database adds nothing."""
    path = tmp_path / "stats.csv"
    path.write_text(show_stats({"app1": (3600, 3600 * 2000, 3600 * 100),
                                "app2": (2400, 2400 * 7000, 0),
                                "pgbouncer": (7, 7_000_000, 5_000_000)}, minutes=3))
    ingest_file(store, path)
    rates = pgbouncer_rates(store, T0, T0 + timedelta(hours=1))
    assert len(rates) == 3
    assert rates["databases"].tolist() == [2, 2, 2]
    assert rates["tps"].tolist() == pytest.approx([100.0] * 3)
    assert rates["mean_xact_ms"].tolist() == pytest.approx([4.0] * 3)
    assert rates["mean_wait_ms"].tolist() == pytest.approx([0.06] * 3)


def test_pgbouncer_rates_take_differences_before_the_window(store, tmp_path) -> None:
    """A window starting at the 2nd snapshot holds the interval that ends there: snapshots at
    minutes 0..3, window [1 min, 3 min) has the intervals ending at minutes 1 and 2."""
    path = tmp_path / "stats.csv"
    path.write_text(show_stats({"app": (600, 600 * 3000, 0)}, minutes=3))
    ingest_file(store, path)
    rates = pgbouncer_rates(store, T0 + timedelta(minutes=1), T0 + timedelta(minutes=3))
    assert [t.to_pydatetime() for t in rates["ts"]] == [T0 + timedelta(minutes=1),
                                                        T0 + timedelta(minutes=2)]
    assert rates["tps"].tolist() == pytest.approx([10.0, 10.0])


def test_show_pools_longest_wait_is_seconds_plus_microseconds(store, tmp_path) -> None:
    """maxwait is whole seconds and maxwait_us the microseconds beyond: 3 s + 250,000 us is
    3,250 ms (not 250 ms), longer than 0 s + 900,000 us; waiting clients add over the
    application pools; the admin console's pool is left out."""
    path = tmp_path / "pools.csv"
    header = ("timestamp,database,user,cl_active,cl_waiting,sv_active,sv_idle,sv_used,"
              "sv_tested,sv_login,maxwait,maxwait_us,pool_mode")
    stamp = T0.isoformat()
    path.write_text("\n".join([
        header,
        f"{stamp},app1,web,10,4,5,0,0,0,0,3,250000,transaction",
        f"{stamp},app2,web,10,2,5,0,0,0,0,0,900000,transaction",
        f"{stamp},pgbouncer,pgbouncer,1,1,0,0,0,0,0,10,0,statement",
    ]) + "\n")
    assert ingest_file(store, path).kind == "pgbouncer-pools"
    waits = pgbouncer_waits(store, T0, T0 + timedelta(minutes=1))
    assert waits[["clients_waiting", "longest_wait_ms"]].values.tolist() == [[6, 3250.0]]


def prometheus_matrix(series: list[tuple[dict[str, str], list[tuple[datetime, float]]]]) -> str:
    """A query_range response holding the given series (labels with __name__, points)."""
    return json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": [[t.timestamp(), str(v)] for t, v in points]}
        for labels, points in series]}})


def test_cpu_per_pod_from_per_pod_series(store, tmp_path) -> None:
    """Three pods at 0.5, 0.6 and 0.7 cores (one series each), three replicas, 3 req/s: a pod
    burns (0.5 + 0.6 + 0.7) / 3 = 0.6 cores and serves 1 req/s; the buckets start at the
    window's start (10:02), not on a 5-minute boundary of the clock."""
    start = datetime(2026, 11, 20, 10, 2, tzinfo=UTC)
    points = [start + timedelta(seconds=30 * i) for i in range(20)]  # 10 minutes
    cpu = [({"__name__": "mysetlist_cpu_cores", "pod": pod}, [(t, cores) for t in points])
           for pod, cores in (("web-a", 0.5), ("web-b", 0.6), ("web-c", 0.7))]
    replicas = [({"__name__": "mysetlist_replicas"}, [(t, 3.0) for t in points])]
    (tmp_path / "prom.json").write_text(prometheus_matrix(cpu + replicas))
    ingest_file(store, tmp_path / "prom.json")
    second = [start + timedelta(seconds=s) for s in range(600)]
    (tmp_path / "r.jsonl").write_text("".join(
        json.dumps({"timestamp": (t + timedelta(milliseconds=250 * k)).isoformat(),
                    "path": "/", "status": 200}) + "\n" for t in second for k in range(3)))
    ingest_file(store, tmp_path / "r.jsonl")
    samples = cpu_per_pod(store, start, start + timedelta(minutes=10))
    assert [t.to_pydatetime() for t in samples["time"]] == [start, start + timedelta(minutes=5)]
    assert samples["replicas"].tolist() == [3.0, 3.0]
    assert samples["cores_per_pod"].tolist() == pytest.approx([0.6, 0.6])
    assert samples["rps_per_pod"].tolist() == pytest.approx([1.0, 1.0])


def test_cpu_per_pod_counts_pods_without_a_replicas_series(store, tmp_path) -> None:
    """Without mysetlist_replicas, the pods are the CPU series seen: two pods at 0.4 cores
    are two replicas of 0.4 cores each."""
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    points = [start + timedelta(minutes=i) for i in range(5)]
    cpu = [({"__name__": "mysetlist_cpu_cores", "pod": pod}, [(t, 0.4) for t in points])
           for pod in ("web-a", "web-b")]
    (tmp_path / "prom.json").write_text(prometheus_matrix(cpu))
    ingest_file(store, tmp_path / "prom.json")
    (tmp_path / "r.jsonl").write_text("".join(
        json.dumps({"timestamp": (start + timedelta(seconds=s)).isoformat(), "path": "/",
                    "status": 200}) + "\n" for s in range(300)))
    ingest_file(store, tmp_path / "r.jsonl")
    samples = cpu_per_pod(store, start, start + timedelta(minutes=5))
    assert samples[["replicas", "cores_per_pod", "rps_per_pod"]].values.tolist() == [
        [2.0, pytest.approx(0.4), pytest.approx(0.5)]]


def test_pool_plan_hand_worked(store, tmp_path) -> None:
    """Two databases and PgBouncer's admin console, worked on paper.

    SHOW STATS every minute: app1 does 3,600 transactions a minute of 10 ms (60 tps), app2
    2,400 of 35 ms (40 tps): 100 tps, mean (60 x 10 + 40 x 35) / 100 = 20 ms. At a mean of
    25 req/s that is 4 transactions per request; a peak of 50 req/s is 200 tps, an offered
    load A = 200 x 0.020 = 4 erlangs. Erlang B by B(k) = A B(k-1) / (k + A B(k-1)):
    B(8) = 0.030420, B(9) = 0.013340, B(10) = 0.005308; Erlang C = N B / (N - A (1 - B)):
    C(9) = 0.120060 / 5.053360 = 0.023758 > 1 %, C(10) = 0.05308 / 6.021232 = 0.008815 <= 1 %,
    and E[Wq] = C x 20 ms / (10 - 4) = 0.029 ms <= 5 ms: 10 server connections.
    """
    path = tmp_path / "stats.csv"
    path.write_text(show_stats({"app1": (3600, 3600 * 10_000, 0),
                                "app2": (2400, 2400 * 35_000, 0),
                                "pgbouncer": (3, 1_000, 0)}, minutes=10))
    ingest_file(store, path)
    rates = pgbouncer_rates(store, T0, T0 + timedelta(hours=1))
    assert transactions_per_request(rates, 25.0) == pytest.approx(4.0)
    assert mean_transaction_s(rates) == pytest.approx(0.020)
    bouncer = load_config().pgbouncer
    assert bouncer is not None
    pool = size_pool(50.0 * transactions_per_request(rates, 25.0), mean_transaction_s(rates),
                     bouncer.max_wait_probability, bouncer.max_mean_wait_ms)
    assert pool.offered_load == pytest.approx(4.0)
    assert pool.servers == 10
    assert pool.wait_probability == pytest.approx(0.008815, abs=1e-6)
    assert pool.mean_wait_ms == pytest.approx(0.008815 * 20 / 6, abs=1e-5)
    assert erlang_c(9, 4.0) == pytest.approx(0.023758, abs=1e-6)


def _settings_snapshot(ts: datetime, values: dict[str, str]) -> Snapshot:
    """A snapshot of server settings as the collectors store them (system.name -> value)."""
    rows = [{"ts": ts, "system": key.split(".")[0], "name": key.split(".")[1], "value": value}
            for key, value in values.items()]
    return Snapshot("collect-pgbouncer", "test", {"server_settings": pa.Table.from_pylist(
        rows, SETTINGS)}, identity=ts.isoformat())


def test_capacity_plan_uses_collected_settings(demo_store_path, tmp_path) -> None:
    """Collected settings replace the configured assumptions and the plan says which it used.

    The shipped config assumes default_pool_size 25, max_client_conn 100, max_connections 100,
    3 reserved. Collected three days before the plan's end: a pool of 4, max_client_conn 50,
    max_connections 5 (the reserve is not collected: 3 as configured). maxReplicas 10 x 10
    clients = 100 > 50, and 4 + 3 = 7 > 5: both lines appear, which the configured values
    (100 <= 100, 25 + 3 <= 100) never print. A pool of 99 collected after the end is ignored.
    """
    db = tmp_path / "demo.duckdb"
    shutil.copy(demo_store_path, db)
    seen = DEMO_END - timedelta(days=3)
    land(db, _settings_snapshot(seen, {"pgbouncer.default_pool_size": "4",
                                       "pgbouncer.max_client_conn": "50",
                                       "pgbouncer.pool_mode": "transaction",
                                       "postgres.max_connections": "5"}))
    land(db, _settings_snapshot(DEMO_END + timedelta(hours=1),
                                {"pgbouncer.default_pool_size": "99"}))
    config = load_config()
    with open_store(db, read_only=True) as con:
        plan = capacity_plan(con, config, DEMO_END, history_days=14, horizon_days=7)
        rates = pgbouncer_rates(con, DEMO_END - timedelta(days=14), DEMO_END)
    used = plan.pool_settings
    assert used is not None
    assert [(s.name, s.value, s.source) for s in used.all] == [
        ("default_pool_size", 4, "collected"), ("max_client_conn", 50, "collected"),
        ("max_connections", 5, "collected"), ("superuser_reserved_connections", 3, "configured")]
    when = "2026-11-20 00:00 UTC"
    assert (f"Settings used: default_pool_size 4 (collected {when}; configured 25), "
            f"max_client_conn 50 (collected {when}; configured 100), max_connections 5 "
            f"(collected {when}; configured 100), superuser_reserved_connections 3 "
            "(configured).") in plan.verdict
    assert "default_pool_size is 4 (rule of thumb" in plan.verdict
    assert "PostgreSQL max_connections 5 is below the pool (4) plus the reserve (3)." \
        in plan.verdict
    assert "max_client_conn 50 is below the 100 client connections" in plan.verdict
    # The wait now is Erlang C at the collected 4 servers, at the busiest 1 % of load.
    load_now = float(rates["tps"].quantile(0.99)) * mean_transaction_s(rates)
    assert plan.pool_now_wait_probability == pytest.approx(erlang_c(4, load_now))
    document = capacity_document(plan, config, "2026-W47", DEMO_END - timedelta(days=7),
                                 DEMO_END)
    validate(document)
    assert document["pool"]["default_pool_size"] == 4
    assert document["server_settings"][0] == {
        "system": "pgbouncer", "name": "default_pool_size", "value": 4, "source": "collected",
        "configured": 25, "collected_at": "2026-11-20T00:00:00Z"}
    assert "default_pool_size 4, collected" in summary_markdown(document)
