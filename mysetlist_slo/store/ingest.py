"""Loading files into the store: one transaction per file, registered by content hash."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import duckdb
import pyarrow as pa

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import IngestError, RowProblem
from mysetlist_slo.sources import ExportOptions, Reject, detect_source
from mysetlist_slo.sources._lines import (
    DEFAULT_BATCH_BYTES,
    ContentDigest,
    CorruptFileError,
    content_digest,
    prefix_sha256,
)
from mysetlist_slo.sources.nextjs import is_next_build, read_build
from mysetlist_slo.sources.types import INPUT_TABLE, InputBatch, RequestSource, chunked
from mysetlist_slo.sources.vitals import ATTRIBUTION_COLUMNS, METRICS
from mysetlist_slo.store.bundles import KIND as BUILD_KIND
from mysetlist_slo.store.bundles import store_build
from mysetlist_slo.store.cache_rollup import add_cache_counts
from mysetlist_slo.store.database import find_ingest, scalar
from mysetlist_slo.store.rollups import add_rollups
from mysetlist_slo.store.routes import OTHER_ROUTE, RouteNormaliser

SHOWN_PROBLEMS = 10

Progress = Callable[[int], None]
_T = TypeVar("_T")


@dataclass(frozen=True)
class IngestResult:
    """What happened to one file."""

    file: str
    kind: str
    loaded: int
    rejected: int
    skipped: bool
    seconds: float
    ingest_id: int | None
    message: str = ""


def parse_bad_rows_limit(text: str) -> int | float:
    """Return a --max-bad-rows limit: a count (``100``) or a ratio (``0.5%``, ``0.01``)."""
    text = text.strip()
    try:
        if text.endswith("%"):
            ratio = float(text[:-1]) / 100
        elif "." in text:
            ratio = float(text)
        else:
            count = int(text)
            if count < 0:
                raise ValueError
            return count
    except ValueError:
        raise ValueError(f"not a row count or ratio: {text!r}") from None
    if not 0 <= ratio < 1:
        raise ValueError(f"ratio must be in [0, 1): {text!r}")
    return ratio


# The most records a line can hold, for the kinds read line by line: one (a CSV record may
# span lines, never share one), or for Web Vitals one per metric of a PostHog event.
_RECORDS_PER_LINE = {kind: 1 for kind in ("nginx", "jsonl", "csv", "probes", "pgbouncer-stats",
                                          "pgbouncer-pools", "pg-statements")}
_RECORDS_PER_LINE["vitals"] = len(METRICS)
_RECORDS_PER_LINE["posthog"] = 1


def _allowed(limit: int | float, total: int) -> int:
    return limit if isinstance(limit, int) else int(limit * total)


def _insert_rejects(con: duckdb.DuckDBPyConnection, ingest_id: int, rejects: list[Reject]) -> None:
    table = pa.table({
        "line": pa.array([r.line for r in rejects], pa.int64()),
        "field": pa.array([r.field for r in rejects], pa.string()),
        "problem": pa.array([r.problem for r in rejects], pa.string()),
        "raw": pa.array([r.raw for r in rejects], pa.binary()),
    })
    con.register("batch_rejects", table)
    con.execute("INSERT INTO rejects SELECT $id, line, field, problem, raw FROM batch_rejects",
                {"id": ingest_id})
    con.unregister("batch_rejects")


# The validated records of a batch, kept only as long as the batch is processed: the columns
# that are stored (for requests: what the rollups need), and the reason of each reject.
_KEPT = {
    "requests": "line, ts, target, status, duration_us, bytes, region, cache_status",
    "probes": "line, ts, target, location, ok, status, latency_ms, region",
    "vitals": "line, ts, metric, value, metric_id, target, form_factor, navigation_type, "
              "rating, source, " + ", ".join(ATTRIBUTION_COLUMNS),
    "crux": "line, key_type, key, form_factor, metric, first_date, last_date, p75, histogram, "
            "connection_type, CAST(first_date AS TIMESTAMPTZ) AS ts",
    "lighthouse": "line, fetch_time AS ts, target, form_factor, performance, lcp, fcp, cls, "
                  "tbt, tti, speed_index",
    "metrics": "line, ts, name, labels, value",
    "pgbouncer_stats": "* EXCLUDE (bad_field, problem)",
    "pgbouncer_pools": "* EXCLUDE (bad_field, problem)",
    "pg_statements": "* EXCLUDE (bad_field, problem)",
    "load_runs": "* EXCLUDE (bad_field, problem)",
    "load_points": "* EXCLUDE (bad_field, problem)",
    "load_failures": "* EXCLUDE (bad_field, problem)",
    "backups": "* EXCLUDE (bad_field, problem)",
    "drills": "* EXCLUDE (bad_field, problem)",
    "deploys": "* EXCLUDE (bad_field, problem)",
    "posthog_events": "* EXCLUDE (bad_field, problem)",
    "sentry_events": "* EXCLUDE (bad_field, problem)",
    "sentry_stats": "* EXCLUDE (bad_field, problem)",
    "sentry_sessions": "* EXCLUDE (bad_field, problem)",
}
_CHECKED = """
CREATE OR REPLACE TEMP TABLE checked AS
SELECT {kept}, bad_field, problem
FROM ({query})
"""
# A whole file's validated rows go to a Parquet file instead, read back through a view: a
# temporary table holding them all keeps about a byte of memory per row outside DuckDB's
# memory limit (segment metadata of its spilled blocks: +64 MiB at 80 M rows), and spills
# them uncompressed (41 bytes a row of the bench's log against 15 as Parquet; writing the
# compressed file costs less CPU than spilling and reading back the table, from 10 M lines on).
_SPILLED = """
COPY (SELECT {kept}, bad_field, problem FROM ({query}))
TO {file} (FORMAT parquet, COMPRESSION snappy)
"""

# How the good records of each kind are stored (requests go through the rollups instead);
# page URLs get their route from ``batch_routes``, as request paths do.
_STORE = {
    "probes": """
        INSERT INTO probes (ingest_id, ts, target, location, ok, status, latency_ms, region)
        SELECT $ingest_id, ts, target, location, ok, status, latency_ms, region
        FROM checked WHERE bad_field IS NULL""",
    "vitals": """
        INSERT INTO vitals BY NAME
        SELECT $ingest_id AS ingest_id, line, ts, metric, value, metric_id,
               checked.target AS url, routes.route, form_factor, navigation_type, rating,
               source, """ + ", ".join(ATTRIBUTION_COLUMNS) + """
        FROM checked JOIN batch_routes AS routes ON checked.target = routes.target
        WHERE bad_field IS NULL""",
    "crux": """
        INSERT INTO crux BY NAME
        SELECT $ingest_id AS ingest_id, key_type, key, form_factor, metric, first_date,
               last_date, p75, histogram, connection_type
        FROM checked WHERE bad_field IS NULL""",
    "metrics": """
        INSERT INTO metrics SELECT $ingest_id, ts, name, labels, value
        FROM checked WHERE bad_field IS NULL""",
    "lighthouse": """
        INSERT INTO lighthouse
        SELECT $ingest_id, ts, checked.target, routes.route, form_factor, performance, lcp,
               fcp, cls, tbt, tti, speed_index
        FROM checked JOIN batch_routes AS routes ON checked.target = routes.target
        WHERE bad_field IS NULL""",
}
# Snapshot tables take the checked columns as they are, matched by name.
for _table in ("pgbouncer_stats", "pgbouncer_pools", "pg_statements"):
    _STORE[_table] = f"""
        INSERT INTO {_table} BY NAME
        SELECT $ingest_id AS ingest_id, * EXCLUDE (line, bad_field, problem)
        FROM checked WHERE bad_field IS NULL"""
# Load-test and recovery tables: the same, minus the ``ts`` the registry's time span is read
# from where the table has no such column (and ``line`` where it has none).
for _table, _drop in (("load_runs", "line, ts"), ("load_points", "line"),
                      ("load_failures", "line, ts"), ("backups", "ts"), ("drills", "ts"),
                      ("posthog_events", "line"), ("sentry_events", "line"),
                      ("sentry_stats", "line"), ("sentry_sessions", "line")):
    _STORE[_table] = f"""
        INSERT INTO {_table} BY NAME
        SELECT $ingest_id AS ingest_id, * EXCLUDE ({_drop}, bad_field, problem)
        FROM checked WHERE bad_field IS NULL"""
_STORE["deploys"] = """
    INSERT INTO deploys BY NAME
    SELECT $ingest_id AS ingest_id, * EXCLUDE (bad_field, problem)
    FROM checked WHERE bad_field IS NULL"""
_ROUTED = ("requests", "vitals", "lighthouse")

_BATCH_SUMMARY = """
SELECT count(*) FILTER (WHERE bad_field IS NULL),
       count(*) FILTER (WHERE bad_field IS NOT NULL),
       min(ts) FILTER (WHERE bad_field IS NULL),
       max(ts) FILTER (WHERE bad_field IS NULL)
