"""Running the rollup definition on an engine: read the lake, write the rollup output folder.

The output layout is the contract of issue 16 (docs in README "Rollups on DuckDB or Spark"):
``OUT/<table>/date=YYYY-MM-DD/part-*.parquet`` for each table of ``TABLES``, ``OUT/routes.parquet``
(the routes admitted by count) and ``OUT/_rollup.json``, written last.
"""

from __future__ import annotations

import shutil
import time
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.engine.definition import (
    TABLES,
    Dialect,
    Query,
    RollupSettings,
    aggregate_query,
    route_map_query,
    table_queries,
)
from mysetlist_slo.errors import RollupError
from mysetlist_slo.lake import lake_files
from mysetlist_slo.lake.layout import check_local, fsync_path, write_json_atomically
from mysetlist_slo.lake.rollups import ROLLUP_FORMAT as FORMAT
from mysetlist_slo.lake.rollups import ROLLUP_META as MANIFEST
from mysetlist_slo.lake.rollups import ROUTES_FILE

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")


class Executor(Protocol):
    """What an engine does for the rollup: the definition's queries are the same for both."""

    dialect: Dialect

    def register_lake(self, files: list[str]) -> None:
        """Make the lake's request rows readable as ``lake_requests``."""

    def materialise(self, name: str, query: Query) -> None:
        """Compute ``query`` once and keep it readable as ``name``."""

    def fetch(self, query: Query) -> pa.Table:
        """Return the (small) result of ``query`` on the driver."""

    def write(self, query: Query, folder: str) -> None:
        """Write the result of ``query`` under ``folder``, Hive-partitioned by its ``date``."""

    def close(self) -> None:
        """Release the engine's resources."""


@dataclass(frozen=True)
class RollupResult:
    """What one rollup run read and wrote."""

    engine: str
    out: str
    lake_files: int
    requests: int
    routes: int
    rows: dict[str, int]
    seconds: float


def settings_of(config: Config) -> RollupSettings:
    """Return the rollup settings of ``config``: patterns, admission bounds, thresholds."""
    return RollupSettings(tuple(config.routes.patterns), config.routes.max_routes,
                          config.routes.min_requests, tuple(config.all_thresholds_ms))


def committed_files(lake: str | Path) -> list[str]:
    """Return the lake's committed request files, sorted, relative to ``lake``.

    Raises RollupError when the lake holds none, LakeError when ``lake`` is not a lake.
    """
    root = Path(lake)
    files = sorted(Path(path).relative_to(root).as_posix() for path in lake_files(lake))
    if not files:
        raise RollupError(str(lake), "no committed request files under requests/date=*/ "
                          "(add some with `mysetlist-slo lake add`)")
    return files


