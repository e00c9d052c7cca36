"""Landing a live collector's snapshot: validated, registered by content hash and written in one
transaction, exactly as a file is."""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo.errors import IngestError, RowProblem
from mysetlist_slo.store.database import find_ingest, scalar
from mysetlist_slo.store.ingest import IngestResult

# The tables a snapshot may write (identifiers are only ever taken from this set).
SNAPSHOT_TABLES = frozenset({
    "metrics", "pgbouncer_stats", "pgbouncer_pools", "pg_statements", "server_settings",
    "pg_databases", "pg_activity", "redis_info", "redis_latency", "posthog_events",
})
SHOWN_PROBLEMS = 10
# Numbers that may be negative or infinite (a PromQL deriv(), a histogram_quantile's +Inf);
# every other number a collector reads is a count, a size or a time, never below zero.
SIGNED = frozenset({("metrics", "value")})


@dataclass(frozen=True)
class Cursor:
    """How far a Prometheus query has been collected: the end of the last range stored."""

    source: str
    query: str
    expr: str
    step_s: float
    done_until: datetime


@dataclass(frozen=True)
class Snapshot:
    """What one pull from a live system returned: rows per store table, ready to land.

    ``source`` names the system without any secret (it is stored in the registry); ``identity``
    is hashed with the rows, so that the same range fetched twice is recognised.
    """

    kind: str
    source: str
    tables: Mapping[str, pa.Table]
    identity: str = ""
    cursor: Cursor | None = None

    @property
    def rows(self) -> int:
        """Return the number of rows over all tables."""
        return sum(table.num_rows for table in self.tables.values())


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def snapshot_sha256(snapshot: Snapshot) -> tuple[str, int]:
    """Return the content hash of a snapshot (kind, source, identity and rows) and its size."""
    digest = hashlib.sha256()
    size = 0
    for part in (snapshot.kind, snapshot.source, snapshot.identity):
        digest.update(part.encode("utf-8") + b"\0")
    for name in sorted(snapshot.tables):
        data = _ipc_bytes(snapshot.tables[name])
        size += len(data)
        digest.update(name.encode("utf-8") + b"\0" + data)
    return digest.hexdigest(), size


