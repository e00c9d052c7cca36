"""The rollup step on DuckDB and on Spark (issue 16): identical rollups row for row, and the
DuckDB engine's rollups equal what `ingest` of the same files stores (the store is the oracle)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import REAL_DATA, press_ctrl_c
from test_routes import ABSOLUTE_TARGETS

from mysetlist_slo.cli import main
from mysetlist_slo.config import Config, default_config_text, load_config
from mysetlist_slo.demo import DemoManifest
from mysetlist_slo.engine import TABLES, rollup_lake, spark_job
from mysetlist_slo.engine import run as run_module
from mysetlist_slo.engine.definition import (
    LN_GAMMA,
    Query,
    RollupSettings,
    bucket_sql,
    route_map_query,
)
from mysetlist_slo.engine.duckdb_engine import DuckDBExecutor
from mysetlist_slo.engine.run import MANIFEST, ROUTES_FILE, run_rollup
from mysetlist_slo.engine.spark_engine import JAVA_PACKAGE, SparkExecutor, java_problem
from mysetlist_slo.errors import LakeError, RollupError, SloError
from mysetlist_slo.lake import LAKE_SCHEMA
from mysetlist_slo.lake.rollups import load_rollups
from mysetlist_slo.lake.writer import add_to_lake
from mysetlist_slo.sources import ExportOptions, detect_source
from mysetlist_slo.sources.requests_schema import MAX_DURATION_S
from mysetlist_slo.store import ingest_file, open_store
from mysetlist_slo.store.rollups import sketch_index_sql
from mysetlist_slo.store.routes import RouteNormaliser

# New Year 2027 UTC: a day, week, month and year boundary, outside the demo's two weeks.
SYNTHETIC_START = datetime(2026, 12, 31, 23, 55, tzinfo=UTC)
VALUES = {"requests", "timed", "duration_sum_us", "bytes_sum", "good", "count"}
# Patterns beyond the shipped ones, so both catch-all spellings are exercised.
EXTRA_PATTERNS = ["/docs/[[...slug]]", "/blog/[...rest]", "/a.b/[x]"]
# Targets where RE2 and Java regexes, or code units and code points, could part ways.
ODD_TARGETS = [
    "/show/42", "/show/42/", "/show/4\n2", "/show/42\n", "/docs", "/docs/a/b\nc", "/blog/x",
    "/blog/", "/a.b/1", "/aXb/1", "/q?x=1\ny", "/q?x=1", "/q#f\r", "/r\r/s", "/u\u2028v/1",
    "/x/\u0085/12", "http://host", "https://h.example/a//b///c/?q", "HTTP://H/Z", "mailto:x",
    "", "?", "#", "/", "//", "///a//", "*", "/é" * 120, "/" + "\U0001f600" * 250,
    "/x/0123456789ab", "/x/0123456789a", "/x/DEADBEEF12345", "/x/deadbeefdeadbeef",
    "/x/12345678-1234-1234-1234-123456789abc", "/x/" + "Ab_-=" * 4, "/x/" + "Ab_-" * 4,
    "/x/123", "/x/12a", "/x/١٢٣", "/api/shows/9?x", "/artist/[slug]", "/x/%2F%0A",
]


def _config(**routes: Any) -> Config:
    config = load_config()
    update = {"patterns": [*config.routes.patterns, *EXTRA_PATTERNS], **routes}
    return config.model_copy(update={"routes": config.routes.model_copy(update=update)})


def _config_file(folder: Path, **routes: Any) -> Path:
    """Write the shipped configuration with _config's route changes; return its path."""
    document = yaml.safe_load(default_config_text())
    document["routes"]["patterns"] += EXTRA_PATTERNS
    document["routes"].update(routes)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(document), "utf-8")
    assert load_config(path) == _config(**routes)
    return path


def _edge_values() -> list[int]:
    """Every integer within 3 of a bucket edge gamma^i, up to the longest valid duration, and 0:
    both bucket functions are monotonic, so agreeing here means agreeing on every duration."""
    top = math.ceil(math.log(MAX_DURATION_S * 1_000_000) / LN_GAMMA) + 1
    values = {0, 1, 2, 3}
    for i in range(1, top + 1):
        edge = int((101 / 99) ** i)
        values.update(v for v in range(edge - 3, edge + 4) if v >= 0)
    return sorted(values)


