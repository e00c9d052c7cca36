"""Each report's own summary: summary.json (schema version 2, checked against the JSON Schema
shipped beside this module) and a Markdown digest (delivery.py sends it to chat).

Field names carry their unit (``availability_pct``, ``time_to_recover_s``, ``p95_api_latency_ms``;
plain counts carry none), one scale per unit (percent as 0–100), values rounded, timestamps ISO
8601 in UTC with a ``Z``. ``status`` is the machine status: ``ok``, ``at_risk``, ``breach`` or
``no_data``. Text that came from outside (routes, SLO names, queries) is escaped for each medium.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import jsonschema
import pandas as pd

from mysetlist_slo._numbers import signed, whole
from mysetlist_slo.capacity.plan import CapacityPlan, capacity_plan
from mysetlist_slo.capacity.users import ActiveUsersReport, active_users_report
from mysetlist_slo.config import Config
from mysetlist_slo.errors import InsufficientDataError, SloError
from mysetlist_slo.report.budget_policy import (
    STATE_WORDS,
    BudgetPolicySection,
    budget_policy_section,
    policy_document,
)
from mysetlist_slo.report.formatting import (
    STATUS_WORDS,
    fmt,
    is_missing,
    iso,
    markdown_text,
    plain_text,
    strip_controls,
    vital,
)
from mysetlist_slo.report.overview import (
    Headline,
    overview_headline,
    slo_overview,
    week_over_week,
)
from mysetlist_slo.report.weekly import WeeklySummary, iso_week
from mysetlist_slo.resilience.section import ScalabilityRecovery, scalability_recovery
from mysetlist_slo.slo.app_errors import AppErrors, application_errors
from mysetlist_slo.slo.deploys import DeployImpact, deploy_impact
from mysetlist_slo.vitals.attribution import (
    VitalsAttribution,
    finding_sentence,
    vitals_attribution_findings,
)
from mysetlist_slo.vitals.delivery import WebDelivery, web_delivery
from mysetlist_slo.vitals.field import cwv_assessment, vitals_regressions, web_vitals_summary

SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).resolve().parent / "summary.schema.json"
TOP_N = 10  # rows per list in a summary; the executed notebook has them all


class SummaryError(SloError):
    """Raised when a summary does not match the shipped JSON Schema (a bug, never input)."""


def _round(value: Any, digits: int) -> float | None:
    """Return ``value`` rounded to ``digits`` decimals; None for a missing or infinite value."""
    if is_missing(value):
        return None
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        return None
    return round(number, digits)


def _int(value: Any) -> int | None:
    return None if is_missing(value) else int(value)


def _seconds(value: Any) -> int | None:
    """Return a duration (timedelta or seconds) as whole seconds."""
    if is_missing(value):
        return None
    if isinstance(value, pd.Timedelta) or hasattr(value, "total_seconds"):
        return round(value.total_seconds())
    return round(float(value))


def _envelope(report: str, title: str, label: str, start: datetime, end: datetime,
              timezone: str, status: str, headline: str) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "report": report, "title": title,
            "period": {"label": label, "start": iso(start), "end": iso(end),
                       "timezone": timezone},
            "generated_at": iso(datetime.now(UTC)), "status": status, "headline": headline}


# --- weekly ---------------------------------------------------------------------------------

# The section's words as machine statuses: a finding is at risk, not (yet) a breach of an SLO.
_RECOVERY_STATUS = {"ok": "ok", "attention": "at_risk", "no data": "no_data"}


def _line_status(ok: bool | None) -> str:
    return "no_data" if ok is None else ("ok" if ok else "at_risk")


def recovery_document(section: ScalabilityRecovery) -> dict[str, Any]:
    """Return the "Scalability and recovery" section as summary data: a machine status overall
    and per item (ok / at_risk / no_data), the item's own finding (passed, overdue…) and line."""
    return {"status": _RECOVERY_STATUS[section.status],
            "parts": [{"part": title,
                       "items": [{"topic": line.topic, "status": _line_status(line.ok),
                                  "finding": line.status, "text": line.text}
                                 for line in lines]}
                      for title, lines in section.parts.items()]}


