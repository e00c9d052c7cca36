"""The first screen of a report: one status per SLO, the headline count, headline numbers
week over week.

Machine statuses are ``ok``, ``at_risk``, ``breach`` and ``no_data``. No data is never counted
as good: an SLO without enough events is ``no_data``, and any ``no_data`` SLO keeps the overall
status from being ``ok``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd

from mysetlist_slo._numbers import whole
from mysetlist_slo.capacity.users import active_user_count
from mysetlist_slo.config import Config
from mysetlist_slo.slo.budgets import slo_budgets, slo_events
from mysetlist_slo.slo.composite import (
    composite_span,
    evaluate_composite,
    member_events,
    period_share,
)
from mysetlist_slo.slo.latency import latency_percentiles
from mysetlist_slo.slo.sli import STORED_SLIS
from mysetlist_slo.vitals.field import cwv_assessment, web_vitals_summary

STATUSES = ("ok", "at_risk", "breach", "no_data")
# At risk: less than a quarter of the window's budget left, or the last 24 h burning faster
# than the budget allows (a burn rate above 1 kept up spends the budget before the window ends;
# SRE workbook, "Alerting on SLOs").
AT_RISK_REMAINING = 0.25
AT_RISK_BURN_24H = 1.0

_REASONS = {"no data": "no events in the window", "not enough events": "fewer events than "
            "min_events", "source not loaded": "its source is not loaded"}


def slo_status(status: str, budget_remaining: float | None,
               burn_rate_24h: float | None) -> str:
    """Return the machine status of one SLO from ``error_budgets``' status, budget and burn."""
    if status == "breach":
        return "breach"
    if status != "ok" or budget_remaining is None:
        return "no_data"
    if budget_remaining < AT_RISK_REMAINING or (
            burn_rate_24h is not None and burn_rate_24h > AT_RISK_BURN_24H):
        return "at_risk"
    return "ok"


def overall_status(statuses: list[str]) -> str:
    """Return the worst status: breach, then at_risk, then no_data; ok only when all are ok
    (and there is at least one SLO)."""
    for status in ("breach", "at_risk", "no_data"):
        if status in statuses:
            return status
    return "ok" if statuses else "no_data"


# A composite's status after its name: "composite api-experience breached".
_COMPOSITE_WORDS = {"ok": "ok", "at_risk": "at risk", "breach": "breached",
                    "no_data": "without data"}


def headline_count(statuses: list[str], composites: Sequence[tuple[str, str]] = ()) -> str:
    """Return the count people read first, e.g. ``1 of 5 SLOs breached, 1 without data``:
    ``statuses`` are the SLOs' machine statuses; each composite (name, status) follows by name
    (``; composite api-experience at risk``), never counted among the SLOs."""
    total = len(statuses)
    if not total:
        return "No SLO is configured"
    breached, risky, empty = (statuses.count(s) for s in ("breach", "at_risk", "no_data"))
    noun = "SLO" if total == 1 else "SLOs"
    parts = [f"{whole(breached)} of {whole(total)} {noun} breached" if breached
             else f"{whole(statuses.count('ok'))} of {whole(total)} {noun} ok"]
    if risky:
        parts.append(f"{whole(risky)} at risk")
    if empty:
        parts.append(f"{whole(empty)} without data")
    text = ", ".join(parts)
    if composites:
        text += "; " + ", ".join(f"composite {name} {_COMPOSITE_WORDS[status]}"
                                 for name, status in composites)
    return text


def overview_headline(table: pd.DataFrame) -> tuple[str, str]:
    """Return (overall status, headline count) of an SLO table with columns ``slo``,
    ``sli_kind`` and ``status`` (machine statuses, as ``slo_overview`` gives them).

    A composite is a view over its member SLOs, with no events of its own: only the SLOs are
    counted and make the overall status (and ``--fail-on breach``); each composite's own status
    is named after the count.
    """
    if not len(table):
        return overall_status([]), headline_count([])
    composite = table["sli_kind"] == "composite"
    statuses = table.loc[~composite, "status"].tolist()
    named = list(zip(table.loc[composite, "slo"], table.loc[composite, "status"], strict=True))
    return overall_status(statuses), headline_count(statuses, named)


