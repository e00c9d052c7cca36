"""Request exports: JSON Lines, CSV and Parquet read into the same rollups as the nginx log."""

from __future__ import annotations

import gzip
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import timed_line

from mysetlist_slo import ingest_file, open_store

T0 = datetime(2026, 11, 10, 13, 55, tzinfo=UTC)
RECORDS = [
    {"timestamp": (T0 + timedelta(seconds=17 * i)).isoformat(), "method": "GET",
     "path": f"/show/{i}?ref=x", "status": [200, 404, 500, 200, 503][i % 5],
     "duration_ms": [12.0, 250.5, 80.0, 199.9, 2000.0][i % 5], "bytes": 100 + i,
     "upstream_ms": 10.0, "client": "198.51.100.1", "user_agent": "UA"}
    for i in range(40)
]


def rollups(db: Path) -> dict[str, list[tuple]]:
    con = open_store(db, read_only=True)
    try:
        return {t: con.execute(f"SELECT * EXCLUDE (ingest_id) FROM {t} ORDER BY ALL").fetchall()
                for t in ("request_counts", "request_good", "latency_sketch")}
    finally:
        con.close()


def load(tmp_path: Path, name: str, path: Path, **options) -> dict[str, list[tuple]]:
    db = tmp_path / f"{name}.duckdb"
    con = open_store(db)
    result = ingest_file(con, path, **options)
    con.close()
    assert (result.loaded, result.rejected) == (len(RECORDS), 0)
    return rollups(db)


def test_three_formats_and_nginx_give_identical_rollups(tmp_path: Path) -> None:
    """The same requests as JSONL, CSV, Parquet and an nginx log produce the same rollups."""
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n")
    csv_path = tmp_path / "r.csv"
    header = list(RECORDS[0])
    csv_path.write_text(",".join(header) + "\n" + "\n".join(
        ",".join(str(r[h]) for h in header) for r in RECORDS) + "\n")
    parquet = tmp_path / "r.parquet"
    table = pa.Table.from_pylist(RECORDS).set_column(
        0, "timestamp", pa.array([datetime.fromisoformat(r["timestamp"]) for r in RECORDS],
                                 pa.timestamp("us", tz="UTC")))
    pq.write_table(table, parquet)
    nginx = tmp_path / "access.log"
    nginx.write_text("\n".join(timed_line(
        time=datetime.fromisoformat(r["timestamp"]).strftime("%d/%b/%Y:%H:%M:%S %z"),
        path=r["path"], status=r["status"], rt=f"{r['duration_ms'] / 1000:.4f}",
        urt="0.010", nbytes=r["bytes"]) for r in RECORDS) + "\n")

    reference = load(tmp_path, "jsonl", jsonl)
    assert reference["request_counts"]  # something was rolled up
    assert load(tmp_path, "csv", csv_path) == reference
    assert load(tmp_path, "parquet", parquet) == reference
    assert load(tmp_path, "nginx", nginx) == reference


def test_column_mapping_and_units(tmp_path: Path) -> None:
    """Other column names are mapped; seconds and epoch times are converted."""
    mapped = [{"ts": T0.timestamp() + i, "url": r["path"], "code": r["status"],
               "secs": r["duration_ms"] / 1000} for i, r in enumerate(RECORDS)]
    path = tmp_path / "other.jsonl.gz"
    path.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in mapped).encode()))
    from mysetlist_slo.sources import ExportOptions
    options = ExportOptions(mapping={"timestamp": "ts", "path": "url", "status": "code",
                                     "duration_ms": "secs"},
                            duration_unit="s", time_format="epoch_s")
    got = load(tmp_path, "mapped", path, kind="jsonl", options=options)
    buckets = sorted({row[2] for row in got["latency_sketch"]})  # (slot, route, bucket, …)
    # 80 ms went with status 500 and 2 s with 503: failures are not latency samples.
    # The sketch bucket of v us is ceil(log base 101/99 of v) (rollups.py).
    assert buckets == [math.ceil(math.log(us) / math.log(101 / 99))
                       for us in (12_000, 199_900, 250_500)]
    assert sum(row[3] for row in got["request_counts"]) == len(RECORDS)


def test_hostile_column_names_never_reach_sql(tmp_path: Path) -> None:
    """A column called like an SQL injection is just a column name."""
    evil = 'status"; DROP TABLE ingests; --'
    path = tmp_path / "r.csv"
    path.write_text(f'timestamp,path,"{evil.replace(chr(34), chr(34) * 2)}"\n'
                    "2026-11-10T10:00:00Z,/,200\n")
    from mysetlist_slo.sources import ExportOptions
    db = tmp_path / "x.duckdb"
    con = open_store(db)
    result = ingest_file(con, path, options=ExportOptions(mapping={"status": evil}))
    assert result.loaded == 1
    assert con.execute("SELECT count(*) FROM ingests").fetchall() == [(1,)]
    con.close()