def deploys_document(impact: DeployImpact) -> dict[str, Any]:
    """Return the week's deploys as summary data: a machine status (``at_risk`` when a deploy
    regressed, ``no_data`` without deploys), the hours compared, and per deploy (regressed
    first, at most TOP_N) its verdict, budget spent after and before in hours of the SLO
    window it hurt most, error rates and p95 before and after with the tests' p-values."""
    status = {"ok": "ok", "regressed": "at_risk", "no data": "no_data"}[impact.status]
    frame = impact.deploys
    ordered = pd.concat([frame[frame["verdict"] == "regressed"],
                         frame[frame["verdict"] != "regressed"]])
    deploys = [{
        "deployed_at": iso(row["deployed_at"]), "service": row["service"],
        "version": row["version"], "environment": row["environment"], "commit": row["commit"],
        "verdict": row["verdict"], "reasons": row["reasons"], "slo": row["worst_slo"],
        "budget_spent_before_h": _round(row["budget_hours_before"], 2),
        "budget_spent_after_h": _round(row["budget_hours_after"], 2),
        "error_rate_before_pct": _pct(row["error_rate_before"]),
        "error_rate_after_pct": _pct(row["error_rate_after"]),
        "error_p_value": _round(row["error_p_value"], 6),
        "p95_before_ms": _round(row["p95_before_ms"], 1),
        "p95_after_ms": _round(row["p95_after_ms"], 1),
        "latency_p_value": _round(row["latency_p_value"], 6), "text": row["text"],
    } for row in ordered.head(TOP_N).to_dict("records")]
    return {"status": status, "hours": impact.hours, "total": len(frame),
            "regressed": int((frame["verdict"] == "regressed").sum()) if len(frame) else 0,
            "deploys": [{key: None if is_missing(value) else value
                         for key, value in deploy.items()} for deploy in deploys]}


def _pct(share: Any) -> float | None:
    return None if is_missing(share) else _round(100 * float(share), 4)


def app_errors_document(section: AppErrors) -> dict[str, Any]:
    """Return the "Application errors (Sentry)" section as summary data: the SLI beside the
    5xx rate (percent), whether its numerator is a lower bound, the period's releases with
    their error and crash-free rates and regression test, and the findings."""
    sli = section.sli
    rate, rate_5xx = sli.app_error_rate, sli.rate_5xx

    def pct(value: Any) -> float | None:
        return None if value is None or pd.isna(value) else _round(100 * float(value), 4)

    return {
        "status": section.status,
        "sli": {"status": sli.status, "requests": sli.requests, "errors_5xx": sli.errors_5xx,
                "app_errors": sli.app_errors,
                "events_without_requests": sli.events_without_requests,
                "app_error_rate_pct": pct(rate), "rate_5xx_pct": pct(rate_5xx),
                "target_pct": pct(sli.max_error_rate), "lower_bound": sli.lower_bound,
                "rate_limited": sli.rate_limited, "filtered": sli.filtered},
        "releases": [{
            "release": str(row.release), "live_from": iso(row.live_from),
            "live_until": iso(row.live_until), "requests": int(row.requests),
            "app_errors": int(row.app_errors), "error_rate_pct": pct(row.error_rate),
            "sessions": int(row.sessions),
            "crash_free_sessions_pct": pct(row.crash_free_sessions),
            "crash_free_users_pct": pct(row.crash_free_users),
            "previous": None if row.previous is None or pd.isna(row.previous)
            else str(row.previous),
            "p_value": None if row.p_value is None or pd.isna(row.p_value)
            else float(row.p_value),
            "regression": bool(row.regression)} for row in section.releases.itertuples()],
        "findings": section.lines(),
    }


