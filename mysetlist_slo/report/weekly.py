"""The weekly SLO report's numbers: one ISO week, every headline figure, and the verdict."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from mysetlist_slo._numbers import percent, whole
from mysetlist_slo.config import Config
from mysetlist_slo.report.formatting import STATUS_WORDS, fmt, vital
from mysetlist_slo.report.overview import slo_status
from mysetlist_slo.slo.alerts import backtest_alerts, budget_incidents
from mysetlist_slo.slo.budgets import slo_budgets
from mysetlist_slo.slo.composite import composite_report
from mysetlist_slo.slo.incidents import probe_outages
from mysetlist_slo.slo.latency import exact_share, latency_percentiles
from mysetlist_slo.slo.sli import window_bounds
from mysetlist_slo.store.rollups import SLOT, sketch_value_ms_sql
from mysetlist_slo.vitals.field import cwv_assessment, vitals_regressions, web_vitals_summary


def iso_week(week: str | None, timezone: str = "UTC",
             now: datetime | None = None) -> tuple[str, datetime, datetime]:
    """Return (label like ``2026-W47``, start, end) of an ISO week in ``timezone``, as UTC.

    ``week`` None means the last full week before ``now``. Raises ValueError for a bad label.
    """
    zone = ZoneInfo(timezone)
    if week is None:
        local_now = (now or datetime.now(UTC)).astimezone(zone)
        this_monday = local_now.date() - timedelta(days=local_now.weekday())
        monday = this_monday - timedelta(days=7)
    else:
        try:
            monday = datetime.strptime(week + "-1", "%G-W%V-%u").date()
        except ValueError:
            raise ValueError(f"not an ISO week like 2026-W47: {week!r}") from None
    start = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
    following = monday + timedelta(days=7)
    end = datetime(following.year, following.month, following.day, tzinfo=zone)
    year, number, _ = monday.isocalendar()
    return f"{year}-W{number:02d}", start.astimezone(UTC), end.astimezone(UTC)


_TRAFFIC = """
SELECT
    coalesce(sum(requests), 0) AS requests,
    coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors_5xx,
    coalesce(sum(requests) FILTER (WHERE status BETWEEN 400 AND 499), 0) AS errors_4xx,
    count(DISTINCT minute) AS minutes_with_data
FROM request_counts
WHERE minute >= ? AND minute < ?
"""

_BY_ROUTE = """
WITH counts AS (
    SELECT route, sum(requests) AS requests,
           coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors_5xx
    FROM request_counts
    WHERE minute >= ? AND minute < ?
    GROUP BY route
),
ranked AS (
    SELECT route, bucket, sum(count) AS n,
           sum(sum(count)) OVER (PARTITION BY route ORDER BY bucket) AS up_to,
           sum(sum(count)) OVER (PARTITION BY route) AS timed
    FROM latency_sketch
    WHERE slot > ? AND slot < ?
    GROUP BY route, bucket
),
buckets AS (
    -- Nearest rank per route, as latency.latency_percentiles does for one selection.
    SELECT route, any_value(timed) AS timed,
           min(bucket) FILTER (WHERE up_to >= ceil(0.50 * timed)) AS p50,
           min(bucket) FILTER (WHERE up_to >= ceil(0.95 * timed)) AS p95,
           min(bucket) FILTER (WHERE up_to >= ceil(0.99 * timed)) AS p99
    FROM ranked
    GROUP BY route
),
percentiles AS (
    SELECT route, {p50} AS p50_ms, {p95} AS p95_ms, {p99} AS p99_ms
    FROM buckets
)
SELECT counts.route, counts.requests, counts.errors_5xx,
       counts.errors_5xx / counts.requests AS error_rate,
       percentiles.p50_ms, percentiles.p95_ms, percentiles.p99_ms
