"""Landing collector snapshots: one transaction, registered by content hash, validated, and fitted
to the pg_statements schema in force."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from mysetlist_slo.collect.landing import land
from mysetlist_slo.collect.postgres import SETTINGS, STATEMENTS
from mysetlist_slo.errors import IngestError
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.snapshots import Snapshot, ingest_snapshot

TS = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _statements(rows: list[tuple[str, str, str, bool, int, float]]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"ts": TS, "userid": u, "dbid": d, "queryid": q, "toplevel": top, "query": f"q{q}",
          "calls": calls, "total_exec_time": ms, "mean_exec_time": ms / calls, "rows": calls}
         for u, d, q, top, calls, ms in rows], STATEMENTS)


def _settings(value: str = "100") -> pa.Table:
    return pa.Table.from_pylist([{"ts": TS, "system": "postgres", "name": "max_connections",
                                  "value": value}], SETTINGS)


# Two roles ran statement 7 (top level), and statement 9 ran nested inside it.
KEYED = [("10", "5", "7", True, 300, 600.0), ("11", "5", "7", True, 200, 1000.0),
         ("10", "5", "9", False, 300, 450.0)]


def test_same_snapshot_twice_is_stored_once(tmp_path: Path) -> None:
    """The registry recognises a snapshot's content: the second landing is skipped."""
    snapshot = Snapshot("collect-postgres", "postgresql://u@h:5432/db",
                        {"server_settings": _settings()})
    first = land(tmp_path / "m.duckdb", snapshot)
    second = land(tmp_path / "m.duckdb", snapshot)
    assert not first.skipped and second.skipped and second.ingest_id == first.ingest_id
    with open_store(tmp_path / "m.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM server_settings").fetchall() == [(1,)]


def test_a_bad_value_stores_nothing_of_the_snapshot(tmp_path: Path) -> None:
    """A negative counter in one table refuses the whole snapshot, naming table, row and
    field; the other table's rows and the registry stay empty."""
    bad = _statements([("10", "5", "7", True, -3, 10.0)])
    snapshot = Snapshot("collect-postgres", "postgresql://u@h/db",
                        {"server_settings": _settings(), "pg_statements": bad})
    with pytest.raises(IngestError) as caught:
        land(tmp_path / "m.duckdb", snapshot)
    assert "postgresql://u@h/db [pg_statements]:1: calls: not a non-negative number: -3" in str(
        caught.value)
    with open_store(tmp_path / "m.duckdb", read_only=True) as con:
        counts = con.execute("SELECT (SELECT count(*) FROM server_settings), "
                             "(SELECT count(*) FROM ingests)").fetchall()
    assert counts == [(0, 0)]


def test_a_missing_required_value_is_refused(tmp_path: Path) -> None:
    """A NULL in a NOT NULL column (max_connections' value) is a located IngestError."""
    table = _settings().set_column(3, "value", pa.array([None], pa.string()))
    with pytest.raises(IngestError, match=r"\[server_settings\]:1: value: missing"):
        land(tmp_path / "m.duckdb", Snapshot("collect-postgres", "s", {"server_settings": table}))


def test_statements_keep_the_full_key(tmp_path: Path) -> None:
    """pg_statements keeps the full key (userid, dbid, queryid, toplevel): every key is a
    row, the same statement run by two roles and a nested one included."""
    db = tmp_path / "m.duckdb"
    land(db, Snapshot("collect-postgres", "s", {"pg_statements": _statements(KEYED)}))
    with open_store(db, read_only=True) as con:
        rows = con.execute("SELECT userid, queryid, toplevel, calls FROM pg_statements "
                           "ORDER BY userid, queryid").fetchall()
    assert rows == [("10", "7", True, 300), ("10", "9", False, 300), ("11", "7", True, 200)]


def test_only_snapshot_tables_can_be_written(tmp_path: Path) -> None:
    """A snapshot naming another table (the registry itself) is refused."""
    with open_store(tmp_path / "m.duckdb") as con, pytest.raises(IngestError, match="ingests"):
        ingest_snapshot(con, Snapshot("x", "s", {"ingests": _settings()}))


def _redis(ts: datetime, uptime: int, hits: int, misses: int, evicted: int,
           commands: int, used: int = 1000) -> Snapshot:
    from mysetlist_slo.collect.redis import INFO

    row = {"ts": ts, "instance": "redis://cache:6379/0", "uptime_in_seconds": uptime,
           "keyspace_hits": hits, "keyspace_misses": misses, "evicted_keys": evicted,
           "expired_keys": 0, "total_commands_processed": commands, "used_memory": used,
           "maxmemory": 4000, "connected_clients": 3, "blocked_clients": 0,
           "rejected_connections": 0, "instantaneous_ops_per_sec": 1.0, "keys": 10,
           "expires": 0}
    return Snapshot("collect-redis", "redis://cache:6379/0",
                    {"redis_info": pa.Table.from_pylist([row], INFO)})


def test_redis_health_over_a_restart(tmp_path: Path) -> None:
    """Hand-worked: +60 hits/+40 misses in the first minute, then a restart after which the
    counters read 30 hits/70 misses: 90 hits, 110 misses, hit ratio 0.45; evictions 5 + 2;
    commands (100 + 200) over 120 s = 2.5/s; headroom 1 - 3000/4000 = 0.25."""
    from datetime import timedelta

    from mysetlist_slo.capacity import redis_health

    db = tmp_path / "m.duckdb"
    minute = timedelta(minutes=1)
    land(db, _redis(TS, 600, 100, 50, 10, 1000))
    land(db, _redis(TS + minute, 660, 160, 90, 15, 1100))
    land(db, _redis(TS + 2 * minute, 20, 30, 70, 2, 200, used=3000))  # restarted
    with open_store(db, read_only=True) as con:
        health = redis_health(con, TS, TS + 3 * minute).iloc[0]
        lonely = redis_health(con, TS, TS + minute).iloc[0]
    assert (health["hits"], health["misses"], health["evictions"]) == (90, 110, 7)
    assert health["hit_ratio"] == pytest.approx(0.45)
    assert health["ops_per_s"] == pytest.approx(2.5)
    assert health["restarts"] == 1
    assert health["memory_headroom"] == pytest.approx(0.25)
    assert lonely["snapshots"] == 1 and pd.isna(lonely["hit_ratio"])


def test_backlog_keeps_snapshots_while_the_store_is_busy(tmp_path: Path) -> None:
    """While another process holds the write lock, a pull is kept
    (StoreBusyError); the next pull lands both, oldest first, each its own ingest."""
    import subprocess
    import sys

    from mysetlist_slo.collect.landing import Backlog
    from mysetlist_slo.errors import StoreBusyError

    db = tmp_path / "m.duckdb"
    open_store(db).close()
    backlog = Backlog(db, busy_wait_s=0.2)
    holder = subprocess.Popen(  # another process holding the write lock, as a writer would
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('held', flush=True); time.sleep(30)", str(db)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreBusyError):
            backlog.land(Snapshot("collect-postgres", "s", {"server_settings": _settings("1")}))
        assert len(backlog.waiting) == 1
    finally:
        holder.kill()
        holder.wait()
    results = backlog.land(Snapshot("collect-postgres", "s", {"server_settings": _settings("2")}))
    assert [r.loaded for r in results] == [1, 1] and not backlog.waiting
    with open_store(db, read_only=True) as con:
        values = con.execute("SELECT value FROM server_settings ORDER BY ingest_id").fetchall()
    assert values == [("1",), ("2",)]