def weekly_document(summary: WeeklySummary, overview: pd.DataFrame, now: Headline,
                    before: Headline, previous_label: str,
                    title: str = "MySetlist weekly SLO report",
                    recovery: ScalabilityRecovery | None = None,
                    attribution: VitalsAttribution | None = None,
                    deploys: DeployImpact | None = None,
                    users: ActiveUsersReport | None = None,
                    app_errors: AppErrors | None = None,
                    budget_policy: BudgetPolicySection | None = None,
                    delivery: WebDelivery | None = None) -> dict[str, Any]:
    """Return the weekly report's summary.json content (schema version 2) from the week's
    WeeklySummary, its SLO overview (``overview.slo_overview``), both weeks' headlines, and the
    optional sections (None: not evaluated, and no key): scalability and recovery, the Web
    Vitals attribution findings, the week's deploys, active users and concurrency, application
    errors (Sentry), the error-budget policy, web delivery (CDN cache, bundles, lab targets)."""
    overall, count = overview_headline(overview)
    slos = [{
        "name": row["slo"], "sli": row["sli_kind"], "status": row["status"],
        "objective_pct": _round(row["objective"], 4), "window": row["window"],
        "sli_period_pct": _round(row["sli_period"], 4),
        "sli_window_pct": _round(row["sli_window"], 4),
        "events_period": _int(row["events_period"]), "events_window": _int(row["events_window"]),
        "budget_spent_period_pct": _round(row["budget_spent_period"], 2),
        "budget_remaining_pct": _round(row["budget_remaining"], 2),
        "burn_rate_1h": _round(row["burn_rate_1h"], 3),
        "burn_rate_24h": _round(row["burn_rate_24h"], 3),
        "data_coverage_pct": _round(row["data_coverage"], 2),
        "note": row["reason"] or None,
    } for row in overview.to_dict("records")]
    failing = [v for v in summary.web_vitals if v["assessment"] == "failed"]
    document = _envelope("weekly", title, summary.week, summary.start, summary.end,
                         summary.timezone, overall, count)
    document.update({
        "traffic": {
            "requests": summary.requests, "errors_5xx": summary.errors_5xx,
            "errors_4xx": summary.errors_4xx,
            "availability_pct": _round(summary.availability, 4),
            "error_rate_pct": _round(summary.error_rate, 4),
            "p95_api_latency_ms": _round(summary.p95_api_latency_ms, 1),
            "active_users": now.active_users,
            "minutes_with_data": summary.minutes_with_data,
            "period_minutes": summary.week_minutes,
        },
        "previous_period": {
            "label": previous_label, "requests": before.requests,
            "availability_pct": _round(before.availability, 4),
            "error_rate_pct": _round(before.error_rate, 4),
            "p95_api_latency_ms": _round(before.p95_api_latency_ms, 1),
            "active_users": before.active_users,
            "web_vitals_passing": before.vitals_passing,
            "web_vitals_assessed": before.vitals_assessed,
        },
        "slos": slos,
        "outages": [{"target": o["target"], "start": iso(o["start"]), "end": iso(o["end"]),
                     "time_to_recover_s": _seconds(o["time_to_recover"]),
                     "within_target": bool(o["within_target"])} for o in summary.outages],
        "incidents": [{"start": iso(i["start"]), "end": iso(i["end"]),
                       "bad_events": _int(i["bad"])} for i in summary.incidents],
        "alerts": [{"rule": a["rule"], "kind": a["kind"], "severity": a["severity"],
                    "firings": _int(a["firings"]),
                    "firings_outside_incidents": _int(a["noisy_firings"]),
                    "incidents_caught": _int(a["incidents_caught"]),
                    "incidents": _int(a["incidents"]),
                    "median_time_to_detect_s": _seconds(a["median_time_to_detect"])}
                   for a in summary.alerts],
        "ingest_rejects": summary.ingest_rejects,
        "web_vitals": {
            "passing": now.vitals_passing, "assessed": now.vitals_assessed,
            "failing": [{"route": v["route"], "form_factor": v["form_factor"]}
                        for v in failing[:TOP_N]],
            "failing_total": len(failing),
        },
        "vitals_regressions": _regressions(summary.vitals_regressions),
        "vitals_regressions_total": len(summary.vitals_regressions),
        "scalability_recovery": recovery_document(recovery) if recovery else None,
        "web_delivery": delivery.to_dict() if delivery else None,
        "verdict": summary.verdict,
    })
    if attribution is not None:
        document["vitals_attribution"] = attribution.to_dict()
    if deploys is not None:
        document["deploys"] = deploys_document(deploys)
    if users is not None:
        document["active_users"] = users.to_dict()
    if app_errors is not None:
        document["application_errors"] = app_errors_document(app_errors)
    if budget_policy is not None:
        document["error_budget_policy"] = policy_document(budget_policy)
    return document


def _regressions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ranked = sorted(rows, key=lambda r: r["users_affected"], reverse=True)[:TOP_N]
    return [{"metric": r["metric"], "route": r["route"], "form_factor": r["form_factor"],
             "unit": "unitless" if r["metric"] == "CLS" else "ms",
             "p75_before": _round(r["p75_before"], 3 if r["metric"] == "CLS" else 0),
             "p75": _round(r["p75"], 3 if r["metric"] == "CLS" else 0),
             "change_pct": _round(100 * r["change"], 1),
             "p_value": float(f"{r['p_value']:.3g}"),
             "page_views": _int(r["page_views"]),
             "page_views_poor": _int(r["users_affected"])} for r in ranked]


# --- capacity -------------------------------------------------------------------------------

