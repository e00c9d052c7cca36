"""Web Vitals sources: web-vitals beacons, PostHog $web_vitals events, CrUX API responses and
Lighthouse reports, each turned into rows of its table with located rejects.

Records are small and few next to request logs, so they are checked here, in Python, record
by record; the batches then go through the same ingest path as every other source.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from user_agents import parse as parse_user_agent

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import finite_number, from_epoch, load_json, parse_iso
from mysetlist_slo.sources._lines import open_maybe_gzip, read_lines
from mysetlist_slo.sources.types import PASSTHROUGH, InputBatch, Reject

METRICS = ("LCP", "INP", "CLS", "FCP", "TTFB")
# Values beyond these are not measurements (a tab left open for an hour): rejected, with reason.
UPPER_BOUNDS = {"LCP": 900_000, "FCP": 900_000, "TTFB": 900_000, "INP": 900_000, "CLS": 100.0}
FORM_FACTORS = ("phone", "tablet", "desktop")

# The web-vitals attribution build's fields (README "Attribution"; v4/v5 names first, then
# the v3 names they replaced): the phases each metric's value splits into, in ms, stored
# under our snake_case column names.
PHASES: dict[str, dict[str, tuple[str, ...]]] = {
    "LCP": {"time_to_first_byte": ("timeToFirstByte",),
            "resource_load_delay": ("resourceLoadDelay",),
            "resource_load_duration": ("resourceLoadDuration", "resourceLoadTime"),
            "element_render_delay": ("elementRenderDelay",)},
    "INP": {"input_delay": ("inputDelay",), "processing_duration": ("processingDuration",),
            "presentation_delay": ("presentationDelay",)},
    "TTFB": {"waiting_duration": ("waitingDuration", "waitingTime"),
             "cache_duration": ("cacheDuration",),
             "dns_duration": ("dnsDuration", "dnsTime"),
             "connection_duration": ("connectionDuration", "connectionTime"),
             "request_duration": ("requestDuration", "requestTime")},
}
# The element (a CSS selector web-vitals builds) each metric is attributed to: LCP's element
# is ``target`` since v5 (``element`` before), INP's ``interactionTarget`` (v3: ``eventTarget``).
TARGETS: dict[str, tuple[str, ...]] = {"LCP": ("target", "element"),
                                       "INP": ("interactionTarget", "eventTarget"),
                                       "CLS": ("largestShiftTarget",)}
# Selectors and URLs come from the page (attacker-controlled): kept to these lengths, cut
# with a trailing "…" (web-vitals itself cuts selectors at 100 characters; an LCP image may
# be a data: URL of megabytes). Longer text is diagnostic detail, not a measurement: cutting
# it loses nothing the analysis groups by.
MAX_SELECTOR = 256
MAX_URL = 2048
MAX_WORD = 40  # interactionType, loadState: short keywords
MAX_SHIFT_TIME = 86_400_000  # ms: a layout shift a day after the navigation is no measurement

ATTRIBUTION_TEXT = ("attribution_target", "attribution_url", "interaction_type", "load_state")
ATTRIBUTION_NUMBERS = ("largest_shift_time", "largest_shift_value",
                       *[phase for phases in PHASES.values() for phase in phases])
ATTRIBUTION_COLUMNS = (*ATTRIBUTION_TEXT, *ATTRIBUTION_NUMBERS)

BEACON_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("metric", pa.string()),
    ("value", pa.float64()), ("metric_id", pa.string()), ("target", pa.string()),
    ("form_factor", pa.string()), ("navigation_type", pa.string()), ("rating", pa.string()),
    ("source", pa.string()),
    *[(name, pa.string()) for name in ATTRIBUTION_TEXT],
    *[(name, pa.float64()) for name in ATTRIBUTION_NUMBERS],
])

# CrUX API metric names -> ours (first_input_delay was retired in favour of INP, kept as FID).
CRUX_METRICS = {
    "largest_contentful_paint": "LCP", "interaction_to_next_paint": "INP",
    "cumulative_layout_shift": "CLS", "first_contentful_paint": "FCP",
    "experimental_time_to_first_byte": "TTFB", "first_input_delay": "FID",
}
CRUX_SCHEMA = pa.schema([
    ("line", pa.int64()), ("key_type", pa.string()), ("key", pa.string()),
    ("form_factor", pa.string()), ("metric", pa.string()), ("first_date", pa.date32()),
    ("last_date", pa.date32()), ("p75", pa.float64()), ("histogram", pa.string()),
    ("connection_type", pa.string()),
])

LIGHTHOUSE_AUDITS = {"lcp": "largest-contentful-paint", "fcp": "first-contentful-paint",
                     "cls": "cumulative-layout-shift", "tbt": "total-blocking-time",
                     "tti": "interactive", "speed_index": "speed-index"}
# Lighthouse 10 dropped Time to Interactive from the report: newer runs may lack the audit.
OPTIONAL_AUDITS = frozenset({"interactive"})
LIGHTHOUSE_SCHEMA = pa.schema([
    ("line", pa.int64()), ("fetch_time", pa.timestamp("us", tz="UTC")), ("target", pa.string()),
    ("form_factor", pa.string()), ("performance", pa.float64()),
    *[(name, pa.float64()) for name in LIGHTHOUSE_AUDITS],
])


@lru_cache(maxsize=4096)
def form_factor(user_agent: str | None) -> str:
    """Return phone, tablet or desktop for a User-Agent, as CrUX buckets devices ('unknown'
    when there is none or it is a bot)."""
    if not user_agent:
        return "unknown"
    parsed = parse_user_agent(user_agent)
    if parsed.is_bot:
        return "unknown"
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "phone"
    return "desktop" if parsed.is_pc else "unknown"


def _timestamp(value: Any) -> datetime:
    """Return an aware UTC time from ISO 8601 text with a zone or Unix milliseconds, between
    1970 and 2100; raise ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch(finite_number(value) / 1000)
    if not isinstance(value, str):
        raise ValueError("missing")
    return parse_iso(value)