FROM checked
"""


@dataclass
class _Checked:
    """What validating one batch found: good records, rejects (explained), their time span."""

    good: int
    rejects: list[Reject]
    bad: int  # rejected records, explained or not
    span: list[datetime]


def _literal(text: str) -> str:
    """Return ``text`` as an SQL string literal (for the few places that take no parameter)."""
    return "'" + text.replace("'", "''") + "'"


def _check_batch(con: duckdb.DuckDBPyConnection, source: RequestSource, batch: InputBatch,
                 explain_at_most: int | None, kept: str | None = None,
                 spill: Path | None = None) -> _Checked:
    """Validate a batch into ``checked`` (holding the columns ``kept``, by default those the
    store keeps of the source's records): a temp table, or with ``spill`` a temp view over
    the Parquet file written there (see _SPILLED).

    Rejects are explained (in Python, one by one) only up to ``explain_at_most`` when given:
    a batch that will be refused needs no more than the problems its error shows.
    """
    if batch.table is not None:
        con.register(INPUT_TABLE, batch.table)  # replaces the previous batch's
    kept = kept or _KEPT[source.record]
    if spill is None:
        con.execute(_CHECKED.format(kept=kept, query=batch.query), batch.params or None)
    else:  # COPY's file and a view's read_parquet take no parameters
        con.execute(_SPILLED.format(kept=kept, query=batch.query, file=_literal(str(spill))),
                    batch.params or None)
        con.execute("CREATE OR REPLACE TEMP VIEW checked AS "
                    f"SELECT * FROM read_parquet({_literal(str(spill))})")
    good, bad, first, last = con.execute(_BATCH_SUMMARY).fetchall()[0]
    limit = "" if explain_at_most is None else f"LIMIT {int(explain_at_most)}"
    bad_rows = con.execute("SELECT line, bad_field, problem FROM checked "
                           f"WHERE bad_field IS NOT NULL ORDER BY line {limit}").fetchall()
    rejects = batch.rejects + (source.explain(con, batch, bad_rows) if bad_rows else [])
    rejects.sort(key=lambda r: r.line)
    if explain_at_most is not None:
        rejects = rejects[:explain_at_most]
    return _Checked(int(good), rejects, int(bad) + len(batch.rejects),
                    [first, last] if good else [])


def _route(con: duckdb.DuckDBPyConnection, routes: RouteNormaliser) -> None:
    """Register ``batch_routes`` (target, route) for the good records of ``checked``."""
    targets = con.sql("SELECT target, count(*) AS requests FROM checked "
                      "WHERE bad_field IS NULL GROUP BY target").to_arrow_table()
    con.register("batch_routes", chunked(routes.route_map(targets)))


# Tables that keep each row's page URL, so a row stored under "(other)" before its template
# was admitted can be given its route afterwards.
_PAGE_TABLES = ("vitals", "lighthouse")


def _reroute_pages(con: duckdb.DuckDBPyConnection, routes: RouteNormaliser) -> None:
    """Move rows of the page tables from "(other)" to their route when their URL's template
    is a route now: ``(other)`` keeps only templates never admitted. The request rollups
    keep no path: see _reroute_rollups."""
    for table in _PAGE_TABLES:
        urls = [url for (url,) in con.execute(
            f"SELECT DISTINCT url FROM {table} WHERE route = $other",
            {"other": OTHER_ROUTE}).fetchall()]
        if not urls:
            continue
        templates = routes.templates(pa.array(urls, pa.string())).to_pylist()
        moved = [(url, template) for url, template in zip(urls, templates, strict=True)
                 if routes.admitted(template)]
        if not moved:
            continue
        con.register("rerouted", pa.table({"url": [u for u, _ in moved],
                                           "route": [t for _, t in moved]}))
        con.execute(f"UPDATE {table} SET route = rerouted.route FROM rerouted "
                    f"WHERE {table}.url = rerouted.url AND {table}.route = $other",
                    {"other": OTHER_ROUTE})
        con.unregister("rerouted")


# Rollup tables whose "(other)" rows name their template while it is a candidate route.
_ROLLUP_TABLES = ("request_counts", "request_good", "latency_sketch", "cache_counts")


def _reroute_rollups(con: duckdb.DuckDBPyConnection) -> None:
    """Move the request rollups' "(other)" rows of each template in ``new_routes`` (the
    routes this file admitted) to that route. Rows of a template are tagged with it only while
    it is a candidate (store/routes.py route_map), so exactly its earlier requests move."""
    for table in _ROLLUP_TABLES:
        con.execute(f"UPDATE {table} SET route = template, template = NULL "
                    "WHERE template IN (SELECT route FROM new_routes)")


_PREFIXES = """
SELECT id, file, sha256, content_bytes, content_lines, ends_with_newline
FROM ingests
WHERE (first_line_sha256 = ? OR content_lines = 0) AND content_bytes < ? AND kind = ?
ORDER BY content_bytes DESC
"""

# The last line of a resumable file that has no newline yet is loaded under an ingest id of
# its own, registered with this prefix on the file's hash: when the file grows, that reading
# (perhaps of half a line) is withdrawn and the line read again whole.
TAIL_PREFIX = "tail:"


def _loaded_prefix(con: duckdb.DuckDBPyConnection, path: Path, digest: ContentDigest,
                   kind: str) -> dict[str, Any] | None:
    """Return the registry row of an earlier load whose content this file starts with (the
    same log, grown since), or None. Its complete lines are not to be loaded again.

    The row gains ``complete_bytes`` (where its last complete line ends) and ``tail_id``
    (the ingest holding its unterminated last line, or None).
    """
    names = ["id", "file", "sha256", "content_bytes", "content_lines", "ends_with_newline"]
    for row in con.execute(_PREFIXES, [digest.first_line_sha256, digest.size, kind]).fetchall():
        earlier = dict(zip(names, row, strict=True))
        sha, complete = prefix_sha256(path, int(earlier["content_bytes"]))
        if sha == earlier["sha256"]:
            tail = find_ingest(con, TAIL_PREFIX + str(earlier["sha256"]))
            earlier["complete_bytes"] = complete
            earlier["tail_id"] = None if tail is None else tail["id"]
            return earlier
    return None


def withdraw_load(con: duckdb.DuckDBPyConnection, ingest_id: int) -> None:
    """Delete every row an ingest wrote, in every table, and its registry row (inside the
    caller's transaction)."""
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'ingest_id' "
        "AND table_schema = 'main' ORDER BY table_name").fetchall()]
    for table in tables:
        con.execute(f'DELETE FROM "{table}" WHERE ingest_id = ?', [ingest_id])
    con.execute("DELETE FROM ingests WHERE id = ?", [ingest_id])


