"""Capacity sources: Prometheus exports, PgBouncer SHOW STATS / SHOW POOLS snapshots and
pg_stat_statements snapshots, each turned into rows of its table with located rejects."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from prometheus_client.parser import text_string_to_metric_families

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import INT64_MAX, from_epoch, load_json, parse_iso
from mysetlist_slo.sources._lines import (
    BadField,
    CsvRecords,
    Record,
    checked_rows,
    open_maybe_gzip,
)
from mysetlist_slo.sources.types import PythonChecked, Reject

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
# pg_stat_statements keeps one row per (userid, dbid, queryid, toplevel): the same statement run
# by two roles, in two databases, or nested in a function (toplevel false) is counted apart.
STATEMENT_KEY = ("userid", "dbid", "queryid", "toplevel")
STATEMENT_SCHEMA = pa.schema([("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")),
                              ("userid", pa.string()), ("dbid", pa.string()),
                              ("queryid", pa.string()), ("toplevel", pa.bool_()),
                              ("query", pa.string()),
                              ("calls", pa.int64()), ("total_exec_time", pa.float64()),
                              ("mean_exec_time", pa.float64()), ("rows", pa.int64())])


def _read_bytes(path: Path) -> bytes:
    stream, raw = open_maybe_gzip(path)
    try:
        return stream.read()
    except (EOFError, OSError) as exc:
        raise IngestError(str(path), f"corrupt or truncated gzip data: {exc}") from None
    finally:
        stream.close()
        raw.close()


def _read_text(path: Path) -> str:
    """Return the file's text (a UTF-8 byte-order mark dropped); IngestError if not UTF-8."""
    try:
        return _read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(str(path), f"not UTF-8 text (byte {exc.start + 1})") from None


def _when(text: str) -> datetime:
    return parse_iso(text)


