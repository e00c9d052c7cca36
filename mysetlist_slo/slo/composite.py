"""Composite SLOs: one SLI, error budget, burn rates and exhaustion over several member SLOs,
and how much of the combined budget each member spent.

Built on the members' own events (``budgets.slo_events``), never on the store's tables, so a
composite counts exactly what its members count. Two ways to combine (config
``composites[].method``):

- ``events``: the members' events pooled, SLI = sum good / sum total (a user journey whose
  steps count the same kind of event). A member's share of the spend is its bad events over
  the combined allowance.
- ``weights``: SLI = sum of w_i x SLI_i with the weights normalised to 1, as Grafana's and
  Elastic's composite SLOs compute it (OpenSLO's ``compositeWeight``); members with fewer than
  ``min_events`` events in the window are left out and the weights renormalised over the rest.
  A member's share of the spend is w_i x (1 - SLI_i) over the allowed share.

The budget arithmetic is the workbook's, as in ``budgets._budget``: the allowed share is
1 - objective, a calendar period's budget is the whole period's (scaled by period length /
time elapsed), burn rate = bad share / allowed share over the last 1 h and 24 h.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from fractions import Fraction

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo._numbers import whole
from mysetlist_slo.config import CompositeSloConfig, Config, SloConfig
from mysetlist_slo.slo.budgets import (
    BURN_RATE_WINDOWS,
    REPORT_BURN_WINDOWS,
    _at,
    allowed_share,
    period_scale,
    slo_budgets,
    slo_events,
)
from mysetlist_slo.slo.sli import MINUTE, STORED_SLIS, dense_minutes, period_end, window_bounds

_EMPTY = pd.DataFrame({"minute": pd.Series(dtype="datetime64[us, UTC]"),
                       "good": pd.Series(dtype="int64"), "total": pd.Series(dtype="int64")})


@dataclass(frozen=True)
class MemberCounts:
    """One member's events over a span: its weight as configured, good and total events."""

    slo: str
    weight: float
    good: int
    total: int


@dataclass(frozen=True)
class Combined:
    """The arithmetic of one composite over one span (see ``combine``); fractions, exact."""

    sli: Fraction | None  # share of good (weighted); None: no member judged
    remaining: Fraction | None  # fraction of the combined budget left
    spent: tuple[Fraction | None, ...]  # per member: fraction of the combined budget it spent
    weights: tuple[Fraction | None, ...]  # per member: normalised weight used (None: left out)


def combine(method: str, objective_percent: float, members: Sequence[MemberCounts],
            scale: Fraction = Fraction(1), min_events: int = 1) -> Combined:
    """Return the composite's SLI, budget remaining and each member's spend over one span.

    ``events``: SLI = sum good / sum total; the budget is the allowed share of all events (x
    ``scale`` for a calendar period); member i spent bad_i / budget. ``weights``: members with
    at least ``min_events`` events count, weights normalised over them; SLI = sum w_i SLI_i;
    member i spent w_i (1 - SLI_i) / (allowed share x scale). Spends add up to 1 - remaining.
    Nothing to judge (no events; ``weights``: no member with enough) gives None values.
    """
    share = allowed_share(objective_percent) * scale
    if method == "events":
        total = sum(m.total for m in members)
        if total == 0:
            return Combined(None, None, tuple(None for _ in members),
                            tuple(None for _ in members))
        allowed = share * total
        spent = tuple(Fraction(m.total - m.good) / allowed for m in members)
        weights = tuple(Fraction(m.total, total) for m in members)
        sli = Fraction(sum(m.good for m in members), total)
        return Combined(sli, 1 - sum(spent, Fraction(0)), spent, weights)
    judged = [m.total >= max(min_events, 1) for m in members]
    weight_sum = sum((Fraction(str(m.weight)) for m, j in zip(members, judged, strict=True)
                      if j), Fraction(0))
    if weight_sum == 0:
        return Combined(None, None, tuple(None for _ in members), tuple(None for _ in members))
    normalised = tuple(Fraction(str(m.weight)) / weight_sum if j else None
                       for m, j in zip(members, judged, strict=True))
    bad_shares = [Fraction(m.total - m.good, m.total) if w is not None else None
                  for m, w in zip(members, normalised, strict=True)]
    weighted = [w * b if w is not None and b is not None else None
                for w, b in zip(normalised, bad_shares, strict=True)]
    by_member = tuple(None if x is None else x / share for x in weighted)
    bad = sum((x for x in weighted if x is not None), Fraction(0))
    return Combined(1 - bad, 1 - sum((s for s in by_member if s is not None), Fraction(0)),
                    by_member, normalised)