# How many records of each kind an ingest's rows in the store stand for.
_STORED_RECORDS = {"requests": "SELECT coalesce(sum(requests), 0) FROM request_counts "
                               "WHERE ingest_id = ?"}
for _record in ("probes", "vitals", "crux", "lighthouse", "metrics", "pgbouncer_stats",
                "pgbouncer_pools", "pg_statements", "load_runs", "load_points", "load_failures",
                "backups", "drills", "deploys", "posthog_events",
                "sentry_events", "sentry_stats", "sentry_sessions"):
    _STORED_RECORDS[_record] = f"SELECT count(*) FROM {_record} WHERE ingest_id = ?"


def _check_stored(con: duckdb.DuckDBPyConnection, path: Path, record: str, ingest_id: int,
                  loaded: int, rejected: int) -> None:
    """Raise IngestError unless the store holds exactly the records and rejects counted."""
    stored = int(str(scalar(con, _STORED_RECORDS[record], [ingest_id])))
    kept = int(str(scalar(con, "SELECT count(*) FROM rejects WHERE ingest_id = ?",
                          [ingest_id])))
    if (stored, kept) != (loaded, rejected):
        raise IngestError(str(path), f"internal check failed: {loaded} records and {rejected} "
                          f"rejects counted, but {stored} and {kept} written; nothing was stored")