def _text(record: dict[str, Any], key: str) -> str | None:
    """Return an optional text field; raise _Bad when it is there but not text."""
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise _Bad(key, f"not text: {str(value)[:60]}")
    return value


def _path(url: Any) -> str:
    if not isinstance(url, str) or not url:
        raise ValueError("missing")
    return url


class _Rows:
    """Collects rows of one schema and the rejects met on the way."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows: list[dict[str, Any]] = []
        self.rejects: list[Reject] = []
        self.ignored: Counter[str] = Counter()

    def table(self) -> pa.Table:
        return pa.Table.from_pylist(self.rows, self.schema)


def _cut(text: str, limit: int) -> str:
    """Return ``text`` cut to ``limit`` characters, marked with "…" when it was longer."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _attribution_text(attribution: dict[str, Any], names: tuple[str, ...],
                      limit: int) -> str | None:
    """Return the first of ``names`` present in ``attribution`` as bounded text (None when
    none is); raise _Bad when it is there but not text."""
    for name in names:
        value = attribution.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _Bad(f"attribution.{name}", f"not text: {str(value)[:60]}")
        return value if len(value) <= limit else _cut(value, limit)
    return None


def _attribution_number(attribution: dict[str, Any], names: tuple[str, ...],
                        bound: float) -> float | None:
    """Return the first of ``names`` present as a number in 0..``bound`` (None when none
    is); raise _Bad otherwise."""
    for name in names:
        value = attribution.get(name)
        if value is None:
            continue
        # The common case first, cheaply (bools are not numbers here; NaN fails the range).
        if (type(value) is float or type(value) is int) and 0 <= value <= bound:
            return float(value)
        number = _field(finite_number, value, f"attribution.{name}")
        raise _Bad(f"attribution.{name}", f"{number:g} is outside 0..{bound:g}")
    return None


