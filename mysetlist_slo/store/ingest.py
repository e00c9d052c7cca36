"""Loading files into the store: one transaction per file, registered by content hash."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import IngestError, RowProblem
from mysetlist_slo.sources import ExportOptions, Reject, detect_source
from mysetlist_slo.sources._lines import (
    ContentDigest,
    CorruptFileError,
    content_digest,
    prefix_sha256,
)
from mysetlist_slo.sources.types import INPUT_TABLE, InputBatch, RequestSource, chunked
from mysetlist_slo.store.database import find_ingest, scalar
from mysetlist_slo.store.rollups import add_rollups
from mysetlist_slo.store.routes import RouteNormaliser

SHOWN_PROBLEMS = 10

Progress = Callable[[int], None]


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
    "requests": "line, ts, target, status, duration_us, bytes",
    "probes": "line, ts, target, location, ok, status, latency_ms",
    "vitals": "line, ts, metric, value, metric_id, target, form_factor, navigation_type, "
              "rating, source",
    "crux": "line, key_type, key, form_factor, metric, first_date, last_date, p75, histogram, "
            "CAST(first_date AS TIMESTAMPTZ) AS ts",
    "lighthouse": "line, fetch_time AS ts, target, form_factor, performance, lcp, fcp, cls, "
                  "tbt, tti, speed_index",
    "metrics": "line, ts, name, labels, value",
    "pgbouncer_stats": "* EXCLUDE (bad_field, problem)",
    "pgbouncer_pools": "* EXCLUDE (bad_field, problem)",
    "pg_statements": "* EXCLUDE (bad_field, problem)",
}
_CHECKED = """
CREATE OR REPLACE TEMP TABLE checked AS
SELECT {kept}, bad_field, problem
FROM ({query})
"""

# How the good records of each kind are stored (requests go through the rollups instead);
# page URLs get their route from ``batch_routes``, as request paths do.
_STORE = {
    "probes": """
        INSERT INTO probes
        SELECT $ingest_id, ts, target, location, ok, status, latency_ms
        FROM checked WHERE bad_field IS NULL""",
    "vitals": """
        INSERT INTO vitals
        SELECT $ingest_id, line, ts, metric, value, metric_id, checked.target, routes.route,
               form_factor, navigation_type, rating, source
        FROM checked JOIN batch_routes AS routes ON checked.target = routes.target
        WHERE bad_field IS NULL""",
    "crux": """
        INSERT INTO crux
        SELECT $ingest_id, key_type, key, form_factor, metric, first_date, last_date, p75,
               histogram
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
_ROUTED = ("requests", "vitals", "lighthouse")

_BATCH_SUMMARY = """
SELECT count(*), min(ts), max(ts)
FROM checked
WHERE bad_field IS NULL
"""


def _check_batch(con: duckdb.DuckDBPyConnection, source: RequestSource,
                 batch: InputBatch) -> tuple[int, list[Reject], list[datetime]]:
    """Validate a batch into the temp table ``checked``; return (good, rejects, time span)."""
    if batch.table is not None:
        con.register(INPUT_TABLE, batch.table)  # replaces the previous batch's
    con.execute(_CHECKED.format(kept=_KEPT[source.record], query=batch.query),
                batch.params or None)
    bad_rows = con.execute("SELECT line, bad_field, problem FROM checked "
                           "WHERE bad_field IS NOT NULL ORDER BY line").fetchall()
    rejects = batch.rejects + (source.explain(con, batch, bad_rows) if bad_rows else [])
    rejects.sort(key=lambda r: r.line)
    good, first, last = con.execute(_BATCH_SUMMARY).fetchall()[0]
    return int(good), rejects, [first, last] if good else []


def _route(con: duckdb.DuckDBPyConnection, routes: RouteNormaliser) -> None:
    """Register ``batch_routes`` (target, route) for the good records of ``checked``."""
    targets = con.sql("SELECT target, count(*) AS requests FROM checked "
                      "WHERE bad_field IS NULL GROUP BY target").to_arrow_table()
    con.register("batch_routes", chunked(routes.route_map(targets)))


_PREFIXES = """
SELECT id, file, sha256, content_bytes, content_lines
FROM ingests
WHERE first_line_sha256 = ? AND content_bytes < ? AND ends_with_newline AND kind = ?
ORDER BY content_bytes DESC
"""


def _loaded_prefix(con: duckdb.DuckDBPyConnection, path: Path, digest: ContentDigest,
                   kind: str) -> dict[str, Any] | None:
    """Return the registry row of an earlier load whose content this file starts with (the
    same log, grown since), or None. Its lines are not to be loaded again."""
    for row in con.execute(_PREFIXES, [digest.first_line_sha256, digest.size, kind]).fetchall():
        earlier = dict(zip(["id", "file", "sha256", "content_bytes", "content_lines"], row,
                           strict=True))
        if prefix_sha256(path, int(earlier["content_bytes"])) == earlier["sha256"]:
            return earlier
    return None