def _store_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, bool]:
    """Return the columns of a store table and whether each may be NULL."""
    rows = con.execute("SELECT column_name, is_nullable FROM information_schema.columns "
                       "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                       [table]).fetchall()
    return {name: nullable == "YES" for name, nullable in rows}


def _problems(source: str, name: str, table: pa.Table,
              columns: dict[str, bool]) -> list[RowProblem]:
    """Return what is wrong with a snapshot table: missing values, negative or non-finite
    numbers, timestamps without a zone. Rows are numbered from 1 within the table."""
    found: list[RowProblem] = []
    where = f"{source} [{name}]"
    for column in (c for c, nullable in columns.items() if not nullable and c != "ingest_id"):
        if column not in table.column_names:
            found.append(RowProblem(where, 0, column, "missing column"))
    for column in table.column_names:
        # One contiguous array: pyarrow 15-17 crash (SIGSEGV) in indices_nonzero over a chunked
        # array with no chunks, which an empty collected snapshot is.
        values = table.column(column).combine_chunks()
        kind = values.type
        if column in columns and not columns[column]:
            for row in pc.indices_nonzero(pc.is_null(values)).to_pylist()[:SHOWN_PROBLEMS]:
                found.append(RowProblem(where, row + 1, column, "missing"))
        if pa.types.is_timestamp(kind) and kind.tz is None:
            found.append(RowProblem(where, 0, column, "timestamp without a time zone"))
        if (name, column) in SIGNED:
            for row in pc.indices_nonzero(pc.is_nan(values)).to_pylist()[:SHOWN_PROBLEMS]:
                found.append(RowProblem(where, row + 1, column, "NaN"))
        elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
            bad = pc.less(values, 0)
            if pa.types.is_floating(kind):
                bad = pc.or_(bad, pc.invert(pc.is_finite(values)))
            for row in pc.indices_nonzero(pc.fill_null(bad, False)).to_pylist()[:SHOWN_PROBLEMS]:
                found.append(RowProblem(where, row + 1, column,
                                        f"not a non-negative number: {values[row].as_py()}"))
    return found


def ingest_snapshot(con: duckdb.DuckDBPyConnection, snapshot: Snapshot) -> IngestResult:
    """Store a collector's snapshot in one transaction and register it like a file.

    Returns an IngestResult whose ``file`` is the snapshot's secret-free source. The same
    content already registered is a no-op (``skipped``). Columns the store's schema lacks are
    left out (and named in the message). Raises IngestError, storing nothing, when a value is
    missing, negative or not finite, or a table is not one a snapshot may write.
    """
    started = time.perf_counter()
    sha, size = snapshot_sha256(snapshot)
    known = find_ingest(con, sha)
    if known is not None:
        return IngestResult(snapshot.source, str(known["kind"]), 0, 0, True,
                            time.perf_counter() - started,
                            int(known["id"]),  # type: ignore[call-overload]
                            f"already stored as ingest #{known['id']}; nothing to do")
    problems: list[RowProblem] = []
    plans: list[tuple[str, pa.Table, list[str]]] = []
    left_out: set[str] = set()
    for name, table in sorted(snapshot.tables.items()):
        if name not in SNAPSHOT_TABLES:
            raise IngestError(snapshot.source, f"a snapshot cannot write table {name!r}")
        columns = _store_columns(con, name)
        kept = [c for c in table.column_names if c in columns]
        left_out |= set(table.column_names) - set(kept)
        problems += _problems(snapshot.source, name, table.select(kept), columns)
        plans.append((name, table.select(kept), kept))
    if problems:
        error = IngestError(snapshot.source, f"{len(problems)} bad values; nothing was stored",
                            problems[:SHOWN_PROBLEMS], len(problems))
        error.kind = snapshot.kind
        raise error
    times = [t for _, table, kept in plans if "ts" in kept and table.num_rows
             for t in (pc.min(table.column("ts")).as_py(), pc.max(table.column("ts")).as_py())]

    con.execute("BEGIN TRANSACTION")
    try:
        ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        for name, table, kept in plans:
            if not table.num_rows:
                continue
            con.register("snapshot_rows", table)
            names = ", ".join(f'"{c}"' for c in kept)
            con.execute(f'INSERT INTO "{name}" BY NAME SELECT $id AS ingest_id, {names} '
                        "FROM snapshot_rows", {"id": ingest_id})
            con.unregister("snapshot_rows")
        if snapshot.cursor is not None:
            c = snapshot.cursor
            con.execute("INSERT OR REPLACE INTO collect_cursors VALUES (?, ?, ?, ?, ?, ?)",
                        [c.source, c.query, c.expr, c.step_s, c.done_until, ingest_id])
        seconds = time.perf_counter() - started
        con.execute(
            "INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, first_ts, "
            "last_ts, loaded_at, seconds) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            [ingest_id, sha, snapshot.kind, snapshot.source, size, snapshot.rows,
             min(times, default=None), max(times, default=None), datetime.now(UTC), seconds])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    message = (f"not in this store's schema, left out: {', '.join(sorted(left_out))}"
               if left_out else "")
    return IngestResult(snapshot.source, snapshot.kind, snapshot.rows, 0, False,
                        time.perf_counter() - started, ingest_id, message)


def collect_cursor(con: duckdb.DuckDBPyConnection, source: str, query: str, expr: str,
                   step_s: float) -> datetime | None:
    """Return the end of the range last stored for a Prometheus query, or None."""
    value = scalar(con, "SELECT done_until FROM collect_cursors WHERE source = ? AND query = ? "
                        "AND expr = ? AND step_s = ?", [source, query, expr, step_s])
    return value if isinstance(value, datetime) else None