FROM counts LEFT JOIN percentiles USING (route)
WHERE counts.requests >= ?
ORDER BY counts.requests DESC
""".format(p50=sketch_value_ms_sql("p50"), p95=sketch_value_ms_sql("p95"),
           p99=sketch_value_ms_sql("p99"))


def latency_by_route(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                     min_requests: int = 100) -> pd.DataFrame:
    """Return per route with at least ``min_requests`` in [start, end): requests, 5xx, error
    rate and p50/p95/p99 latency (ms, from the 5-minute sketches overlapping the window, within
    1 % of exact), busiest first."""
    return con.execute(_BY_ROUTE, [start, end, start - SLOT, end, min_requests]).df()


@dataclass
class WeeklySummary:
    """Every headline number of one week's report (``summaries.weekly_document`` turns it into
    summary.json)."""

    week: str
    start: datetime
    end: datetime
    timezone: str
    generated_at: datetime
    requests: int
    errors_5xx: int
    errors_4xx: int
    availability: float | None  # percent of requests not 5xx
    error_rate: float | None  # percent of requests 5xx
    p95_api_latency_ms: float | None
    minutes_with_data: int
    week_minutes: int
    slos: list[dict[str, Any]] = field(default_factory=list)
    outages: list[dict[str, Any]] = field(default_factory=list)
    incidents: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    ingest_rejects: int = 0
    web_vitals: list[dict[str, Any]] = field(default_factory=list)  # CWV per route and device
    vitals_regressions: list[dict[str, Any]] = field(default_factory=list)
    verdict: str = ""
    breached: list[str] = field(default_factory=list)
    # Composite SLOs at the week's end, apart from the SLOs: slo, status (machine),
    # budget_remaining (fraction or None), members.
    composites: list[dict[str, Any]] = field(default_factory=list)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, timedelta | pd.Timedelta):
        return value.total_seconds()
    if value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in frame.astype(object).where(frame.notna(), None)
            .to_dict("records")]


def weekly_summary(con: duckdb.DuckDBPyConnection, config: Config, week: str | None = None,
                   now: datetime | None = None) -> WeeklySummary:
    """Return the WeeklySummary of ISO ``week`` (default: the last full week)."""
    label, start, end = iso_week(week, config.timezone, now)
    requests, errors_5xx, errors_4xx, minutes = con.execute(_TRAFFIC, [start, end]).fetchall()[0]
    api = latency_percentiles(con, start, end, (0.95,), routes=["/api/*"])
    budgets = slo_budgets(con, config, at=end)
    availability_slo = next((s for s in config.slos if s.sli == "availability"), None)
    backtest = None
    incidents = pd.DataFrame(columns=["start", "end", "bad"])
    if availability_slo is not None:
        incidents = budget_incidents(con, availability_slo, start, end,
                                     timezone=config.timezone_of(availability_slo))
        backtest = backtest_alerts(con, availability_slo, config, start, end, incidents)
    outages = probe_outages(con, start, end, config.probes)
    vitals = web_vitals_summary(con, config, start, end)
    assessment = cwv_assessment(vitals) if len(vitals) else pd.DataFrame()
    regressions = vitals_regressions(con, config, start, end)
    rejects = con.execute(
        "SELECT coalesce(sum(rejected), 0) FROM ingests WHERE last_ts >= ? AND first_ts < ?",
        [start, end]).fetchall()[0][0]
    summary = WeeklySummary(
        week=label, start=start, end=end, timezone=config.timezone,
        generated_at=datetime.now(UTC), requests=int(requests), errors_5xx=int(errors_5xx),
        errors_4xx=int(errors_4xx),
        availability=100 * (1 - errors_5xx / requests) if requests else None,
        error_rate=100 * errors_5xx / requests if requests else None,
        p95_api_latency_ms=float(api["latency_ms"].iloc[0]) if len(api) else None,
        minutes_with_data=int(minutes), week_minutes=int((end - start) / timedelta(minutes=1)),
        slos=_records(budgets), outages=_records(outages), incidents=_records(incidents),
        alerts=_records(backtest.summary) if backtest is not None else [],
        ingest_rejects=int(rejects),
        web_vitals=_records(assessment) if len(assessment) else [],
        vitals_regressions=_records(regressions[regressions["regression"]]),
        breached=[r["slo"] for r in budgets.to_dict("records") if r["status"] == "breach"],
        composites=_composites(con, config, end),
    )
    summary.verdict = verdict(summary, config, estimated_latency_slos(con, config, end))
    return summary


def _composites(con: duckdb.DuckDBPyConnection, config: Config,
                end: datetime) -> list[dict[str, Any]]:
    """Return each composite SLO's state over its window ending at ``end``, in the report's
    statuses (a composite is a view over its members, never counted among the SLOs)."""
    found = []
    for composite in config.composites:
        report = composite_report(con, config, composite, end)
        found.append({"slo": report.slo, "budget_remaining": report.budget_remaining,
                      "status": slo_status(report.status, report.budget_remaining,
                                           report.burn_rate_24h),
                      "members": [member.slo for member in composite.members]})
    return found


def estimated_latency_slos(con: duckdb.DuckDBPyConnection, config: Config,
                           at: datetime) -> list[tuple[str, float, float]]:
    """Return (SLO name, threshold ms, share of its window's requests estimated) for each
    latency SLO whose good counts in the window ending at ``at`` are partly estimated from the
    sketches (its threshold was not configured when those requests were loaded)."""
    found = []
    for slo in config.slos:
        if slo.sli != "latency" or slo.threshold_ms is None:
            continue
        start, end = window_bounds(slo.window, at, config.timezone_of(slo))
        share = exact_share(con, slo.threshold_ms, start, end, slo.routes)
        if share is not None and share < 1:
            found.append((slo.name, slo.threshold_ms, 1 - share))
    return found


def verdict(summary: WeeklySummary, config: Config,
            estimated: Sequence[tuple[str, float, float]] = ()) -> str:
    """Return a one-paragraph verdict on the week, written from the numbers; ``estimated``
    names the latency SLOs whose good counts are partly estimated (estimated_latency_slos)."""
    if not summary.requests:
        return f"No request data for {summary.week}: nothing can be said about it."
    parts = [f"In {summary.week}, MySetlist served {summary.requests:,} requests with "
             f"{summary.availability:.3f} % availability and a {summary.error_rate:.3f} % "
             f"error rate."]
    if summary.p95_api_latency_ms is not None:
        parts.append(f"API p95 latency was {summary.p95_api_latency_ms:.0f} ms.")
    # Only an SLO with a verdict (ok or breach) is judged: no data is not good data.
    judged = [s for s in summary.slos if s["status"] in ("ok", "breach")]
    unjudged = [s for s in summary.slos if s["status"] not in ("ok", "breach")]
    if summary.breached:
        parts.append("Out of error budget: " + ", ".join(summary.breached) + ".")
    elif judged:
        lowest = min(judged, key=lambda s: s["budget_remaining"])
        who = "Every SLO is" if not unjudged else f"The {whole(len(judged))} judged are"
        # Windows ending at the week's end: `status` (windows ending now) reads differently.
        parts.append(f"{who} within budget; the tightest is {lowest['slo']} with "
                     f"{100 * lowest['budget_remaining']:.0f} % of its budget left at "
                     f"{fmt(summary.end, 'time')}.")
    if unjudged:
        parts.append(f"{whole(len(unjudged))} of {whole(len(summary.slos))} SLOs could not be "
                     "judged: "
                     + ", ".join(f"{s['slo']} ({s['status']})" for s in unjudged) + ".")
    for composite in summary.composites:  # a view over its members: named apart, not counted
        left = composite["budget_remaining"]
        parts.append(f"Composite {composite['slo']} (over {', '.join(composite['members'])}): "
                     f"{STATUS_WORDS[composite['status']]}"
                     + ("" if left is None else f", {fmt(100 * left, 'pct')} of its budget "
                        f"left at {fmt(summary.end, 'time')}") + ".")
    assessed = [v for v in summary.web_vitals if v["assessment"] != "not enough data"]
    if assessed:
        passed = sum(v["assessment"] == "passed" for v in assessed)
        parts.append(f"Core Web Vitals pass on {whole(passed)} of {whole(len(assessed))} route "
                     "and device pairs with enough page views.")
    if summary.vitals_regressions:
        worst = summary.vitals_regressions[0]
        parts.append(f"Field regression: {worst['metric']} on {worst['route']} "
                     f"({worst['form_factor']}) p75 rose {100 * worst['change']:.0f} % to "
                     f"{vital(worst['p75'], worst['metric'])}, {worst['users_affected']:,} page "
                     "views rated poor.")
    target = config.probes.recovery_target_delta.total_seconds() / 60
    for outage in summary.outages:
        minutes = outage["time_to_recover"] / 60
        met = "within" if outage["within_target"] else "missing"
        parts.append(f"An outage began {outage['start'][:16].replace('T', ' ')} UTC and lasted "
                     f"{minutes:.0f} minutes, {met} the {target:g}-minute recovery target.")
    for name, threshold, share in estimated:
        parts.append(f"{name}: good counts under {threshold:g} ms are estimated from the "
                     "latency sketches (exact at a threshold within 1 %) for "
                     f"{100 * share:.0f} % of its window's requests, loaded before the "
                     "threshold was configured.")
    if summary.minutes_with_data < 0.95 * summary.week_minutes:
        share = summary.minutes_with_data / summary.week_minutes
        parts.append(f"Only {percent(share, 0)} of the week's minutes had data: read with care.")
    return " ".join(parts)


_INGESTS = """
SELECT file, kind, loaded, rejected, first_ts, last_ts
FROM ingests
WHERE last_ts >= ? AND first_ts < ?
ORDER BY first_ts, file
"""


def ingests_of_week(con: duckdb.DuckDBPyConnection, start: datetime,
                    end: datetime) -> pd.DataFrame:
    """Return the loaded files with data in [start, end): file, kind, rows loaded, rejected,
    time range."""
    return con.execute(_INGESTS, [start, end]).df()
