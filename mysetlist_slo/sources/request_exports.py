"""Request exports as JSON Lines, CSV or Parquet, with a column mapping for other names.

The canonical export columns (README, "Request exports") are ``timestamp`` (ISO 8601 with a
zone), ``method``, ``path`` (or ``route``), ``status``, ``duration_ms``, ``bytes``,
``upstream_ms``, ``client`` and ``user_agent``; only timestamp, path and status are required.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._lines import DEFAULT_BATCH_BYTES, open_maybe_gzip, read_lines
from mysetlist_slo.sources.requests_schema import UNIT_US, TimeKind, validation_query
from mysetlist_slo.sources.types import Reject, RequestBatch, split_checked

ExportFormat = Literal["jsonl", "csv", "parquet"]

# staged column -> canonical export column names, in order of preference
_EXPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("timestamp",),
    "method": ("method",),
    "target": ("path", "route"),
    "status": ("status",),
    "duration": ("duration_ms",),
    "upstream": ("upstream_ms",),
    "bytes": ("bytes",),
    "client": ("client",),
    "user_agent": ("user_agent",),
}
_REQUIRED = ("ts", "target", "status")
_CSV_BATCH_ROWS = 200_000
_PARQUET_BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class ExportOptions:
    """How to read an export whose columns or units differ from the canonical ones."""

    mapping: Mapping[str, str] = field(default_factory=dict)  # canonical name -> column in file
    duration_unit: Literal["s", "ms", "us"] = "ms"
    time_format: Literal["iso8601", "epoch_s", "epoch_ms"] = "iso8601"


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ExportSource:
    """Reads request exports in one of the three formats."""

    def __init__(self, fmt: ExportFormat, options: ExportOptions | None = None) -> None:
        self.format = fmt
        self.kind = fmt
        self.options = options or ExportOptions()
        unknown = set(self.options.mapping) - {n for names in _EXPORT_COLUMNS.values()
                                               for n in names}
        if unknown:
            raise ValueError(f"unknown canonical column(s) in mapping: {sorted(unknown)}")

    def _resolve(self, available: list[str] | None) -> dict[str, str]:
        """Return staged column -> source column; with ``available`` known, only present ones."""
        resolved = {}
        for staged, names in _EXPORT_COLUMNS.items():
            for name in names:
                source = self.options.mapping.get(name, name)
                if available is None or source in available:
                    resolved[staged] = source
                    break
        return resolved

    def _query(self, expressions: dict[str, str], time_kind: TimeKind,
               source_sql: str = "source", unmatched: str = "false") -> str:
        """Return the validation SQL over ``source_sql``, each staged column computed by its
        expression (absent columns are NULL)."""
        columns = ",\n        ".join(f"{expressions.get(c, 'NULL')} AS {c}"
                                      for c in _EXPORT_COLUMNS)
        staged = f"""    SELECT line,
        {columns},
        {unmatched} AS unmatched
    FROM {source_sql}"""
        unit = UNIT_US[self.options.duration_unit]
        return validation_query(staged, time_kind, unit, unit, may_be_unmatched=True)

    def describe(self, staged: str) -> str:
        """Return the file's own column name for a staged column."""
        return self._resolve(None).get(staged, staged)

    def read(self, path: Path, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[RequestBatch]:
        """Yield canonical request rows and rejects of the export at ``path``."""
        reader = {"jsonl": self._read_jsonl, "csv": self._read_csv,
                  "parquet": self._read_parquet}[self.format]
        con = duckdb.connect()
        try:
            yield from reader(con, path, batch_bytes)
        finally:
            con.close()

    def _check(self, con: duckdb.DuckDBPyConnection, query: str, source: pa.Table,
               params: dict[str, object], raw: pa.Table) -> tuple[pa.Table, list[Reject]]:
        con.register("source", source)
        checked = con.sql(query, params=params or None).to_arrow_table()
        con.unregister("source")
        return split_checked(checked, raw, self.describe)

    def _read_jsonl(self, con: duckdb.DuckDBPyConnection, path: Path,
                    batch_bytes: int) -> Iterator[RequestBatch]:
        resolved = self._resolve(None)
        # Keys reach SQL only as bound JSON paths, never as SQL text.
        params = {f"p_{c}": '$."' + resolved[c].replace('"', '\\"') + '"' for c in resolved}
        query = self._query(
            {c: f"json_extract_string(CASE WHEN is_object THEN text END, $p_{c})"
             for c in resolved},
            self.options.time_format,
            # Valid JSON that starts with "{" is an object; json_type() would throw on bad lines.
            source_sql="""(SELECT line, text, coalesce(json_valid(text), false)
                          AND starts_with(ltrim(text), '{') AS is_object FROM source)""",
            unmatched="NOT is_object",
        )
        for batch in read_lines(path, batch_bytes=batch_bytes):
            lines = pa.table({"line": batch.numbers, "text": batch.text})
            rows, bad = self._check(con, query, lines, dict(params), lines)
            for reject in bad:
                if reject.field == "unmatched":
                    reject.field, reject.problem = "line", _json_problem(reject.raw)
            rejects = [Reject(r.line, r.field, r.problem, r.raw) for r in batch.rejects] + bad
            rejects.sort(key=lambda r: r.line)
            yield RequestBatch(rows, rejects, batch.position)

    def _require(self, path: Path, available: list[str], where: str) -> dict[str, str]:
        resolved = self._resolve(available)
        missing = [" or ".join(repr(self.options.mapping.get(n, n)) for n in _EXPORT_COLUMNS[c])
                   for c in _REQUIRED if c not in resolved]
        if missing:
            raise IngestError(str(path), f"{where}: missing required column {', '.join(missing)}"
                              f" (columns found: {', '.join(available)})")
        return resolved

    def _read_csv(self, con: duckdb.DuckDBPyConnection, path: Path,
                  batch_bytes: int) -> Iterator[RequestBatch]:
        stream, raw_file = open_maybe_gzip(path)
        # surrogateescape keeps undecodable bytes visible, so they become rejects, not crashes.
        text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
        try:
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                return
            resolved = self._require(path, header, "line 1")
            index = {name: i for i, name in enumerate(header)}
            query = self._query({c: _safe_name(n) for c, n in resolved.items()},
                                self.options.time_format)
            wanted = sorted(set(resolved.values()))
            while True:
                numbers: list[int] = []
                values: dict[str, list[str]] = {name: [] for name in wanted}
                texts: list[str] = []
                rejects: list[Reject] = []
                for record in reader:
                    line = reader.line_num
                    raw_text = ",".join(record)
                    if len(record) != len(header):
                        rejects.append(Reject(line, "line", f"expected {len(header)} fields, "
                                              f"found {len(record)}", _encode(raw_text)))
                    elif _has_surrogates(raw_text):
                        rejects.append(Reject(line, "line", "not valid UTF-8", _encode(raw_text)))
                    else:
                        numbers.append(line)
                        texts.append(raw_text)
                        for name in wanted:
                            values[name].append(record[index[name]])
                    if len(numbers) + len(rejects) >= _CSV_BATCH_ROWS:
                        break
                if not numbers and not rejects:
                    break
                source = pa.table({"line": pa.array(numbers, pa.int64()),
                                   **{_safe_name(n): pa.array(v, pa.string())
                                      for n, v in values.items()}})
                raw = pa.table({"line": pa.array(numbers, pa.int64()), "text": texts})
                rows, bad = self._check(con, query, source, {}, raw)
                rejects.extend(bad)
                rejects.sort(key=lambda r: r.line)
                yield RequestBatch(rows, rejects, raw_file.tell())
        except csv.Error as exc:
            raise IngestError(str(path), f"line {reader.line_num}: not valid CSV: {exc}") from exc
        finally:
            text.close()
            raw_file.close()

    def _read_parquet(self, con: duckdb.DuckDBPyConnection, path: Path,
                      batch_bytes: int) -> Iterator[RequestBatch]:
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(str(path), f"not a readable Parquet file: {exc}") from exc
        schema = parquet.schema_arrow
        resolved = self._require(path, schema.names, "schema")
        ts_type = schema.field(resolved["ts"]).type
        time_kind: TimeKind
        if pa.types.is_timestamp(ts_type):
            time_kind = "timestamptz" if ts_type.tz else "timestamp"
        elif pa.types.is_integer(ts_type) or pa.types.is_floating(ts_type):
            if self.options.time_format == "iso8601":
                raise IngestError(str(path), f"column {resolved['ts']!r}: numeric timestamps "
                                  "need a time format (epoch_s or epoch_ms)")
            time_kind = self.options.time_format
        else:
            time_kind = self.options.time_format
        query = self._query({c: _safe_name(n) for c, n in resolved.items()}, time_kind)
        first = 1
        wanted = sorted(set(resolved.values()))
        for record_batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS, columns=wanted):
            count = record_batch.num_rows
            numbers = pa.array(range(first, first + count), pa.int64())
            first += count
            original = pa.Table.from_batches([record_batch]).add_column(0, "line", numbers)
            source = original.rename_columns(["line", *(_safe_name(n) for n in wanted)])
            con.register("source", source)
            checked = con.sql(query).to_arrow_table()
            con.unregister("source")
            bad_lines = checked.filter(pc.is_valid(checked.column("bad_field"))).column("line")
            # A rejected Parquet row is kept as JSON of its original columns.
            picked = original.filter(pc.is_in(original.column("line"), bad_lines))
            raw = pa.table({"line": picked.column("line"),
                            "text": pa.array([json.dumps(r, default=str)
                                              for r in picked.to_pylist()], pa.string())})
            rows, bad = split_checked(checked, raw, self.describe)
            yield RequestBatch(rows, bad, 0)


def _safe_name(column: str) -> str:
    """Return a fixed SQL-safe alias for a source column (the name itself never reaches SQL)."""
    return "c_" + column.encode("utf-8").hex()


def _encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogateescape")


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _json_problem(raw: bytes) -> str:
    """Return why a JSON Lines record is unusable."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return "empty line"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON at column {exc.colno}: {exc.msg} (line truncated?)"
    return f"expected a JSON object, found {type(value).__name__}"