def _synthetic_rows() -> pa.Table:
    """Odd targets, durations on every bucket edge, times on day and slot boundaries."""
    start = SYNTHETIC_START
    durations = _edge_values()
    rows = []
    for i, duration in enumerate(durations):
        rows.append({
            "ts": start + timedelta(microseconds=137_000_003 * i % (10 * 60 * 1_000_000)),
            "method": "GET", "target": ODD_TARGETS[i % len(ODD_TARGETS)],
            "status": (200, 201, 304, 404, 499, 500, 503)[i % 7],
            "duration_us": None if i % 13 == 0 else duration, "upstream_us": None,
            "bytes": None if i % 5 == 0 else i * 17, "client": None, "user_agent": None,
            "region": (None, "eu-west", "us-east")[i % 3],
            "cache_status": (None, "HIT", "MISS", "STALE")[i % 4],
            "source_sha256": "0" * 64, "line": i + 1})
    return pa.Table.from_pylist(rows, LAKE_SCHEMA)


# Export columns of the synthetic rows; durations are integer microseconds (--duration-unit us).
EXPORT_NAMES = {"ts": "timestamp", "target": "path", "duration_us": "duration_ms"}
US = ExportOptions(duration_unit="us")


def _write_export(path: Path) -> Path:
    """Write the synthetic rows as a Parquet request export that both `ingest` and the lake
    read (durations in microseconds)."""
    rows = _synthetic_rows()
    kept = ["ts", "method", "target", "status", "duration_us", "bytes", "region", "cache_status"]
    pq.write_table(rows.select(kept).rename_columns([EXPORT_NAMES.get(c, c) for c in kept]),
                   path)
    return path


def write_lake(lake: Path, rows: pa.Table, name: str) -> None:
    """Write lake rows straight into the lake layout with pyarrow, as another tool would
    (Hive-partitioned by the UTC date of ``ts``, no manifest)."""
    rows = rows.cast(LAKE_SCHEMA)
    dates = pc.strftime(rows.column("ts"), "%Y-%m-%d")
    for date in sorted(set(dates.to_pylist())):
        folder = lake / "requests" / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(rows.filter(pc.equal(dates, date)), folder / f"{name}.parquet")


def read_output(out: Path, table: str) -> pd.DataFrame:
    """Return an output table's rows (all dates), checking each file's columns and Hive date."""
    frames = []
    for path in sorted((out / table).glob("date=*/part-*.parquet")):
        part = pq.read_table(path)
        assert part.column_names == list(TABLES[table]), path
        frame = part.to_pandas()
        time_column = "slot" if "slot" in frame else "minute"
        dates = frame[time_column].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
        assert (dates == path.parent.name.removeprefix("date=")).all(), path
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=list(TABLES[table]))
    return _sorted(pd.concat(frames, ignore_index=True))


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("minute", "slot"):
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def output_types(out: Path, table: str) -> list[tuple[str, pa.DataType]]:
    """Return the (name, type) of an output table's first file."""
    path = next((out / table).glob("date=*/part-*.parquet"))
    return [(field.name, field.type) for field in pq.read_schema(path)]


def assert_same_output(left: Path, right: Path) -> None:
    """The two outputs hold the same rows, types and routes, and matching manifests."""
    for table in TABLES:
        ours, theirs = read_output(left, table), read_output(right, table)
        assert len(ours) > 0, table
        pd.testing.assert_frame_equal(ours, theirs, check_dtype=True, obj=table)
        assert output_types(left, table) == output_types(right, table), table
    assert pq.read_table(left / ROUTES_FILE).equals(pq.read_table(right / ROUTES_FILE))
    manifests = [json.loads((out / MANIFEST).read_text("utf-8")) for out in (left, right)]
    for manifest in manifests:
        del manifest["engine"], manifest["created"]
    assert manifests[0] == manifests[1]