def capacity_document(plan: CapacityPlan | None, config: Config, label: str, start: datetime,
                      end: datetime, title: str = "MySetlist capacity plan",
                      why_none: str = "") -> dict[str, Any]:
    """Return the capacity report's summary.json content: replicas needed at the forecast peak
    and at the concurrent-users scenario, when maxReplicas runs out, pool headroom. Status:
    breach when maxReplicas cannot serve the forecast peak, at_risk when it cannot serve the
    concurrent-users scenario or the pool is smaller than needed, no_data without CPU data or
    without a plan (``plan`` None, ``why_none`` saying why)."""
    if plan is None:
        return _no_capacity_plan(config, label, start, end, title, why_none)
    hpa, scenario, pool = plan.hpa, plan.hpa_concurrent_users, plan.pool
    # The pool size in force: collected from PgBouncer where the store has it, else configured.
    pool_size = (plan.pool_settings.default_pool_size.value if plan.pool_settings
                 else config.pgbouncer.default_pool_size if config.pgbouncer else None)
    headroom = (pool_size - pool.servers) if pool is not None and pool_size is not None else None
    if hpa is None:
        status, headline = "no_data", "No CPU data: the autoscaler cannot be judged"
    elif not hpa.configured_max_is_enough:
        status = "breach"
        headline = (f"maxReplicas {whole(hpa.max_replicas)} is not enough for the forecast "
                    f"peak ({whole(hpa.replicas_needed)} replicas needed)")
    elif (scenario is not None and not scenario.configured_max_is_enough) or (
            headroom is not None and headroom < 0):
        status = "at_risk"
        problems = []
        if scenario is not None and not scenario.configured_max_is_enough:
            users = config.capacity.concurrent_users if config.capacity else 0
            problems.append(f"{whole(users)} concurrent users would need "
                            f"{whole(scenario.replicas_needed)}")
        if headroom is not None and headroom < 0 and pool is not None and pool_size:
            problems.append(f"the pool needs {whole(pool.servers)} connections, "
                            f"{whole(pool_size)} configured")
        headline = (f"The forecast peak needs {whole(hpa.replicas_needed)} of "
                    f"{whole(hpa.max_replicas)} replicas; " + "; ".join(problems))
    else:
        status = "ok"
        headline = (f"The forecast peak needs {whole(hpa.replicas_needed)} of "
                    f"{whole(hpa.max_replicas)} replicas")
    document = _envelope("capacity", title, label, start, end, config.timezone, status, headline)
    capacity = config.capacity
    document.update({
        "forecast": {"model": plan.peak.model, "peak_rps": _round(plan.peak.peak_rps, 2),
                     "growth_pct": _round(100 * plan.peak.growth, 1),
                     "burst_factor": _round(plan.peak.burst_factor, 3)},
        "hpa": {
            "min_replicas": config.autoscaling.min_replicas if config.autoscaling else None,
            "max_replicas": config.autoscaling.max_replicas if config.autoscaling else None,
            "replicas_needed_at_peak": hpa.replicas_needed if hpa else None,
            "max_is_enough_at_peak": hpa.configured_max_is_enough if hpa else None,
            "concurrent_users": capacity.concurrent_users if capacity else None,
            "concurrent_users_rps": _round(plan.peak.concurrent_users_rps, 1),
            "replicas_needed_at_concurrent_users": scenario.replicas_needed if scenario else None,
            "max_is_enough_at_concurrent_users": (scenario.configured_max_is_enough
                                                  if scenario else None),
            "max_replicas_exceeded_at": iso(plan.max_replicas_exceeded_at),
        },
        "pool": {
            "default_pool_size": pool_size,
            "servers_needed": pool.servers if pool else None,
            "headroom_connections": headroom,
            "wait_probability_pct": _round(100 * pool.wait_probability, 3) if pool else None,
            "wait_probability_now_pct": _round(
                None if plan.pool_now_wait_probability is None
                else 100 * plan.pool_now_wait_probability, 3),
        },
        "statements_fast_pct": _round(None if plan.statements_fast_share is None
                                      else 100 * plan.statements_fast_share, 2),
        "verdict": plan.verdict,
    })
    if plan.pool_settings is not None:
        document["server_settings"] = [
            {"system": s.system, "name": s.name, "value": s.value, "source": s.source,
             "configured": s.configured, "collected_at": iso(s.collected_at)}
            for s in plan.pool_settings.all]
    behaviour = plan.user_behaviour
    measured = plan.hpa_measured_users
    document["user_behaviour"] = None if behaviour is None else {
        "rps_per_user": _round(behaviour.rps_per_user, 5),
        "think_time_s": _round(behaviour.think_time_s, 2),
        "assumed_think_time_s": capacity.think_time_s if capacity else None,
        "windows": behaviour.windows,
        "concurrent_users_rps_measured": _round(plan.measured_users_rps, 1),
        "concurrent_users_rps_assumed": _round(plan.peak.concurrent_users_rps, 1),
        "replicas_needed_measured": measured.replicas_needed if measured else None,
        "max_is_enough_measured": measured.configured_max_is_enough if measured else None,
    }
    return document


