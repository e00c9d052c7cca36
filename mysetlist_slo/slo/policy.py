"""The error-budget policy: what each SLO's budget asks of the team this week (release as
usual, release freeze except fixes, or freeze and a postmortem), decided over the weeks before
it so that a freeze lifts only once the budget has recovered (hysteresis).

The policy is the SRE workbook's example error budget policy ("Implementing SLOs", appendix):
a service out of budget halts changes other than P0 and security fixes until it is back within
its SLO, and the spend gets a postmortem; this adds the common early freeze below a share of
the budget and the thaw line above it (config ``error_budget_policy``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import duckdb
import pandas as pd

from mysetlist_slo.config import Config, ErrorBudgetPolicy, SloConfig
from mysetlist_slo.slo.budgets import BURN_RATE_WINDOWS, _at, burn_rate, period_scale, slo_events
from mysetlist_slo.slo.composite import (
    MemberCounts,
    combine,
    composite_span,
    evaluate_composite,
    member_events,
)
from mysetlist_slo.slo.sli import STORED_SLIS, window_bounds

STATES = ("normal", "freeze", "exhausted")


def next_state(previous: str, remaining_pct: float | None, policy: ErrorBudgetPolicy) -> str:
    """Return the policy state after a week ending with ``remaining_pct`` percent of the
    budget left, from the state ``previous`` before it.

    No budget left (0 % or less) is ``exhausted`` from any state. Otherwise ``normal`` freezes
    below ``freeze_below``; ``freeze`` and ``exhausted`` thaw to ``normal`` only above
    ``thaw_above``, and ``exhausted`` with budget back (but not above the thaw line) stays
    frozen as ``freeze``. A week without a verdict (no or too few events) keeps the state:
    missing data neither starts nor lifts a freeze.
    """
    if remaining_pct is None:
        return previous
    if remaining_pct <= 0:
        return "exhausted"
    if previous == "normal":
        return "freeze" if remaining_pct < policy.freeze_below else "normal"
    return "normal" if remaining_pct > policy.thaw_above else "freeze"


@dataclass(frozen=True)
class PolicyStep:
    """One weekly evaluation: the week that ended, the budget left then, the state after it."""

    week: str
    at: datetime
    budget_remaining: float | None  # percent; None: no verdict that week
    state: str


@dataclass(frozen=True)
class PolicyState:
    """The policy's decision for one SLO (or composite) this week, with its evidence."""

    slo: str
    kind: str  # slo | composite
    window: str
    state: str  # normal | freeze | exhausted
    previous_state: str
    since: str | None  # week label the state began; None: before the history replayed
    budget_remaining: float | None  # percent, at the end of this week
    burn_rate_24h: float | None
    action: str  # what the policy asks of the team this week
    postmortem: bool  # a postmortem is asked (the budget was exhausted this week)
    evidence: str
    history: tuple[PolicyStep, ...]


