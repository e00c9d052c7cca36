"""Loading rollup output (``mysetlist-slo rollup``, either engine) into the store: one
transaction per UTC day, registered by the content of that day's rows, so loading the same
rollups again (from either engine, or a re-run) changes nothing, and by the lake files it was
made from (``rollup_sources``), so that every request is counted once: a re-run over a lake
that has grown replaces the days it covers, an older output is skipped, another lake's output
adds up, and outputs sharing only some files, or made from files ingested directly, are refused.

The output's layout (the lake/spark contract): ``OUT/<table>/date=YYYY-MM-DD/*.parquet`` for
each of ROLLUP_TABLES with the store table's columns but ``ingest_id``, ``OUT/routes.parquet``
(the admitted routes) and ``OUT/_rollup.json``, written last.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import IngestError
from mysetlist_slo.lake._crash import crash_point
from mysetlist_slo.store.database import find_ingest, scalar
from mysetlist_slo.store.ingest import (
    _reroute_pages,
    _reroute_rollups,
    typed_read_errors,
    withdraw_load,
)
from mysetlist_slo.store.routes import INVALID_ROUTE, OTHER_ROUTE, RouteNormaliser

KIND = "rollups"
# The output's own files and format (engine/run.py writes them, this module reads them).
ROLLUP_META = "_rollup.json"
ROLLUP_FORMAT = 1
ROUTES_FILE = "routes.parquet"
# Each table of the output and the column whose UTC date is its Hive partition.
ROLLUP_TABLES = {
    "request_counts": "minute",
    "request_good": "minute",
    "latency_sketch": "slot",
    "region_counts": "minute",
    "region_latency_sketch": "slot",
    "cache_counts": "minute",
}
# DuckDB's column types as the contract's Arrow types.
_ARROW_TYPES = {
    "TIMESTAMP WITH TIME ZONE": pa.timestamp("us", tz="UTC"),
    "SMALLINT": pa.int16(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "VARCHAR": pa.string(),
}
_META_KEYS = {"format": int, "engine": str, "thresholds_ms": list, "max_routes": int,
              "min_requests": int, "lake_files": list, "created": str}
_PARTITION = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
# A lake file as _rollup.json names it (lake-relative): its day, and its content hash when its
# name is one (`lake add` names each file by the sha256 of the source file it came from).
_LAKE_FILE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})/(?:([0-9a-f]{64})\.parquet|[^/]+)$")


@dataclass(frozen=True)
class RollupLoadResult:
    """What happened to one day of rollup output."""

    date: str
    files: int
    requests: int  # the requests the day's request_counts stand for
    skipped: bool
    seconds: float
    ingest_id: int | None
    message: str = ""


def rollup_schema(con: duckdb.DuckDBPyConnection, table: str) -> pa.Schema:
    """Return the Arrow schema the contract requires of ``table``'s rollup files: the store
    table's columns (current schema) without ``ingest_id`` and ``template``, in order.

    ``template`` is ingest's note on an "(other)" row whose template may be admitted later
    (store/ingest.py); the lake admits routes over the whole lake at once, so its rows are
    loaded with none (NULL)."""
    columns = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? "
        "AND column_name NOT IN ('ingest_id', 'template') "
        "ORDER BY ordinal_position", [table]).fetchall()
    return pa.schema([(name, _ARROW_TYPES[kind]) for name, kind in columns])


def _read_meta(out: Path) -> dict[str, object]:
    path = out / ROLLUP_META
    if not path.is_file():
        raise IngestError(str(path), "missing: not a complete rollup output (it is written "
                          "last; run `mysetlist-slo rollup` again)")
    try:
        meta = json.loads(path.read_text("utf-8"))
    except (ValueError, OSError) as exc:
        raise IngestError(str(path), f"not JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise IngestError(str(path), "not a JSON object")
    for key, kind in _META_KEYS.items():
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise IngestError(str(path), f"{key}: missing or not a {kind.__name__}")
    if meta["format"] != ROLLUP_FORMAT:
        raise IngestError(str(path), f"format: {meta['format']} is not {ROLLUP_FORMAT}")
    if not all(isinstance(t, int | float) for t in meta["thresholds_ms"]):  # type: ignore[attr-defined]
        raise IngestError(str(path), "thresholds_ms: not a list of numbers")
    for name in meta["lake_files"]:  # type: ignore[attr-defined]
        if not isinstance(name, str) or not _LAKE_FILE.search(name):
            raise IngestError(str(path), f"lake_files: {name!r} is not a lake file "
                              "(requests/date=YYYY-MM-DD/NAME.parquet)")
    return meta


def _day_sources(meta: dict[str, object]) -> dict[str, frozenset[str]]:
    """Return {day: the lake files of that day the output was made from} (``lake_files``)."""
    days: dict[str, set[str]] = {}
    for name in meta["lake_files"]:  # type: ignore[attr-defined]
        found = _LAKE_FILE.search(name)
        assert found is not None  # checked by _read_meta
        days.setdefault(found.group(1), set()).add(name)
    return {day: frozenset(files) for day, files in days.items()}


@dataclass(frozen=True)
class _Plan:
    """What loading one day of output does to the days of rollups loaded before."""

    replaces: tuple[int, ...] = ()  # loads made from some of this day's files: withdrawn
    older_than: int | None = None  # a load made from more files: this day is skipped


def _plan_day(con: duckdb.DuckDBPyConnection, where: str, date: str,
              files: frozenset[str]) -> _Plan:
    """Decide how the day ``date``, made from the lake files ``files``, joins what is loaded,
    so that each request is counted once. Raises IngestError when its files were ingested
    directly, or overlap those of an earlier load without covering them."""
    hashes = sorted(sha for sha in map(_source_sha, files) if sha is not None)
    direct = con.execute(
        "SELECT id, file FROM ingests WHERE sha256 IN (SELECT unnest($hashes)) "
        "AND kind <> $kind ORDER BY id LIMIT 1", {"hashes": hashes, "kind": KIND}).fetchall()
    if direct:
        raise IngestError(where, f"made from {direct[0][1]}, whose requests were ingested "
                          f"directly (ingest #{direct[0][0]}): loading these rollups too would "
                          "count them twice")
    earlier = con.execute(
        "SELECT ingest_id, list(lake_file) FROM rollup_sources WHERE day = CAST($day AS DATE) "
        "GROUP BY ingest_id ORDER BY ingest_id", {"day": date}).fetchall()
    replaces = []
    for ingest_id, names in earlier:
        loaded = frozenset(names)
        if loaded <= files:
            replaces.append(int(ingest_id))  # a re-run over the same or more files
        elif files < loaded:
            return _Plan(older_than=int(ingest_id))
        elif not files.isdisjoint(loaded):
            raise IngestError(where, f"{date} was loaded (ingest #{ingest_id}) from lake files "
                              "this output shares only in part: loading it would count "
                              f"{len(files & loaded)} of them twice; roll up one lake holding "
                              "all of them instead")
        # else: another lake's files (another data centre): both days count
    return _Plan(replaces=tuple(replaces))


def _source_sha(name: str) -> str | None:
    found = _LAKE_FILE.search(name)
    return found.group(2) if found else None


def _check_schema(path: Path, expected: pa.Schema) -> None:
    """Raise IngestError naming the file and column when its schema is not ``expected``."""
    try:
        found = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise IngestError(str(path), f"not a Parquet file: {str(exc).splitlines()[0]}") from None
    names = [name for name in found.names if name != "date"]  # a Hive column written inside
    if names != expected.names:
        missing = [n for n in expected.names if n not in names]
        extra = [n for n in names if n not in expected.names]
        detail = (f"column {missing[0]}: missing" if missing else
                  f"column {extra[0]}: not in the contract" if extra else
                  f"columns in the order {names}, expected {expected.names}")
        raise IngestError(str(path), detail)
    for column in expected:
        kind = found.field(column.name).type
        if kind != column.type:
            raise IngestError(str(path), f"column {column.name}: type {kind}, expected "
                              f"{column.type}")


def _partitions(out: Path, con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, list[Path]]]:
    """Return {date: {table: files}} of the output, every file's schema checked."""
    dates: dict[str, dict[str, list[Path]]] = {}
    for table in ROLLUP_TABLES:
        folder = out / table
        if not folder.is_dir():
            continue  # an engine writes no folder for a table without rows
        expected = rollup_schema(con, table)
        for partition in sorted(folder.iterdir()):
            if partition.name.startswith(("_", ".")):
                continue  # _SUCCESS, .crc: the writer's own bookkeeping
            found = _PARTITION.match(partition.name)
            if not partition.is_dir() or found is None:
                raise IngestError(str(partition), "not a date=YYYY-MM-DD partition folder")
            files = sorted(p for p in partition.glob("*.parquet")
                           if not p.name.startswith(("_", ".")))
            for path in files:
                _check_schema(path, expected)
            if files:
                dates.setdefault(found.group(1), {})[table] = files
    return dates