def composite_burn_rate(method: str, objective_percent: float,
                        members: Sequence[MemberCounts]) -> float | None:
    """Return the composite's burn rate over one lookback: its bad share (pooled or weighted,
    over the members with events in it) / the allowed share; None when no member had events."""
    combined = combine(method, objective_percent, members)
    if combined.sli is None:
        return None
    return float((1 - combined.sli) / allowed_share(objective_percent))


@dataclass(frozen=True)
class MemberImpact:
    """One member in a composite's window: its events, SLI, weight and spend."""

    slo: str
    weight: float | None  # normalised (events: its share of the events); None: left out
    good: int
    total: int
    sli: float | None  # percent
    budget_spent: float | None  # fraction of the combined budget this member spent
    share_of_spend: float | None  # fraction of what the composite spent that was this member's


@dataclass(frozen=True)
class CompositeReport:
    """One composite SLO over its window ending at ``window_end``."""

    slo: str
    method: str
    objective: float  # percent
    window: str
    window_start: datetime
    window_end: datetime
    total: int  # events of all members
    good: int
    sli: float | None  # percent (weighted for ``weights``)
    budget_remaining: float | None  # fraction; negative once overspent
    burn_rate_1h: float | None
    burn_rate_24h: float | None
    exhausted_at: datetime | None  # at the 24 h burn rate; ``window_end`` when already spent
    minutes_with_data: int  # minutes of the window in which any member had events
    window_minutes: int
    status: str  # ok | breach | not enough events | no data | source not loaded
    members: tuple[MemberImpact, ...]
    note: str  # members left out, or ""

    def impact_lines(self) -> list[str]:
        """Return one line per member that spent budget, e.g. ``api-latency spent 62 % of
        the combined budget (weight 50 %)``, largest spender first."""
        spenders = sorted((m for m in self.members if m.budget_spent),
                          key=lambda m: -(m.budget_spent or 0))
        return [f"{m.slo} spent {100 * (m.budget_spent or 0):.0f} % of the combined budget "
                f"(weight {100 * (m.weight or 0):.0f} %)" for m in spenders]


def _sums(events: pd.DataFrame, start: datetime, end: datetime) -> tuple[int, int]:
    inside = events[(events["minute"] >= start) & (events["minute"] < end)]
    return int(inside["good"].sum()), int(inside["total"].sum())


def member_events(con: duckdb.DuckDBPyConnection, config: Config,
                  composite: CompositeSloConfig, start: datetime,
                  end: datetime) -> list[pd.DataFrame]:
    """Return each member's (minute, good, total) budgeting events in [start, end), from the
    members' own SLI (``budgets.slo_events``); empty for a member whose source is unknown."""
    return [slo_events(con, slo, start, end, config.probes) if slo.sli in STORED_SLIS
            else _EMPTY for slo in config.members_of(composite)]


def composite_span(config: Config, composite: CompositeSloConfig,
                   at: datetime) -> tuple[datetime, datetime]:
    """Return [start, end) of the events a composite report at ``at`` reads: its window and
    the longest burn-rate lookback (24 h) before ``at``."""
    first = config.members_of(composite)[0]
    start, end = window_bounds(first.window, _at(at), config.timezone_of(first))
    return min(start, end - max(BURN_RATE_WINDOWS[n] for n in REPORT_BURN_WINDOWS)), end


def composite_report(con: duckdb.DuckDBPyConnection, config: Config,
                     composite: CompositeSloConfig, at: datetime | None = None) -> CompositeReport:
    """Return the CompositeReport of ``composite`` over its window ending at ``at`` (default:
    now, on a whole minute). Raises nothing for missing data: the status says so."""
    end = _at(at)
    start, _ = composite_span(config, composite, end)
    return evaluate_composite(config, composite, member_events(con, config, composite, start,
                                                               end), end)


