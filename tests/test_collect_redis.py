"""Live Redis collector against a real redis-server: hits, misses, evictions, memory, clients and
latency it reports match a workload the test generated; the long-running mode survives the
server going away and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import redis
import servers

from mysetlist_slo.cli import main
from mysetlist_slo.collect import collect_redis
from mysetlist_slo.collect.landing import land
from mysetlist_slo.errors import CollectError, StoreBusyError
from mysetlist_slo.store.database import open_store


def _client(server: servers.Redis) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password)


def _rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Read the store, waiting while a collector process holds it for a moment."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with open_store(db, read_only=True) as con:
                return con.execute(sql).fetchall()
        except (StoreBusyError, duckdb.IOException):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_hits_misses_and_keys_match_the_workload(redis_server: servers.Redis,
                                                 tmp_path: Path) -> None:
    """100 keys set, 70 GETs of existing keys and 30 of missing ones: the stored snapshot has
    70 hits, 30 misses, 100 keys, the configured maxmemory, and counts its clients."""
    client = _client(redis_server)
    for i in range(100):
        client.set(f"k{i}", "x" * 10)
    hits = sum(client.get(f"k{i}") is not None for i in range(70))
    misses = sum(client.get(f"missing{i}") is None for i in range(30))
    assert (hits, misses) == (70, 30)
    result = land(tmp_path / "m.duckdb", collect_redis(redis_server.url()))
    row = dict(zip(["keyspace_hits", "keyspace_misses", "keys", "maxmemory",
                    "connected_clients", "evicted_keys", "instance"],
                   _rows(tmp_path / "m.duckdb",
                         "SELECT keyspace_hits, keyspace_misses, keys, maxmemory, "
                         "connected_clients, evicted_keys, instance FROM redis_info")[0],
                   strict=True))
    assert result.loaded >= 1
    assert row["keyspace_hits"] == 70
    assert row["keyspace_misses"] == 30
    assert row["keys"] == 100
    assert row["maxmemory"] == redis_server.maxmemory
    assert row["evicted_keys"] == 0
    assert row["connected_clients"] == 2  # the workload's client and the collector itself
    assert row["instance"] == f"redis://127.0.0.1:{redis_server.port}/0"
    client.close()


def test_evictions_and_memory_are_reported(redis_server: servers.Redis, tmp_path: Path) -> None:
    """With a 2 MiB limit and LRU eviction, writing ~4 MB evicts keys: the collected
    evicted keys plus keys left equal the keys written, and used memory stays near the limit."""
    client = _client(redis_server)
    client.config_set("maxmemory", 2 << 20)
    client.config_set("maxmemory-policy", "allkeys-lru")
    written = 400
    for i in range(written):
        client.set(f"big{i}", "v" * 10_000)
    snapshot = collect_redis(redis_server.url())
    left = client.dbsize()  # after the snapshot: the collector's own connection may evict too
    row = snapshot.tables["redis_info"].to_pylist()[0]
    assert left < written
    assert row["keys"] >= left
    # Each key written is either still there or was evicted (none expire, none deleted).
    assert row["evicted_keys"] + row["keys"] == written
    assert row["maxmemory"] == 2 << 20
    assert row["used_memory"] <= (2 << 20) + (1 << 20)  # within a megabyte of the limit
    client.close()


def test_latency_latest_is_collected(redis_server: servers.Redis, tmp_path: Path) -> None:
    """A command that blocks 60 ms (DEBUG SLEEP) shows in LATENCY LATEST: the collected
    ``command`` event's max is at least 60 ms."""
    client = _client(redis_server)
    client.execute_command("DEBUG", "SLEEP", "0.06")
    db = tmp_path / "m.duckdb"
    land(db, collect_redis(redis_server.url()))
    events = dict(_rows(db, "SELECT event, max_ms FROM redis_latency"))
    assert events["command"] >= 60
    client.close()


