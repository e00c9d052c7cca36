"""PostgreSQL collector: pg_stat_statements with its full key, max_connections, and
pg_stat_database and pg_stat_activity counts, in one connection and four queries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa

from mysetlist_slo.collect._secrets import dsn_secrets, redact_statement, safe_dsn, scrub
from mysetlist_slo.errors import CollectError
from mysetlist_slo.store.snapshots import Snapshot

TS = pa.timestamp("us", tz="UTC")
STATEMENTS = pa.schema([("ts", TS), ("userid", pa.string()), ("dbid", pa.string()),
                        ("queryid", pa.string()), ("toplevel", pa.bool_()),
                        ("query", pa.string()), ("calls", pa.int64()),
                        ("total_exec_time", pa.float64()), ("mean_exec_time", pa.float64()),
                        ("rows", pa.int64())])
DATABASES = pa.schema([("ts", TS), ("database", pa.string()), ("numbackends", pa.int64()),
                       ("xact_commit", pa.int64()), ("xact_rollback", pa.int64()),
                       ("blks_read", pa.int64()), ("blks_hit", pa.int64()),
                       ("deadlocks", pa.int64())])
ACTIVITY = pa.schema([("ts", TS), ("database", pa.string()), ("usename", pa.string()),
                      ("state", pa.string()), ("wait_event_type", pa.string()),
                      ("connections", pa.int64())])
SETTINGS = pa.schema([("ts", TS), ("system", pa.string()), ("name", pa.string()),
                      ("value", pa.string())])

# Settings that bound the connection pools in front of the server.
_SETTINGS = """
SELECT name, setting FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections', 'server_version_num')
"""
# The statement key is (userid, dbid, queryid, toplevel): the same text run by two roles, or
# both at top level and nested in a function, is counted in separate rows.
_STATEMENTS = """
SELECT userid::text, dbid::text, queryid::text, toplevel, query, calls, total_exec_time,
       mean_exec_time, rows
FROM pg_stat_statements
WHERE queryid IS NOT NULL
"""
_DATABASES = """
SELECT datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit, deadlocks
FROM pg_stat_database
WHERE datname IS NOT NULL
"""
# Client sessions only, and not this collector's own.
_ACTIVITY = """
SELECT datname, usename, state, wait_event_type, count(*)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1, 2, 3, 4
"""


def connect(dsn: str, timeout_s: float, **options: Any) -> psycopg.Connection[Any]:
    """Return an autocommit connection; raise CollectError (no password in it) on failure."""
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=max(1, round(timeout_s)),
                               **options)
    except (psycopg.Error, OSError) as exc:
        raise CollectError(safe_dsn(dsn), scrub(str(exc), dsn_secrets(dsn))) from None


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema)


def collect_postgres(dsn: str, *, timeout_s: float = 5.0) -> Snapshot:
    """Return one snapshot of a PostgreSQL server: pg_stat_statements (table pg_statements),
    pg_stat_database (pg_databases), client sessions by state (pg_activity) and
    max_connections (server_settings).

    Raises CollectError when the server cannot be reached, refuses the credentials, does not
    have pg_stat_statements installed in that database, or a query fails.
    """
    source = safe_dsn(dsn)
    con = connect(dsn, timeout_s)
    try:
        # A collector that runs every minute must never hang on a busy server.
        con.execute("SELECT set_config('statement_timeout', %s, false)",
                    [f"{int(timeout_s * 1000)}ms"])
        ts = datetime.now(UTC)
        settings = con.execute(_SETTINGS).fetchall()
        try:
            statements = con.execute(_STATEMENTS).fetchall()
        except psycopg.errors.UndefinedTable:
            raise CollectError(source, "pg_stat_statements is not installed in this database "
                               "(shared_preload_libraries = 'pg_stat_statements', then "
                               "CREATE EXTENSION pg_stat_statements)") from None
        databases = con.execute(_DATABASES).fetchall()
        activity = con.execute(_ACTIVITY).fetchall()
    except psycopg.Error as exc:
        raise CollectError(source, scrub(str(exc), dsn_secrets(dsn))) from None
    finally:
        con.close()
    names = ("userid", "dbid", "queryid", "toplevel", "query", "calls", "total_exec_time",
             "mean_exec_time", "rows")
    records = [{"ts": ts, **dict(zip(names, row, strict=True))} for row in statements]
    for record in records:
        record["query"] = redact_statement(record["query"])
    return Snapshot("collect-postgres", source, {
        "pg_statements": _table(records, STATEMENTS),
        "pg_databases": _table([{"ts": ts, **dict(zip(DATABASES.names[1:], row, strict=True))}
                                for row in databases], DATABASES),
        "pg_activity": _table([{"ts": ts, **dict(zip(ACTIVITY.names[1:], row, strict=True))}
                               for row in activity], ACTIVITY),
        "server_settings": _table([{"ts": ts, "system": "postgres", "name": name, "value": value}
                                   for name, value in settings], SETTINGS),
    })

