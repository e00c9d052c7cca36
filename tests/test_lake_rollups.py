"""Loading rollup output (`ingest --kind rollups`), checked against an oracle that needs no
rollup engine: store A's own rollups, exported with DuckDB into the contract's layout, loaded
into a fresh store B, must give B every table (summed by key) and every SLI, budget and
percentile of A; loading twice changes nothing; a killed load keeps whole days only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import timed_line

from mysetlist_slo import (
    DemoManifest,
    cache_hit_ratios,
    count_below,
    error_budgets,
    ingest_file,
    latency_percentiles,
    load_config,
    open_store,
    region_traffic,
)
from mysetlist_slo.cli import main
from mysetlist_slo.engine import rollup_lake
from mysetlist_slo.errors import IngestError
from mysetlist_slo.lake import add_to_lake
from mysetlist_slo.lake._crash import CRASH_AT
from mysetlist_slo.lake.rollups import RollupLoadResult, load_rollups

# Each rollup table's key (the other columns are counters, summed); written out here so the
# oracle does not read the package's own list.
KEYS = {
    "request_counts": ["minute", "route", "status"],
    "request_good": ["minute", "route", "threshold_ms"],
    "latency_sketch": ["slot", "route", "bucket"],
    "region_counts": ["minute", "region", "status"],
    "region_latency_sketch": ["slot", "region", "bucket"],
    "cache_counts": ["minute", "route", "cache_status"],
}


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for (name,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        # template: ingest's note on an (other) row, not part of the lake's contract
        "AND column_name NOT IN ('ingest_id', 'template') ORDER BY ordinal_position",
        [table]).fetchall()]


def _summed(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """The table with one row per key, its counters summed, in key order."""
    keys = KEYS[table]
    items = [column if column in keys else f"CAST(sum({column}) AS BIGINT) AS {column}"
             for column in _columns(con, table)]
    return con.execute(f"SELECT {', '.join(items)} FROM {table} GROUP BY ALL "
                       f"ORDER BY {', '.join(keys)}").df()


def export_rollups(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    """Write the store's rollups in the contract's layout, one row per key, as an engine would."""
    out.mkdir()
    for table, keys in KEYS.items():
        items = [column if column in keys else f"CAST(sum({column}) AS BIGINT) AS {column}"
                 for column in _columns(con, table)]
        when = "slot" if "slot" in keys else "minute"
        con.execute(f"""COPY (
                SELECT {', '.join(items)}, strftime(timezone('UTC', {when}), '%Y-%m-%d') AS date
                FROM {table} GROUP BY ALL
            ) TO '{out / table}' (FORMAT parquet, PARTITION_BY (date))""")
    con.execute(f"COPY (SELECT route FROM routes ORDER BY route) TO '{out / 'routes.parquet'}' "
                "(FORMAT parquet)")
    config = load_config()
    # One made-up lake file per day: the days an engine would have read.
    days = sorted(p.name for p in out.glob("*/date=*"))
    (out / "_rollup.json").write_text(json.dumps({
        "format": 1, "engine": "duckdb", "thresholds_ms": config.all_thresholds_ms,
        "max_routes": config.routes.max_routes, "min_requests": config.routes.min_requests,
        "lake_files": [f"requests/{day}/store-a.parquet" for day in dict.fromkeys(days)],
        "created": "2026-11-26T12:00:00+00:00"}))


def _regional_export(path: Path, end: datetime) -> Path:
    """A JSONL export of 3,000 requests over the demo's last two days naming their region (the
    demo logs name none), so the region tables have rows too."""
    rng = np.random.default_rng(16)
    start = end - timedelta(days=2)
    with open(path, "w") as handle:
        for i in range(3000):
            ts = start + timedelta(seconds=float(rng.uniform(0, 2 * 86400)))
            handle.write(json.dumps({
                "timestamp": ts.isoformat(), "path": f"/show/{rng.integers(1, 50)}",
                "status": int(rng.choice([200, 200, 200, 404, 503])),
                "duration_ms": round(float(rng.lognormal(4, 1)), 3),
                "region": ["iad1", "fra1", "sin1"][i % 3]}) + "\n")
    return path


@pytest.fixture(name="store_a", scope="module")
def fixture_store_a(demo: DemoManifest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Store A: the demo's access logs ingested directly."""
    folder = tmp_path_factory.mktemp("a")
    path = folder / "a.duckdb"
    con = open_store(path)
    for file in demo.files:
        if Path(file).name.startswith("access.log"):
            ingest_file(con, file)
    ingest_file(con, _regional_export(folder / "regional.jsonl", demo.end))
    con.close()
    return path