class PrometheusSource(PythonChecked):
    """Prometheus HTTP API ``query_range`` (matrix) and ``query`` (vector) JSON responses, and
    the text exposition format (parsed by prometheus_client; samples without their own
    timestamp take the file's modification time)."""

    kind = "prometheus"
    record = "metrics"
    schema = METRIC_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per sample; a sample that cannot be used is a reject (its line is
        the series' position in an API response, or the line in the text format)."""
        text = _read_text(path)
        if text.lstrip().startswith("{"):
            return self._api(path, text)
        return self._exposition(path, text)

    def _api(self, path: Path, text: str) -> tuple[list[dict[str, Any]], list[Reject]]:
        try:
            data = load_json(text)
            kind, results = data["data"]["resultType"], data["data"]["result"]
        except (ValueError, KeyError, TypeError) as exc:
            raise IngestError(str(path), f"not a Prometheus API response: {exc}") from None
        if data.get("status") != "success":
            raise IngestError(str(path), f"status: {str(data.get('status'))[:40]!r}, "
                              "not 'success'")
        if kind not in ("matrix", "vector") or not isinstance(results, list):
            raise IngestError(str(path), f"data.resultType: {str(kind)[:40]!r} is not matrix "
                              "or vector")
        # A series is numbered by its place in data.result (from 1): the line of its rejects.
        numbered = (Record(index, (index, series), json.dumps(series)[:4096].encode())
                    for index, series in enumerate(results, 1))
        return checked_rows(numbered, lambda item: _series_rows(kind, *item))

    def _exposition(self, path: Path, text: str) -> tuple[list[dict[str, Any]], list[Reject]]:
        default = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        try:
            families = list(text_string_to_metric_families(text))
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise IngestError(str(path), f"not the Prometheus text format: {exc}") from None
        rows, rejects = [], []
        for family in families:
            for sample in family.samples:
                try:
                    when = (from_epoch(float(sample.timestamp))
                            if sample.timestamp is not None else default)
                    value = float(sample.value)
                    if not math.isfinite(value):
                        raise ValueError(f"not a finite number: {value}")
                except (ValueError, TypeError, OverflowError) as exc:
                    rejects.append(Reject(0, sample.name, str(exc), b""))
                    continue
                rows.append({"line": 0, "ts": when, "name": sample.name,
                             "labels": json.dumps(sample.labels, sort_keys=True),
                             "value": value})
        return rows, rejects


def _series_rows(kind: str, index: int, series: Any) -> list[dict[str, Any]]:
    """Return the rows of the ``index``-th series (from 1) of a matrix or vector answer."""
    field = f"data.result[{index - 1}]"
    if not isinstance(series, dict) or not isinstance(series.get("metric", {}), dict):
        raise BadField(field, "not a series object")
    metric = {str(k): str(v) for k, v in series.get("metric", {}).items()}
    name = metric.pop("__name__", "")
    points = series.get("values", []) if kind == "matrix" else [series.get("value")]
    if not isinstance(points, list):
        raise BadField(f"{field}.values", "not a list")
    labels = json.dumps(metric, sort_keys=True)
    return [{"ts": sample[0], "name": name, "labels": labels, "value": sample[1]}
            for point in points if (sample := _sample(point, f"{field}.values")) is not None]


def _sample(point: Any, field: str) -> tuple[datetime, float] | None:
    """Return (time, value) of an API point ``[unix seconds, "value"]``, None for NaN (a
    stale or missing point: no sample, not a zero); raise BadField when it cannot be used."""
    if not isinstance(point, list) or len(point) != 2:
        raise BadField(field, f"not a [time, value] pair: {str(point)[:60]}")
    stamp, value = point
    try:
        when = from_epoch(float(stamp))
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadField(field, f"time: {exc}") from None
    try:
        number = float(value)  # Prometheus writes values as text: "NaN", "+Inf" too
    except (ValueError, TypeError, OverflowError):
        raise BadField(field, f"value: not a number: {str(value)[:60]!r}") from None
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise BadField(field, f"value: not a finite number: {value!r}")
    return when, number


class _CsvSnapshots(PythonChecked):
    """``psql --csv`` output with a ``timestamp`` column added per snapshot."""

    required: tuple[str, ...] = ()
    integers: tuple[str, ...] = ()
    floats: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    booleans: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()  # columns a row cannot be stored without
    # Columns that identify a row within one snapshot; a repeat is a reject (see rows).
    unique: tuple[str, ...] = ()

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per snapshot line; bad lines (malformed CSV, bytes that are not
        UTF-8, bad values) become rejects naming the field.

        A second row with the same ``unique`` key in one snapshot is a reject: counters that
        the export did not tell apart (two roles running one statement) would be taken for one
        counter, and their differences be meaningless.
        """
        seen: dict[tuple[Any, ...], int] = {}

        def row(item: tuple[int, dict[str, str]]) -> dict[str, Any]:
            line, record = item
            row: dict[str, Any] = {"ts": _field(_when, record, "timestamp")}
            for name in self.integers:
                row[name] = _field(_count, record, name)
            for name in self.floats:
                row[name] = _field(_number, record, name)
            for name in self.texts:
                row[name] = record.get(name)
            for name in self.not_null:
                if row.get(name) in (None, ""):
                    raise BadField(name, "missing")
            for name in self.booleans:
                row[name] = _field(_boolean, record, name)
            if self.unique:
                key = (row["ts"], *(row.get(name) for name in self.unique))
                if key in seen:
                    raise BadField(", ".join(self.unique),
                                   f"same as line {seen[key]} in the same snapshot")
                seen[key] = line
            return row

        # A malformed record's field is "line", as the request exports' (SQL-checked) say it.
        with CsvRecords(path, field="line") as records:
            records.require(("timestamp", *self.required))
            # The duplicate check needs each record's line beside its values.
            numbered = (Record(r.line, (r.line, r.value), r.raw) if isinstance(r, Record) else r
                        for r in records)
            return checked_rows(numbered, row)


def _field(convert: Any, record: dict[str, str], name: str) -> Any:
    value = record.get(name)
    if value is None or value == "":
        if convert is _when:
            raise BadField(name, "missing")
        return None
    try:
        return convert(value)
    except ValueError as exc:
        raise BadField(name, str(exc)) from None


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"not an integer: {text[:60]!r}") from None
    if value < 0:
        raise ValueError(f"negative: {text[:60]}")
    if value > INT64_MAX:
        raise ValueError(f"larger than a 64-bit counter: {text[:60]}")
    return value


def _boolean(text: str) -> bool:
    # psql prints booleans as t/f; other exporters write true/false.
    value = {"t": True, "true": True, "f": False, "false": False}.get(text.strip().lower())
    if value is None:
        raise ValueError(f"not a boolean (t/f, true/false): {text}")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"not a number: {text[:60]!r}") from None
    if value < 0 or not math.isfinite(value):
        raise ValueError(f"not a non-negative finite number: {text[:60]}")
    return value


class PgBouncerStatsSource(_CsvSnapshots):
    """PgBouncer ``SHOW STATS`` snapshots: cumulative counters per database."""

    kind = "pgbouncer-stats"
    record = "pgbouncer_stats"
    schema = STATS_SCHEMA
    required = ("database", "total_xact_count", "total_xact_time", "total_wait_time")
    integers = STATS_COLUMNS
    texts = ("database",)
    not_null = ("database",)
    unique = ("database",)


class PgBouncerPoolsSource(_CsvSnapshots):
    """PgBouncer ``SHOW POOLS`` snapshots: clients and server connections per pool."""

    kind = "pgbouncer-pools"
    record = "pgbouncer_pools"
    schema = POOLS_SCHEMA
    required = ("database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle")
    integers = POOLS_COLUMNS
    texts = ("database", "user", "pool_mode")
    not_null = ("database", "user")
    unique = ("database", "user")


class StatementsSource(_CsvSnapshots):
    """``pg_stat_statements`` snapshots: calls and execution time per statement, keyed by
    (userid, dbid, queryid, toplevel) as the view keys them (userid, dbid and toplevel may be
    left out when the export has one role, one database and top-level statements only)."""

    kind = "pg-statements"
    record = "pg_statements"
    schema = STATEMENT_SCHEMA
    required = ("queryid", "calls", "total_exec_time")
    integers = ("calls", "rows")
    floats = ("total_exec_time", "mean_exec_time")
    texts = ("userid", "dbid", "queryid", "query")
    booleans = ("toplevel",)
    unique = STATEMENT_KEY
    not_null = ("queryid", "calls", "total_exec_time")


CSV_KINDS = {"total_xact_count": PgBouncerStatsSource, "cl_waiting": PgBouncerPoolsSource,
             "total_exec_time": StatementsSource}
