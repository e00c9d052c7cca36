"""Load-test results: k6 end-of-test summaries and point streams, Locust ``--csv`` files.

Shapes, as documented by their tools:

- k6 ``--summary-export`` JSON (legacy summary: ``metrics.<name>`` holds the statistics) and
  the ``handleSummary`` data object written as JSON (``metrics.<name>.values``); sub-metrics
  ``http_req_duration{name:/api/shows}`` give per-endpoint numbers.
- k6 ``--out json`` stream: one ``{"type": "Metric"|"Point", "metric": ..., "data": ...}`` per
  line; points of ``http_req_duration``, ``http_req_failed``, ``http_reqs`` and ``vus`` are kept.
- Locust ``--csv PREFIX``: ``PREFIX_stats.csv`` (per endpoint and ``Aggregated``),
  ``PREFIX_stats_history.csv`` (users, rate and percentiles over time) and ``PREFIX_failures.csv``.

A run is named by its files: k6 files by the name up to the first dot (``peak.json`` and
``peak.summary.json`` are run ``peak``), Locust files by their ``--csv`` prefix.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import INT64_MAX, from_epoch, load_json, parse_iso
from mysetlist_slo.sources._lines import (
    BadField,
    CsvRecords,
    checked_rows,
    json_records,
    text_lines,
)
from mysetlist_slo.sources.capacity import _read_text
from mysetlist_slo.sources.types import PythonChecked, Reject

ALL = "(all)"  # the endpoint name of a run's totals

RUN_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("run", pa.string()),
    ("tool", pa.string()), ("endpoint", pa.string()),
    ("started", pa.timestamp("us", tz="UTC")), ("finished", pa.timestamp("us", tz="UTC")),
    ("duration_s", pa.float64()), ("requests", pa.int64()), ("failures", pa.int64()),
    ("rps", pa.float64()), ("users", pa.int64()), ("avg_ms", pa.float64()),
    ("p50_ms", pa.float64()), ("p90_ms", pa.float64()), ("p95_ms", pa.float64()),
    ("p99_ms", pa.float64()), ("max_ms", pa.float64()),
])
POINT_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("run", pa.string()),
    ("endpoint", pa.string()), ("metric", pa.string()), ("value", pa.float64()),
])
FAILURE_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("run", pa.string()),
    ("method", pa.string()), ("endpoint", pa.string()), ("error", pa.string()),
    ("occurrences", pa.int64()),
])

# k6 point metrics kept, and the name they are stored under.
K6_POINTS = {"http_req_duration": "request_ms", "http_req_failed": "request_failed",
             "http_reqs": "requests", "vus": "users"}
# Tags of a k6 sub-metric that name an endpoint (others, like expected_response, do not).
_ENDPOINT_TAGS = ("name", "endpoint", "url")
_SUBMETRIC = re.compile(r"^(?P<metric>[A-Za-z0-9_]+)\{(?P<tag>[^:{}]+):(?P<value>.*)\}$")
LOCUST_SUFFIXES = ("_stats_history.csv", "_stats.csv", "_failures.csv")
LOCUST_STATS = ("Type", "Name", "Request Count", "Failure Count")
LOCUST_HISTORY = ("Timestamp", "User Count", "Name", "Requests/s")
LOCUST_FAILURES = ("Method", "Name", "Error", "Occurrences")
_PERCENTILES = {"p50_ms": "50%", "p90_ms": "90%", "p95_ms": "95%", "p99_ms": "99%"}


def run_name(path: Path) -> str:
    """Return the run a load-test file belongs to (its Locust prefix, or its name up to the
    first dot)."""
    for suffix in LOCUST_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name.split(".", 1)[0]


def _number(value: Any, field: str, *, integer: bool = False) -> float:
    """Return ``value`` as a finite non-negative number, or raise BadField naming ``field``."""
    if isinstance(value, bool) or value is None or value == "":
        raise BadField(field, f"not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadField(field, f"not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise BadField(field, f"not a non-negative number: {value!r}")
    if integer and number != int(number):
        raise BadField(field, f"not a whole number: {value!r}")
    if integer and number > INT64_MAX:
        raise BadField(field, f"out of range: {str(value)[:60]}")
    return number


def _optional(value: Any, field: str) -> float | None:
    """Return ``value`` as a number, None when absent; Locust writes N/A for no samples."""
    if value is None or value in ("", "N/A"):
        return None
    return _number(value, field)



def _line_of(text: str, key: str) -> int:
    """Return the line where ``"key"`` first appears in a JSON document (1 when absent)."""
    at = text.find(json.dumps(key))
    return text.count("\n", 0, at) + 1 if at >= 0 else 1


class K6SummarySource(PythonChecked):
    """k6's end-of-test summary: ``--summary-export`` or the ``handleSummary`` data object."""

    kind = "k6-summary"
    record = "load_runs"
    schema = RUN_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row for the run and one per endpoint sub-metric; a malformed summary
        raises IngestError naming the line and the metric."""
        text = _read_text(path)
        try:
            data = load_json(text)
        except json.JSONDecodeError as exc:
            raise IngestError(str(path), f"line {exc.lineno}: not JSON: {exc.msg}") from None
        except ValueError as exc:
            raise IngestError(str(path), f"line 1: not a k6 summary: {exc}") from None
        metrics = data.get("metrics") if isinstance(data, dict) else None
        if not isinstance(metrics, dict):
            raise IngestError(str(path), "line 1: metrics: missing; not a k6 summary")
        run = run_name(path)
        state = data.get("state") if isinstance(data.get("state"), dict) else {}
        try:
            duration_ms = _optional(state.get("testRunDurationMs"), "state.testRunDurationMs")
            stats = {name: self._values(name, body) for name, body in metrics.items()}
        except BadField as bad:
            key = bad.field.split(".")[0] if not bad.field.startswith("state.") else "state"
            raise IngestError(str(path), f"line {_line_of(text, key)}: {bad}") from None
        if "http_reqs" not in stats:
            raise IngestError(str(path), f"line {_line_of(text, 'metrics')}: metrics.http_reqs: "
                              "missing; the run made no HTTP requests")
        duration_s = duration_ms / 1000 if duration_ms is not None else None
        users = stats.get("vus_max", stats.get("vus", {})).get("max")
        endpoints = sorted({m["value"] for name in stats
                            if (m := _SUBMETRIC.match(name)) and m["tag"] in _ENDPOINT_TAGS})
        rows = [self._row(run, ALL, "", stats, duration_s, users)]
        for endpoint in endpoints:
            suffix = next(f"{{{m['tag']}:{endpoint}}}" for name in stats
                          if (m := _SUBMETRIC.match(name)) and m["value"] == endpoint)
            rows.append(self._row(run, endpoint, suffix, stats, duration_s, None))
        return rows, []

    @staticmethod
    def _values(name: str, body: Any) -> dict[str, float]:
        """Return a metric's statistics from either summary shape, checked."""
        if not isinstance(body, dict):
            raise BadField(f"{name}", "not an object of statistics")
        values = body.get("values", body)  # handleSummary nests them; --summary-export not
        if not isinstance(values, dict):
            raise BadField(f"{name}.values", "not an object of statistics")
        return {key: _number(value, f"{name}.{key}") for key, value in values.items()
                if key not in ("thresholds",) and not isinstance(value, dict | list)}

    @staticmethod
    def _row(run: str, endpoint: str, suffix: str, stats: dict[str, dict[str, float]],
             duration_s: float | None, users: float | None) -> dict[str, Any]:
        reqs = stats.get(f"http_reqs{suffix}", {})
        failed = stats.get(f"http_req_failed{suffix}", {})
        trend = stats.get(f"http_req_duration{suffix}", {})
        requests = reqs.get("count")
        # http_req_failed is a Rate: its "passes" are the requests that failed (k6 counts the
        # true values), whatever the name suggests.
        failures = failed.get("passes")
        if failures is None and "rate" in failed and requests is not None:
            failures = round(failed["rate"] * requests)
        if failures is None and "value" in failed and requests is not None:
            failures = round(failed["value"] * requests)
        rps = (requests / duration_s if requests is not None and duration_s
               else reqs.get("rate"))
        return {"line": 1, "ts": None, "run": run, "tool": "k6", "endpoint": endpoint,
                "started": None, "finished": None, "duration_s": duration_s,
                "requests": None if requests is None else int(requests),
                "failures": None if failures is None else int(failures), "rps": rps,
                "users": None if users is None else int(users), "avg_ms": trend.get("avg"),
                "p50_ms": trend.get("med"), "p90_ms": trend.get("p(90)"),
                "p95_ms": trend.get("p(95)"), "p99_ms": trend.get("p(99)"),
                "max_ms": trend.get("max")}