@pytest.fixture(name="rollup_out", scope="module")
def fixture_rollup_out(store_a: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A's rollups exported in the contract's layout."""
    out = tmp_path_factory.mktemp("out") / "rollups"
    con = open_store(store_a, read_only=True)
    export_rollups(con, out)
    con.close()
    return out


@pytest.fixture(name="store_b", scope="module")
def fixture_store_b(rollup_out: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Store B: a fresh store loaded only from the rollup output, through the CLI."""
    path = tmp_path_factory.mktemp("b") / "b.duckdb"
    assert main(["--db", str(path), "ingest", "--kind", "rollups", str(rollup_out)]) == 0
    return path


def _days(out: Path) -> list[str]:
    return sorted(p.name.removeprefix("date=") for p in (out / "request_counts").iterdir())


def test_tables_summed_by_key_equal_the_source_store(store_a: Path, store_b: Path) -> None:
    """Every rollup table of B, summed by key, equals A's; so do the admitted routes."""
    a, b = open_store(store_a, read_only=True), open_store(store_b, read_only=True)
    try:
        for table in KEYS:
            expected = _summed(a, table)
            assert len(expected) > 0, table
            pd.testing.assert_frame_equal(_summed(b, table), expected, obj=table)
        routes = "SELECT route FROM routes ORDER BY route"
        assert b.execute(routes).fetchall() == a.execute(routes).fetchall()
    finally:
        a.close()
        b.close()


def test_every_sli_budget_and_percentile_equals_the_source_store(
        store_a: Path, store_b: Path, demo: DemoManifest) -> None:
    """Budgets, SLIs and burn rates of every SLO, percentiles (all, per route), exact counts
    below the latency threshold, region traffic and cache hit ratios: B's equal A's."""
    config = load_config()
    start, end = demo.start, demo.end
    mid = start + (end - start) / 2
    a, b = open_store(store_a, read_only=True), open_store(store_b, read_only=True)
    try:
        def same(compute: object) -> None:
            got, expected = compute(b), compute(a)  # type: ignore[operator]
            if isinstance(expected, pd.DataFrame):
                assert len(expected) > 0
                pd.testing.assert_frame_equal(got, expected)
            else:
                assert got == expected

        for at in (end, mid):
            same(lambda con, at=at: error_budgets(con, config, at=at))
        same(lambda con: latency_percentiles(con, start, end))
        same(lambda con: latency_percentiles(con, mid, mid + timedelta(days=1),
                                             routes=["/show/[id]"]))
        same(lambda con: count_below(con, config.all_thresholds_ms[0], start, end))
        same(lambda con: region_traffic(con, start, end))
        same(lambda con: cache_hit_ratios(con, config, start, end))
        budgets = error_budgets(b, config, at=end)
        assert budgets["total"].sum() > 0 and budgets["bad"].sum() > 0  # saw traffic, failures
    finally:
        a.close()
        b.close()


def _counts(path: Path) -> dict[str, int]:
    con = open_store(path, read_only=True)
    try:
        return {table: int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])
                for table in [*KEYS, "ingests", "routes"]}
    finally:
        con.close()


def test_loading_twice_changes_nothing(store_b: Path, rollup_out: Path) -> None:
    """The second load of the same output skips every day and writes no row."""
    before = _counts(store_b)
    con = open_store(store_b)
    try:
        results = load_rollups(con, rollup_out)
    finally:
        con.close()
    assert [r.date for r in results] == _days(rollup_out)
    assert all(r.skipped for r in results)
    assert _counts(store_b) == before


def test_one_registry_row_per_day(store_b: Path, rollup_out: Path, store_a: Path) -> None:
    """Each day is one ingest of kind rollups counting that day's requests."""
    b = open_store(store_b, read_only=True)
    a = open_store(store_a, read_only=True)
    try:
        rows = b.execute("SELECT strftime(timezone('UTC', first_ts), '%Y-%m-%d'), loaded "
                         "FROM ingests WHERE kind = 'rollups' ORDER BY 1").fetchall()
        per_day = a.execute("SELECT strftime(timezone('UTC', minute), '%Y-%m-%d'), "
                            "sum(requests)::BIGINT FROM request_counts GROUP BY 1 "
                            "ORDER BY 1").fetchall()
    finally:
        a.close()
        b.close()
    assert [day for day, _ in rows] == _days(rollup_out)
    assert rows == per_day


