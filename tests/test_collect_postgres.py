"""Live PostgreSQL and PgBouncer collectors against real servers: a known workload driven through
PgBouncer must come back in the collected statements, transactions, waits and pools."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import servers

from mysetlist_slo.cli import main
from mysetlist_slo.collect import collect_pgbouncer, collect_postgres
from mysetlist_slo.collect.landing import land
from mysetlist_slo.errors import CollectError
from mysetlist_slo.store.database import open_store

CLIENTS_PER_ROLE = 5  # 5 clients per role against a pool of 4 server connections: some wait
TRANSACTIONS_PER_CLIENT = 100  # 2 roles x 5 clients x 100 = 1,000 transactions
UPDATE = "UPDATE orders SET n = n + 1 WHERE id = %s"
SLEEP = "SELECT pg_sleep(%s)"
SLEEP_S = 0.002


def _client(dsn: str, client: int, done: list[int]) -> None:
    # Transaction pooling hands each transaction to any server connection: no prepared
    # statements (PgBouncer 1.18 cannot route them), hence prepare_threshold=None.
    with psycopg.connect(dsn, prepare_threshold=None) as con:
        for i in range(TRANSACTIONS_PER_CLIENT):
            with con.transaction():
                con.execute(UPDATE, [(client * TRANSACTIONS_PER_CLIENT + i) % 100 + 1])
                con.execute(SLEEP, [SLEEP_S])
            done.append(1)


def _workload(bouncer: servers.PgBouncer) -> int:
    """Run the workload through PgBouncer; return the transactions committed."""
    done: list[int] = []
    threads = [threading.Thread(target=_client, args=(bouncer.dsn(role), c, done))
               for c in range(CLIENTS_PER_ROLE) for role in servers.ROLES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(done)


def _one(con: Any, sql: str, params: list[Any] | None = None) -> Any:
    return con.execute(sql, params).fetchall()[0]


@pytest.fixture(name="collected", scope="module")
def fixture_collected(postgres_server: servers.Postgres, pgbouncer_server: servers.PgBouncer,
                      tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Snapshots of PostgreSQL and PgBouncer before and after 1,000 transactions, in a store."""
    db = tmp_path_factory.mktemp("collect") / "metrics.duckdb"
    admin = pgbouncer_server.dsn(servers.ADMIN, database="pgbouncer")
    pg = postgres_server.dsn()
    with psycopg.connect(pg, autocommit=True) as con:
        con.execute("SELECT pg_stat_statements_reset()")
        con.execute("UPDATE orders SET n = 0")
    before = [land(db, collect_postgres(pg)), land(db, collect_pgbouncer(admin))]
    committed = _workload(pgbouncer_server)
    started = time.perf_counter()
    raw_pg = collect_postgres(pg)
    seconds_pg = time.perf_counter() - started
    started = time.perf_counter()
    raw_bouncer = collect_pgbouncer(admin)
    seconds_bouncer = time.perf_counter() - started
    after = [land(db, raw_pg), land(db, raw_bouncer)]
    with psycopg.connect(pg) as con:
        orders_total = _one(con, "SELECT sum(n) FROM orders")[0]
    return {"db": db, "before": before, "after": after, "committed": committed,
            "raw_pg": raw_pg, "orders_total": orders_total,
            "seconds": (seconds_pg, seconds_bouncer)}


def test_workload_ran_as_planned(collected: dict[str, Any]) -> None:
    """The oracle: 1,000 transactions committed, each adding 1 to one order."""
    assert collected["committed"] == 1000
    assert collected["orders_total"] == 1000


def test_statements_keep_their_full_key(collected: dict[str, Any]) -> None:
    """pg_stat_statements comes with (userid, dbid, queryid, toplevel): 500 UPDATE calls per
    role, top level, in one database."""
    table = collected["raw_pg"].tables["pg_statements"].to_pylist()
    updates = [r for r in table if r["query"].startswith("UPDATE orders SET n = n +")]
    assert sorted(r["calls"] for r in updates) == [500, 500]
    assert len({r["userid"] for r in updates}) == 2
    assert len({r["dbid"] for r in updates}) == 1
    assert len({r["queryid"] for r in updates}) == 1  # same statement, two roles: two keys
    assert all(r["toplevel"] for r in updates)