def _no_capacity_plan(config: Config, label: str, start: datetime, end: datetime, title: str,
                      why: str) -> dict[str, Any]:
    """Return the capacity summary when no plan could be made: every number missing."""
    document = _envelope("capacity", title, label, start, end, config.timezone, "no_data",
                         why or "No capacity plan")
    autoscaling, capacity = config.autoscaling, config.capacity
    document.update({
        "forecast": {"model": "none", "peak_rps": None, "growth_pct": None,
                     "burst_factor": None},
        "hpa": {"min_replicas": autoscaling.min_replicas if autoscaling else None,
                "max_replicas": autoscaling.max_replicas if autoscaling else None,
                "replicas_needed_at_peak": None, "max_is_enough_at_peak": None,
                "concurrent_users": capacity.concurrent_users if capacity else None,
                "concurrent_users_rps": None, "replicas_needed_at_concurrent_users": None,
                "max_is_enough_at_concurrent_users": None, "max_replicas_exceeded_at": None},
        "pool": {"default_pool_size": (config.pgbouncer.default_pool_size
                                       if config.pgbouncer else None),
                 "servers_needed": None, "headroom_connections": None,
                 "wait_probability_pct": None, "wait_probability_now_pct": None},
        "statements_fast_pct": None, "verdict": why or "No capacity plan.",
    })
    return document


# --- vitals ---------------------------------------------------------------------------------

def vitals_document(site: pd.DataFrame, assessment: pd.DataFrame, regressions: pd.DataFrame,
                    config: Config, label: str, start: datetime, end: datetime,
                    title: str = "MySetlist Web Vitals",
                    attribution: VitalsAttribution | None = None) -> dict[str, Any]:
    """Return the Web Vitals report's summary.json content from the site-wide summary
    (``web_vitals_summary(..., by=())``), the per route and device assessment, the
    week-over-week comparison (``vitals_regressions``) and, when given, the attribution
    findings (``vitals_attribution_findings``, under ``attribution``). Status: no_data
    without enough page views, breach when a site-wide p75 is over its budget, at_risk when a
    significant regression or a failing route and device pair remains, ok otherwise."""
    metrics = [{"metric": r["metric"], "unit": "unitless" if r["metric"] == "CLS" else "ms",
                "p75": _round(r["p75"], 3 if r["metric"] == "CLS" else 0),
                "budget": _round(r["budget"], 3),
                "meets_budget": None if is_missing(r["meets_budget"]) else bool(
                    r["meets_budget"]),
                "page_views": _int(r["page_views"]),
                "good_pct": _round(None if is_missing(r["good"]) else 100 * r["good"], 1),
                "poor_pct": _round(None if is_missing(r["poor"]) else 100 * r["poor"], 1)}
               for r in site.to_dict("records")]
    judged = assessment[assessment["assessment"] != "not enough data"] if len(
        assessment) else assessment
    failing = judged[judged["assessment"] == "failed"] if len(judged) else judged
    significant = (regressions[regressions["regression"]].to_dict("records")
                   if len(regressions) else [])
    if not any(m["p75"] is not None for m in metrics):
        status, headline = "no_data", "No Web Vitals field data with enough page views"
    elif any(m["meets_budget"] is False for m in metrics):
        over = [m["metric"] for m in metrics if m["meets_budget"] is False]
        status, headline = "breach", "Site-wide p75 over budget: " + ", ".join(over)
    elif significant or len(failing):
        status = "at_risk"
        headline = (f"{whole(len(judged) - len(failing))} of {whole(len(judged))} route and "
                    f"device pairs pass Core Web Vitals; {whole(len(significant))} significant "
                    "regressions")
    else:
        status = "ok"
        headline = (f"All {whole(len(judged))} assessed route and device pairs pass Core Web "
                    "Vitals")
    document = _envelope("vitals", title, label, start, end, config.timezone, status, headline)
    document.update({
        "metrics": metrics,
        "assessed": len(judged), "passing": len(judged) - len(failing),
        "failing": [{"route": r["route"], "form_factor": r["form_factor"]}
                    for r in failing.head(TOP_N).to_dict("records")] if len(failing) else [],
        "failing_total": len(failing),
        "regressions": _regressions(significant),
        "regressions_total": len(significant),
    })
    if attribution is not None:
        document["attribution"] = attribution.to_dict()
    return document