@pytest.fixture(name="spark", scope="session")
def fixture_spark() -> Iterator[Any]:
    """One local[2] SparkSession for the whole test session (a JVM start is ~20 s)."""
    problem = java_problem()
    if problem:
        pytest.fail(f"{problem} (the Spark parity tests need {JAVA_PACKAGE})")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        pytest.fail("pyspark is missing: pip install -e '.[dev]' installs the spark extra")
    # Test-size settings: as a user would put them in spark-defaults.conf.
    session = (SparkSession.builder.master("local[2]").appName("mysetlist-slo tests")
               .config("spark.sql.shuffle.partitions", "2")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(name="request_files", scope="module")
def fixture_request_files(demo: DemoManifest) -> list[Path]:
    """The small demo's request logs and the real Apache log (found as the real_data fixture
    finds it: that one is function-scoped)."""
    if not REAL_DATA.is_dir():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"real data not found at {REAL_DATA}")
        pytest.skip(f"real data not found at {REAL_DATA} (set MYSETLIST_REAL_DATA)")
    files = [Path(f) for f in demo.files if Path(f).is_file() and _is_request_file(Path(f))]
    assert files
    return [*files, REAL_DATA / "apache_combined_2015.log"]


@pytest.fixture(name="synthetic_export", scope="module")
def fixture_synthetic_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic rows as a Parquet export (durations in us)."""
    return _write_export(tmp_path_factory.mktemp("export") / "synthetic.parquet")


def _is_request_file(path: Path) -> bool:
    try:
        return detect_source(path).record == "requests"
    except SloError:
        return False


@pytest.fixture(name="demo_lake", scope="module")
def fixture_demo_lake(request_files: list[Path], synthetic_export: Path,
                      tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake of the small demo's request logs, the real Apache log and odd synthetic rows,
    written by `lake add`'s code."""
    lake = tmp_path_factory.mktemp("lake")
    for path in request_files:
        add_to_lake(lake, path, max_bad_rows=1)
    add_to_lake(lake, synthetic_export, options=US, max_bad_rows=0.1)  # the "" targets
    return lake