def ingest_file(con: duckdb.DuckDBPyConnection, path: str | Path, *, kind: str | None = None,
                config: Config | None = None, max_bad_rows: int | float = 0,
                log_format: str | None = None, options: ExportOptions | None = None,
                progress: Progress | None = None) -> IngestResult:
    """Load one file into the store and return what happened.

    The file lands whole or not at all. Loading content already in the registry is a no-op
    (``skipped``). Rejected records beyond ``max_bad_rows`` (a count, or a ratio of the file's
    records) raise IngestError listing the first problems as ``file:line: field: problem``;
    within the limit, each one is kept in the ``rejects`` table with its reason.
    """
    started = time.perf_counter()
    path = Path(path)
    config = config or load_config()
    if not path.is_file():
        raise IngestError(str(path), "no such file")
    if path.stat().st_size == 0:
        raise IngestError(str(path), "file is empty (0 bytes)")
    try:
        digest = content_digest(path)
    except CorruptFileError as exc:
        raise IngestError(str(path), str(exc)) from None
    sha = digest.sha256
    known = find_ingest(con, sha)
    if known is not None:
        return IngestResult(
            str(path), str(known["kind"]), 0, 0, True, time.perf_counter() - started,
            int(known["id"]),  # type: ignore[call-overload]
            f"already loaded as ingest #{known['id']} from {known['file']} "
            f"at {known['loaded_at']:%Y-%m-%d %H:%M:%S} UTC; nothing to do")
    source = detect_source(path, kind, log_format, options)
    earlier = (_loaded_prefix(con, path, digest, source.kind)
               if getattr(source, "resumable", False) else None)
    if earlier is not None:
        source.start = (earlier["content_bytes"], earlier["content_lines"])  # type: ignore[attr-defined]
    routes = RouteNormaliser(config.routes.patterns, config.routes.max_routes,
                             (r for (r,) in con.execute("SELECT route FROM routes").fetchall()),
                             config.routes.min_requests,
                             dict(con.execute("SELECT route, requests FROM route_candidates")
                                  .fetchall()))
    thresholds = config.all_thresholds_ms

    con.execute("BEGIN TRANSACTION")
    try:
        ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        loaded = rejected = 0
        shown: list[RowProblem] = []
        times: list[datetime] = []  # first and last request of each batch
        for batch in source.batches(path):
            good, bad, span = _check_batch(con, source, batch)
            rejected += len(bad)
            shown.extend(RowProblem(str(path), r.line, r.field, r.problem)
                         for r in bad[: SHOWN_PROBLEMS - len(shown)])
            if isinstance(max_bad_rows, int) and rejected > max_bad_rows:
                # With a fixed count the verdict is known now: stop reading.
                raise IngestError(str(path), f"{rejected}+ bad records (limit {max_bad_rows}); "
                                  "nothing was stored", shown, rejected)
            if bad:
                _insert_rejects(con, ingest_id, bad)
            if good and source.record in _ROUTED:
                _route(con, routes)
            if good and source.record == "requests":
                add_rollups(con, ingest_id, thresholds)
            elif good:
                con.execute(_STORE[source.record], {"ingest_id": ingest_id})
            if good:
                times += span
                loaded += good
            if progress is not None:
                progress(batch.position)
        total = loaded + rejected
        if total == 0 and earlier is None:
            raise IngestError(str(path), "file holds no records")
        if rejected > _allowed(max_bad_rows, total):
            raise IngestError(str(path), f"{rejected} of {total} records are bad (limit "
                              f"{max_bad_rows}); nothing was stored", shown, rejected)
        if routes.added:
            con.register("new_routes", pa.table({"route": routes.added}))
            con.execute("INSERT INTO routes SELECT route, $id FROM new_routes", {"id": ingest_id})
            con.unregister("new_routes")
        con.execute("DELETE FROM route_candidates")
        if routes.candidates:
            con.register("candidates", pa.table({
                "route": list(routes.candidates), "requests": list(routes.candidates.values())}))
            con.execute("INSERT INTO route_candidates SELECT route, requests FROM candidates")
            con.unregister("candidates")
        seconds = time.perf_counter() - started
        ignored = sum(getattr(source, "ignored", {}).values())
        con.execute(
            "INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, first_ts, "
            "last_ts, loaded_at, seconds, ignored, content_bytes, content_lines, "
            "first_line_sha256, ends_with_newline, continues_ingest) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [ingest_id, sha, source.kind, str(path), path.stat().st_size, loaded, rejected,
             min(times, default=None), max(times, default=None), datetime.now(UTC), seconds,
             ignored, digest.size, digest.lines, digest.first_line_sha256,
             digest.ends_with_newline, earlier["id"] if earlier else None],
        )
        con.execute("COMMIT")
    except IngestError as exc:
        con.execute("ROLLBACK")
        exc.kind = source.kind
        raise
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute("DROP TABLE IF EXISTS temp.checked")
        for name in (INPUT_TABLE, "batch_routes"):
            con.unregister(name)
    notes = [f"{rejected} bad records kept in the rejects table"] if rejected else []
    if earlier is not None:
        notes.append(f"the first {earlier['content_lines']:,} lines were loaded before (ingest "
                     f"#{earlier['id']}, {earlier['file']}): read on from line "
                     f"{earlier['content_lines'] + 1:,}")
    if ignored:
        skipped = getattr(source, "ignored", {})
        counts = ", ".join(f"{name} x{n}" for name, n in sorted(skipped.items()))
        notes.append(f"{ignored} records of metrics not tracked were ignored: {counts}")
    message = "; ".join(notes)
    return IngestResult(str(path), source.kind, loaded, rejected, False, seconds, ingest_id,
                        message)


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