def test_collected_statements_match_the_workload(collected: dict[str, Any]) -> None:
    """In the store, the UPDATE has 1,000 calls since the reset, 500 per role (one row per
    key); pg_sleep(2 ms) has 1,000 calls whose mean time is at least the 2 ms slept."""
    with open_store(collected["db"], read_only=True) as con:
        ingest_id = collected["after"][0].ingest_id
        update = _one(con, "SELECT sum(calls) FROM pg_statements WHERE ingest_id = ? "
                           "AND query LIKE 'UPDATE orders SET n = n +%'", [ingest_id])[0]
        per_role = con.execute("SELECT calls FROM pg_statements WHERE ingest_id = ? AND "
                               "query LIKE 'UPDATE orders SET n = n +%' ORDER BY userid",
                               [ingest_id]).fetchall()
        calls, mean = _one(con, "SELECT sum(calls), sum(total_exec_time) / sum(calls) "
                                "FROM pg_statements WHERE ingest_id = ? "
                                "AND query LIKE 'SELECT pg_sleep%'", [ingest_id])
    assert update == 1000
    assert per_role == [(500,), (500,)]  # stored with the full key: one row per role
    assert calls == 1000
    assert SLEEP_S * 1000 <= mean < 100


def test_pgbouncer_counts_the_transactions(collected: dict[str, Any]) -> None:
    """SHOW STATS: database ``shop`` counted exactly 1,000 more transactions and 4,000 more
    queries (psycopg sends BEGIN, the UPDATE, the SELECT and COMMIT as one query each)."""
    with open_store(collected["db"], read_only=True) as con:
        before, after = (collected["before"][1].ingest_id, collected["after"][1].ingest_id)
        rows = dict(con.execute(
            "SELECT ingest_id, [total_xact_count, total_query_count, total_xact_time, "
            "total_wait_time] FROM pgbouncer_stats WHERE database = 'shop' "
            "AND ingest_id IN (?, ?)", [before, after]).fetchall())
    # No row yet: PgBouncer has not served that database since it started, its counters are 0.
    start = rows.get(before, [0, 0, 0, 0])
    xacts, queries, xact_us, _ = (b - a for a, b in zip(start, rows[after], strict=True))
    assert xacts == 1000
    assert queries == 4 * 1000
    # Every transaction slept 2 ms on the server: the transaction time is at least that.
    assert xact_us >= 1000 * SLEEP_S * 1e6


def test_pool_settings_and_shape(collected: dict[str, Any]) -> None:
    """SHOW POOLS: one pool per role in transaction mode, never more than default_pool_size
    server connections; SHOW CONFIG values as configured; max_connections as configured."""
    with open_store(collected["db"], read_only=True) as con:
        pools = con.execute(
            "SELECT \"user\", pool_mode, sv_active + sv_idle + sv_used + sv_tested + sv_login "
            "FROM pgbouncer_pools WHERE ingest_id = ? AND database = 'shop' ORDER BY 1",
            [collected["after"][1].ingest_id]).fetchall()
        settings = dict(con.execute(
            "SELECT system || '.' || name, value FROM server_settings").fetchall())
    assert [(user, mode) for user, mode, _ in pools] == [("app_a", "transaction"),
                                                         ("app_b", "transaction")]
    assert all(0 < servers_open <= servers.POOL_SIZE for _, _, servers_open in pools)
    assert settings["pgbouncer.default_pool_size"] == str(servers.POOL_SIZE)
    assert settings["pgbouncer.max_client_conn"] == "100"
    assert settings["pgbouncer.pool_mode"] == "transaction"
    assert settings["postgres.max_connections"] == "50"


def test_collection_is_cheap_and_registered(collected: dict[str, Any]) -> None:
    """Each pull takes under a second and is one registry row with its rows counted; the
    registry names the server without a password."""
    assert max(collected["seconds"]) < 1.0
    with open_store(collected["db"], read_only=True) as con:
        registry = con.execute("SELECT kind, file, loaded FROM ingests ORDER BY id").fetchall()
    assert [kind for kind, _, _ in registry] == ["collect-postgres", "collect-pgbouncer"] * 2
    assert all(loaded > 0 for _, _, loaded in registry)
    text = repr(registry)
    assert not any(secret in text for secret in [servers.SUPERUSER_PASSWORD,
                                                 servers.ADMIN_PASSWORD])