@pytest.fixture(name="duckdb_out", scope="module")
def fixture_duckdb_out(demo_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo lake rolled up by DuckDB, with max_routes low enough to send some to (other)."""
    out = tmp_path_factory.mktemp("rollup") / "duckdb"
    rollup_lake(demo_lake, out, engine="duckdb", config=_config(max_routes=40))
    return out


def test_ln_gamma_is_the_stores() -> None:
    """The bound ln(101/99) is the double DuckDB computes in store/rollups.py's SQL."""
    assert duckdb.connect().execute("SELECT ln(101 / 99)").fetchall() == [(LN_GAMMA,)]


def _route_map(executor: Any, targets: list[str | None],
               settings: RollupSettings) -> dict[str | None, str]:
    frame = pa.table({"target": pa.array(targets, pa.string())})
    if isinstance(executor, DuckDBExecutor):
        executor.con.register("lake_requests", frame)
    else:
        executor.spark.createDataFrame(frame.to_pandas()).createOrReplaceTempView(
            "lake_requests")
    mapped = executor.fetch(route_map_query(executor.dialect, settings))
    return dict(zip(mapped.column("target").to_pylist(), mapped.column("route").to_pylist(),
                    strict=True))


def _settings(patterns: list[str], max_routes: int = 10_000, min_requests: int = 1,
              ) -> RollupSettings:
    return RollupSettings(tuple(patterns), max_routes, min_requests, (200.0,))


def _buckets(executor: Any) -> dict[int, int]:
    """Return {duration: bucket} of the engine's bucket SQL over the view ``v`` (column d)."""
    table = executor.fetch(Query(f"SELECT d, {bucket_sql(executor.dialect, 'd')} AS b FROM v",
                                 {"ln_gamma": LN_GAMMA}))
    return dict(zip(table.column("d").to_pylist(), table.column("b").to_pylist(), strict=True))


def test_duckdb_templates_equal_the_stores() -> None:
    """Every odd target gets from the engine's SQL the template RouteNormaliser gives it."""
    patterns = _config().routes.patterns
    expected = RouteNormaliser(patterns).templates(pa.array(ODD_TARGETS, pa.string()))
    got = _route_map(DuckDBExecutor(), [*ODD_TARGETS, None], _settings(patterns))
    assert [got[t] for t in ODD_TARGETS] == expected.to_pylist()
    assert got[None] == "(invalid)"
    # Hand-checked: RE2's [^/] takes the newline, and a newline stops a query from being cut.
    assert got["/show/4\n2"] == "/show/[id]"
    assert got["/q?x=1\ny"] == "/q?x=1\ny"
    assert got["/" + "\U0001f600" * 250] == "/" + "\U0001f600" * 199


def test_duckdb_absolute_targets_by_hand() -> None:
    """The engine's SQL gives a scheme-and-host target the route of "/" (its path), as the
    store does (tests/test_routes.py's hand-worked list)."""
    patterns = _config().routes.patterns
    targets = [target for target, _ in ABSOLUTE_TARGETS]
    got = _route_map(DuckDBExecutor(), targets, _settings(patterns))
    assert [got[t] for t in targets] == [
        "(invalid)" if path is None else RouteNormaliser(patterns).template(path)
        for _, path in ABSOLUTE_TARGETS]


def test_admission_by_hand() -> None:
    """Lake-wide admission, worked by hand: 2 routes at most, 3 requests at least; the tie at
    5 requests goes to the template sorting first; configured patterns are always routes."""
    targets = (["/b/x"] * 5 + ["/a/x"] * 5 + ["/c/x"] * 6 + ["/d/x"] * 2 + ["/show/1"]
               + ["nopath"])
    executor = DuckDBExecutor()
    executor.con.register("lake_requests", pa.table({"target": pa.array(targets)}))
    settings = _settings(["/show/[id]"], max_routes=2, min_requests=3)
    mapped = executor.fetch(route_map_query(executor.dialect, settings)).to_pylist()
    got = {row["target"]: (row["route"], row["admitted"]) for row in mapped}
    assert got == {"/c/x": ("/c/x", True), "/a/x": ("/a/x", True),
                   "/b/x": ("(other)", False), "/d/x": ("(other)", False),
                   "/show/1": ("/show/[id]", False), "nopath": ("(invalid)", False)}


def test_sketch_bucket_is_the_stores() -> None:
    """The engine's bucket SQL is store/rollups.py's on every duration near a bucket edge."""
    values = pa.table({"d": pa.array(_edge_values(), pa.int64())})
    con = duckdb.connect()
    con.register("v", values)
    store = dict(con.execute(f"SELECT d, {sketch_index_sql('d')} FROM v").fetchall())
    executor = DuckDBExecutor()
    executor.con.register("v", values)
    assert _buckets(executor) == store


def test_duckdb_rollups_equal_ingest(request_files: list[Path], synthetic_export: Path,
                                     duckdb_out: Path, tmp_path: Path) -> None:
    """Loading the same files with `ingest` (the admitted routes known beforehand, no room
    for more) stores the same rollups, summed by key, as the DuckDB engine wrote for them."""
    routes = pq.read_table(duckdb_out / ROUTES_FILE).column("route").to_pylist()
    assert len(routes) == 40  # the bound binds: some templates went to (other)
    store = open_store(tmp_path / "oracle.duckdb")
    store.execute("INSERT INTO routes SELECT unnest($r), 0", {"r": routes})
    config = _config(max_routes=len(routes))
    for path in request_files:
        ingest_file(store, path, config=config, max_bad_rows=1)
    ingest_file(store, synthetic_export, config=config, options=US, max_bad_rows=0.1)  # ""
    for table, columns in TABLES.items():
        keys = [c for c in columns if c not in VALUES]
        sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in columns if c in VALUES)
        stored = _sorted(store.execute(
            f"SELECT {', '.join(keys)}, {sums} FROM {table} GROUP BY ALL").fetchdf())
        written = read_output(duckdb_out, table)
        assert len(written) > 0, table
        stored = stored[list(columns)].astype(written.dtypes.to_dict())
        pd.testing.assert_frame_equal(stored, written, obj=table)
    assert sorted(r for (r,) in store.execute("SELECT route FROM routes").fetchall()) == routes
    assert "(other)" in set(read_output(duckdb_out, "request_counts")["route"])
    # `ingest --kind rollups` of the output stores what ingest of the files stored.
    loaded = open_store(tmp_path / "loaded.duckdb")
    assert all(not r.skipped for r in load_rollups(loaded, duckdb_out, config=config))
    for table in TABLES:
        assert _sums(loaded, table).equals(_sums(store, table)), table
    assert (loaded.execute("SELECT route FROM routes ORDER BY 1").fetchall()
            == store.execute("SELECT route FROM routes ORDER BY 1").fetchall())
    store.close()
    loaded.close()