def _k6_endpoint(tags: Any) -> str:
    if not isinstance(tags, dict):
        return ALL
    for tag in _ENDPOINT_TAGS:
        if isinstance(tags.get(tag), str) and tags[tag]:
            return str(tags[tag])
    return ALL


class K6PointsSource(PythonChecked):
    """k6's ``--out json`` stream (plain or gzip); points of other metrics are skipped."""

    kind = "k6-points"
    record = "load_points"
    schema = POINT_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per kept point; a bad line is a reject naming its field."""
        run = run_name(path)
        wanted = tuple(f'"{name}"'.encode() for name in K6_POINTS)
        # A point of a metric not kept is passed over before it is parsed: most lines are.
        lines = (line for line in text_lines(path)
                 if b'"Point"' not in line.value or any(w in line.value for w in wanted))
        return checked_rows(json_records(lines), lambda item: self._point(item, run))

    @staticmethod
    def _point(item: dict[str, Any], run: str) -> dict[str, Any] | None:
        if item.get("type") not in ("Metric", "Point"):
            raise BadField("type", f"not Metric or Point: {item.get('type')!r}")
        metric = item.get("metric")
        if item["type"] == "Metric" or metric not in K6_POINTS:
            return None
        data = item.get("data")
        if not isinstance(data, dict):
            raise BadField("data", "missing")
        try:
            ts = parse_iso(str(data.get("time") or ""))
        except ValueError as exc:
            raise BadField("data.time", str(exc) or "missing") from None
        value = _number(data.get("value"), "data.value")
        return {"ts": ts, "run": run, "endpoint": _k6_endpoint(data.get("tags")),
                "metric": K6_POINTS[str(metric)], "value": value}


Record = dict[str, str]


class _LocustCsv(PythonChecked):
    """One of Locust's ``--csv`` files: each record gives rows of the run its prefix names."""

    required: tuple[str, ...] = ()

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return the rows of every good record; a bad one is a reject naming its field."""
        run = run_name(path)
        with CsvRecords(path) as records:
            records.require(self.required)
            return checked_rows(records, lambda record: self.row(run, record))

    def row(self, run: str, record: Record) -> dict[str, Any] | list[dict[str, Any]]:
        """Return the row(s) of one record; raise BadField naming the field that is bad."""
        raise NotImplementedError


class LocustStatsSource(_LocustCsv):
    """Locust ``PREFIX_stats.csv``: totals per endpoint and the ``Aggregated`` row (the run)."""

    kind = "locust-stats"
    record = "load_runs"
    schema = RUN_SCHEMA
    required = LOCUST_STATS

    def row(self, run: str, record: Record) -> dict[str, Any]:
        """Return the row of one endpoint, or of the run for ``Aggregated``."""
        requests = int(_number(record.get("Request Count"), "Request Count", integer=True))
        failures = int(_number(record.get("Failure Count"), "Failure Count", integer=True))
        if failures > requests:
            raise BadField("Failure Count", f"{failures} is more than the {requests} requests")
        rps = _optional(record.get("Requests/s"), "Requests/s")
        name = record.get("Name") or ""
        if not name:
            raise BadField("Name", "missing")
        aggregated = name == "Aggregated" and not record.get("Type")
        row = {"ts": None, "run": run, "tool": "locust",
               "endpoint": ALL if aggregated else name, "started": None, "finished": None,
               "duration_s": requests / rps if rps else None,
               "requests": requests, "failures": failures, "rps": rps, "users": None,
               "avg_ms": _optional(record.get("Average Response Time"), "Average Response Time"),
               "max_ms": _optional(record.get("Max Response Time"), "Max Response Time")}
        for column, header in _PERCENTILES.items():
            row[column] = _optional(record.get(header), header)
        return row


class LocustHistorySource(_LocustCsv):
    """Locust ``PREFIX_stats_history.csv``: users, current rate and percentiles over time."""

    kind = "locust-history"
    record = "load_points"
    schema = POINT_SCHEMA
    required = LOCUST_HISTORY
    # Columns kept, and the metric each becomes.
    columns: ClassVar[dict[str, str]] = {
        "User Count": "users", "Requests/s": "rps", "Failures/s": "failures_per_s",
        "95%": "p95_ms", "Total Request Count": "requests_total",
        "Total Failure Count": "failures_total"}

    def row(self, run: str, record: Record) -> list[dict[str, Any]]:
        """Return one row per kept column of a history line (``N/A`` means no sample)."""
        stamp = _number(record.get("Timestamp"), "Timestamp", integer=True)
        try:
            ts = from_epoch(stamp)
        except ValueError as exc:
            raise BadField("Timestamp", str(exc)) from None
        name = record.get("Name") or ""
        endpoint = ALL if name == "Aggregated" else name
        values = {metric: _optional(record.get(column), column)
                  for column, metric in self.columns.items()}
        return [{"ts": ts, "run": run, "endpoint": endpoint, "metric": metric, "value": value}
                for metric, value in values.items() if value is not None]


class LocustFailuresSource(_LocustCsv):
    """Locust ``PREFIX_failures.csv``: each distinct failure with its count."""

    kind = "locust-failures"
    record = "load_failures"
    schema = FAILURE_SCHEMA
    required = LOCUST_FAILURES

    def row(self, run: str, record: Record) -> dict[str, Any]:
        """Return the row of one failure line."""
        count = int(_number(record.get("Occurrences"), "Occurrences", integer=True))
        return {"ts": None, "run": run, "method": record.get("Method") or "",
                "endpoint": record.get("Name") or "", "error": record.get("Error") or "",
                "occurrences": count}


def sniff_load_test(path: Path, head: str) -> str | None:
    """Return the load-test kind of a file from its opening text ``head``, or None."""
    first = next((line for line in head.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        try:
            item = load_json(first)
        except ValueError:
            item = None
        if isinstance(item, dict) and item.get("type") in ("Metric", "Point") and "metric" in item:
            return "k6-points"
        if '"root_group"' in head or ('"metrics"' in head and (
                '"testRunDurationMs"' in head or '"http_reqs"' in head)):
            return "k6-summary"
        return None
    try:
        header = ({name.strip() for name in next(csv.reader([first]), [])} if "," in first
                  else set())
    except csv.Error:
        return None
    if set(LOCUST_HISTORY) <= header:
        return "locust-history"
    if set(LOCUST_STATS) <= header:
        return "locust-stats"
    if set(LOCUST_FAILURES) <= header:
        return "locust-failures"
    return None


LOAD_TEST_KINDS = {source.kind: source for source in (
    K6SummarySource, K6PointsSource, LocustStatsSource, LocustHistorySource,
    LocustFailuresSource)}