def _prepare_out(out: Path) -> None:
    """Refuse an output folder that holds a finished rollup or anything not ours; clear a run
    that stopped before its manifest (only our own table folders and routes file)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RollupError(str(out), "is not a folder")
    if (out / MANIFEST).exists():
        raise RollupError(str(out), f"holds a finished rollup ({MANIFEST}); write to a new "
                          "folder, or delete this one first")
    ours = {*TABLES, ROUTES_FILE}
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in ours and not p.name.startswith(f".{MANIFEST}."))
    if foreign:
        raise RollupError(str(out), f"is not empty and not a rollup output: {foreign[:3]}")
    _clear(out)


def _clear(out: Path) -> None:
    """Remove what a rollup writes into ``out`` (checked to hold nothing else)."""
    for child in out.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def run_rollup(executor: Executor, lake: str | Path, out: str | Path, config: Config,
               engine: str) -> RollupResult:
    """Roll the lake up with ``executor`` into ``out`` (see the module doc); return counts.

    Raises RollupError for an empty lake, lake files that cannot be read or an output folder
    that is not ours; LakeError when ``lake`` is not a lake. A run that fails or is stopped
    after it began writing closes ``executor`` before removing what it wrote.
    """
    started = time.perf_counter()
    out = check_local(out, "rollup output").absolute()
    files = committed_files(lake)
    made = not out.exists()
    _prepare_out(out)
    try:
        return _write_rollup(executor, lake, out, config, engine, files, started)
    except BaseException:
        # Failed or stopped (Ctrl-C) before its manifest: nothing half-written is left behind.
        # The engine is stopped first: Spark's tasks write on after Ctrl-C until its session
        # stops, and would put back (or finish) a table removed before. Whatever cannot be
        # removed, the error raised is the one that stopped the run.
        with suppress(Exception):  # a half-gone engine (Spark's JVM after Ctrl-C)
            executor.close()
        with suppress(OSError):
            # Its manifest on disk, the output is complete: kept (removing it would leave a
            # manifest beside missing tables if this removal were stopped in turn).
            if out.is_dir() and not (out / MANIFEST).exists():
                _clear(out)
                if made:
                    out.rmdir()
        raise


def _write_rollup(executor: Executor, lake: str | Path, out: Path, config: Config, engine: str,
                  files: list[str], started: float) -> RollupResult:
    """Write the rollup of the lake ``files`` into the empty folder ``out``, manifest last."""
    settings = settings_of(config)
    d = executor.dialect
    executor.register_lake([str((Path(lake) / f).absolute()) for f in files])
    executor.materialise("route_map", route_map_query(d, settings))
    executor.materialise("aggregate", aggregate_query(d, settings))
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for table, query in table_queries(d, settings).items():
        executor.write(query, str(out / table))
        rows[table] = _rows_written(out / table)
    admitted = executor.fetch(Query(
        "SELECT DISTINCT route FROM route_map WHERE admitted ORDER BY route", {}))
    routes = pa.table({"route": pa.array(sorted(admitted.column("route").to_pylist()),
                                         pa.string())})
    pq.write_table(routes, out / ROUTES_FILE)
    totals = executor.fetch(Query("SELECT CAST(sum(requests) AS BIGINT) AS n FROM aggregate", {}))
    requests = int(totals.column("n")[0].as_py() or 0)
    manifest = {
        "format": FORMAT, "engine": engine, "thresholds_ms": list(settings.thresholds_ms),
        "max_routes": settings.max_routes, "min_requests": settings.min_requests,
        "lake_files": files, "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # Written last, through a rename, once every file is on disk: its presence means the
    # output is complete, even after a power cut.
    for path in sorted(out.rglob("*"), key=lambda p: -len(p.parts)):  # files, then folders
        fsync_path(path)
    write_json_atomically(out / MANIFEST, manifest)
    return RollupResult(engine, str(out), len(files), requests, routes.num_rows, rows,
                        time.perf_counter() - started)


def _rows_written(folder: Path) -> int:
    """Return the rows of the Parquet files written under ``folder`` (from their footers)."""
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("date=*/*.parquet"))


def rollup_lake(lake: str | Path, out: str | Path, *, engine: Engine = "duckdb",
           config: Config | None = None, master: str | None = None,
           conf: dict[str, str] | None = None) -> RollupResult:
    """Roll up the request lake ``lake`` into ``out`` with DuckDB (embedded) or Spark.

    ``master`` is Spark's master URL (local[2], spark://..., yarn, k8s://...); unset, Spark's
    own settings decide (spark-defaults.conf, spark-submit --master); ``conf`` are Spark
    settings as ``spark-submit --conf`` gives them. Returns what was written.
    Raises RollupError for an empty lake, lake files that cannot be read, an output folder
    that is not ours, an unknown engine, or Spark without pyspark or Java; LakeError when
    ``lake`` is not a lake (or its manifest is damaged); ConfigError for a bad configuration.
    """
    config = config or load_config()
    if engine == "duckdb":
        from mysetlist_slo.engine.duckdb_engine import DuckDBExecutor

        executor: Executor = DuckDBExecutor()
    elif engine == "spark":
        from mysetlist_slo.engine.spark_engine import SparkExecutor

        executor = SparkExecutor(master, conf=conf)
    else:
        raise RollupError(str(lake), f"unknown engine {engine!r}; choose one of {ENGINES}")
    try:
        return run_rollup(executor, lake, out, config, engine)
    finally:
        executor.close()