def _attribution(record: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the attribution columns of a beacon of metric ``name`` that it carries (none
    without an ``attribution`` object: the columns left out are stored as NULL); raise _Bad
    for a malformed one. The DOM entries the build also attaches (``lcpEntry``,
    ``navigationEntry``…) are not read."""
    attribution = record.get("attribution")
    if attribution is None:
        return {}
    if not isinstance(attribution, dict):
        raise _Bad("attribution", "not an object")
    columns: dict[str, Any] = {
        "attribution_target": _attribution_text(attribution, TARGETS.get(name, ()),
                                                MAX_SELECTOR),
        "load_state": _attribution_text(attribution, ("loadState",), MAX_WORD)}
    if name == "LCP":
        columns["attribution_url"] = _attribution_text(attribution, ("url",), MAX_URL)
    elif name == "INP":
        columns["interaction_type"] = _attribution_text(
            attribution, ("interactionType", "eventType"), MAX_WORD)
    elif name == "CLS":
        # A time since the navigation: a tab may stay open for hours before it shifts.
        columns["largest_shift_time"] = _attribution_number(
            attribution, ("largestShiftTime",), MAX_SHIFT_TIME)
        columns["largest_shift_value"] = _attribution_number(
            attribution, ("largestShiftValue",), UPPER_BOUNDS["CLS"])
    for phase, names in PHASES.get(name, {}).items():
        # A phase is part of the metric's value: bounded as the value is.
        columns[phase] = _attribution_number(attribution, names, UPPER_BOUNDS[name])
    return columns


def _beacon(record: dict[str, Any], line: int, out: _Rows) -> None:
    """Add one web-vitals Metric beacon (name, value, id, ... plus page and time)."""
    name = record.get("name")
    if name not in METRICS:
        out.ignored[str(name)] += 1  # FID and other retired or unknown metrics: counted
        return
    value = _field(finite_number, record.get("value"), "value")
    if value < 0 or value > UPPER_BOUNDS[name]:
        raise _Bad("value", f"{name} of {record['value']} is outside "
                            f"0..{UPPER_BOUNDS[name]:g}")
    if not isinstance(record.get("id"), str) or not record["id"]:
        raise _Bad("id", "missing")
    factor = _text(record, "formFactor") or form_factor(_text(record, "userAgent"))
    if factor not in (*FORM_FACTORS, "unknown"):
        raise _Bad("formFactor", f"not phone, tablet or desktop: {factor[:60]!r}")
    out.rows.append({
        "line": line, "ts": _field(_timestamp, record.get("timestamp"), "timestamp"),
        "metric": name, "value": value, "metric_id": record["id"],
        "target": _field(_path, record.get("url") or record.get("page"), "url"),
        "form_factor": factor, "navigation_type": _text(record, "navigationType"),
        "rating": _text(record, "rating"), "source": "web-vitals",
        **_attribution(record, name),
    })


def _posthog(record: dict[str, Any], line: int, out: _Rows) -> None:
    """Add the metrics of one PostHog $web_vitals event ($web_vitals_<NAME>_value ...)."""
    properties = record.get("properties")
    if not isinstance(properties, dict):
        raise _Bad("properties", "missing")
    when = _field(_timestamp, record.get("timestamp"), "timestamp")
    url = _field(_path, properties.get("$current_url"), "properties.$current_url")
    agent = properties.get("$raw_user_agent")
    factor = form_factor(agent if isinstance(agent, str) else None)
    if factor == "unknown" and properties.get("$device_type"):
        factor = {"Mobile": "phone", "Tablet": "tablet", "Desktop": "desktop"}.get(
            str(properties["$device_type"]), "unknown")
    found = False
    for key, value in properties.items():
        if not (key.startswith("$web_vitals_") and key.endswith("_value")):
            continue
        name = key.removeprefix("$web_vitals_").removesuffix("_value")
        found = True
        event = properties.get(f"$web_vitals_{name}_event") or {}
        if not isinstance(event, dict):
            raise _Bad(f"properties.$web_vitals_{name}_event", "not an object")
        beacon = {"name": name, "value": value, "timestamp": when.isoformat(), "url": url,
                  "formFactor": factor, "rating": event.get("rating"),
                  "navigationType": event.get("navigationType"),
                  # With ``web_vitals_attribution`` on, posthog-js keeps the whole metric
                  # in the event, its ``attribution`` object included.
                  "attribution": event.get("attribution"),
                  # Without the library's id, the event and metric name identify the sample.
                  "id": event.get("id") or f"{record.get('uuid', line)}-{name}"}
        before = len(out.rows)
        _beacon(beacon, line, out)
        if len(out.rows) > before:
            out.rows[-1]["source"] = "posthog"
    if not found:
        raise _Bad("properties", "no $web_vitals_<metric>_value")


class _Bad(Exception):
    """A field of a record that cannot be used."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem


def _field(convert: Any, value: Any, name: str) -> Any:
    try:
        return convert(value)
    except (ValueError, TypeError) as exc:
        raise _Bad(name, str(exc)) from None


class BeaconSource:
    """Web Vitals beacons as JSON Lines: web-vitals Metric objects or PostHog events."""

    kind = "vitals"
    record = "vitals"
    resumable = True  # one record per line: a grown file can be read from where it was

    def __init__(self) -> None:
        self.ignored: Counter[str] = Counter()
        self.start = (0, 0)  # (bytes, lines) of the content to skip, already loaded
        self.stop: int | None = None  # content offset to read up to (None: the end)

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield the beacons of ``path`` as typed rows, with their rejects."""
        for lines in read_lines(path, start=self.start,
                                stop=self.stop):
            out = _Rows(BEACON_SCHEMA)
            out.rejects = [Reject(r.line, r.field, r.problem, r.raw) for r in lines.rejects]
            for line, text in zip(lines.numbers.to_pylist(), lines.text.to_pylist(),
                                  strict=True):
                if not text or text.isspace():
                    out.rejects.append(Reject(line, "line", "empty line", text.encode()))
                    continue
                try:
                    record = load_json(text)
                    if not isinstance(record, dict):
                        raise _Bad("line", "expected a JSON object")
                    if record.get("event") == "$web_vitals":
                        _posthog(record, line, out)
                    else:
                        _beacon(record, line, out)
                except json.JSONDecodeError as exc:
                    out.rejects.append(Reject(line, "line", f"not valid JSON: {exc.msg}",
                                              text.encode()))
                except ValueError as exc:
                    out.rejects.append(Reject(line, "line", f"not usable JSON: {exc}",
                                              text.encode()))
                except _Bad as bad:
                    out.rejects.append(Reject(line, bad.field, bad.problem, text.encode()))
            self.ignored += out.ignored
            yield InputBatch(PASSTHROUGH, out.table(), {}, out.rejects, lines.position)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return no rejects: every check ran in Python already."""
        return []


def _date(value: Any) -> Any:
    """Return the date of a CrUX ``{year, month, day}``, 1970 to 2100; raise ValueError."""
    parts = [value.get(k) if isinstance(value, dict) else None for k in ("year", "month", "day")]
    year, month, day = (p if isinstance(p, int) and not isinstance(p, bool) else -1
                        for p in parts)
    if min(year, month, day) < 0:
        raise ValueError(f"not a date: {str(value)[:60]}")
    if not 1970 <= year <= 2100:
        raise ValueError(f"year {year} is not between 1970 and 2100")
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"not a date: {str(value)[:60]}")
    return datetime(year, month, day).date()