def test_waiting_client_is_seen(postgres_server: servers.Postgres,
                                pgbouncer_server: servers.PgBouncer, tmp_path: Path) -> None:
    """With the pool's 4 server connections held in open transactions, a 5th client waits:
    SHOW POOLS shows it waiting, pg_stat_activity shows 4 sessions idle in transaction, and
    SHOW STATS's wait time grows by at least the 0.5 s it was made to wait."""
    admin = pgbouncer_server.dsn(servers.ADMIN, database="pgbouncer")
    db = tmp_path / "metrics.duckdb"
    before = land(db, collect_pgbouncer(admin))
    holders = [psycopg.connect(pgbouncer_server.dsn("app_a"), prepare_threshold=None)
               for _ in range(servers.POOL_SIZE)]
    try:
        for con in holders:
            con.execute("SELECT 1")  # opens a transaction that holds a server connection
        waiter_done = threading.Event()

        def waiter() -> None:
            with psycopg.connect(pgbouncer_server.dsn("app_a"), prepare_threshold=None,
                                 autocommit=True) as con:
                con.execute("SELECT 1")
            waiter_done.set()

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.5)
        during = land(db, collect_pgbouncer(admin))
        activity = collect_postgres(postgres_server.dsn()).tables["pg_activity"].to_pylist()
        assert not waiter_done.is_set()
    finally:
        for con in holders:
            con.rollback()
            con.close()
    thread.join(10)
    after = land(db, collect_pgbouncer(admin))
    with open_store(db, read_only=True) as con:
        waiting = _one(con, "SELECT cl_waiting FROM pgbouncer_pools WHERE ingest_id = ? AND "
                            "\"user\" = 'app_a'", [during.ingest_id])[0]
        waited = _one(con, "SELECT max(total_wait_time) - min(total_wait_time) FROM "
                           "pgbouncer_stats WHERE database = 'shop' AND ingest_id IN (?, ?)",
                      [before.ingest_id, after.ingest_id])[0]
    assert waiting == 1
    idle_in_tx = sum(r["connections"] for r in activity
                     if r["usename"] == "app_a" and r["state"] == "idle in transaction")
    assert idle_in_tx == servers.POOL_SIZE
    assert waited >= 500_000