def test_killed_load_keeps_earlier_days_and_a_rerun_completes(
        rollup_out: Path, store_b: Path, tmp_path: Path) -> None:
    """SIGKILL inside the third day's transaction: days one and two are in, day three has no
    row anywhere; a rerun loads the rest, and the store equals a load that was never killed."""
    path = tmp_path / "c.duckdb"
    command = [sys.executable, "-m", "mysetlist_slo", "--db", str(path), "ingest", "--kind",
               "rollups", str(rollup_out)]
    killed = subprocess.run(command, env={**os.environ, CRASH_AT: "rollups-day-2"},
                            capture_output=True, text=True, timeout=300, check=False)
    assert killed.returncode == -9, killed.stderr
    days = _days(rollup_out)
    con = open_store(path, read_only=True)
    try:
        loaded = con.execute("SELECT count(*) FROM ingests WHERE kind = 'rollups'").fetchall()
        assert loaded == [(2,)]
        for table, keys in KEYS.items():
            when = "slot" if "slot" in keys else "minute"
            present = {d for (d,) in con.execute(
                f"SELECT DISTINCT strftime(timezone('UTC', {when}), '%Y-%m-%d') FROM {table}"
            ).fetchall()}
            assert days[2] not in present, table
            assert present <= set(days[:2]), table
    finally:
        con.close()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stderr
    c, b = open_store(path, read_only=True), open_store(store_b, read_only=True)
    try:
        for table in KEYS:
            pd.testing.assert_frame_equal(_summed(c, table), _summed(b, table), obj=table)
    finally:
        c.close()
        b.close()


def _first_file(out: Path, table: str) -> Path:
    return sorted((out / table).glob("date=*/*.parquet"))[0]


def _retyped(path: Path) -> None:
    table = pq.read_table(path, partitioning=None)
    index = table.schema.get_field_index("requests")
    pq.write_table(table.set_column(index, pa.field("requests", pa.float64()),
                                    table.column("requests").cast(pa.float64())), path)


def _dropped(path: Path) -> None:
    pq.write_table(pq.read_table(path, partitioning=None).drop_columns(["timed"]), path)


def _moved(path: Path) -> None:
    other = path.parent.parent / "date=2001-01-01"
    other.mkdir()
    path.rename(other / path.name)