def _day_digest(con: duckdb.DuckDBPyConnection, date: str,
                tables: dict[str, list[Path]]) -> str:
    """Return the registry hash of a day's rollups: of its rows, whatever their order or the
    files they are in, so a re-run or the other engine's identical output is the same day.

    Raises IngestError when a row lies outside the day its partition names.
    """
    parts = []
    for table, files in sorted(tables.items()):
        column = ROLLUP_TABLES[table]
        # A row as text, its times as epoch microseconds: the same whatever the session's
        # time zone, so the same rows always hash alike. Names come from the store's schema.
        fields = [f'CAST(epoch_us("{field.name}") AS VARCHAR)'
                  if pa.types.is_timestamp(field.type) else f'CAST("{field.name}" AS VARCHAR)'
                  for field in rollup_schema(con, table)]
        with typed_read_errors(files[0].parent, KIND):
            found = con.execute(f"""
                WITH day AS (
                    SELECT * FROM read_parquet($files, hive_partitioning = false)
                ),
                lines AS (
                    SELECT concat_ws(chr(31), {", ".join(fields)}) AS line,
                           strftime(timezone('UTC', {column}), '%Y-%m-%d') AS date
                    FROM day
                )
                SELECT count(*), CAST(bit_xor(md5_number(line)) AS VARCHAR),
                       count(*) FILTER (WHERE date IS DISTINCT FROM $date)
                FROM lines""", {"files": [str(f) for f in files], "date": date}).fetchall()
        rows, xor, outside = found[0]
        if outside:
            first = con.execute(f"""
                SELECT min(filename) FROM read_parquet($files, hive_partitioning = false,
                                                       filename = true)
                WHERE strftime(timezone('UTC', {column}), '%Y-%m-%d') IS DISTINCT FROM $date
                """, {"files": [str(f) for f in files], "date": date}).fetchall()[0][0]
            raise IngestError(str(first), f"{outside} rows of {table} have a {column} outside "
                              f"{date}, the day their partition names")
        parts.append(f"{table} {rows} {xor}")
    return hashlib.sha256(f"{KIND} {date}\n{chr(10).join(parts)}".encode()).hexdigest()


