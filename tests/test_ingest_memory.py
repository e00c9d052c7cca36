"""Ingest in bounded memory: many small batches under a tight DuckDB memory limit store exactly
what one batch does, and a failed file still leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

import mysetlist_slo.sources.nginx as nginx_source
import mysetlist_slo.store.ingest as ingest_module
from mysetlist_slo import DemoManifest, ingest_file, open_store
from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._lines import read_lines

# Every rollup of the store, partial rows (one per batch) merged per key.
ROLLUPS = {
    "request_counts": "SELECT minute, route, status, sum(requests), sum(timed), "
                      "sum(duration_sum_us), sum(bytes_sum) FROM request_counts GROUP BY ALL",
    "latency_sketch": "SELECT slot, route, bucket, sum(count) FROM latency_sketch GROUP BY ALL",
    "cache_counts": "SELECT minute, route, cache_status, sum(requests), sum(bytes_sum) "
                    "FROM cache_counts GROUP BY ALL",
    "request_good": "SELECT minute, route, threshold_ms, sum(good) FROM request_good "
                    "GROUP BY ALL",
}


def rollups(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Return every rollup's merged rows, sorted."""
    return {name: sorted(con.execute(query).fetchall()) for name, query in ROLLUPS.items()}


def biggest_log(demo: DemoManifest) -> Path:
    """Return the demo's largest plain-text log."""
    plain = [Path(f) for f in demo.files if Path(f).name in ("access.log", "access.log.1")]
    return max(plain, key=lambda p: p.stat().st_size)


def load(tmp_path: Path, name: str, log: Path, batch_bytes: int, limit: str,
         monkeypatch: pytest.MonkeyPatch,
         routes: list[str]) -> tuple[int, dict[str, list[tuple]], int, list[str]]:
    """Ingest ``log`` in batches of ``batch_bytes`` under DuckDB memory ``limit`` into a store
    that knows ``routes``; return (records loaded, merged rollups, batches read, routes)."""
    batches = []

    def small_batches(path: Path, **options: object):  # type: ignore[no-untyped-def]
        options["batch_bytes"] = batch_bytes
        for batch in read_lines(path, **options):  # type: ignore[arg-type]
            batches.append(len(batch.numbers))
            yield batch

    with monkeypatch.context() as patch:
        patch.setattr(nginx_source, "read_lines", small_batches)
        patch.setattr(ingest_module, "INGEST_MEMORY_LIMIT", limit)
        con = open_store(tmp_path / f"{name}.duckdb")
        for route in routes:
            con.execute("INSERT INTO routes VALUES (?, 0)", [route])
        result = ingest_file(con, log)
        assert con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] != limit
        stored = rollups(con)
        known = sorted(route for (route,) in con.execute("SELECT route FROM routes").fetchall())
        con.close()
    return result.loaded, stored, len(batches), known


def test_many_small_batches_under_a_memory_limit_equal_one_batch(
        demo: DemoManifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of the demo read in 32 KiB batches with DuckDB limited to 20 MiB stores the same
    rollups, row for row, as the same day read in one batch without the limit.

    The second store knows the routes the first admitted: a route is admitted once it has
    been seen often enough, and requests seen before that (in earlier batches) stay under
    "(other)" by design, which is not what this test is about."""
    log = biggest_log(demo)
    one_loaded, one, one_batches, routes = load(tmp_path, "one", log, 1 << 30, "4GiB",
                                                monkeypatch, [])
    many_loaded, many, many_batches, _ = load(tmp_path, "many", log, 32 << 10, "20MiB",
                                              monkeypatch, routes)
    assert one_batches == 1 and many_batches > 50
    assert one_loaded == many_loaded > 5_000
    assert many == one
    assert all(one.values())


def test_a_failed_file_leaves_no_staged_rows(store, write_log, tmp_path: Path) -> None:
    """A file refused after some batches were staged leaves the store as it was, and the
    staging database is gone."""
    good = ('203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "-" '
            '0.010 0.009')
    path = write_log("bad.log", [good] * 2000 + ["garbage"])
    before = rollups(store)
    with pytest.raises(IngestError):
        ingest_file(store, path)
    assert rollups(store) == before
    assert store.execute("SELECT count(*) FROM ingests").fetchall()[0][0] == 0
    attached = [name for (name,) in store.execute(
        "SELECT database_name FROM duckdb_databases() WHERE NOT internal").fetchall()]
    assert not [name for name in attached if name.startswith("ingest_staging_")]
    assert store.execute("SELECT current_database()").fetchall()[0][0] == "metrics"


def test_parquet_in_row_batches_equals_one_batch(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A Parquet export read 700 rows at a time stores the same rollups and the same rejects
    (row numbers included) as read whole."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq

    import mysetlist_slo.sources.request_exports as exports

    n = 5_000
    start = datetime(2026, 11, 10, tzinfo=UTC).timestamp()
    status = [200 if i % 97 else 503 for i in range(n)]
    status[1234] = 999  # two rejects, in different batches
    status[4321] = 42
    table = pa.table({
        "timestamp": pa.array([int((start + i * 7) * 1e6) for i in range(n)],
                              pa.timestamp("us", tz="UTC")),
        "path": [f"/show/{i % 40}" if i % 3 else "/" for i in range(n)],
        "status": pa.array(status, pa.int32()),
        "duration_ms": [float(i % 900) + 0.5 for i in range(n)],
    })
    path = tmp_path / "requests.parquet"
    pq.write_table(table, path, row_group_size=500)
    stored = []
    for batch_rows in (1_000_000, 700):
        monkeypatch.setattr(exports, "_PARQUET_BATCH_ROWS", batch_rows)
        con = open_store(tmp_path / f"{batch_rows}.duckdb")
        for route in ("/", "/show/[id]"):
            con.execute("INSERT INTO routes VALUES (?, 0)", [route])
        result = ingest_file(con, path, max_bad_rows=2)
        stored.append((result.loaded, result.rejected, rollups(con), con.execute(
            "SELECT line, field, problem FROM rejects ORDER BY line").fetchall()))
        con.close()
    assert stored[0] == stored[1]
    assert stored[0][:2] == (n - 2, 2)
    assert [line for line, _, _ in stored[0][3]] == [1235, 4322]