def attribution_digest_line(section: dict[str, Any],
                            esc: Callable[[Any], str] = markdown_text) -> str:
    """Return one digest line naming the element behind the slowest LCP and the one behind
    poor INP with their dominant phases (selectors, routes and devices passed through
    ``esc``: escaped for Markdown by default), or saying there is no attribution data."""
    if not any(section["attributed_page_views"].values()):
        return "- Web Vitals causes: no beacon carries attribution"
    parts = []
    for metric, what in (("LCP", "LCP"), ("INP", "poor INP")):
        top = next((f for f in section["findings"] if f["metric"] == metric), None)
        if top is None:
            continue
        phase = top["dominant_phase"]
        parts.append(f"{what} {esc(top['target'])} on {esc(top['route'])} "
                     f"({esc(top['form_factor'])})"
                     + (f", mostly {phase.replace('_', ' ')}" if phase else ""))
    return "- Web Vitals causes: " + ("; ".join(parts) if parts else "nothing over the good "
                                                                      "threshold")


def attribution_lines(section: dict[str, Any],
                      esc: Callable[[Any], str] = markdown_text) -> list[str]:
    """Return the digest lines of an ``attribution`` summary section: the top element per
    metric with the page views it holds over the good threshold, its p75 and dominant phase
    (selectors, routes and devices passed through ``esc``: escaped for Markdown by default),
    or one line when no beacon carried attribution."""
    if not any(section["attributed_page_views"].values()):
        return ["- Web Vitals attribution: no beacon of the week carries the attribution "
                "build's fields"]
    firsts: dict[str, dict[str, Any]] = {}
    for finding in section["findings"]:
        firsts.setdefault(finding["metric"], finding)  # the top one: the digest stays short
    return [f"- {finding_sentence(f, esc)}" for f in firsts.values()]


# --- per report ---------------------------------------------------------------------------

TITLES = {"weekly": "MySetlist weekly SLO report", "capacity": "MySetlist capacity plan",
          "vitals": "MySetlist Web Vitals"}


def summary_document(kind: str, con: duckdb.DuckDBPyConnection, config: Config,
                     summary: WeeklySummary, title: str | None = None) -> dict[str, Any]:
    """Return the summary.json content of the ``kind`` report (weekly, capacity or vitals) for
    the week of ``summary``. Raises SloError for an unknown kind."""
    start, end, label = summary.start, summary.end, summary.week
    heading = title or TITLES.get(kind, kind)
    if kind == "weekly":
        overview = slo_overview(con, config, start, end)
        now, before = week_over_week(con, config, start, end)
        previous = iso_week(None, config.timezone, now=start)[0]
        return weekly_document(summary, overview, now, before, previous, heading,
                               recovery=scalability_recovery(con, config, start, end),
                               attribution=vitals_attribution_findings(con, config, start, end),
                               deploys=deploy_impact(con, config, start, end),
                               users=active_users_report(con, config, start, end),
                               app_errors=application_errors(con, config, start, end),
                               budget_policy=budget_policy_section(con, config, end),
                               delivery=web_delivery(con, config, start, end))
    if kind == "capacity":
        try:
            plan: CapacityPlan | None = capacity_plan(con, config, end)
        except InsufficientDataError as exc:
            plan = None
            why = (f"Too little traffic history to forecast: {whole(exc.count)} {exc.unit}, "
                   f"{whole(exc.minimum)} needed")
        return capacity_document(plan, config, label, start, end, heading,
                                 "" if plan else why)
    if kind == "vitals":
        site = web_vitals_summary(con, config, start, end, by=())
        pairs = web_vitals_summary(con, config, start, end)
        assessment = cwv_assessment(pairs) if len(pairs) else pd.DataFrame()
        regressions = vitals_regressions(con, config, start, end)
        return vitals_document(site, assessment, regressions, config, label, start, end,
                               heading, vitals_attribution_findings(con, config, start, end))
    raise SloError(f"no summary for a {kind!r} report")


# --- validation -----------------------------------------------------------------------------

@cache
def schema() -> dict[str, Any]:
    """Return the JSON Schema of summary.json (shipped in the package)."""
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text("utf-8"))
    return loaded