def _admit_routes(con: duckdb.DuckDBPyConnection, routes: pa.Table, ingest_id: int,
                  patterns: list[str]) -> None:
    """Add the output's routes the store lacks to ``routes``, and move the rows ingest kept
    under "(other)" for them (tagged request rollups, page URLs) to them, as ingest does when
    it admits a route: "(other)" keeps only templates never admitted."""
    con.register("output_routes", routes)
    added = [route for (route,) in con.execute(
        """SELECT DISTINCT route FROM output_routes
           WHERE route NOT IN (SELECT route FROM routes) AND route NOT IN ($other, $invalid)
           ORDER BY route""", {"other": OTHER_ROUTE, "invalid": INVALID_ROUTE}).fetchall()]
    con.unregister("output_routes")
    if not added:
        return
    con.register("new_routes", pa.table({"route": pa.array(added, pa.string())}))
    con.execute("INSERT INTO routes SELECT route, $id FROM new_routes", {"id": ingest_id})
    _reroute_rollups(con)
    con.execute("DELETE FROM route_candidates WHERE route IN (SELECT route FROM new_routes)")
    con.unregister("new_routes")
    known = [route for (route,) in con.execute("SELECT route FROM routes").fetchall()]
    _reroute_pages(con, RouteNormaliser(patterns, known_routes=known))