def _read_json(path: Path) -> dict[str, Any]:
    stream, raw = open_maybe_gzip(path)
    try:
        data = load_json(stream.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise IngestError(str(path), f"not a JSON document: {exc}") from None
    except (EOFError, OSError) as exc:
        raise IngestError(str(path), f"corrupt or truncated gzip data: {exc}") from None
    finally:
        stream.close()
        raw.close()
    if not isinstance(data, dict):
        raise IngestError(str(path), "expected a JSON object")
    return data


class CruxSource:
    """Chrome UX Report API responses: ``queryRecord`` and ``queryHistoryRecord``."""

    kind = "crux"
    record = "crux"

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield one row per metric and collection period of the response."""
        data = _read_json(path)
        record = data.get("record")
        if not isinstance(record, dict) or "key" not in record or "metrics" not in record:
            raise IngestError(str(path), "record.key and record.metrics: missing (not a CrUX "
                                         "API response)")
        key, metrics = record["key"], record["metrics"]
        key_type = "url" if isinstance(key, dict) and "url" in key else "origin"
        if (not isinstance(key, dict) or not isinstance(key.get(key_type), str)
                or not isinstance(metrics, dict)):
            raise IngestError(str(path), f"record.key.{key_type} and record.metrics: missing "
                                         "or malformed (not a CrUX API response)")
        factor = str(key.get("formFactor", "ALL_FORM_FACTORS")).lower()[:40]
        # A record queried for one effectiveConnectionType ("4G") holds only those page
        # loads; without it, all connection types (stored as NULL).
        connection = key.get("effectiveConnectionType")
        connection = str(connection)[:20] if connection is not None else None
        periods = record.get("collectionPeriods") or [record.get("collectionPeriod")]
        if not isinstance(periods, list):
            raise IngestError(str(path), "record.collectionPeriods: not a list")
        out = _Rows(CRUX_SCHEMA)
        for name, metric in metrics.items():
            ours = CRUX_METRICS.get(name)
            if ours is None:
                out.ignored[name[:60]] += 1
                continue
            rows = len(out.rows)
            try:
                self._metric(metric, ours, periods, key[key_type], key_type, factor, out)
                for row in out.rows[rows:]:
                    row["connection_type"] = connection
            except (KeyError, IndexError, TypeError, ValueError, AttributeError,
                    OverflowError) as exc:
                # One malformed metric is one reject; what it had added is taken back.
                del out.rows[rows:]
                problem = f"malformed ({type(exc).__name__}: {str(exc)[:80]})"
                out.rejects.append(Reject(1, f"record.metrics.{name[:60]}", problem,
                                          json.dumps(metric)[:4096].encode()))
        yield InputBatch(PASSTHROUGH, out.table(), {}, out.rejects, path.stat().st_size)

    @staticmethod
    def _metric(metric: Any, ours: str, periods: list[Any], key: str, key_type: str,
                factor: str, out: _Rows) -> None:
        """Add the rows of one metric, one per collection period with data."""
        if "percentilesTimeseries" in metric:
            p75s = metric["percentilesTimeseries"]["p75s"]
            histograms = metric.get("histogramTimeseries", [])
        else:
            p75s = [metric["percentiles"]["p75"]]
            histograms = [{**b, "densities": [b.get("density")]}
                          for b in metric.get("histogram", [])]
        for i, period in enumerate(periods):
            if p75s[i] is None or period is None:
                continue  # CrUX leaves a period empty when it had too few samples
            bins = [{"start": b["start"], "end": b.get("end"),
                     "density": b["densities"][i]} for b in histograms]
            # CrUX writes CLS percentiles as text ("0.05"), the others as numbers.
            p75 = finite_number(float(p75s[i]) if isinstance(p75s[i], str) else p75s[i])
            if p75 < 0:
                raise ValueError(f"negative p75: {p75}")
            out.rows.append({
                "line": i + 1, "key_type": key_type, "key": key,
                "form_factor": factor, "metric": ours,
                "first_date": _date(period["firstDate"]),
                "last_date": _date(period["lastDate"]),
                "p75": p75, "histogram": json.dumps(bins),
            })

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return no rejects: every check ran in Python already."""
        return []


class LighthouseSource:
    """Lighthouse JSON reports (the ``lhr`` object, or a PageSpeed Insights v5 response's
    ``lighthouseResult``): performance score and lab metrics."""

    kind = "lighthouse"
    record = "lighthouse"

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield the report as one row."""
        lhr = _read_json(path)
        # Lighthouse's node API and CI wrap the report as ``lhr``; a PageSpeed Insights v5
        # response (runPagespeed) puts it under ``lighthouseResult``.
        lhr = lhr.get("lhr", lhr.get("lighthouseResult", lhr))
        if not isinstance(lhr, dict):
            raise IngestError(str(path), "lhr: not a Lighthouse report object")
        # The report is one record: a missing or bad field refuses it, naming the field.
        target = lhr.get("finalDisplayedUrl") or lhr.get("finalUrl") or lhr.get("requestedUrl")
        if not isinstance(target, str) or not target.strip():
            raise IngestError(str(path), "requestedUrl: missing (the report names no page)")
        settings = lhr.get("configSettings")
        factor = settings.get("formFactor", "unknown") if isinstance(settings, dict) else None
        if not isinstance(factor, str):
            raise IngestError(str(path), "configSettings.formFactor: not text")
        field = "fetchTime"
        try:
            fetched = _timestamp(lhr.get("fetchTime"))
            field = "categories.performance.score"
            score = finite_number(lhr["categories"]["performance"]["score"])
            audits: dict[str, float | None] = {}
            for name, audit in LIGHTHOUSE_AUDITS.items():
                field = f"audits.{audit}.numericValue"
                if audit in OPTIONAL_AUDITS and (lhr["audits"].get(audit) is None or lhr[
                        "audits"][audit].get("numericValue") is None):
                    audits[name] = None  # absent or errored: not measured, never a zero
                    continue
                audits[name] = finite_number(lhr["audits"][audit]["numericValue"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IngestError(str(path), f"{field}: missing or bad ({str(exc)[:80]}); not a "
                                         "complete Lighthouse report") from None
        row = {"line": 1, "fetch_time": fetched, "target": target,
               "form_factor": {"mobile": "phone"}.get(factor, factor)[:40],
               "performance": 100 * score, **audits}
        yield InputBatch(PASSTHROUGH, pa.Table.from_pylist([row], LIGHTHOUSE_SCHEMA), {}, [],
                         path.stat().st_size)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return no rejects: a malformed report fails whole."""
        return []