def validate(document: dict[str, Any]) -> None:
    """Check ``document`` against the shipped JSON Schema; raises SummaryError naming the first
    failing field."""
    validator = jsonschema.Draft202012Validator(schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top)"
        raise SummaryError(f"summary.json does not match its schema at {where}: "
                           f"{errors[0].message}")


def write_json(document: dict[str, Any], path: Path) -> None:
    """Validate ``document`` and write it to ``path`` as indented JSON."""
    validate(document)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", "utf-8")


# --- Markdown ---------------------------------------------------------------------

def _status_line(document: dict[str, Any]) -> str:
    return f"{STATUS_WORDS[document['status']].upper()}: {document['headline']}"


def _lines(document: dict[str, Any], esc: Callable[[Any], str],
           strong: Callable[[str], str]) -> list[str]:
    """Return the digest's lines: text from outside passed through ``esc`` (made inert for
    the medium), the title and verdict through ``strong``."""
    period = document["period"]
    lines = [strong(esc(document['title'] + ' ' + period['label'])), "",
             strong(esc(_status_line(document))), ""]
    own = strip_controls  # text this module wrote from numbers: nothing to escape
    kind = document["report"]
    if kind == "weekly":
        traffic = document["traffic"]
        lines.append(own(
            f"{fmt(traffic['requests'], 'count')} requests, availability "
            f"{fmt(traffic['availability_pct'], 'pct3')}, error rate "
            f"{fmt(traffic['error_rate_pct'], 'pct3')}, API p95 "
            f"{fmt(traffic['p95_api_latency_ms'], 'ms')}"))
        lines.append("")
        # The windows end at the week's end: `status` (windows ending now) differs by that.
        if document["slos"]:
            lines.append(f"SLOs over their windows ending {fmt(period['end'], 'time')} "
                         "(the period's end):")
        for slo in document["slos"]:
            lines.append(
                f"- {esc(slo['name'])}: {STATUS_WORDS[slo['status']]}, SLI "
                f"{fmt(slo['sli_window_pct'], 'pct3')} over {esc(slo['window'])} "
                f"(objective {fmt(slo['objective_pct'], 'objective')}), budget left "
                f"{fmt(slo['budget_remaining_pct'], 'pct')}"
                + (f" ({esc(slo['note'])})" if slo["note"] else ""))
        for outage in document["outages"]:
            lines.append(f"- outage of {esc(outage['target'])}: recovered in "
                         f"{fmt(outage['time_to_recover_s'], 'duration')}"
                         f"{'' if outage['within_target'] else ', over the target'}")
        users = document.get("active_users")
        if users is not None:
            lines.append(own(_users_line(users)))
        recovery = document.get("scalability_recovery") or {"parts": []}
        for part in recovery["parts"]:  # findings only: the digest stays short
            lines += [f"- {esc(part['part'])}: {esc(item['topic'])}: {esc(item['finding'])}"
                      for item in part["items"] if item["status"] == "at_risk"]
        policy = document.get("error_budget_policy") or {"slos": [], "composites": []}
        for state in policy["slos"]:  # what the policy asks: frozen and exhausted SLOs only
            if state["state"] != "normal":
                lines.append(f"- policy: {esc(state['name'])}: {STATE_WORDS[state['state']]}"
                             + (f" since {esc(state['since'])}" if state["since"] else "")
                             + f", budget left {fmt(state['budget_remaining_pct'], 'pct')}"
                             + (" (postmortem due)" if state["postmortem"] else ""))
        for composite in policy["composites"]:
            spent = [m for m in composite["members"] if m["budget_spent_pct"]]
            if spent:
                top = max(spent, key=lambda m: m["budget_spent_pct"])
                lines.append(f"- {esc(composite['name'])}: {esc(top['slo'])} spent "
                             f"{fmt(top['budget_spent_pct'], 'pct')} of the combined budget")
        if document.get("vitals_attribution"):
            lines.append(attribution_digest_line(document["vitals_attribution"], esc))
        lines += _deploy_lines(document.get("deploys"), esc)
        app_errors = document.get("application_errors")
        if app_errors is not None:  # the SLI, and each release that raised the error rate
            # "Sentry", not the section's title: its lines begin "Application error rate".
            lines += [f"- Sentry: {esc(line)}"
                      for line in app_errors["findings"]]
        delivery = document.get("web_delivery") or {"lines": []}
        lines += [f"- {esc(line['part'])}: {esc(line['topic'])}: {esc(line['text'])}"
                  for line in delivery["lines"] if line["status"] == "at_risk"]
    elif kind == "capacity":
        hpa = document["hpa"]
        lines.append(own(f"Forecast peak {fmt(document['forecast']['peak_rps'], 'number')} "
                         f"req/s ({document['forecast']['model']})"))
        lines.append("- replicas needed at the peak: "
                     f"{fmt(hpa['replicas_needed_at_peak'], 'count')} of max "
                     f"{fmt(hpa['max_replicas'], 'count')}")
        lines.append(f"- at {fmt(hpa['concurrent_users'], 'count')} concurrent users: "
                     f"{fmt(hpa['replicas_needed_at_concurrent_users'], 'count')} replicas")
        behaviour = document.get("user_behaviour")
        if behaviour is not None:
            lines.append(f"- measured: a request every {fmt(behaviour['think_time_s'], 'number')}"
                         f" s per user (assumed {fmt(behaviour['assumed_think_time_s'], 'number')}"
                         f" s): {fmt(behaviour['concurrent_users_rps_measured'], 'number')} req/s"
                         f" at {fmt(hpa['concurrent_users'], 'count')} users, "
                         f"{fmt(behaviour['replicas_needed_measured'], 'count')} replicas")
        lines.append(f"- maxReplicas runs out: {fmt(hpa['max_replicas_exceeded_at'], 'time')}"
                     if hpa["max_replicas_exceeded_at"] else
                     "- maxReplicas does not run out within the horizon")
        pool = document["pool"]
        used = {s["name"]: s["source"] for s in document.get("server_settings", [])}
        source = f", {used['default_pool_size']}" if "default_pool_size" in used else ""
        lines.append(f"- PgBouncer server connections needed at the peak: "
                     f"{fmt(pool['servers_needed'], 'count')} of default_pool_size "
                     f"{fmt(pool['default_pool_size'], 'count')}{source} (headroom "
                     f"{fmt(pool['headroom_connections'], 'count')})")
    else:
        for metric in document["metrics"]:
            value = vital(metric["p75"], metric["metric"])
            budget = vital(metric["budget"], metric["metric"])
            lines.append(f"- {esc(metric['metric'])} p75 {value} (budget {budget})")
        for regression in document["regressions"]:
            lines.append(
                f"- regression: {esc(regression['metric'])} on {esc(regression['route'])} "
                f"({esc(regression['form_factor'])}) up {fmt(regression['change_pct'], 'pct')}")
        if "attribution" in document:
            lines += attribution_lines(document["attribution"], esc)
    return lines