@contextmanager
def typed_read_errors(path: Path, kind: str) -> Iterator[None]:
    """Turn what the readers' libraries raise on a file they cannot read (a corrupt Parquet
    page, a column of an unexpected type, a sum beyond 64 bits) into one IngestError."""
    try:
        yield
    except (duckdb.Error, pa.ArrowException) as exc:
        reason = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
        raise IngestError(str(path), f"cannot be read as {kind}: {reason}") from None


@dataclass
class _Piece:
    """Part of a file loaded under one ingest id: its complete lines (or all of a file that
    is not read line by line), or its last line while that has no newline yet."""

    ingest_id: int
    start: tuple[int, int]
    stop: int | None
    loaded: int = 0
    rejected: int = 0
    times: list[datetime] = field(default_factory=list)


# Ingest holds at most this much in DuckDB's buffers (the rest spills to its temp directory),
# so that a file of any size ingests within a fixed memory bound; restored afterwards.
INGEST_MEMORY_LIMIT = "320MiB"


def _stored_tables(con: duckdb.DuckDBPyConnection, catalog: str) -> list[str]:
    """Return the tables of ``catalog`` whose rows belong to an ingest (an ingest_id column)."""
    return [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.columns WHERE column_name = 'ingest_id' "
        "AND table_schema = 'main' AND table_catalog = ? ORDER BY table_name",
        [catalog]).fetchall()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class _Staging:
    """Where a file's rows wait, outside any transaction, until they are published."""

    home: str  # the store's catalog
    name: str  # the attached staging database
    tables: list[str]


@contextmanager
def _staged(con: duckdb.DuckDBPyConnection) -> Iterator[_Staging]:
    """Attach an empty in-memory copy of the store's ingested tables and make it the default
    catalog while a file is read, so each batch's writes and temporary tables are committed
    (and freed, or spilled to disk) as they are made.

    Read in one long transaction instead, every batch's replaced temporary tables and Arrow
    views stay alive until the commit, and memory grows with the file (issue 19).
    """
    home = str(scalar(con, "SELECT current_database()"))
    name = f"ingest_staging_{uuid.uuid4().hex}"
    tables = _stored_tables(con, home)
    previous_limit = scalar(con, "SELECT current_setting('memory_limit')")
    previous_order = scalar(con, "SELECT current_setting('preserve_insertion_order')")
    con.execute(f"ATTACH ':memory:' AS {name}")
    try:
        con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
        # Nothing staged is read in insertion order (rejects are sorted by line, the rest is
        # grouped), and keeping the order makes DuckDB build each table on one thread.
        con.execute("SET preserve_insertion_order = false")
        for table in tables:
            con.execute(f"CREATE TABLE {name}.main.{_quote(table)} AS "
                        f"SELECT * FROM {_quote(home)}.main.{_quote(table)} LIMIT 0")
        con.execute(f"USE {name}")
        yield _Staging(home, name, tables)
    finally:
        con.execute("DROP TABLE IF EXISTS temp.checked")
        for view in (INPUT_TABLE, "batch_routes"):
            con.unregister(view)
        con.execute(f"USE {_quote(home)}")
        con.execute(f"DETACH {name}")
        con.execute(f"SET preserve_insertion_order = {bool(previous_order)}")
        try:
            con.execute(f"SET memory_limit = '{previous_limit}'")
        except duckdb.ParserException:  # DuckDB 1.3 shows "no limit" as a size it cannot read
            con.execute("RESET memory_limit")


def _publish(con: duckdb.DuckDBPyConnection, staging: _Staging, ids: dict[int, int]) -> None:
    """Copy the staged rows into the store (inside the caller's transaction), each staged
    placeholder ingest id replaced by the id it is registered under."""
    arms = " ".join(f"WHEN {int(placeholder)} THEN {int(real)}"
                    for placeholder, real in ids.items())
    for table in staging.tables:
        con.execute(f"INSERT INTO {_quote(staging.home)}.main.{_quote(table)} BY NAME "
                    f"SELECT * REPLACE (CASE ingest_id {arms} END AS ingest_id) "
                    f"FROM {staging.name}.main.{_quote(table)}")