def _sums(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """Return a store table summed by key, sorted."""
    columns = TABLES[table]
    keys = [c for c in columns if c not in VALUES]
    sums = ", ".join(f"CAST(sum({c}) AS BIGINT) AS {c}" for c in columns if c in VALUES)
    return _sorted(con.execute(
        f"SELECT {', '.join(keys)}, {sums} FROM {table} GROUP BY ALL").fetchdf())


def test_rollup_refuses_bad_places(tmp_path: Path, demo_lake: Path, duckdb_out: Path) -> None:
    """An empty lake, a finished output and a foreign folder are typed errors naming them."""
    with pytest.raises(LakeError, match="not a lake"):
        rollup_lake(tmp_path / "empty", tmp_path / "out")
    (tmp_path / "bare" / "requests").mkdir(parents=True)
    with pytest.raises(RollupError, match="no committed request files"):
        rollup_lake(tmp_path / "bare", tmp_path / "out")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", "utf-8")
    with pytest.raises(RollupError, match="not a rollup output"):
        rollup_lake(demo_lake, foreign)
    with pytest.raises(RollupError, match="finished rollup"):
        rollup_lake(demo_lake, duckdb_out)


@pytest.mark.parametrize("existing", [False, True])
def test_rollup_stopped_half_way_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                existing: bool) -> None:
    """Ctrl-C after the first table is written leaves no table behind: an output folder the
    run made is gone, an empty one given to it is empty again; the next run writes it all."""
    lake = tmp_path / "lake"
    write_lake(lake, _synthetic_rows(), "synthetic")
    out = tmp_path / "out"
    if existing:
        out.mkdir()
    real_write = DuckDBExecutor.write
    written: list[str] = []

    def write(self: DuckDBExecutor, query: Any, folder: str) -> None:
        if written:
            raise KeyboardInterrupt
        real_write(self, query, folder)
        written.append(folder)

    monkeypatch.setattr(DuckDBExecutor, "write", write)
    with pytest.raises(KeyboardInterrupt):
        rollup_lake(lake, out)
    assert written and Path(written[0]).parent == out.absolute()
    assert (list(out.iterdir()) == []) if existing else not out.exists()
    monkeypatch.setattr(DuckDBExecutor, "write", real_write)
    assert rollup_lake(lake, out).rows == rollup_lake(lake, tmp_path / "again").rows


def test_rollup_stopped_after_its_manifest_is_kept(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C once the manifest is renamed into place (while its folder is flushed) keeps the
    complete output: every table and the manifest, the same rows as an uninterrupted run."""
    lake = tmp_path / "lake"
    write_lake(lake, _synthetic_rows(), "synthetic")
    real_write_json = run_module.write_json_atomically

    def write_json(path: Path, document: Any) -> None:
        real_write_json(path, document)
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "write_json_atomically", write_json)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        rollup_lake(lake, out)
    monkeypatch.setattr(run_module, "write_json_atomically", real_write_json)
    assert (out / MANIFEST).exists()
    rollup_lake(lake, tmp_path / "again")
    assert_same_output(out, tmp_path / "again")


class _StragglingExecutor(DuckDBExecutor):
    """DuckDB with Spark's behaviour on Ctrl-C: the second table's write goes on in the
    background after the caller is stopped and has written its file by the time close()
    returns (as a Spark job runs on until its session stops)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []
        self.tasks: list[threading.Thread] = []

    def write(self, query: Any, folder: str) -> None:
        if not self.written:
            super().write(query, folder)
            self.written.append(folder)
            return
        rows = pa.table({"date": ["2027-01-01"], "requests": [1]})

        def task() -> None:
            time.sleep(0.3)
            part = Path(folder) / "date=2027-01-01" / "part-0.parquet"
            part.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, part)

        self.tasks.append(threading.Thread(target=task))
        self.tasks[-1].start()
        raise KeyboardInterrupt

    def close(self) -> None:
        for thread in self.tasks:
            thread.join()
        super().close()


