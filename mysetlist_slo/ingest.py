"""Loading files into the store: one transaction per file, registered by content hash."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import IngestError, RowProblem
from mysetlist_slo.rollups import add_rollups
from mysetlist_slo.routes import INVALID_ROUTE, RouteNormaliser
from mysetlist_slo.sources import ExportOptions, Reject, detect_source
from mysetlist_slo.sources._lines import content_sha256
from mysetlist_slo.store import find_ingest, scalar

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
    sha = content_sha256(path)
    known = find_ingest(con, sha)
    if known is not None:
        return IngestResult(
            str(path), str(known["kind"]), 0, 0, True, time.perf_counter() - started,
            int(known["id"]),  # type: ignore[call-overload]
            f"already loaded as ingest #{known['id']} from {known['file']} "
            f"at {known['loaded_at']:%Y-%m-%d %H:%M:%S} UTC; nothing to do")
    source = detect_source(path, kind, log_format, options)
    routes = RouteNormaliser(config.routes.patterns, config.routes.max_routes,
                             (r for (r,) in con.execute("SELECT route FROM routes").fetchall()),
                             config.routes.min_requests)
    thresholds = config.all_thresholds_ms

    con.execute("BEGIN TRANSACTION")
    try:
        ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        loaded = rejected = 0
        shown: list[RowProblem] = []
        first_ts = last_ts = None
        for batch in source.read(path):
            rejected += len(batch.rejects)
            for reject in batch.rejects[: SHOWN_PROBLEMS - len(shown)]:
                shown.append(RowProblem(str(path), reject.line, reject.field, reject.problem))
            if isinstance(max_bad_rows, int) and rejected > max_bad_rows:
                # With a fixed count the verdict is known now: stop reading.
                raise IngestError(str(path), f"{rejected}+ bad records (limit {max_bad_rows}); "
                                  "nothing was stored", shown, rejected)
            if batch.rejects:
                _insert_rejects(con, ingest_id, batch.rejects)
            rows = batch.rows
            if rows.num_rows:
                route = pc.fill_null(routes.normalise(rows.column("target")), INVALID_ROUTE)
                con.register("batch_rows", rows.append_column("route", route))
                add_rollups(con, ingest_id, thresholds)
                con.unregister("batch_rows")
                low, high = pc.min_max(rows.column("ts")).values()
                first_ts = low.as_py() if first_ts is None else min(first_ts, low.as_py())
                last_ts = high.as_py() if last_ts is None else max(last_ts, high.as_py())
                loaded += rows.num_rows
            if progress is not None:
                progress(batch.position)
        total = loaded + rejected
        if total == 0:
            raise IngestError(str(path), "file holds no records")
        if rejected > _allowed(max_bad_rows, total):
            raise IngestError(str(path), f"{rejected} of {total} records are bad (limit "
                              f"{max_bad_rows}); nothing was stored", shown, rejected)
        if routes.added:
            con.register("new_routes", pa.table({"route": routes.added}))
            con.execute("INSERT INTO routes SELECT route, $id FROM new_routes", {"id": ingest_id})
            con.unregister("new_routes")
        seconds = time.perf_counter() - started
        con.execute(
            "INSERT INTO ingests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [ingest_id, sha, source.kind, str(path), path.stat().st_size, loaded, rejected,
             first_ts, last_ts, datetime.now(UTC), seconds],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    message = f"{rejected} bad records kept in the rejects table" if rejected else ""
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