def _load_day(con: duckdb.DuckDBPyConnection, out: Path, date: str,
              tables: dict[str, list[Path]], digest: str, routes: pa.Table,
              index: int, sources: frozenset[str], plan: _Plan,
              patterns: list[str]) -> RollupLoadResult:
    """Withdraw the loads ``plan`` replaces, insert one day's rollups, the output's new
    routes, its registry row and its lake files in one transaction; return what was loaded."""
    started = time.perf_counter()
    files = [path for paths in tables.values() for path in paths]
    con.execute("BEGIN TRANSACTION")
    try:
        for replaced in plan.replaces:
            withdraw_load(con, replaced)
        ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        for table, paths in tables.items():
            with typed_read_errors(paths[0].parent, KIND):
                con.execute(f"""INSERT INTO {table} BY NAME
                                SELECT $id AS ingest_id, *
                                FROM read_parquet($files, hive_partitioning = false)""",
                            {"id": ingest_id, "files": [str(p) for p in paths]})
        _admit_routes(con, routes, ingest_id, patterns)
        requests, first, last = con.execute(
            "SELECT coalesce(sum(requests), 0), min(minute), max(minute) FROM request_counts "
            "WHERE ingest_id = ?", [ingest_id]).fetchone() or (0, None, None)
        con.execute(
            "INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, first_ts, "
            "last_ts, loaded_at, seconds, ignored) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, 0)",
            [ingest_id, digest, KIND, str(out / f"*/date={date}"),
             sum(path.stat().st_size for path in files), int(requests), first, last,
             datetime.now(UTC), time.perf_counter() - started])
        con.executemany(
            "INSERT INTO rollup_sources VALUES (?, CAST(? AS DATE), ?, ?)",
            [[ingest_id, date, name, _source_sha(name)] for name in sorted(sources)])
        crash_point(f"rollups-day-{index}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    message = (f"replaces ingest {', '.join(f'#{i}' for i in plan.replaces)} (a rollup of this "
               "day from the same or fewer lake files)" if plan.replaces else "")
    return RollupLoadResult(date, len(files), int(requests), False,
                            time.perf_counter() - started, ingest_id, message)


def load_rollups(con: duckdb.DuckDBPyConnection, out: str | Path,
                 config: Config | None = None) -> list[RollupLoadResult]:
    """Load the rollup output folder ``out`` into the store, one transaction per UTC day (all
    six tables of the day together); return one result per day, in date order.

    A day whose rows are already in the registry is skipped. A day made from the same lake
    files as a loaded one, or more, replaces it (in the same transaction); one made from fewer
    is skipped; one made from other files only (another lake) is added. A crash leaves the days
    before loaded and the day being loaded as it was. Raises IngestError (naming file and
    column) for an output without ``_rollup.json``, with files whose columns or types differ
    from the contract, with rows outside their partition's day, made with thresholds that lack
    one the configuration needs, without the lake files of a day it has rows of, from files
    ingested directly, or sharing only some lake files with a loaded day (either would count
    requests twice).
    """
    out = Path(out)
    if not out.is_dir():
        problem = "not a folder" if out.exists() else "no such folder"
        raise IngestError(str(out), f"{problem}; give the folder `mysetlist-slo rollup --out` "
                          "wrote")
    meta = _read_meta(out)
    config = config or load_config()
    made_with = {float(t) for t in meta["thresholds_ms"]}  # type: ignore[attr-defined]
    lacking = sorted(t for t in config.all_thresholds_ms if float(t) not in made_with)
    if lacking:
        raise IngestError(str(out / ROLLUP_META), f"thresholds_ms: made without {lacking} ms, "
                          "which the configuration's SLOs need; run the rollup again with "
                          "this configuration")
    routes_path = out / ROUTES_FILE
    if not routes_path.is_file():
        raise IngestError(str(routes_path), "missing: the admitted routes of the output")
    _check_schema(routes_path, pa.schema([("route", pa.string())]))
    routes = pq.read_table(routes_path)
    sources = _day_sources(meta)
    results = []
    for index, (date, tables) in enumerate(sorted(_partitions(out, con).items())):
        started = time.perf_counter()
        digest = _day_digest(con, date, tables)
        known = find_ingest(con, digest)
        if known is not None:
            results.append(RollupLoadResult(
                date, sum(len(p) for p in tables.values()), 0, True,
                time.perf_counter() - started, int(str(known["id"])),
                f"already loaded as ingest #{known['id']} from {known['file']}; nothing to do"))
            continue
        where = str(out / f"*/date={date}")
        if not sources.get(date):
            raise IngestError(str(out / ROLLUP_META), f"lake_files: names no lake file of "
                              f"{date}, which the output has rows of")
        plan = _plan_day(con, where, date, sources[date])
        if plan.older_than is not None:
            results.append(RollupLoadResult(
                date, sum(len(p) for p in tables.values()), 0, True,
                time.perf_counter() - started, plan.older_than,
                f"older than ingest #{plan.older_than}, made from more lake files of this "
                "day (fewer lake files here); nothing to do"))
            continue
        results.append(_load_day(con, out, date, tables, digest, routes, index,
                                 sources[date], plan, list(config.routes.patterns)))
    return results