def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(("damage", "says"), [
    (_retyped, "column requests: type double, expected int64"),
    (_dropped, "column timed: missing"),
    (_truncated, "not a Parquet file"),
    (_moved, "outside 2001-01-01"),
])
def test_damaged_output_is_refused_naming_file_and_column(
        damage: object, says: str, rollup_out: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A file whose columns or types differ from the contract, that is no Parquet, or whose rows
    lie outside their partition's day: one line naming it, exit 1, nothing loaded."""
    out = tmp_path / "out"
    shutil.copytree(rollup_out, out)
    victim = _first_file(out, "request_counts")
    damage(victim)  # type: ignore[operator]
    db = tmp_path / "d.duckdb"
    assert main(["--db", str(db), "ingest", "--kind", "rollups", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert says in error and victim.name in error.replace("\n", ""), error
    assert _counts(db)["ingests"] == 0


def test_output_without_its_completion_file_is_refused(rollup_out: Path,
                                                       tmp_path: Path) -> None:
    """No _rollup.json (written last) means an incomplete output: refused, nothing loaded."""
    out = tmp_path / "out"
    shutil.copytree(rollup_out, out)
    (out / "_rollup.json").unlink()
    con = open_store(tmp_path / "e.duckdb")
    try:
        with pytest.raises(IngestError, match=r"_rollup\.json: missing"):
            load_rollups(con, out)
        assert con.execute("SELECT count(*) FROM request_counts").fetchall() == [(0,)]
    finally:
        con.close()


def test_output_made_without_a_configured_threshold_is_refused(rollup_out: Path,
                                                               tmp_path: Path) -> None:
    """Rollups without the good counts of a threshold the config's SLOs use are refused."""
    out = tmp_path / "out"
    shutil.copytree(rollup_out, out)
    meta = json.loads((out / "_rollup.json").read_text())
    meta["thresholds_ms"] = meta["thresholds_ms"][1:]
    (out / "_rollup.json").write_text(json.dumps(meta))
    con = open_store(tmp_path / "f.duckdb")
    try:
        with pytest.raises(IngestError, match="thresholds_ms: made without"):
            load_rollups(con, out)
    finally:
        con.close()



def test_the_same_rows_in_other_files_and_another_time_zone_are_the_same_days(
        store_b: Path, rollup_out: Path, tmp_path: Path) -> None:
    """A re-run that writes the same rows in another order and other files (as the other
    engine would), loaded from a session in another time zone, is recognised day by day."""
    out = tmp_path / "rerun"
    shutil.copytree(rollup_out, out)
    for path in sorted(out.glob("*/date=*/*.parquet")):
        table = pq.read_table(path, partitioning=None)
        reversed_rows = table.take(list(range(table.num_rows - 1, -1, -1)))
        half = table.num_rows // 2
        path.unlink()
        pq.write_table(reversed_rows.slice(0, half), path.with_name("part-00000.parquet"))
        pq.write_table(reversed_rows.slice(half), path.with_name("part-00001.parquet"))
    before = _counts(store_b)
    con = open_store(store_b)
    try:
        con.execute("SET TimeZone = 'America/New_York'")
        results = load_rollups(con, out)
    finally:
        con.close()
    assert results and all(r.skipped for r in results)
    assert _counts(store_b) == before


# --- Re-runs and overlapping outputs: every request counted once ---------------------------
# Logs with a known number of requests per UTC day (the oracle is the count written here).


def _log(folder: Path, name: str, per_day: dict[str, int]) -> Path:
    """An nginx log of ``per_day[day]`` requests on each day (distinct lines), at 10:00 UTC."""
    lines = []
    for day, count in per_day.items():
        when = datetime.fromisoformat(f"{day}T10:00:00+00:00")
        lines += [timed_line(time=(when + timedelta(seconds=i)).strftime("%d/%b/%Y:%H:%M:%S %z"),
                             path=f"/show/{name}-{i}") for i in range(count)]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _rolled(folder: Path, logs: list[Path], name: str) -> Path:
    """The rollup output (DuckDB engine) of a lake holding ``logs``."""
    lake = folder / f"lake-{name}"
    for log in logs:
        add_to_lake(lake, log)
    out = folder / f"out-{name}"
    rollup_lake(lake, out)
    return out


def _requests_per_day(db: Path) -> dict[str, int]:
    con = open_store(db, read_only=True)
    try:
        return dict(con.execute(
            "SELECT strftime(timezone('UTC', minute), '%Y-%m-%d'), sum(requests)::BIGINT "
            "FROM request_counts GROUP BY 1 ORDER BY 1").fetchall())
    finally:
        con.close()


def _load(db: Path, out: Path) -> list[RollupLoadResult]:
    con = open_store(db)
    try:
        return load_rollups(con, out)
    finally:
        con.close()


def test_a_rerun_over_a_grown_lake_replaces_the_days_it_covers(tmp_path: Path) -> None:
    """Output 1 from log A, then output 2 after log B (same day 23, new day 24) joined the
    lake: loading both counts each request once; loading output 1 again afterwards (older,
    made from fewer files) changes nothing."""
    a = _log(tmp_path, "a.log", {"2026-11-22": 3, "2026-11-23": 4})
    b = _log(tmp_path, "b.log", {"2026-11-23": 5, "2026-11-24": 2})
    first = _rolled(tmp_path, [a], "1")
    second = _rolled(tmp_path, [a, b], "2")
    db = tmp_path / "s.duckdb"
    _load(db, first)
    assert _requests_per_day(db) == {"2026-11-22": 3, "2026-11-23": 4}
    results = _load(db, second)
    assert _requests_per_day(db) == {"2026-11-22": 3, "2026-11-23": 9, "2026-11-24": 2}
    assert [(r.date, r.skipped) for r in results] == [
        ("2026-11-22", True), ("2026-11-23", False), ("2026-11-24", False)]
    again = _load(db, first)
    assert all(r.skipped for r in again) and "fewer lake files" in again[1].message
    assert _requests_per_day(db) == {"2026-11-22": 3, "2026-11-23": 9, "2026-11-24": 2}


def test_outputs_of_separate_lakes_add_up(tmp_path: Path) -> None:
    """Two lakes with no file in common (two data centres), same day: both loads count."""
    a = _log(tmp_path, "a.log", {"2026-11-23": 4})
    b = _log(tmp_path, "b.log", {"2026-11-23": 5})
    db = tmp_path / "s.duckdb"
    _load(db, _rolled(tmp_path, [a], "x"))
    _load(db, _rolled(tmp_path, [b], "y"))
    assert _requests_per_day(db) == {"2026-11-23": 9}


def test_outputs_sharing_some_lake_files_are_refused(tmp_path: Path) -> None:
    """Lakes {A, B} and {B, C}: the second load would count B twice, and cannot drop it from
    the first: refused naming the day, nothing of it loaded."""
    a, b, c = (_log(tmp_path, f"{n}.log", {"2026-11-23": k}) for n, k in
               (("a", 2), ("b", 3), ("c", 4)))
    db = tmp_path / "s.duckdb"
    _load(db, _rolled(tmp_path, [a, b], "x"))
    with pytest.raises(IngestError, match=r"2026-11-23.*twice"):
        _load(db, _rolled(tmp_path, [b, c], "y"))
    assert _requests_per_day(db) == {"2026-11-23": 5}


def test_rollups_of_files_ingested_directly_are_refused(tmp_path: Path) -> None:
    """A log ingested directly, then rolled up from a lake and loaded: refused (its requests
    would count twice), naming the ingest; the store keeps the direct load only."""
    a = _log(tmp_path, "a.log", {"2026-11-23": 4})
    db = tmp_path / "s.duckdb"
    con = open_store(db)
    try:
        ingest_file(con, a)
    finally:
        con.close()
    with pytest.raises(IngestError, match=r"a\.log.*twice"):
        _load(db, _rolled(tmp_path, [a], "x"))
    assert _requests_per_day(db) == {"2026-11-23": 4}


def test_files_of_loaded_rollups_are_refused_by_ingest(tmp_path: Path) -> None:
    """The other order: a log rolled up from a lake and loaded, then ingested directly: refused
    (its 4 requests would count twice), naming the lake file; the store keeps the rollups."""
    a = _log(tmp_path, "a.log", {"2026-11-23": 4})
    db = tmp_path / "s.duckdb"
    _load(db, _rolled(tmp_path, [a], "x"))
    con = open_store(db)
    try:
        with pytest.raises(IngestError, match=r"a\.log.*from rollups of the lake file .*twice"):
            ingest_file(con, a)
    finally:
        con.close()
    assert _requests_per_day(db) == {"2026-11-23": 4}


@pytest.mark.parametrize(("lake_files", "says"), [
    ([], "names no lake file of"),
    (["elsewhere.parquet"], "is not a lake file"),
    ([7], "is not a lake file"),
])
def test_output_that_does_not_name_its_lake_files_is_refused(
        lake_files: list[object], says: str, rollup_out: Path, tmp_path: Path) -> None:
    """Without the lake files of each day it has rows of, a re-run could not be told from new
    requests: refused in one error, nothing loaded."""
    out = tmp_path / "out"
    shutil.copytree(rollup_out, out)
    meta = json.loads((out / "_rollup.json").read_text())
    meta["lake_files"] = lake_files
    (out / "_rollup.json").write_text(json.dumps(meta))
    con = open_store(tmp_path / "g.duckdb")
    try:
        with pytest.raises(IngestError, match=says):
            load_rollups(con, out)
        assert con.execute("SELECT count(*) FROM ingests").fetchall() == [(0,)]
    finally:
        con.close()


def test_a_route_admitted_by_rollups_takes_its_earlier_other_rows(tmp_path: Path) -> None:
    """/about seen 3 times in a file ingested directly (under min_requests: "(other)", kept as
    a candidate), then 6 times in rolled-up files (admitted): all 9 requests end up under
    /about and none under "(other)", as if every file had been ingested directly."""
    def about(name: str, count: int, hour: int) -> Path:
        path = tmp_path / name
        path.write_text("".join(timed_line(time=f"23/Nov/2026:{hour:02d}:00:{i:02d} +0000",
                                           path="/about") + "\n" for i in range(count)))
        return path

    db = tmp_path / "s.duckdb"
    con = open_store(db)
    try:
        ingest_file(con, about("direct.log", 3, 9))
    finally:
        con.close()
    _load(db, _rolled(tmp_path, [about("rolled.log", 6, 10)], "x"))
    con = open_store(db, read_only=True)
    try:
        per_route = dict(con.execute("SELECT route, sum(requests)::BIGINT FROM request_counts "
                                     "GROUP BY route").fetchall())
    finally:
        con.close()
    assert per_route == {"/about": 9}


def test_one_bad_output_stops_no_other(rollup_out: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`ingest --kind rollups MISSING GOOD`: the missing folder is one error line, the good
    output is still loaded and listed, and the exit status is 1."""
    db = tmp_path / "h.duckdb"
    missing = tmp_path / "missing"
    assert main(["--db", str(db), "ingest", "--kind", "rollups", str(missing),
                 str(rollup_out)]) == 1
    captured = capsys.readouterr()
    assert "missing: no such folder" in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert _counts(db)["ingests"] == len(_days(rollup_out))
    assert _days(rollup_out)[0] in captured.out