def week_ends(at: datetime, weeks: int, timezone: str) -> list[datetime]:
    """Return the ends of the ``weeks`` weeks before ``at`` and ``at`` itself, oldest first,
    a whole number of local weeks apart in ``timezone`` (as UTC)."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone).replace(tzinfo=None)
    return [(local - timedelta(weeks=k)).replace(tzinfo=zone).astimezone(UTC)
            for k in range(weeks, -1, -1)]


def _week_label(end: datetime, timezone: str) -> str:
    year, week, _ = (end - timedelta(microseconds=1)).astimezone(ZoneInfo(timezone)).isocalendar()
    return f"{year}-W{week:02d}"


def _slo_remaining(slo: SloConfig, config: Config, events: pd.DataFrame,
                   at: datetime) -> tuple[float | None, float | None]:
    """Return (percent of the budget left, 24 h burn rate) of ``slo`` at ``at`` from its
    events, as ``budgets.budget_report`` counts them (None: no verdict)."""
    zone = config.timezone_of(slo)
    start, end = window_bounds(slo.window, at, zone)
    inside = events[(events["minute"] >= start) & (events["minute"] < end)]
    good, total = int(inside["good"].sum()), int(inside["total"].sum())
    recent = events[(events["minute"] >= end - BURN_RATE_WINDOWS["24h"])
                    & (events["minute"] < end)]
    rate = burn_rate(int(recent["good"].sum()), int(recent["total"].sum()), slo.objective)
    if total < config.min_events:
        return None, rate
    remaining = combine("events", slo.objective, [MemberCounts(slo.name, 1, good, total)],
                        period_scale(slo, start, end, zone)).remaining
    return (None if remaining is None else float(100 * remaining)), rate


def _decide(name: str, kind: str, window: str, policy: ErrorBudgetPolicy, timezone: str,
            points: list[datetime], readings: list[tuple[float | None, float | None]]
            ) -> PolicyState:
    state, history = "normal", []
    for point, (remaining, _) in zip(points, readings, strict=True):
        state = next_state(state, remaining, policy)
        history.append(PolicyStep(_week_label(point, timezone), point, remaining, state))
    previous = history[-2].state if len(history) > 1 else "normal"
    since = None
    for older, newer in zip(history[-2::-1], history[::-1], strict=False):
        if older.state != newer.state:
            since = newer.week
            break
    remaining, rate = readings[-1]
    postmortem = state == "exhausted" and previous != "exhausted"
    action = {"normal": policy.normal_action, "freeze": policy.freeze_action,
              "exhausted": policy.exhausted_action}[state]
    return PolicyState(name, kind, window, state, previous, since, remaining, rate, action,
                       postmortem, _evidence(state, since, history, policy, rate, window),
                       tuple(history))


def _evidence(state: str, since: str | None, history: list[PolicyStep],
              policy: ErrorBudgetPolicy, rate: float | None, window: str) -> str:
    last = history[-1]
    if last.budget_remaining is None:
        left = f"no verdict for {last.week} (no or too few events)"
    else:
        left = (f"{last.budget_remaining:.1f} % of the {window} budget left at the end of "
                f"{last.week}")
    burn = "" if rate is None else f", burning at {rate:.2f}x over the last 24 h"
    began = (f"; {state} since {since}" if since else
             f"; {state} throughout the {len(history)} weeks replayed")
    rule = {"normal": f"freezes below {policy.freeze_below:g} %",
            "freeze": f"thaws above {policy.thaw_above:g} %",
            "exhausted": f"thaws above {policy.thaw_above:g} %"}[state]
    return f"{left}{burn}{began}; {rule}"


def policy_states(con: duckdb.DuckDBPyConnection, config: Config,
                  at: datetime | None = None) -> list[PolicyState]:
    """Return the error-budget policy's state for every SLO and composite SLO at ``at``
    (default: now, on a whole minute), replayed week by week over the policy's
    ``history_weeks`` ending at ``at``; empty when the configuration has no policy or SLO
    without a stored source."""
    policy = config.error_budget_policy
    if policy is None:
        return []
    end = _at(at)
    points = week_ends(end, policy.history_weeks, config.timezone)
    out = []
    for slo in config.slos:
        if slo.sli not in STORED_SLIS:
            continue
        first = window_bounds(slo.window, points[0], config.timezone_of(slo))[0]
        events = slo_events(con, slo, min(first, points[0] - BURN_RATE_WINDOWS["24h"]), end,
                            config.probes)
        readings = [_slo_remaining(slo, config, events, point) for point in points]
        out.append(_decide(slo.name, "slo", slo.window, policy, config.timezone, points,
                           readings))
    for composite in config.composites:
        start = composite_span(config, composite, points[0])[0]
        frames = member_events(con, config, composite, start, end)
        reports = [evaluate_composite(config, composite, frames, point) for point in points]
        readings = [(None if r.budget_remaining is None else 100 * r.budget_remaining,
                     r.burn_rate_24h) for r in reports]
        out.append(_decide(composite.name, "composite", reports[-1].window, policy,
                           config.timezone, points, readings))
    return out


def policy_table(states: list[PolicyState]) -> pd.DataFrame:
    """Return the policy states as rows: slo, kind, state, since, budget_remaining (%),
    action, evidence; frozen and exhausted first."""
    order = {"exhausted": 0, "freeze": 1, "normal": 2}
    rows = sorted(states, key=lambda s: (order[s.state], s.slo))
    return pd.DataFrame([{"slo": s.slo, "kind": s.kind, "state": s.state, "since": s.since,
                          "budget_remaining": s.budget_remaining, "action": s.action,
                          "evidence": s.evidence} for s in rows],
                        columns=["slo", "kind", "state", "since", "budget_remaining",
                                 "action", "evidence"])
