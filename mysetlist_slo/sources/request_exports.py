"""Exports as JSON Lines, CSV or Parquet, with a column mapping for other names.

The canonical request export columns (README, "Request exports") are ``timestamp`` (ISO 8601
with a zone), ``method``, ``path`` (or ``route``), ``status``, ``duration_ms``, ``bytes``,
``upstream_ms``, ``client``, ``user_agent``, ``region`` and ``cache_status``; only timestamp,
path and status are required.
Other kinds of export (health-check probes) bring their own ExportSchema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import load_json
from mysetlist_slo.sources._lines import DEFAULT_BATCH_BYTES, CsvRecords, Record, read_lines
from mysetlist_slo.sources.requests_schema import UNIT_US, TimeKind, validation_query
from mysetlist_slo.sources.types import INPUT_TABLE, InputBatch, Reject, chunked, raw_lines

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
    "region": ("region",),
    # The cache outcome, as a CDN's log field or a logged header (normalised on load).
    "cache_status": ("cache_status", "cf_cache_status", "x_vercel_cache", "x_cache"),
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


@dataclass(frozen=True)
class ExportSchema:
    """One kind of export: its canonical columns and the SQL that validates its records."""

    record: str  # what the rows are: requests, probes
    columns: dict[str, tuple[str, ...]]  # staged column -> canonical names, first preferred
    required: tuple[str, ...]
    # (staged SQL, time kind, options, typed staged columns) -> validation SQL
    validate: Callable[[str, TimeKind, ExportOptions, frozenset[str]], str]


def _validate_requests(staged: str, time_kind: TimeKind, options: ExportOptions,
                       typed: frozenset[str]) -> str:
    unit = UNIT_US[options.duration_unit]
    return validation_query(staged, time_kind, unit, unit, may_be_unmatched=True,
                            typed_columns=typed)


REQUESTS = ExportSchema("requests", _EXPORT_COLUMNS, _REQUIRED, _validate_requests)


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ExportSource:
    """Reads exports (requests by default) in one of the three formats."""

    def __init__(self, fmt: ExportFormat, options: ExportOptions | None = None,
                 schema: ExportSchema = REQUESTS) -> None:
        self.format = fmt
        self.schema = schema
        self.record = schema.record
        # The registry kind: the format for requests, the record kind for the others.
        self.kind = fmt if schema.record == "requests" else schema.record
        self.resumable = fmt == "jsonl"  # one record per line, no header
        self.start = (0, 0)  # (bytes, lines) of the content to skip, already loaded
        self.stop: int | None = None  # content offset to read up to (None: the end)
        self.options = options or ExportOptions()
        unknown = set(self.options.mapping) - {n for names in schema.columns.values()
                                               for n in names}
        if unknown:
            raise ValueError(f"unknown canonical column(s) in mapping: {sorted(unknown)}")

    def _resolve(self, available: list[str] | None) -> dict[str, str]:
        """Return staged column -> source column; with ``available`` known, only present ones."""
        resolved = {}
        for staged, names in self.schema.columns.items():
            for name in names:
                source = self.options.mapping.get(name, name)
                if available is None or source in available:
                    resolved[staged] = source
                    break
        return resolved

    def _query(self, expressions: dict[str, str], time_kind: TimeKind,
               source_sql: str = INPUT_TABLE, unmatched: str = "false",
               typed: frozenset[str] = frozenset()) -> str:
        """Return the validation SQL over ``source_sql``, each staged column computed by its
        expression (absent columns are NULL)."""
        columns = ",\n        ".join(f"{expressions.get(c, 'NULL')} AS {c}"
                                      for c in self.schema.columns)
        staged = f"""    SELECT line,
        {columns},
        {unmatched} AS unmatched
    FROM {source_sql}"""
        return self.schema.validate(staged, time_kind, self.options, typed)

    def describe(self, staged: str) -> str:
        """Return the file's own column name for a staged column."""
        return self._resolve(None).get(staged, staged)

    def batches(self, path: Path, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[InputBatch]:
        """Yield the records of the export at ``path`` in batches, with their query."""
        reader = {"jsonl": self._jsonl, "csv": self._csv, "parquet": self._parquet}[self.format]
        yield from reader(path, batch_bytes)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return rejects named by the file's own column names, with the raw records."""
        lines = [line for line, _, _ in bad]
        if batch.table is not None:
            raw = raw_lines(batch, lines)
        else:
            # Parquet: the rejected rows, read again, as JSON of their own columns.
            con.register("bad_lines", pa.table({"line": pa.array(lines, pa.int64())}))
            rows = con.execute(
                "SELECT row_number, CAST(to_json(record) AS VARCHAR) FROM ("
                "  SELECT file_row_number + 1 AS row_number, * EXCLUDE (file_row_number)"
                "  FROM read_parquet($path, file_row_number = true)) AS record "
                "WHERE row_number IN (SELECT line FROM bad_lines)",
                {"path": batch.params["path"]}).fetchall()
            con.unregister("bad_lines")
            raw = {line: text.encode("utf-8") for line, text in rows}
        rejects = []
        for line, staged, problem in bad:
            if staged == "unmatched":
                rejects.append(Reject(line, "line", _json_problem(raw[line]), raw[line]))
            else:
                rejects.append(Reject(line, self.describe(staged), problem, raw.get(line, b"")))
        return rejects

    def _jsonl(self, path: Path, batch_bytes: int) -> Iterator[InputBatch]:
        resolved = self._resolve(None)
        # Keys reach SQL only as bound JSON paths, never as SQL text.
        params: dict[str, object] = {
            f"p_{c}": '$."' + resolved[c].replace('"', '\\"') + '"' for c in resolved}
        query = self._query(
            {c: f"json_extract_string(CASE WHEN is_object THEN text END, $p_{c})"
             for c in resolved},
            self.options.time_format,
            # Valid JSON that starts with "{" is an object; json_type() would throw on bad lines.
            source_sql=f"""(SELECT line, text, coalesce(json_valid(text), false)
                          AND starts_with(ltrim(text), '{{') AS is_object FROM {INPUT_TABLE})""",
            unmatched="NOT is_object",
        )
        for lines in read_lines(path, batch_bytes=batch_bytes, start=self.start,
                                stop=self.stop):
            rejects = [Reject(r.line, r.field, r.problem, r.raw) for r in lines.rejects]
            yield InputBatch(query, chunked(pa.table({"line": lines.numbers, "text": lines.text})),
                             params, rejects, lines.position)

    def _require(self, path: Path, available: list[str], where: str) -> dict[str, str]:
        resolved = self._resolve(available)
        missing = [" or ".join(repr(self.options.mapping.get(n, n))
                               for n in self.schema.columns[c])
                   for c in self.schema.required if c not in resolved]
        if missing:
            raise IngestError(str(path), f"{where}: missing required column {', '.join(missing)}"
                              f" (columns found: {', '.join(available)})")
        return resolved

    def _csv(self, path: Path, batch_bytes: int) -> Iterator[InputBatch]:
        with CsvRecords(path, field="line") as records:
            if records.empty:
                return
            resolved = self._require(path, records.header, "line 1")
            wanted = sorted(set(resolved.values()))
            query = self._query({c: _safe_name(n) for c, n in resolved.items()},
                                self.options.time_format)
            rows_per_batch = max(1_000, batch_bytes // 128)
            items = iter(records)
            while batch := list(islice(items, rows_per_batch)):
                good = [item for item in batch if isinstance(item, Record)]
                table = pa.table({
                    "line": pa.array([r.line for r in good], pa.int64()),
                    # A good record is UTF-8 (the reader refuses any other), so this decodes.
                    "text": pa.array([r.raw.decode("utf-8") for r in good], pa.string()),
                    **{_safe_name(name): pa.array([r.value[name] for r in good], pa.string())
                       for name in wanted}})
                rejects = [item for item in batch if isinstance(item, Reject)]
                yield InputBatch(query, chunked(table), {}, rejects, records.position)

    def _parquet(self, path: Path, batch_bytes: int) -> Iterator[InputBatch]:
        try:
            schema = pq.read_schema(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise IngestError(str(path), f"not a readable Parquet file: {exc}") from exc
        resolved = self._require(path, schema.names, "schema")
        for staged, name in resolved.items():
            column_type = schema.field(name).type
            kinds = _PARQUET_TYPES.get(staged, ("text",))
            if not any(_TYPE_TESTS[k](column_type) for k in kinds):
                raise IngestError(str(path), f"column {name[:80]!r}: type {str(column_type)[:80]}"
                                  f" cannot hold {' or '.join(kinds)}")
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
        typed = frozenset(c for c, n in resolved.items()
                          if not (pa.types.is_string(schema.field(n).type)
                                  or pa.types.is_large_string(schema.field(n).type)))
        # DuckDB reads the file itself (in parallel, column by column); the file's column names
        # reach SQL only as quoted identifiers.
        query = self._query(
            {c: _quote_identifier(n) for c, n in resolved.items()}, time_kind,
            # The file may have a column called "line" of its own: ours replaces it here (the
            # staged columns were picked by quoted name above).
            # Read _PARQUET_BATCH_ROWS rows at a time, so a file of any size is checked and
            # rolled up in bounded memory (DuckDB skips the row groups outside the range).
            source_sql="(SELECT * REPLACE (file_row_number + 1 AS line) FROM ("
                       "SELECT *, NULL AS line FROM read_parquet($path, file_row_number = true)"
                       " WHERE file_row_number >= $first AND file_row_number < $stop))"
            if "line" not in schema.names else
            "(SELECT * REPLACE (file_row_number + 1 AS line) "
            "FROM read_parquet($path, file_row_number = true) "
            "WHERE file_row_number >= $first AND file_row_number < $stop)",
            typed=typed)
        rows = pq.read_metadata(path).num_rows
        size = path.stat().st_size
        for first in range(0, max(rows, 1), _PARQUET_BATCH_ROWS):
            stop = first + _PARQUET_BATCH_ROWS
            yield InputBatch(query, None, {"path": str(path), "first": first, "stop": stop}, [],
                             size if stop >= rows else size * stop // rows)


def _is_text(column_type: pa.DataType) -> bool:
    if pa.types.is_dictionary(column_type):
        return _is_text(column_type.value_type)
    return pa.types.is_string(column_type) or pa.types.is_large_string(column_type)


# What a Parquet column may be for each staged column (anything else is refused by name: a
# list, a struct or a date where a value is expected cannot be read as one).
_TYPE_TESTS: dict[str, Callable[[pa.DataType], bool]] = {
    "text": _is_text,
    "a number": lambda t: (pa.types.is_integer(t) or pa.types.is_floating(t)
                           or pa.types.is_decimal(t) or _is_text(t)),
    "a time": lambda t: (pa.types.is_timestamp(t) or pa.types.is_integer(t)
                         or pa.types.is_floating(t) or _is_text(t)),
    "true or false": lambda t: pa.types.is_boolean(t) or pa.types.is_integer(t) or _is_text(t),
}
_PARQUET_TYPES = {"ts": ("a time",), "status": ("a number",), "duration": ("a number",),
                  "upstream": ("a number",), "bytes": ("a number",), "latency": ("a number",),
                  "ok": ("true or false",)}


def _safe_name(column: str) -> str:
    """Return a fixed SQL-safe alias for a source column (the name itself never reaches SQL)."""
    return "c_" + column.encode("utf-8").hex()


def _json_problem(raw: bytes) -> str:
    """Return why a JSON Lines record is unusable."""
    text = raw.decode("utf-8", errors="replace")
    if not text.strip():
        return "empty line"
    try:
        value = load_json(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON at column {exc.colno}: {exc.msg} (line truncated?)"
    except ValueError as exc:
        return f"not usable JSON: {exc}"
    return f"expected a JSON object, found {type(value).__name__}"