class BadRecordLimit:
    """The ``--max-bad-rows`` verdict on one file, kept as its batches are checked: the
    rejects counted, the problems shown, and the IngestError once the limit is passed."""

    def __init__(self, path: Path, source: RequestSource, max_bad_rows: int | float,
                 lines: int) -> None:
        self.path, self.source, self.max_bad_rows = path, source, max_bad_rows
        self.rejected = 0
        self.shown: list[RowProblem] = []
        # The most rejects the limit can allow: a count, or the ratio of the most records the
        # file can hold (one per line, plus a last line without a newline). Beyond it the
        # verdict is known: reading stops, and no more rejects are explained than are shown.
        self.per_line = _RECORDS_PER_LINE.get(source.kind)
        self.most_records = None if self.per_line is None else self.per_line * (lines + 1)
        self.ceiling = (max_bad_rows if isinstance(max_bad_rows, int)
                        else None if self.most_records is None
                        else _allowed(max_bad_rows, self.most_records))

    def check(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
              kept: str | None = None) -> _Checked:
        """Validate ``batch`` into the temp table ``checked`` and count its rejects; raise
        IngestError (nothing stored) as soon as they pass the limit."""
        ceiling = self.ceiling
        checked = _check_batch(con, self.source, batch, None if ceiling is None
                               else SHOWN_PROBLEMS - len(self.shown), kept)
        if ceiling is not None and self.rejected + checked.bad <= ceiling and len(
                checked.rejects) < checked.bad:
            # Within the limit after all: every reject is stored, so explain all.
            checked = _check_batch(con, self.source, batch, None, kept)
        return self.count(checked)

    def count(self, checked: _Checked) -> _Checked:
        """Count the rejects of a checked batch (``checked.rejects`` sorted by line, at least
        the first ones); raise IngestError (nothing stored) as soon as they pass the limit."""
        self.rejected += checked.bad
        self.shown.extend(RowProblem(str(self.path), r.line, r.field, r.problem)
                          for r in checked.rejects[: SHOWN_PROBLEMS - len(self.shown)])
        if self.ceiling is not None and self.rejected > self.ceiling:
            bound = ("" if self.most_records is None or isinstance(self.max_bad_rows, int)
                     else f", more than {self.max_bad_rows:g} of the at most "
                     f"{self.most_records:,} records the file can hold")
            raise IngestError(str(self.path), f"{self.rejected}+ bad records{bound} (limit "
                              f"{self.max_bad_rows}); nothing was stored", self.shown,
                              self.rejected)
        return checked

    def verdict(self, loaded: int, may_be_empty: bool = False) -> None:
        """Raise IngestError when the whole file holds no records (unless ``may_be_empty``)
        or more rejects than the limit allows of its records."""
        total = loaded + self.rejected
        if total == 0 and not may_be_empty:
            raise IngestError(str(self.path), "file holds no records")
        if self.rejected > _allowed(self.max_bad_rows, total):
            raise IngestError(str(self.path), f"{self.rejected} of {total} records are bad "
                              f"(limit {self.max_bad_rows}); nothing was stored", self.shown,
                              self.rejected)


@runtime_checkable
class WholeFileSource(Protocol):
    """A request source that can also read a whole file in one statement, unnumbered: its
    rejected rows keep their line's text (``raw``), and ``locate`` finds their lines."""

    def whole_file(self, path: Path, digest: ContentDigest) -> InputBatch | None:
        """Return the one batch of the whole file, or None where only batches can read it."""
        ...

    def locate(self, path: Path, lines: set[str]) -> dict[str, list[int]]:
        """Return the numbers of the file's lines whose text is one of ``lines``, by text."""
        ...

    def reject(self, line: int, field: str, problem: str, raw: bytes) -> Reject:
        """Return the reject of ``line`` from its staged field and problem."""
        ...


# The most rejects the whole-file reader names itself (by finding their lines' text), and the
# most bytes of their text it holds to do so (a line reader's batch: memory stays bounded); a
# file with more is read again by lines.
_LOCATED_AT_MOST = 10_000
_LOCATED_BYTES = DEFAULT_BATCH_BYTES
# The whole-file reader writes every validated row of the file to a Parquet file in DuckDB's
# temporary directory: 15 bytes a line of the bench's 240-byte lines (6 %; bench/README.md).
# It reads a file whole only when that disk has a quarter of the file's content free (room for
# targets that compress less); else the line reader, whose staging holds only rollups.
_SPILL_ROOM = 0.25


def _temp_folder(con: duckdb.DuckDBPyConnection) -> Path:
    """Return DuckDB's temporary directory (it may not exist yet: made on the first spill)."""
    return Path(str(scalar(con, "SELECT current_setting('temp_directory')")))


def _spill_room(con: duckdb.DuckDBPyConnection, digest: ContentDigest) -> bool:
    """Return whether DuckDB's temporary directory has room for a whole file's rows."""
    folder = _temp_folder(con)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free >= digest.size * _SPILL_ROOM


_SPILL_PREFIX = "whole-file-"


def _running(pid: str) -> bool:
    """Return whether the process ``pid`` (text from a file name) may still be running."""
    if not pid.isdigit() or os.name == "nt":
        # Not a name this code wrote, or Windows, where signal 0 is CTRL_C_EVENT: left alone.
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