def evaluate_composite(config: Config, composite: CompositeSloConfig,
                       events: Sequence[pd.DataFrame], at: datetime) -> CompositeReport:
    """Return the CompositeReport at ``at`` from the members' events (``member_events`` over
    a span covering the window and the lookbacks before ``at``)."""
    slos = config.members_of(composite)
    first = slos[0]
    zone = config.timezone_of(first)
    end = _at(at)
    start, end = window_bounds(first.window, end, zone)
    window_minutes = int((end - start) / MINUTE)
    weights = composite.weights
    counts = [MemberCounts(slo.name, weights[slo.name], *_sums(frame, start, end))
              for slo, frame in zip(slos, events, strict=True)]
    combined = combine(composite.method, composite.objective, counts,
                       period_scale(first, start, end, zone), config.min_events)
    rates = {name: composite_burn_rate(composite.method, composite.objective, [
        MemberCounts(m.slo, m.weight, *_sums(frame, end - BURN_RATE_WINDOWS[name], end))
        for m, frame in zip(counts, events, strict=True)]) for name in REPORT_BURN_WINDOWS}
    good, total = sum(m.good for m in counts), sum(m.total for m in counts)
    minutes = pd.concat([f.loc[(f["minute"] >= start) & (f["minute"] < end) & (f["total"] > 0),
                               "minute"] for f in events])
    left_out = [m.slo for m, w in zip(counts, combined.weights, strict=True) if w is None]
    if all(slo.sli not in STORED_SLIS for slo in slos):
        status = "source not loaded"
    elif total == 0:
        status = "no data"
    elif combined.remaining is None or (composite.method == "events"
                                        and total < config.min_events):
        status = "not enough events"
    else:
        status = "ok" if combined.remaining >= 0 else "breach"
    judged = status in ("ok", "breach")
    remaining = combined.remaining if judged else None
    spent_total = sum((s for s in combined.spent if s is not None), Fraction(0))
    members = tuple(MemberImpact(
        m.slo, float(w) if w is not None else None, m.good, m.total,
        100 * m.good / m.total if m.total else None,
        float(s) if judged and s is not None else None,
        float(s / spent_total) if judged and s is not None and spent_total > 0 else None)
        for m, w, s in zip(counts, combined.weights, combined.spent, strict=True))
    exhausted = (_exhaustion(composite, first, zone, events, start, end, remaining)
                 if remaining is not None else None)
    note = (f"left out for fewer than {whole(config.min_events)} events: {', '.join(left_out)}"
            if left_out and composite.method == "weights" and judged else "")
    return CompositeReport(
        composite.name, composite.method, composite.objective, first.window, start, end,
        total, good, float(100 * combined.sli) if judged and combined.sli is not None else None,
        float(remaining) if remaining is not None else None, rates["1h"], rates["24h"],
        exhausted, int(minutes.nunique()), window_minutes, status, members, note)


def _exhaustion(composite: CompositeSloConfig, first: SloConfig, zone: str,
                events: Sequence[pd.DataFrame], start: datetime, end: datetime,
                remaining: Fraction) -> datetime | None:
    """Return when the composite's budget runs out if the last 24 h go on (None: not within
    the window), as ``budgets.exhaustion_forecast`` does for one SLO: a calendar period spends
    rate x time / period; a rolling window loses its old minutes as new ones arrive."""
    if remaining <= 0:
        return end
    lookback = BURN_RATE_WINDOWS["24h"]
    weights = composite.weights
    recent = [MemberCounts(slo, weights[slo], *_sums(f, end - lookback, end))
              for slo, f in zip(weights, events, strict=True)]
    rate = composite_burn_rate(composite.method, composite.objective, recent)
    if rate is None or rate <= 0:
        return None
    if first.is_calendar:
        period = period_end(first.window, start, zone) - start
        when = end + period * (float(remaining) / rate)
        return when if when <= start + period else None
    # Rolling: after t minutes the window holds each member's minutes t.. of today plus t
    # minutes at the last 24 h's per-minute rates (floats: an estimate, not an exact bound).
    minutes = lookback / MINUTE
    shares = []
    for member, frame in zip(recent, events, strict=True):
        dense = dense_minutes(frame[frame["minute"] >= start], start, end)
        bad = (dense["total"] - dense["good"]).to_numpy(dtype=float)
        total = dense["total"].to_numpy(dtype=float)
        t = np.arange(len(bad) + 1, dtype=float)
        old_bad = np.concatenate((np.cumsum(bad[::-1])[::-1], [0.0]))
        old_total = np.concatenate((np.cumsum(total[::-1])[::-1], [0.0]))
        shares.append((old_bad + (member.total - member.good) / minutes * t,
                       old_total + member.total / minutes * t, weights[member.slo]))
    if composite.method == "events":
        bad_share = (sum(s[0] for s in shares)
                     / np.maximum(sum(s[1] for s in shares), 1e-300))
    else:
        num = sum(w * np.divide(b, n, out=np.zeros_like(b), where=n > 0) for b, n, w in shares)
        den = sum(w * (n > 0) for _, n, w in shares)
        bad_share = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    hits = np.flatnonzero(bad_share >= float(allowed_share(composite.objective)))
    return None if len(hits) == 0 else end + int(hits[0]) * MINUTE


