"""Sources: one module per export format, each producing canonical rows and located rejects."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import load_json
from mysetlist_slo.sources._lines import BOM, open_maybe_gzip
from mysetlist_slo.sources.capacity import CSV_KINDS, PrometheusSource
from mysetlist_slo.sources.deploys import DeploySource, sniff_deploys
from mysetlist_slo.sources.loadtests import LOAD_TEST_KINDS, sniff_load_test
from mysetlist_slo.sources.nginx import (
    COMBINED,
    COMBINED_CACHED,
    COMBINED_TIMED,
    NginxSource,
    compile_log_format,
)
from mysetlist_slo.sources.posthog import PostHogSource, looks_like_posthog
from mysetlist_slo.sources.probes import PROBES
from mysetlist_slo.sources.recovery import RECOVERY_KINDS, sniff_recovery
from mysetlist_slo.sources.request_exports import ExportOptions, ExportSource
from mysetlist_slo.sources.requests_schema import CANONICAL_COLUMNS, CANONICAL_SCHEMA
from mysetlist_slo.sources.sentry import (
    SENTRY_KINDS,
    SERIES_HEAD_BYTES,
    series_cut_short,
    sniff_sentry,
)
from mysetlist_slo.sources.types import INPUT_TABLE, InputBatch, Reject, RequestSource
from mysetlist_slo.sources.vitals import BeaconSource, CruxSource, LighthouseSource

CAPACITY_CSV = {source.kind: source for source in CSV_KINDS.values()}

KINDS = ("nginx", "jsonl", "csv", "parquet", "probes", "vitals", "crux", "lighthouse",
         "prometheus", "pgbouncer-stats", "pgbouncer-pools", "pg-statements",
         *LOAD_TEST_KINDS, *RECOVERY_KINDS, "deploys", "posthog",
         *SENTRY_KINDS)

__all__ = ["COMBINED", "COMBINED_CACHED", "COMBINED_TIMED", "KINDS", "ExportOptions",
           "InputBatch", "Reject", "RequestSource", "detect_source", "parse_requests"]


# $upstream_cache_status's values ("-": no cache lookup): a last field like these after the
# two timings is the cache status, not a second upstream time.
_CACHE_WORD = r"-|MISS|BYPASS|EXPIRED|STALE|UPDATING|REVALIDATED|HIT"


def _first_line(path: Path) -> str:
    stream, raw = open_maybe_gzip(path)
    try:
        head = stream.read(64 << 10)
    finally:
        stream.close()
        raw.close()
    for line in head.removeprefix(BOM).splitlines():
        if line.strip():
            return line.decode("utf-8", errors="replace")
    return ""


def _head(path: Path, size: int = 64 << 10) -> str:
    """Return the opening ``size`` bytes of a file's content as text (gzip read through)."""
    stream, raw = open_maybe_gzip(path)
    try:
        return stream.read(size).decode("utf-8", errors="replace")
    finally:
        stream.close()
        raw.close()


def _json_kind(path: Path) -> str | None:
    """Return vitals, crux or lighthouse when the content is one of those JSON shapes."""
    line = _first_line(path).lstrip()
    if not line.startswith("{"):
        return None
    try:
        record = load_json(line)
    except ValueError:
        # A pretty-printed JSON document: look at its opening instead of its first line.
        stream, raw = open_maybe_gzip(path)
        try:
            head = stream.read(4096).decode("utf-8", errors="replace")
        finally:
            stream.close()
            raw.close()
        if '"record"' in head and ('"metrics"' in head or '"key"' in head):
            return "crux"
        if any(mark in head for mark in ('"lighthouseVersion"', '"lhr"', '"audits"',
                                         '"lighthouseResult"', "pagespeedonline#result")):
            return "lighthouse"
        if '"resultType"' in head:
            return "prometheus"
        return None
    if not isinstance(record, dict):
        return None
    if "record" in record:
        return "crux"
    if isinstance(record.get("data"), dict) and "resultType" in record["data"]:
        return "prometheus"
    if "lighthouseVersion" in record or "lhr" in record or "lighthouseResult" in record:
        return "lighthouse"
    if record.get("event") == "$web_vitals" or {"name", "value", "id"} <= set(record):
        return "vitals"
    if looks_like_posthog(record):
        return "posthog"
    return None


def _looks_like_probes(path: Path) -> bool:
    """Return True when the first record names a probe's location and outcome."""
    line = _first_line(path)
    try:
        keys = set(load_json(line)) if line.lstrip().startswith("{") else {
            name.strip() for name in next(csv.reader([line]))}
    except (ValueError, StopIteration, csv.Error):
        return False
    return {"location", "ok"} <= keys


