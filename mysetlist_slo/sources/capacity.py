"""Capacity sources: Prometheus exports, PgBouncer SHOW STATS / SHOW POOLS snapshots and
pg_stat_statements snapshots, each turned into rows of its table with located rejects."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._lines import open_maybe_gzip
from mysetlist_slo.sources.types import InputBatch, Reject
from mysetlist_slo.sources.vitals import PASSTHROUGH

METRIC_SCHEMA = pa.schema([("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                           ("name", pa.string()), ("labels", pa.string()),
                           ("value", pa.float64())])

# Columns as PgBouncer 1.18+ prints them; counters are cumulative since PgBouncer started.
STATS_COLUMNS = ("total_xact_count", "total_query_count", "total_received", "total_sent",
                 "total_xact_time", "total_query_time", "total_wait_time")
POOLS_COLUMNS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used", "sv_tested",
                 "sv_login", "maxwait", "maxwait_us")
STATS_SCHEMA = pa.schema([("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                          ("database", pa.string()),
                          *[(c, pa.int64()) for c in STATS_COLUMNS]])
POOLS_SCHEMA = pa.schema([("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                          ("database", pa.string()), ("user", pa.string()),
                          *[(c, pa.int64()) for c in POOLS_COLUMNS], ("pool_mode", pa.string())])
STATEMENT_SCHEMA = pa.schema([("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                              ("queryid", pa.string()), ("query", pa.string()),
                              ("calls", pa.int64()), ("total_exec_time", pa.float64()),
                              ("mean_exec_time", pa.float64()), ("rows", pa.int64())])


def _read_text(path: Path) -> str:
    stream, raw = open_maybe_gzip(path)
    try:
        return stream.read().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IngestError(str(path), f"not UTF-8 text (byte {exc.start + 1})") from None
    finally:
        stream.close()
        raw.close()


def _when(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"no time zone offset: {text!r}")
    return parsed.astimezone(UTC)


class _Table:
    """A Python-checked source: subclasses fill rows and rejects; one batch per file."""

    kind = ""
    record = ""
    schema: pa.Schema

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        raise NotImplementedError

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield the file's rows as one typed batch, with their rejects."""
        rows, rejects = self.rows(path)
        yield InputBatch(PASSTHROUGH, pa.Table.from_pylist(rows, self.schema), {}, rejects,
                         path.stat().st_size)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return no rejects: every check ran in Python already."""
        return []


class PrometheusSource(_Table):
    """Prometheus HTTP API ``query_range`` (matrix) and ``query`` (vector) JSON responses, and
    the text exposition format (parsed by prometheus_client; samples without their own
    timestamp take the file's modification time)."""

    kind = "prometheus"
    record = "metrics"
    schema = METRIC_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per sample."""
        text = _read_text(path)
        if text.lstrip().startswith("{"):
            return self._api(path, text), []
        return self._exposition(path, text)

    def _api(self, path: Path, text: str) -> list[dict[str, Any]]:
        try:
            data = json.loads(text)
            kind, results = data["data"]["resultType"], data["data"]["result"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise IngestError(str(path), f"not a Prometheus API response: {exc}") from None
        if data.get("status") != "success":
            raise IngestError(str(path), f"status: {data.get('status')!r}, not 'success'")
        if kind not in ("matrix", "vector"):
            raise IngestError(str(path), f"data.resultType: {kind!r} is not matrix or vector")
        rows = []
        for index, series in enumerate(results, 1):
            metric = dict(series.get("metric", {}))
            name = metric.pop("__name__", "")
            points = series.get("values", []) if kind == "matrix" else [series.get("value")]
            for stamp, value in points:
                number = float(value)  # Prometheus writes values as text: "NaN", "+Inf" too
                if math.isnan(number):
                    continue  # a stale or missing point: no sample, not a zero
                rows.append({"line": index, "ts": datetime.fromtimestamp(float(stamp), UTC),
                             "name": name, "labels": json.dumps(metric, sort_keys=True),
                             "value": number})
        return rows

    def _exposition(self, path: Path, text: str) -> tuple[list[dict[str, Any]], list[Reject]]:
        default = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError as exc:
            raise IngestError(str(path), f"not the Prometheus text format: {exc}") from None
        rows = []
        for family in families:
            for sample in family.samples:
                when = (datetime.fromtimestamp(float(sample.timestamp), UTC)
                        if sample.timestamp is not None else default)
                rows.append({"line": 0, "ts": when, "name": sample.name,
                             "labels": json.dumps(sample.labels, sort_keys=True),
                             "value": float(sample.value)})
        return rows, []


class _CsvSnapshots(_Table):
    """``psql --csv`` output with a ``timestamp`` column added per snapshot."""

    required: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per snapshot line; bad lines become rejects naming the field."""
        reader = csv.DictReader(io.StringIO(_read_text(path)))
        header = reader.fieldnames or []
        missing = [c for c in ("timestamp", *self.required) if c not in header]
        if missing:
            raise IngestError(str(path), f"line 1: missing column {', '.join(missing)}")
        rows, rejects = [], []
        for record in reader:
            line = reader.line_num
            try:
                row: dict[str, Any] = {"line": line, "ts": _field(_when, record, "timestamp")}
                for name in self.integers:
                    row[name] = _field(_count, record, name)
                for name in self.floats:
                    row[name] = _field(_number, record, name)
                for name in self.texts:
                    row[name] = record.get(name)
                rows.append(row)
            except _Bad as bad:
                rejects.append(Reject(line, bad.field, bad.problem,
                                      ",".join(str(v) for v in record.values()).encode()))
        return rows, rejects


class _Bad(Exception):
    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem


def _field(convert: Any, record: dict[str, str | None], name: str) -> Any:
    value = record.get(name)
    if value is None or value == "":
        if convert is _when:
            raise _Bad(name, "missing")
        return None
    try:
        return convert(value)
    except ValueError as exc:
        raise _Bad(name, str(exc)) from None


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"negative: {text}")
    return value


def _number(text: str) -> float:
    value = float(text)
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"not a non-negative number: {text}")
    return value


class PgBouncerStatsSource(_CsvSnapshots):
    """PgBouncer ``SHOW STATS`` snapshots: cumulative counters per database."""

    kind = "pgbouncer-stats"
    record = "pgbouncer_stats"
    schema = STATS_SCHEMA
    required = ("database", "total_xact_count", "total_xact_time", "total_wait_time")
    integers = STATS_COLUMNS
    texts = ("database",)


class PgBouncerPoolsSource(_CsvSnapshots):
    """PgBouncer ``SHOW POOLS`` snapshots: clients and server connections per pool."""

    kind = "pgbouncer-pools"
    record = "pgbouncer_pools"
    schema = POOLS_SCHEMA
    required = ("database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle")
    integers = POOLS_COLUMNS
    texts = ("database", "user", "pool_mode")


class StatementsSource(_CsvSnapshots):
    """``pg_stat_statements`` snapshots: calls and execution time per statement."""

    kind = "pg-statements"
    record = "pg_statements"
    schema = STATEMENT_SCHEMA
    required = ("queryid", "calls", "total_exec_time")
    integers = ("calls", "rows")
    floats = ("total_exec_time", "mean_exec_time")
    texts = ("queryid", "query")


CSV_KINDS = {"total_xact_count": PgBouncerStatsSource, "cl_waiting": PgBouncerPoolsSource,
             "total_exec_time": StatementsSource}
