"""Test helper: write request files into a lake in the layout of the lake contract (issue 16),
with pyarrow, until `mysetlist-slo lake add` exists: the same sources and validation query as
`ingest`, good records only, Hive-partitioned by the UTC date of ``ts``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mysetlist_slo.sources import ExportOptions, detect_source
from mysetlist_slo.sources._lines import content_digest
from mysetlist_slo.sources.requests_schema import CANONICAL_SCHEMA
from mysetlist_slo.sources.types import INPUT_TABLE

LAKE_SCHEMA = pa.schema([*(f for f in CANONICAL_SCHEMA if f.name != "line"),
                         pa.field("source_sha256", pa.string()), pa.field("line", pa.int64())])


def lake_rows(path: Path, options: ExportOptions | None = None) -> pa.Table:
    """Return the good request records of ``path`` as lake rows (LAKE_SCHEMA)."""
    source = detect_source(path, options=options)
    assert source.record == "requests", path
    sha = content_digest(path).sha256
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    parts = []
    for batch in source.batches(path):
        if batch.table is not None:
            con.register(INPUT_TABLE, batch.table)
        columns = ", ".join(f.name for f in CANONICAL_SCHEMA)
        good = con.sql(f"SELECT {columns} FROM ({batch.query}) WHERE bad_field IS NULL",
                       params=batch.params or None).to_arrow_table()
        good = good.append_column("source_sha256", pa.array([sha] * good.num_rows, pa.string()))
        parts.append(good.select(LAKE_SCHEMA.names).cast(LAKE_SCHEMA))
    con.close()
    return pa.concat_tables(parts)


def write_lake(lake: Path, rows: pa.Table, name: str) -> list[Path]:
    """Write ``rows`` (LAKE_SCHEMA) into ``lake`` as ``requests/date=D/<name>.parquet``."""
    rows = rows.cast(LAKE_SCHEMA)
    dates = pc.strftime(rows.column("ts"), "%Y-%m-%d")
    written = []
    for date in sorted(set(dates.to_pylist())):
        folder = lake / "requests" / f"date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.parquet"
        pq.write_table(rows.filter(pc.equal(dates, date)), path)
        written.append(path)
    return written


def add_files(lake: Path, paths: list[Path], options: ExportOptions | None = None) -> None:
    """Add each request file of ``paths`` to ``lake`` (one lake file per source file and day)."""
    for path in paths:
        write_lake(lake, lake_rows(path, options), f"{content_digest(path).sha256[:16]}")