def test_wrong_password_is_one_line_without_the_secret(
        redis_server: servers.Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong password: a one-line CollectError without it; the CLI exits 1, stores nothing."""
    wrong = "wrong-Redis-pw-77"
    with pytest.raises(CollectError) as caught:
        collect_redis(redis_server.url(wrong))
    assert wrong not in str(caught.value) and "\n" not in str(caught.value)
    db = tmp_path / "m.duckdb"
    assert main(["collect", "redis", "--db", str(db), "--url", redis_server.url(wrong)]) == 1
    captured = capsys.readouterr()
    assert wrong not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert not db.exists()


def test_every_survives_the_server_going_away_and_stops_on_sigterm(
        redis_server: servers.Redis, tmp_path: Path) -> None:
    """``collect redis --every 1s``: snapshots land, the store is free between them (a writer
    can open it), a stopped server is logged (without the password) and leaves a gap with no
    rows, collection resumes when it is back, and SIGTERM ends the process with status 0."""
    db = tmp_path / "m.duckdb"
    process = subprocess.Popen(
        [sys.executable, "-m", "mysetlist_slo", "collect", "redis", "--db", str(db), "--url",
         redis_server.url(), "--every", "1s", "--timeout", "1s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "COLUMNS": "200"})
    try:
        def snapshots() -> list[tuple[Any, ...]]:
            return _rows(db, "SELECT ts, uptime_in_seconds FROM redis_info ORDER BY ts") \
                if db.exists() else []

        def wait_for(count: int) -> None:
            deadline = time.monotonic() + 60  # generous: a loaded machine starts slowly
            while len(snapshots()) < count:
                assert time.monotonic() < deadline, process.stderr
                time.sleep(0.2)

        wait_for(2)
        # No lock is held between pulls: another writer gets the store within a pull's time.
        deadline = time.monotonic() + 5
        while True:
            try:
                open_store(db).close()
                break
            except StoreBusyError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        redis_server.stop()
        down_at = time.time()
        time.sleep(2.5)
        before_restart = len(snapshots())
        redis_server.start()
        up_at = time.time()
        wait_for(before_restart + 2)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert "failed, will retry" in stderr
    assert "received SIGTERM" in stderr
    assert redis_server.password not in stderr
    stamps = [ts.timestamp() for ts, _ in snapshots()]
    # The outage is a gap: no snapshot was stored while the server was down.
    assert not [t for t in stamps if down_at + 0.5 < t < up_at - 0.5]
    assert [t for t in stamps if t > up_at]


def test_password_from_redis_cli_environment(redis_server: servers.Redis,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """With no password in the URL, REDISCLI_AUTH (as redis-cli reads it) is used."""
    monkeypatch.setenv("REDISCLI_AUTH", redis_server.password)
    snapshot = collect_redis(f"redis://127.0.0.1:{redis_server.port}/0")
    assert snapshot.tables["redis_info"].num_rows == 1
    assert redis_server.password not in repr(snapshot.tables["redis_info"].to_pylist())


@pytest.mark.parametrize("notebook", ["weekly_slo_report.ipynb", "capacity_plan.ipynb"])
def test_report_cache_cell_shows_the_hit_ratio(redis_server: servers.Redis, tmp_path: Path,
                                               notebook: str) -> None:
    """The reports' Redis cell, run as it stands in the notebook, shows the 75 % hit ratio of
    3 hits and 1 miss made between two snapshots, and the instance without its password."""
    from datetime import timedelta

    import nbformat

    from mysetlist_slo.report import notebook as nb

    db = tmp_path / "m.duckdb"
    land(db, collect_redis(redis_server.url()))
    client = _client(redis_server)
    client.set("k", "v")
    for key in ("k", "k", "k", "nope"):
        client.get(key)
    client.close()
    land(db, collect_redis(redis_server.url()))
    root = Path(__file__).resolve().parents[1] / "notebooks"
    cell = next(c.source for c in nbformat.read(root / notebook, 4).cells
                if "redis_health(" in c.source)
    with open_store(db, read_only=True) as con:
        end = datetime.now(UTC) + timedelta(minutes=1)
        start = end - timedelta(days=1)
        namespace: dict[str, Any] = {"nb": nb, "con": con, "start": start, "end": end,
                                     "ctx": type("Ctx", (), {"con": con, "start": start,
                                                             "end": end})}
        html = _run_cell(cell, namespace)
    assert "75.0 %" in html
    assert f"redis://127.0.0.1:{redis_server.port}/0" in html
    assert redis_server.password not in html


def _run_cell(cell: str, namespace: dict[str, Any]) -> str:
    """Run a notebook cell; return the HTML of its last expression (what Jupyter displays)."""
    import ast

    tree = ast.parse(cell)
    *body, last = tree.body
    assert isinstance(last, ast.Expr)
    exec(compile(ast.Module(body, []), "cell", "exec"), namespace)  # noqa: S102 - our notebook
    value = eval(compile(ast.Expression(last.value), "cell", "eval"), namespace)  # noqa: S307
    return str(value._repr_html_())