def _sniff(path: Path, log_format: str | None) -> str:
    """Return the kind of file ``path`` is, told from its content."""
    with open(path, "rb") as handle:
        if handle.read(4) == b"PAR1":
            return "parquet"
    if log_format is not None:
        return "nginx"
    head = _head(path)
    if series_cut_short(head):
        head = _head(path, SERIES_HEAD_BYTES)
    other_kind = sniff_load_test(path, head) or sniff_recovery(head) or sniff_sentry(
        head, str(path))
    if other_kind is not None:
        return other_kind
    if sniff_deploys(head):
        return "deploys"
    json_kind = _json_kind(path)
    if json_kind is not None:
        return json_kind
    line = _first_line(path)
    if line.startswith("# HELP") or line.startswith("# TYPE"):
        return "prometheus"
    if line.lstrip().startswith("{"):
        return "probes" if _looks_like_probes(path) else "jsonl"
    if re.match(compile_log_format(COMBINED).regex.rstrip("$"), line):
        return "nginx"
    if "," in line:
        try:
            header = {name.strip() for name in next(csv.reader([line]))}
        except csv.Error as exc:
            raise IngestError(str(path), f"line 1: not a CSV header: {exc}") from None
        for column, source in CSV_KINDS.items():
            if column in header:
                return source.kind
        if looks_like_posthog(header):
            return "posthog"
        return "probes" if _looks_like_probes(path) else "csv"
    raise IngestError(str(path), "cannot tell what kind of file this is from its first line; "
                      f"name it with --kind ({', '.join(KINDS)})")


def detect_source(path: Path, kind: str | None = None, log_format: str | None = None,
                  options: ExportOptions | None = None) -> RequestSource:
    """Return the source that reads ``path``: the given ``kind``, or one told from the content."""
    kind = kind or _sniff(path, log_format)
    if kind == "prometheus":
        return PrometheusSource()
    if kind in CAPACITY_CSV:
        return CAPACITY_CSV[kind]()
    if kind in LOAD_TEST_KINDS:
        return LOAD_TEST_KINDS[kind]()
    if kind in RECOVERY_KINDS:
        return RECOVERY_KINDS[kind]()
    if kind == "deploys":
        return DeploySource()
    if kind in SENTRY_KINDS:
        return SENTRY_KINDS[kind]()
    if kind == "vitals":
        return BeaconSource()
    if kind == "crux":
        return CruxSource()
    if kind == "posthog":
        return PostHogSource()
    if kind == "lighthouse":
        return LighthouseSource()
    if kind == "probes":
        text = _first_line(path).lstrip().startswith("{")
        return ExportSource("jsonl" if text else "csv", options, PROBES)
    if kind == "nginx":
        if log_format is None:
            # Out of the box: "combined" with $request_time $upstream_response_time when the
            # lines carry them (and $upstream_cache_status after them when the last field is
            # one of its values), plain "combined" (no latency) when they do not.
            first = _first_line(path)
            cached = re.match(compile_log_format(COMBINED_CACHED).regex, first)
            timed = re.match(compile_log_format(COMBINED_TIMED).regex, first)
            if cached and re.fullmatch(_CACHE_WORD, cached.group("upstream_cache_status")):
                log_format = COMBINED_CACHED
            else:
                log_format = COMBINED_TIMED if timed else COMBINED
        return NginxSource(log_format)
    if kind in ("jsonl", "csv", "parquet"):
        return ExportSource(kind, options)  # type: ignore[arg-type]
    raise IngestError(str(path), f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")


def parse_requests(path: Path, kind: str | None = None, log_format: str | None = None,
                   options: ExportOptions | None = None) -> tuple[pa.Table, list[Reject]]:
    """Return a file's canonical request rows (CANONICAL_SCHEMA) and its rejects, storing
    nothing; handy to look at an export before loading it."""
    source = detect_source(path, kind, log_format, options)
    con = duckdb.connect()
    tables, rejects = [], []
    try:
        for batch in source.batches(path):
            if batch.table is not None:
                con.register(INPUT_TABLE, batch.table)
            checked = con.sql(batch.query, params=batch.params or None).to_arrow_table()
            bad = pc.is_valid(checked.column("bad_field"))
            tables.append(checked.filter(pc.invert(bad)).select(CANONICAL_COLUMNS)
                          .cast(CANONICAL_SCHEMA))
            bad_rows = checked.filter(bad).select(["line", "bad_field", "problem"]).to_pylist()
            rejects += batch.rejects + source.explain(
                con, batch, [(r["line"], r["bad_field"], r["problem"]) for r in bad_rows])
    finally:
        con.close()
    rows = pa.concat_tables(tables) if tables else CANONICAL_SCHEMA.empty_table()
    return rows.sort_by("line"), sorted(rejects, key=lambda r: r.line)
