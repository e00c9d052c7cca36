"""The "Error-budget policy" section of the weekly report: each SLO's and composite's policy
state this week and what it asks of the team, with the evidence, and each composite's members'
share of its combined budget."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from mysetlist_slo.config import Config
from mysetlist_slo.report.formatting import iso
from mysetlist_slo.slo.composite import CompositeReport, composite_impacts, composite_report
from mysetlist_slo.slo.policy import PolicyState, policy_states, policy_table

NO_POLICY = ("No error-budget policy is configured (config key error_budget_policy): the "
             "budget states decide nothing.")
NO_COMPOSITE = "No composite SLO is configured (config key composites)."
# The policy's states as the report's machine statuses (coloured alike on every table).
STATE_STATUS = {"normal": "ok", "freeze": "at_risk", "exhausted": "breach"}
STATE_WORDS = {"normal": "release as usual", "freeze": "release freeze",
               "exhausted": "budget exhausted: freeze and postmortem"}


@dataclass(frozen=True)
class BudgetPolicySection:
    """The section's data at the end of a report's period."""

    at: datetime
    configured: bool  # an error-budget policy is configured
    freeze_below: float | None  # percent
    thaw_above: float | None  # percent
    history_weeks: int | None
    states: tuple[PolicyState, ...]
    composites: tuple[CompositeReport, ...]

    @property
    def missing(self) -> str:
        """Return the one line shown instead of the table when no SLO has a policy state."""
        return NO_POLICY if not self.configured else (
            "No SLO has a stored source: the error-budget policy has nothing to judge.")

    def table(self) -> pd.DataFrame:
        """Return one row per SLO and composite: status (machine), slo, kind, state in words,
        since, budget left (%), what it asks, evidence; frozen and exhausted first."""
        frame = policy_table(list(self.states))
        if frame.empty:
            return frame
        return pd.concat([frame["state"].map(STATE_STATUS).rename("status"),
                          frame.drop(columns="state"),
                          frame["state"].map(STATE_WORDS).rename("policy")], axis=1)[
            ["status", "slo", "kind", "policy", "since", "budget_remaining", "action",
             "evidence"]]

    def composite_table(self) -> pd.DataFrame:
        """Return one row per composite member: composite, member, weight (%), events, SLI
        (%), budget spent (% of the combined budget), share of the spend (%)."""
        frames = [composite_impacts(report).assign(composite=report.slo)
                  for report in self.composites]
        if not frames:
            return pd.DataFrame()
        frame = pd.concat(frames, ignore_index=True)
        return frame[["composite", "slo", "weight", "events", "sli", "budget_spent",
                      "share_of_spend"]]

    def digest_lines(self) -> list[str]:
        """Return the section's findings as plain lines (not escaped): every SLO the policy
        freezes, with what it asks, then each composite's largest spender."""
        lines = []
        for state in self.states:
            if state.state == "normal":
                continue
            left = ("no verdict" if state.budget_remaining is None
                    else f"{state.budget_remaining:.0f} % of the budget left")
            since = f" since {state.since}" if state.since else ""
            lines.append(f"{state.slo}: {STATE_WORDS[state.state]}{since} ({left}); "
                         f"{state.action}")
        for report in self.composites:
            spenders = report.impact_lines()
            if spenders:
                lines.append(f"{report.slo}: {spenders[0]}")
        return lines


def budget_policy_section(con: duckdb.DuckDBPyConnection, config: Config,
                          at: datetime) -> BudgetPolicySection:
    """Return the section's data at ``at`` (the end of the report's period): the policy state
    of every SLO and composite (replayed over the policy's weeks) and every composite's
    report. Missing data is a state kept or a status, never an error."""
    policy = config.error_budget_policy
    return BudgetPolicySection(
        at, policy is not None, policy.freeze_below if policy else None,
        policy.thaw_above if policy else None, policy.history_weeks if policy else None,
        tuple(policy_states(con, config, at)),
        tuple(composite_report(con, config, composite, at) for composite in config.composites))


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None or value != value else round(value, digits)


def policy_document(section: BudgetPolicySection) -> dict[str, Any]:
    """Return the section as summary.json data (key ``error_budget_policy``): the policy's
    thresholds, each SLO's and composite's state with its action and evidence and the weekly
    history it was decided on, and each composite's members' spend."""
    return {
        "configured": section.configured,
        "freeze_below_pct": section.freeze_below, "thaw_above_pct": section.thaw_above,
        "history_weeks": section.history_weeks,
        "slos": [{
            "name": s.slo, "kind": s.kind, "state": s.state, "status": STATE_STATUS[s.state],
            "previous_state": s.previous_state, "since": s.since,
            "budget_remaining_pct": _round(s.budget_remaining, 2),
            "burn_rate_24h": _round(s.burn_rate_24h, 3), "action": s.action,
            "postmortem": s.postmortem, "evidence": s.evidence,
            "history": [{"week": h.week, "budget_remaining_pct": _round(h.budget_remaining, 2),
                         "state": h.state} for h in s.history],
        } for s in section.states],
        "composites": [{
            "name": r.slo, "method": r.method, "objective_pct": r.objective,
            "window": r.window, "sli_pct": _round(r.sli, 4),
            "budget_remaining_pct": _round(None if r.budget_remaining is None
                                           else 100 * r.budget_remaining, 2),
            "burn_rate_1h": _round(r.burn_rate_1h, 3),
            "burn_rate_24h": _round(r.burn_rate_24h, 3),
            "exhausted_at": None if r.exhausted_at is None else iso(r.exhausted_at),
            "members": [{
                "slo": m.slo, "weight_pct": _round(None if m.weight is None else 100 * m.weight,
                                                   2),
                "events": m.total, "sli_pct": _round(m.sli, 4),
                "budget_spent_pct": _round(None if m.budget_spent is None
                                           else 100 * m.budget_spent, 2),
                "share_of_spend_pct": _round(None if m.share_of_spend is None
                                             else 100 * m.share_of_spend, 2),
            } for m in r.members],
        } for r in section.composites],
    }