@contextmanager
def _spill_file(con: duckdb.DuckDBPyConnection) -> Iterator[Path]:
    """Yield the path of a new file in DuckDB's temporary directory for a whole file's
    validated rows; afterwards remove it, the view ``checked`` over it, and the directory if
    it was made for it."""
    folder = _temp_folder(con)
    made = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    # A killed ingest's spill file would stay (about 6 % of its log): removed here when the
    # process that wrote it (named in it) is gone; the folder may be shared (':memory:').
    for stale in folder.glob(f"{_SPILL_PREFIX}*.parquet"):
        if not _running(stale.name.removeprefix(_SPILL_PREFIX).split("-")[0]):
            stale.unlink(missing_ok=True)
    spill = folder / f"{_SPILL_PREFIX}{os.getpid()}-{uuid.uuid4().hex}.parquet"
    try:
        yield spill
    finally:
        if scalar(con, "SELECT count(*) FROM duckdb_views() "
                       "WHERE temporary AND view_name = 'checked'"):
            con.execute("DROP VIEW temp.checked")
        spill.unlink(missing_ok=True)
        if made:
            with suppress(OSError):  # DuckDB may have spilled there meanwhile
                folder.rmdir()


def _whole_file(con: duckdb.DuckDBPyConnection, source: RequestSource, path: Path,
                digest: ContentDigest, limit: BadRecordLimit, progress: Progress | None,
                spill: Path) -> _Checked | None:
    """Check the piece as one batch where the source can read the whole file at once (see
    NginxSource.whole_file) and return what it found, counted in ``limit``; or None, nothing
    counted, when the file must be read by lines: the reader refused a line (too many quotes,
    too long, bytes not UTF-8) or skipped one (empty), there are too many rejects (or too much
    of their text) to find, or more than the limit allows (the file is refused).

    The batch names no lines: a rejected row carries its line's text, and the lines with that
    text are found by reading the file's lines (only when there are rejects). The rows are
    written to ``spill`` (``checked`` is a view over it); a file whose rows would not fit the
    free disk of DuckDB's temporary directory is read by lines.
    """
    # The source itself declines a part of a file (its start and stop are the piece's).
    if not isinstance(source, WholeFileSource):
        return None
    batch = source.whole_file(path, digest)
    if batch is None or not _spill_room(con, digest):
        return None
    kept = _KEPT[source.record] + ", raw"
    try:
        checked = _with_progress(con, lambda: _check_batch(con, source, batch, 0, kept, spill),
                                 progress, batch.position)
    except duckdb.Error:  # the reader refuses a line
        return None
    if checked.good + checked.bad != digest.lines or checked.bad > _LOCATED_AT_MOST:
        return None
    if limit.ceiling is not None and limit.rejected + checked.bad > limit.ceiling:
        # Refused: the line reader says so in its words, counting the rejects up to the batch
        # that passes the limit (where it stops), not the whole file's.
        return None
    if checked.bad:
        if int(str(scalar(con, "SELECT sum(strlen(raw)) FROM checked "
                               "WHERE bad_field IS NOT NULL"))) > _LOCATED_BYTES:
            return None
        bad = con.execute("SELECT raw, bad_field, problem FROM checked "
                          "WHERE bad_field IS NOT NULL").fetchall()
        lines = source.locate(path, {raw for raw, _, _ in bad})
        if sum(map(len, lines.values())) != len(bad):
            return None
        rejects = []
        for raw, field, problem in bad:
            line = lines[raw].pop()  # equal lines have equal problems: any order will do
            rejects.append(source.reject(line, field, problem, raw.encode("utf-8")))
        rejects.sort(key=lambda r: r.line)
        checked = _Checked(checked.good, rejects, checked.bad, checked.span)
    return limit.count(checked)


def _with_progress(con: duckdb.DuckDBPyConnection, work: Callable[[], _T],
                   progress: Progress | None, size: int) -> _T:
    """Return ``work()``; while it runs (in a thread), report DuckDB's progress through the
    query as that share of ``size`` bytes, so a bar moves during one long statement."""
    if progress is None:
        return work()
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(work)
        try:
            while not running.done():
                done = con.query_progress()  # -1 before the query starts
                if done > 0:
                    progress(int(size * min(done, 100.0) / 100))
                wait([running], timeout=0.2)
            return running.result()
        except BaseException:
            con.interrupt()  # Ctrl-C: stop the statement rather than wait for it
            raise


def _stage(con: duckdb.DuckDBPyConnection, source: RequestSource, path: Path,
           digest: ContentDigest, pieces: list[_Piece], routes: RouteNormaliser,
           thresholds: list[float], limit: BadRecordLimit, progress: Progress | None) -> None:
    """Read, check and stage every batch of the file's pieces, counting rejects in ``limit``
    (which raises IngestError as soon as they pass it)."""
    resumable = bool(getattr(source, "resumable", False))
    for piece in pieces:
        if resumable:
            source.start, source.stop = piece.start, piece.stop  # type: ignore[attr-defined]
        if isinstance(source, WholeFileSource):
            with _spill_file(con) as spill:
                whole = _whole_file(con, source, path, digest, limit, progress, spill)
                if whole is not None:
                    _store_checked(con, source, piece, whole, routes, thresholds)
            if whole is not None:
                # The file may be gone since: check_unchanged says so, the bar is left as is.
                if progress is not None and (identity := file_identity(path)) is not None:
                    progress(identity[2])
                continue
        for batch in source.batches(path):
            checked = limit.check(con, batch)
            _store_checked(con, source, piece, checked, routes, thresholds)
            if progress is not None:
                progress(batch.position)