def _deploy_lines(deploys: dict[str, Any] | None, esc: Callable[[Any], str]) -> list[str]:
    """Return the digest's deploy lines: each regressed deploy's verdict line, else one line
    counting the deploys (or saying there was none); versions come from input: escaped."""
    if deploys is None:
        return []
    if not deploys["total"]:
        return ["- deploys: none in production this week"]
    regressed = [d for d in deploys["deploys"] if d["verdict"] == "regressed"]
    if not regressed:
        return [f"- deploys: {fmt(deploys['total'], 'count')}, none regressed"]
    return [f"- deploy {esc(d['text'])}" for d in regressed]


def _users_line(users: dict[str, Any]) -> str:
    """Return the digest's line on active users and concurrency (numbers only)."""
    if users["status"] == "no_data":
        return "- active users: not measured (no PostHog events)"
    before = users["active_users_before"]
    change = (f" ({signed(100 * (users['active_users'] - before) / before, '+.1f')} %)" if before
              else "")
    peak = users["peak_concurrent_users"]
    target = users["target_concurrent_users"]
    return (f"- active users: {fmt(users['active_users'], 'count')}{change}, peak "
            f"{fmt(peak, 'count')} concurrent"
            + (f" of the plan's {fmt(target, 'count')}" if target else ""))


def summary_markdown(document: dict[str, Any]) -> str:
    """Return a short Markdown digest of any report's summary document; routes and names are
    escaped so that no link, image, HTML or table can be injected through them."""
    return "\n".join(_lines(document, markdown_text, lambda text: f"**{text}**")) + "\n"


def summary_text(document: dict[str, Any]) -> str:
    """Return the same digest as plain text, for a terminal or a log: no Markdown markup or
    escapes (``/show/[id]``, not ``/show/\\[id\\]``); text from outside is one line with its
    control characters removed."""
    return "\n".join(_lines(document, plain_text, str)) + "\n"