def test_wrong_password_is_one_line_without_the_secret(
        pgbouncer_server: servers.PgBouncer, postgres_server: servers.Postgres,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong password: CollectError in one line, naming the server, not the password; the CLI
    exits 1 with that line and stores nothing."""
    wrong = "not-the-Password-42"
    for dsn, collect in ((postgres_server.dsn("app_a", wrong), collect_postgres),
                         (pgbouncer_server.dsn(servers.ADMIN, wrong, "pgbouncer"),
                          collect_pgbouncer)):
        with pytest.raises(CollectError) as caught:
            collect(dsn)
        message = str(caught.value)
        assert "\n" not in message and wrong not in message
        assert "authentication failed" in message
        assert f"127.0.0.1:{dsn.rsplit(':', 1)[1].split('/')[0]}" in message
    db = tmp_path / "metrics.duckdb"
    code = main(["collect", "postgres", "--db", str(db), "--dsn",
                 postgres_server.dsn("app_a", wrong)])
    captured = capsys.readouterr()
    assert code == 1
    assert wrong not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1
    assert not db.exists()


def test_cli_collects_postgres_into_the_store(postgres_server: servers.Postgres,
                                              tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """``collect postgres --dsn`` stores one snapshot and says so without the password."""
    db = tmp_path / "metrics.duckdb"
    assert main(["collect", "postgres", "--db", str(db), "--dsn", postgres_server.dsn()]) == 0
    captured = capsys.readouterr()
    assert servers.SUPERUSER_PASSWORD not in captured.err + captured.out
    with open_store(db, read_only=True) as con:
        kinds = con.execute("SELECT kind, file FROM ingests").fetchall()
        databases = {d for (d,) in con.execute("SELECT database FROM pg_databases").fetchall()}
    assert kinds == [("collect-postgres",
                      f"postgresql://postgres@127.0.0.1:{postgres_server.port}/shop")]
    assert {"shop", "postgres"} <= databases


def test_missing_extension_is_a_clear_error(postgres_server: servers.Postgres) -> None:
    """A database without pg_stat_statements: CollectError saying how to install it."""
    with pytest.raises(CollectError, match="CREATE EXTENSION pg_stat_statements"):
        collect_postgres(postgres_server.dsn(database="postgres"))


def test_passwords_in_statement_text_are_not_collected(postgres_server: servers.Postgres,
                                                       tmp_path: Path) -> None:
    """PostgreSQL 15 keeps utility statements' text as typed: an ALTER ROLE ... PASSWORD seen
    by pg_stat_statements is stored with the password replaced, nowhere in the store."""
    secret = servers.ROLES["app_b"]  # set again to the same value: the fixture keeps working
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as con:
        con.execute(f"ALTER ROLE app_b PASSWORD '{secret}'")
    db = tmp_path / "metrics.duckdb"
    land(db, collect_postgres(postgres_server.dsn()))
    with open_store(db, read_only=True) as con:
        texts = [q for (q,) in con.execute("SELECT query FROM pg_statements").fetchall()]
    assert "ALTER ROLE app_b PASSWORD '***'" in texts
    assert not [q for q in texts if secret in q]


@pytest.mark.parametrize(("text", "expected"), [
    ("ALTER ROLE x WITH ENCRYPTED PASSWORD 'it''s' VALID UNTIL 'infinity'",
     "ALTER ROLE x WITH ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity'"),
    ("CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'p1')",
     "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '***')"),
    ("SELECT dblink_connect('host=h password=p2 dbname=d')",
     "SELECT dblink_connect('host=h password='***' dbname=d')"),
    ("SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = $1"),
])
def test_redact_statement(text: str, expected: str) -> None:
    """Password values are replaced in every form PostgreSQL accepts them; other text stays."""
    from mysetlist_slo.collect._secrets import redact_statement

    assert redact_statement(text) == expected


def test_pgbouncer_gone_and_back(postgres_server: servers.Postgres, tmp_path: Path) -> None:
    """PgBouncer stopped: a one-line CollectError naming it (connection refused), nothing
    stored; started again on the same port: the next pull lands."""
    bouncer = servers.PgBouncer(servers._owned_dir("mysetlist-pgb2-"), servers.free_port(),
                                postgres_server)
    admin = bouncer.dsn(servers.ADMIN, database="pgbouncer")
    db = tmp_path / "metrics.duckdb"
    bouncer.start()
    try:
        land(db, collect_pgbouncer(admin))
        bouncer.stop()
        with pytest.raises(CollectError) as caught:
            collect_pgbouncer(admin)
        assert f"127.0.0.1:{bouncer.port}/pgbouncer" in str(caught.value)
        assert "\n" not in str(caught.value) and servers.ADMIN_PASSWORD not in str(caught.value)
        bouncer.start()
        land(db, collect_pgbouncer(admin))
    finally:
        bouncer.stop()
    with open_store(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingests").fetchall() == [(2,)]


@pytest.mark.slow
def test_reports_run_on_a_store_filled_only_by_collectors(
        collected: dict[str, Any], tmp_path: Path) -> None:
    """The capacity and weekly reports execute on the collectors' store (this week): the
    capacity plan says in one line that there is no request history to forecast from (status
    no_data), the weekly report shows the collected cache figures; nothing is invented."""
    from datetime import UTC, datetime

    from mysetlist_slo.report.runner import run_report

    week = datetime.now(UTC).strftime("%G-W%V")
    capacity = run_report("capacity", week=week, db=collected["db"], out=tmp_path,
                          progress=False)
    assert capacity.document["status"] == "no_data"
    assert "traffic history: 0 hours" in capacity.html.read_text()
    weekly = run_report("weekly", week=week, db=collected["db"], out=tmp_path, progress=False)
    assert "Cache (Redis)" in weekly.html.read_text()
    assert all(slo["status"] == "no_data" for slo in weekly.document["slos"]
               if slo["name"] != "db-query-time")


def test_cli_collects_pgbouncer_and_sessions_agree(
        postgres_server: servers.Postgres, pgbouncer_server: servers.PgBouncer,
        tmp_path: Path) -> None:
    """``collect pgbouncer --dsn`` stores SHOW STATS/POOLS; in one PostgreSQL snapshot,
    pg_stat_database's backends of ``shop`` are pg_stat_activity's client sessions there plus
    the collector's own (which pg_activity leaves out)."""
    db = tmp_path / "metrics.duckdb"
    admin = pgbouncer_server.dsn(servers.ADMIN, database="pgbouncer")
    assert main(["collect", "pgbouncer", "--db", str(db), "--dsn", admin]) == 0
    snapshot = collect_postgres(postgres_server.dsn())
    backends = {r["database"]: r["numbackends"]
                for r in snapshot.tables["pg_databases"].to_pylist()}
    sessions = sum(r["connections"] for r in snapshot.tables["pg_activity"].to_pylist()
                   if r["database"] == "shop")
    with open_store(db, read_only=True) as con:
        kinds = con.execute("SELECT kind, loaded FROM ingests").fetchall()
        pools = con.execute("SELECT count(*) FROM pgbouncer_pools").fetchall()[0][0]
    assert kinds[0][0] == "collect-pgbouncer" and kinds[0][1] > 0
    assert pools >= 1
    assert backends["shop"] == sessions + 1


def test_collected_settings_are_the_ones_in_force(collected: dict[str, Any]) -> None:
    """The pool plan reads what the real servers said, not the configured assumptions (pool
    25, max_connections 100): PgBouncer's pool of 4 and max_client_conn 100, PostgreSQL's
    max_connections 50 and its default 3 reserved connections, all marked collected."""
    from datetime import UTC, datetime

    from mysetlist_slo import load_config
    from mysetlist_slo.capacity import pool_settings

    bouncer = load_config().pgbouncer
    assert bouncer is not None
    with open_store(collected["db"], read_only=True) as con:
        used = pool_settings(con, bouncer, datetime.now(UTC))
    assert [(s.name, s.value, s.source) for s in used.all] == [
        ("default_pool_size", servers.POOL_SIZE, "collected"),
        ("max_client_conn", 100, "collected"), ("max_connections", 50, "collected"),
        ("superuser_reserved_connections", 3, "collected")]