def test_rollup_stopped_while_the_engine_writes_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C while the engine still writes a table (Spark's tasks run on until its session
    stops) leaves no table behind: the engine is stopped before the output is removed."""
    lake = tmp_path / "lake"
    write_lake(lake, _synthetic_rows(), "synthetic")
    out = tmp_path / "out"
    executor = _StragglingExecutor()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_rollup(executor, lake, out, load_config(), "duckdb")
    finally:
        executor.close()
    assert executor.tasks and not out.exists(), list(out.rglob("*"))


@pytest.mark.slow
def test_ctrl_c_in_a_spark_rollup_is_one_line(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while `rollup --engine
    spark` writes its tables ends it with exit status 130 and its one line last: no Python
    traceback (a JVM half gone after Ctrl-C failed the teardown with one), no output folder
    left. (PySpark's own SIGINT handler, put in place of the command's, lost the Ctrl-C: the
    rollup ran to its end.) Spark's own log may still show the job it aborted."""
    lake = tmp_path / "lake"
    write_lake(lake, _synthetic_rows(), "synthetic")
    for attempt in range(3):
        out = tmp_path / f"out{attempt}"

        def writing(_: subprocess.Popen[str], out: Path = out) -> bool:
            return out.is_dir() and any(out.iterdir())  # its jobs are writing the tables

        result = press_ctrl_c(["rollup", "--engine", "spark", "--master", "local[1]", "--lake",
                               str(lake), "--out", str(out)], writing)
        if result is not None:
            break
    else:
        pytest.fail("the rollup ended three times before Ctrl-C could reach it")
    stderr = result.stderr
    # What a failure shows: stderr without the JVM's stack frames.
    shown = "\n".join(line for line in stderr.splitlines()
                      if not line.lstrip().startswith(("at ", "... ")))[-4000:]
    assert result.returncode == 130, shown
    assert "Traceback" not in stderr and "FutureWarning" not in stderr, shown
    assert stderr.strip().splitlines()[-1].startswith("interrupted"), shown
    assert not out.exists(), list(out.rglob("*"))


def test_spark_missing_java_names_the_package(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    """Without a JVM, --engine spark stops with one line naming the Debian package."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(RollupError, match=JAVA_PACKAGE):
        rollup_lake(tmp_path, tmp_path / "out", engine="spark")


def test_cli_rollup(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mysetlist-slo rollup --engine duckdb` writes what the library call writes."""
    lake = tmp_path / "lake"
    write_lake(lake, _synthetic_rows(), "synthetic")
    out = tmp_path / "out"
    assert main(["rollup", "--engine", "duckdb", "--lake", str(lake), "--out", str(out)]) == 0
    assert "request_counts" in capsys.readouterr().out
    rollup_lake(lake, tmp_path / "library")
    assert_same_output(tmp_path / "library", out)
    assert main(["rollup", "--lake", str(lake), "--out", str(out)]) == 1
    assert "finished rollup" in capsys.readouterr().err


def test_spark_buckets_and_templates_equal_duckdbs(spark: Any) -> None:
    """Spark (Java regexes, StrictMath.log) gives every duration near a bucket edge the bucket,
    and every odd target the route, that DuckDB gives it."""
    executor = SparkExecutor(session=spark)
    values = _edge_values()
    spark.createDataFrame(pd.DataFrame({"d": values})).createOrReplaceTempView("v")
    reference = DuckDBExecutor()
    reference.con.register("v", pa.table({"d": pa.array(values, pa.int64())}))
    assert _buckets(executor) == _buckets(reference)
    settings = _settings(_config().routes.patterns)
    assert (_route_map(executor, [*ODD_TARGETS, None], settings)
            == _route_map(reference, [*ODD_TARGETS, None], settings))


def test_spark_rollups_equal_duckdbs(spark: Any, demo_lake: Path, duckdb_out: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Spark local[2] on the same lake (small demo, real Apache log, odd rows), run through the
    spark-submit entry, writes the same six tables row for row, with the same column types,
    routes and manifest; the session it found is left running."""
    out = tmp_path / "spark"
    assert spark_job.main(["--lake", str(demo_lake), "--out", str(out),
                           "--config", str(_config_file(tmp_path, max_routes=40))]) == 0
    assert "request_counts" in capsys.readouterr().out
    assert json.loads((out / MANIFEST).read_text("utf-8"))["engine"] == "spark"
    assert_same_output(duckdb_out, out)
    assert spark.range(3).count() == 3
    # The loader hashes a day's rows: Spark's days are DuckDB's, already loaded.
    store = open_store(tmp_path / "store.duckdb")
    config = _config(max_routes=40)
    assert not any(r.skipped for r in load_rollups(store, duckdb_out, config=config))
    assert all(r.skipped for r in load_rollups(store, out, config=config))
    store.close()