def composite_budgets(con: duckdb.DuckDBPyConnection, config: Config,
                      at: datetime | None = None) -> pd.DataFrame:
    """Return one row per configured composite SLO (the CompositeReport fields; ``members``
    as a tuple of MemberImpact), empty when none is configured."""
    end = _at(at)
    rows = []
    for composite in config.composites:
        report = composite_report(con, config, composite, end)
        row = asdict(report)
        row["members"] = report.members
        rows.append(row)
    return pd.DataFrame(rows)


def error_budgets(con: duckdb.DuckDBPyConnection, config: Config,
                  at: datetime | None = None) -> pd.DataFrame:
    """Return the SLO table at ``at`` (default: now): one row per configured SLO (the
    BudgetReport fields: window, events, SLI, budget left, burn rates, status), each composite
    SLO's row right after the last of its members. A composite row is marked by ``sli_kind``
    ``composite`` and names its members in ``composite_of`` (None on an SLO's row); its
    ``allowed_bad`` is None (a weighted composite has no budget in events)."""
    end = _at(at)
    table = slo_budgets(con, config, end)
    names = list(table["slo"]) if len(table) else []
    after: dict[int, list[dict[str, object]]] = {}
    for composite in config.composites:
        report = composite_report(con, config, composite, end)
        members = [member.slo for member in composite.members]
        after.setdefault(max(names.index(name) for name in members), []).append({
            "slo": report.slo, "sli_kind": "composite", "objective": report.objective,
            "budgeting": config.members_of(composite)[0].budgeting, "window": report.window,
            "window_start": report.window_start, "window_end": report.window_end,
            "total": report.total, "good": report.good, "bad": report.total - report.good,
            "sli": report.sli, "allowed_bad": None,
            "budget_remaining": report.budget_remaining, "burn_rate_1h": report.burn_rate_1h,
            "burn_rate_24h": report.burn_rate_24h, "minutes_with_data": report.minutes_with_data,
            "window_minutes": report.window_minutes, "status": report.status,
            "composite_of": members})
    rows: list[dict[str, object]] = []
    for index, row in enumerate(table.assign(composite_of=None).to_dict("records")):
        rows += [row, *after.get(index, [])]
    return pd.DataFrame(rows, columns=[*table.columns, "composite_of"])


def composite_impacts(report: CompositeReport) -> pd.DataFrame:
    """Return a composite's members as rows: slo, weight, events, SLI (%), budget spent (% of
    the combined budget), share of the spend (%)."""
    return pd.DataFrame([{
        "slo": m.slo, "weight": None if m.weight is None else 100 * m.weight,
        "events": m.total, "sli": m.sli,
        "budget_spent": None if m.budget_spent is None else 100 * m.budget_spent,
        "share_of_spend": None if m.share_of_spend is None else 100 * m.share_of_spend,
    } for m in report.members])



def period_share(config: Config, composite: CompositeSloConfig, events: Sequence[pd.DataFrame],
                 report: CompositeReport, start: datetime,
                 end: datetime) -> tuple[float | None, float | None, int]:
    """Return, for the events of [start, end) (a report's week inside the composite's window):
    the composite SLI over them (percent; None below ``min_events`` or with no member judged),
    the fraction of the window's combined budget they spent (None when the window has no
    verdict) and how many events they were. The spends of a window's parts add up to its
    total spend: ``events`` bad_part / allowance; ``weights`` w_i x bad_part_i / total_i of the
    window, over the allowed share."""
    first = config.members_of(composite)[0]
    zone = config.timezone_of(first)
    weights = composite.weights
    part = [MemberCounts(m.slo, weights[m.slo], *_sums(frame, start, end))
            for m, frame in zip(report.members, events, strict=True)]
    total = sum(m.total for m in part)
    sli = combine(composite.method, composite.objective, part, min_events=config.min_events).sli
    if composite.method == "events" and total < config.min_events:
        sli = None
    if report.budget_remaining is None:
        return (None if sli is None else float(100 * sli)), None, total
    share = allowed_share(composite.objective) * period_scale(
        first, report.window_start, report.window_end, zone)
    if composite.method == "events":
        spent = Fraction(sum(m.total - m.good for m in part)) / (share * report.total)
    else:
        spent = sum((Fraction(str(member.weight)) * Fraction(p.total - p.good, member.total)
                     for member, p in zip(report.members, part, strict=True)
                     if member.weight is not None and member.total), Fraction(0)) / share
    return (None if sli is None else float(100 * sli)), float(spent), total