def _store_checked(con: duckdb.DuckDBPyConnection, source: RequestSource, piece: _Piece,
                   checked: _Checked, routes: RouteNormaliser, thresholds: list[float]) -> None:
    """Stage the records of ``checked`` (the temp table and what _check_batch found) and
    count them in ``piece``."""
    piece.rejected += checked.bad
    if checked.rejects:
        _insert_rejects(con, piece.ingest_id, checked.rejects)
    if checked.good and source.record in _ROUTED:
        _route(con, routes)
    if checked.good and source.record == "requests":
        add_rollups(con, piece.ingest_id, thresholds)
        add_cache_counts(con, piece.ingest_id)
    elif checked.good:
        con.execute(_STORE[source.record], {"ingest_id": piece.ingest_id})
    if checked.good:
        # A k6 summary has no times: its span is [NULL, NULL].
        piece.times += [t for t in checked.span if t is not None]
        piece.loaded += checked.good


def _commit(con: duckdb.DuckDBPyConnection, staging: _Staging, path: Path,
            source: RequestSource, digest: ContentDigest, sha: str, pieces: list[_Piece],
            routes: RouteNormaliser, earlier: dict[str, Any] | None, started: float) -> None:
    """Publish a file's staged rows, its routes and its registry rows in one transaction:
    the file lands whole or not at all. Raises IngestError if the store would not hold
    exactly the records counted."""
    con.execute("BEGIN TRANSACTION")
    try:
        if earlier is not None and earlier["tail_id"] is not None:
            withdraw_load(con, int(earlier["tail_id"]))
        placeholders = [piece.ingest_id for piece in pieces]
        for piece in pieces:
            piece.ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        _publish(con, staging, dict(zip(placeholders, (p.ingest_id for p in pieces),
                                        strict=True)))
        if routes.added:
            con.register("new_routes", pa.table({"route": routes.added}))
            con.execute("INSERT INTO routes SELECT route, $id FROM new_routes",
                        {"id": pieces[0].ingest_id})
            _reroute_rollups(con)
            con.unregister("new_routes")
            _reroute_pages(con, routes)
        con.execute("DELETE FROM route_candidates")
        if routes.candidates:
            con.register("candidates", pa.table({
                "route": list(routes.candidates), "requests": list(routes.candidates.values())}))
            con.execute("INSERT INTO route_candidates SELECT route, requests FROM candidates")
            con.unregister("candidates")
        seconds = time.perf_counter() - started
        ignored = sum(getattr(source, "ignored", {}).values())
        for index, piece in enumerate(pieces):
            whole = index == 0
            con.execute(
                "INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, "
                "first_ts, last_ts, loaded_at, seconds, ignored, content_bytes, content_lines, "
                "first_line_sha256, ends_with_newline, continues_ingest) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [piece.ingest_id, sha if whole else TAIL_PREFIX + sha, source.kind, str(path),
                 path.stat().st_size if whole else digest.size - digest.complete_bytes,
                 piece.loaded, piece.rejected, min(piece.times, default=None),
                 max(piece.times, default=None), datetime.now(UTC), seconds,
                 ignored if whole else 0,
                 *((digest.size, digest.lines, digest.first_line_sha256,
                    digest.ends_with_newline) if whole else (None, None, None, None)),
                 (earlier["id"] if earlier else None) if whole else pieces[0].ingest_id],
            )
            _check_stored(con, path, source.record, piece.ingest_id, piece.loaded,
                          piece.rejected)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def file_digest(path: Path) -> ContentDigest:
    """Return the registry's digest of a file's content (gzip read through).

    Raises IngestError when ``path`` is no file, is empty, or cannot be read to its end.
    """
    if path.is_dir():
        raise IngestError(str(path), "is a folder, not a file (of folders, only a Next.js "
                          "build's is read)")
    if not path.is_file():
        raise IngestError(str(path), "no such file")
    if path.stat().st_size == 0:
        raise IngestError(str(path), "file is empty (0 bytes)")
    try:
        return content_digest(path)
    except CorruptFileError as exc:
        raise IngestError(str(path), str(exc)) from None
    except OSError as exc:  # unreadable: permissions, a device, an I/O error
        raise IngestError(str(path), f"cannot be read: {exc.strerror or exc}") from None


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """Return (device, inode, size) of the file at ``path``, or None if it cannot be had."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, stat.st_size


def check_unchanged(path: Path, before: tuple[int, int, int] | None) -> None:
    """Raise IngestError unless ``path`` is still the file it was before it was hashed
    (``before``, from file_identity): not renamed away and replaced, not truncated. Otherwise
    what was read is not what was hashed. Called after reading, and on a reading's
    IngestError (the other content may be why)."""
    now = file_identity(path)
    if before is None or now is None or now[:2] != before[:2] or now[2] < before[2]:
        raise IngestError(str(path), "was replaced or truncated while it was read (rotated?); "
                          "nothing was stored: load it again")


def ingest_file(con: duckdb.DuckDBPyConnection, path: str | Path, *, kind: str | None = None,
                config: Config | None = None, max_bad_rows: int | float = 0,
                log_format: str | None = None, options: ExportOptions | None = None,
                progress: Progress | None = None) -> IngestResult:
    """Load one file (or a Next.js build folder) into the store and return what happened.

    The file lands whole or not at all. Loading content already in the registry is a no-op
    (``skipped``); a log loaded before and grown since is read on from the earlier load's last
    complete line. Rejected records beyond ``max_bad_rows`` (a count, or a ratio of the file's
    records) raise IngestError listing the first problems as ``file:line: field: problem``;
    within the limit, each one is kept in the ``rejects`` table with its reason.
    """
    started = time.perf_counter()
    path = Path(path)
    if path.is_dir() and is_next_build(path):
        # A Next.js build is a folder: its manifests and file sizes are stored as one build.
        stored = store_build(con, read_build(path))
        return IngestResult(str(path), BUILD_KIND, stored.routes, 0, stored.skipped,
                            stored.seconds, stored.ingest_id, stored.message)
    config = config or load_config()
    before = file_identity(path)  # before hashing: a file replaced from here on is noticed
    digest = file_digest(path)
    sha = digest.sha256
    known = find_ingest(con, sha)
    if known is not None:
        return IngestResult(
            str(path), str(known["kind"]), 0, 0, True, time.perf_counter() - started,
            int(known["id"]),  # type: ignore[call-overload]
            f"already loaded as ingest #{known['id']} from {known['file']} "
            f"at {known['loaded_at']:%Y-%m-%d %H:%M:%S} UTC; nothing to do")
    rolled = con.execute("SELECT ingest_id, lake_file FROM rollup_sources "
                         "WHERE source_sha256 = ? ORDER BY ingest_id LIMIT 1", [sha]).fetchall()
    if rolled:
        raise IngestError(str(path), f"its requests are in the store already, from rollups of "
                          f"the lake file {rolled[0][1]} (ingest #{rolled[0][0]}): loading it "
                          "too would count them twice; nothing was stored")
    source = detect_source(path, kind, log_format, options)
    resumable = bool(getattr(source, "resumable", False))
    earlier = _loaded_prefix(con, path, digest, source.kind) if resumable else None
    start = (0, 0)
    if earlier is not None:
        if earlier["ends_with_newline"]:
            start = (earlier["content_bytes"], earlier["content_lines"])
        elif earlier["tail_id"] is not None:
            start = (earlier["complete_bytes"], earlier["content_lines"])
        else:
            raise IngestError(str(path), f"ingest #{earlier['id']} ({earlier['file']}) ended "
                              "mid-line and was loaded by an older version, which kept no "
                              "record of that line: cannot read on without counting it twice")
    routes = RouteNormaliser(config.routes.patterns, config.routes.max_routes,
                             (r for (r,) in con.execute("SELECT route FROM routes").fetchall()),
                             config.routes.min_requests,
                             dict(con.execute("SELECT route, requests FROM route_candidates")
                                  .fetchall()))
    thresholds = config.all_thresholds_ms

    # A resumable file's last line without a newline is a piece of its own (see TAIL_PREFIX).
    # Pieces are staged under placeholder ids (-1, -2); their ids are drawn when they publish.
    # They end where the content hashed ends: lines written since are the next load's.
    has_tail = resumable and not digest.ends_with_newline
    pieces = [_Piece(-1, start, digest.complete_bytes)]
    if has_tail:
        pieces.append(_Piece(-2, (digest.complete_bytes, digest.lines), digest.size))
    try:
        with _staged(con) as staging:
            limit = BadRecordLimit(path, source, max_bad_rows, digest.lines)
            try:
                with typed_read_errors(path, source.kind):
                    _stage(con, source, path, digest, pieces, routes, thresholds, limit,
                           progress)
            except IngestError:
                check_unchanged(path, before)
                raise
            check_unchanged(path, before)
            loaded = sum(piece.loaded for piece in pieces)
            rejected = limit.rejected
            limit.verdict(loaded, may_be_empty=earlier is not None
                          or bool(getattr(source, "empty_is_an_answer", False)))
            con.execute(f"USE {_quote(staging.home)}")
            _commit(con, staging, path, source, digest, sha, pieces, routes, earlier, started)
    except IngestError as exc:
        exc.kind = source.kind
        raise
    except RuntimeError as exc:
        # Ctrl-C during a statement: DuckDB's client stops it and raises this instead.
        if str(exc) != "Query interrupted":
            raise
        raise KeyboardInterrupt from None
    ignored = sum(getattr(source, "ignored", {}).values())
    seconds = time.perf_counter() - started
    notes = [f"{rejected} bad records kept in the rejects table"] if rejected else []
    if earlier is not None:
        notes.append(f"the first {earlier['content_lines']:,} lines were loaded before (ingest "
                     f"#{earlier['id']}, {earlier['file']}): read on from line "
                     f"{earlier['content_lines'] + 1:,}")
    if len(pieces) > 1:
        notes.append(f"line {digest.lines + 1:,} has no newline yet: it will be read again "
                     "whole when the file grows")
    if ignored:
        skipped = getattr(source, "ignored", {})
        counts = ", ".join(f"{name} x{n}" for name, n in sorted(skipped.items()))
        notes.append(f"{ignored} records of metrics not tracked were ignored: {counts}")
    message = "; ".join(notes)
    return IngestResult(str(path), source.kind, loaded, rejected, False, seconds,
                        pieces[0].ingest_id, message)


def ingest_files(con: duckdb.DuckDBPyConnection, paths: Iterable[str | Path],
                 **options: object) -> list[IngestResult | IngestError]:
    """Load each file in turn; return a result or the error for each (one bad file stops none)."""
    outcomes: list[IngestResult | IngestError] = []
    for path in paths:
        try:
            outcomes.append(ingest_file(con, path, **options))  # type: ignore[arg-type]
        except IngestError as exc:
            outcomes.append(exc)
    return outcomes