def slo_overview(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                 end: datetime) -> pd.DataFrame:
    """Return one row per configured SLO for the period [start, end) and its window ending at
    ``end``: slo, status (machine), objective (%), window, sli_period and sli_window (%),
    events_period, budget_spent_period (% of the window's budget spent in the period),
    budget_remaining (% of the window's budget), burn_rate_1h, burn_rate_24h, data_coverage
    (% of the window's minutes with data) and reason (why values are missing, or ""). The
    composite SLOs follow, one row each (sli_kind ``composite``)."""
    budgets = slo_budgets(con, config, at=end)
    rows = []
    for slo, report in zip(config.slos, budgets.to_dict("records"), strict=True):
        good = total = 0
        if slo.sli in STORED_SLIS:
            events = slo_events(con, slo, start, end, config.probes)
            good, total = int(events["good"].sum()), int(events["total"].sum())
        status = slo_status(report["status"], report["budget_remaining"],
                            report["burn_rate_24h"])
        has_data = status != "no_data"
        allowed = report["allowed_bad"]
        rows.append({
            "slo": slo.name, "sli_kind": slo.sli, "status": status,
            "objective": slo.objective, "window": slo.window,
            "sli_period": 100 * good / total if total >= config.min_events else None,
            "sli_window": report["sli"], "events_period": total,
            "events_window": int(report["total"]),
            "budget_spent_period": (100 * (total - good) / allowed
                                    if has_data and allowed > 0 else None),
            "budget_remaining": (100 * report["budget_remaining"] if has_data else None),
            "burn_rate_1h": report["burn_rate_1h"], "burn_rate_24h": report["burn_rate_24h"],
            "data_coverage": (100 * report["minutes_with_data"] / report["window_minutes"]
                              if report["window_minutes"] else None),
            "reason": _REASONS.get(report["status"], ""),
        })
    return pd.DataFrame(rows + _composite_rows(con, config, start, end))


def _composite_rows(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                    end: datetime) -> list[dict[str, object]]:
    """Return the status rows of the composite SLOs (sli_kind ``composite``), counted from
    their members' events as ``slo.composite`` combines them."""
    rows: list[dict[str, object]] = []
    for composite in config.composites:
        first = composite_span(config, composite, end)[0]
        events = member_events(con, config, composite, min(first, start), end)
        report = evaluate_composite(config, composite, events, end)
        sli_period, spent, total = period_share(config, composite, events, report, start, end)
        status = slo_status(report.status, report.budget_remaining, report.burn_rate_24h)
        rows.append({
            "slo": composite.name, "sli_kind": "composite", "status": status,
            "objective": composite.objective, "window": report.window,
            "sli_period": sli_period, "sli_window": report.sli, "events_period": total,
            "events_window": report.total,
            "budget_spent_period": None if spent is None else 100 * spent,
            "budget_remaining": (None if report.budget_remaining is None
                                 else 100 * report.budget_remaining),
            "burn_rate_1h": report.burn_rate_1h, "burn_rate_24h": report.burn_rate_24h,
            "data_coverage": (100 * report.minutes_with_data / report.window_minutes
                              if report.window_minutes else None),
            "reason": _REASONS.get(report.status, "") or report.note,
        })
    return rows


_TRAFFIC = """
SELECT coalesce(sum(requests), 0) AS requests,
       coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors_5xx
FROM request_counts
WHERE minute >= ? AND minute < ?
"""


@dataclass(frozen=True)
class Headline:
    """The headline numbers of one period; None where there is no data."""

    requests: int
    availability: float | None  # percent of requests not 5xx
    error_rate: float | None  # percent of requests 5xx
    p95_api_latency_ms: float | None
    active_users: int | None  # distinct persons in PostHog events; None: no PostHog data
    vitals_passing: int | None  # route and device pairs passing Core Web Vitals
    vitals_assessed: int | None  # pairs with enough page views to assess


def headline(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
             end: datetime) -> Headline:
    """Return the Headline numbers of [start, end)."""
    requests, errors = con.execute(_TRAFFIC, [start, end]).fetchall()[0]
    api = latency_percentiles(con, start, end, (0.95,), routes=["/api/*"])
    vitals = web_vitals_summary(con, config, start, end)
    passing = assessed = None
    if len(vitals):
        judged = cwv_assessment(vitals)
        judged = judged[judged["assessment"] != "not enough data"]
        assessed, passing = len(judged), int((judged["assessment"] == "passed").sum())
    p95 = float(api["latency_ms"].iloc[0]) if len(api) and pd.notna(
        api["latency_ms"].iloc[0]) else None
    return Headline(
        requests=int(requests),
        availability=100 * (1 - errors / requests) if requests else None,
        error_rate=100 * errors / requests if requests else None,
        p95_api_latency_ms=p95, active_users=active_user_count(con, start, end),
        vitals_passing=passing, vitals_assessed=assessed)


def week_over_week(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                   end: datetime) -> tuple[Headline, Headline]:
    """Return the Headline of [start, end) and of the same span just before it."""
    span = end - start
    return (headline(con, config, start, end),
            headline(con, config, start - span, start))


def change(now: float | None, before: float | None, kind: str) -> str | None:
    """Return the change from ``before`` to ``now`` as text: ``pp`` (percentage points, for
    percentages), ``ms`` (difference) or ``relative`` (percent change, for counts); None when
    either is missing."""
    if now is None or before is None:
        return None
    delta = now - before
    sign = "+" if delta > 0 else ("−" if delta < 0 else "±")
    if kind == "pp":
        return f"{sign}{abs(delta):.3f} pp"
    if kind == "ms":
        return f"{sign}{abs(delta):,.0f} ms"
    if kind == "count":
        return f"{sign}{abs(delta):,.0f}"
    if before == 0:
        return None
    return f"{sign}{abs(100 * delta / before):.1f} %"

