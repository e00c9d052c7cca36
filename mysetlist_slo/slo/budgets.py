"""Error budgets: SLIs over SLO windows, budget remaining, burn rates, burn-down and exhaustion.

Period SLIs are ratios of summed events (good / all over the window), never means of
per-minute ratios; the timeslice method (share of good minutes) is the explicit alternative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import Config, ProbesConfig, SloConfig
from mysetlist_slo.slo.sli import (
    MINUTE,
    STORED_SLIS,
    dense_minutes,
    event_minutes,
    period_end,
    timeslices,
    window_bounds,
)

BURN_RATE_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
# Burn rates in the report: always the last 1 h and 24 h, whatever the SLO window.
REPORT_BURN_WINDOWS = ("1h", "24h")
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class BudgetReport:
    """One SLO over one window: events, SLI, what is left of its error budget, burn rates."""

    slo: str
    sli_kind: str
    objective: float  # percent
    budgeting: str
    window: str
    window_start: datetime
    window_end: datetime
    total: int
    good: int
    bad: int
    sli: float | None  # percent; None when there is no verdict (see status)
    # The error budget in events (minutes for timeslices); for a calendar period, the whole
    # period's, projected from the events so far.
    allowed_bad: float
    budget_remaining: float | None  # fraction; negative once the budget is overspent
    burn_rate_1h: float | None
    burn_rate_24h: float | None
    minutes_with_data: int
    window_minutes: int  # minutes of [window_start, window_end): so far, for a calendar period
    status: str  # ok | breach | not enough events | no data | source not loaded


def allowed_share(objective_percent: float) -> Fraction:
    """Return the share of events the objective lets fail, exactly, from the objective's decimal
    text (99.9 gives 1/1000), so that an SLI exactly at the objective is never a breach."""
    return 1 - Fraction(str(float(objective_percent))) / 100


def _budget(good: int, total: int, objective_percent: float,
            period_scale: Fraction = Fraction(1)) -> tuple[Fraction, Fraction]:
    """Return (allowed bad events, fraction of the budget remaining), exactly.

    The error budget is the share of events the objective lets fail (SRE workbook, ch. 2,
    "Implementing SLOs"): with objective 99.9 % and 1,000,000 events, 1,000 may be bad; 700 bad
    leave 1 - 700 / 1,000 = 30 %. ``period_scale`` projects the events seen so far onto a whole
    calendar period (period length / time elapsed), whose budget is the whole period's.
    """
    allowed = allowed_share(objective_percent) * total * period_scale
    # The objective is below 100 %, so nothing is allowed only when there are no events.
    return allowed, (1 - (total - good) / allowed) if allowed > 0 else Fraction(1)


def error_budget(good: int, total: int, objective_percent: float) -> tuple[float, float]:
    """Return (allowed bad events, fraction of the budget remaining) for a window's events.

    Exact: 1 bad in 1,000 against 99.9 % leaves exactly 0 (on budget, not a breach). A window
    without events has its whole budget.
    """
    allowed, remaining = _budget(good, total, objective_percent)
    return float(allowed), float(remaining)


def _burn(good: int, total: int, objective_percent: float) -> Fraction | None:
    if total == 0:
        return None
    return Fraction(total - good, total) / allowed_share(objective_percent)


def burn_rate(good: int, total: int, objective_percent: float) -> float | None:
    """Return how fast the budget burns: the bad share over the allowed share (None: no events).

    1 spends the budget exactly over the SLO window; 2 % errors against 99.9 % burns at 20
    (SRE workbook, "Alerting on SLOs").
    """
    rate = _burn(good, total, objective_percent)
    return None if rate is None else float(rate)


def period_scale(slo: SloConfig, start: datetime, end: datetime,
                 timezone: str = "UTC") -> Fraction:
    """Return how many times the events of [start, end) a window's budget is sized on: 1 for
    rolling windows; for a calendar period, period length / time elapsed (its budget is the
    whole period's, projected from the traffic so far, as Sloth and Grafana SLO count it)."""
    if not slo.is_calendar or end <= start:
        return Fraction(1)
    period = period_end(slo.window, start, timezone) - start
    return Fraction(period // _MICROSECOND, (end - start) // _MICROSECOND)


def slo_events(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
               end: datetime, probes: ProbesConfig | None = None) -> pd.DataFrame:
    """Return (minute, good, total) of the SLO's budgeting events in [start, end): requests for
    the occurrences method, one-minute slices for the timeslices method."""
    events = event_minutes(con, slo, start, end, probes)
    if slo.budgeting == "timeslices":
        return timeslices(events, slo.timeslice_target or slo.objective)
    return events


def _sums(events: pd.DataFrame, since: datetime | None = None) -> tuple[int, int]:
    if since is not None:
        events = events[events["minute"] >= since]
    return int(events["good"].sum()), int(events["total"].sum())


def budget_report(con: duckdb.DuckDBPyConnection, slo: SloConfig, at: datetime,
                  timezone: str = "UTC", min_events: int = 1,
                  probes: ProbesConfig | None = None) -> BudgetReport:
    """Return the BudgetReport of ``slo`` over its window ending at ``at`` (exclusive; a
    partial minute is left out, as the store counts whole minutes).

    Rolling windows budget on their own events. A calendar period's budget is the whole
    period's: the events so far projected over the period's length, so each elapsed part spends
    (its bad share / allowed share) x (its length / period length) of it. Burn rates look back
    1 h and 24 h from ``at`` whatever the window, across a period's start.
    """
    at = _at(at)
    start, end = window_bounds(slo.window, at, timezone)
    window_minutes = int((end - start) / MINUTE)
    if slo.sli not in STORED_SLIS:
        return BudgetReport(slo.name, slo.sli, slo.objective, slo.budgeting, slo.window, start,
                            end, 0, 0, 0, None, 0.0, None, None, None, 0, window_minutes,
                            "source not loaded")
    lookback = end - max(BURN_RATE_WINDOWS[name] for name in REPORT_BURN_WINDOWS)
    events = slo_events(con, slo, min(start, lookback), end, probes)
    in_window = events[events["minute"] >= start]
    good, total = _sums(in_window)
    allowed, remaining = _budget(good, total, slo.objective,
                                 period_scale(slo, start, end, timezone))
    rates = {name: burn_rate(*_sums(events, end - BURN_RATE_WINDOWS[name]), slo.objective)
             for name in REPORT_BURN_WINDOWS}
    left: float | None
    if total == 0:
        status, sli, left = "no data", None, None
    elif total < min_events:
        status, sli, left = "not enough events", None, None
    else:
        sli, left = 100 * good / total, float(remaining)
        status = "ok" if remaining >= 0 else "breach"
    return BudgetReport(slo.name, slo.sli, slo.objective, slo.budgeting, slo.window, start, end,
                        total, good, total - good, sli, float(allowed), left, rates["1h"],
                        rates["24h"], len(in_window), window_minutes, status)


def _at(at: datetime | None) -> datetime:
    """Return ``at`` (default: now) in UTC, on a whole minute."""
    return (at or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)


def slo_budgets(con: duckdb.DuckDBPyConnection, config: Config,
                at: datetime | None = None) -> pd.DataFrame:
    """Return one row per configured SLO (the BudgetReport fields), composites left out (see
    ``composite.error_budgets`` for the table with them)."""
    end = _at(at)
    reports = [budget_report(con, slo, end, config.timezone_of(slo), config.min_events,
                             config.probes) for slo in config.slos]
    return pd.DataFrame([asdict(r) for r in reports])


def budget_burndown(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                    at: datetime | None = None, step: str = "1h") -> pd.DataFrame:
    """Return the budget over the window, one row per ``step``: events so far, bad so far,
    and the fraction of the window's budget (as ``budget_report`` sizes it at ``at``) still
    left, so the last row agrees with the report."""
    zone = config.timezone_of(slo)
    start, end = window_bounds(slo.window, _at(at), zone)
    events = slo_events(con, slo, start, end, config.probes)
    index = pd.date_range(start, end, freq=step, inclusive="left", tz="UTC", name="time")
    if events.empty:
        return pd.DataFrame({"time": index, "total": 0, "bad": 0, "budget_remaining": np.nan})
    allowed = float(_budget(*_sums(events), slo.objective,
                            period_scale(slo, start, end, zone))[0])
    binned = events.assign(bad=events["total"] - events["good"]).set_index("minute")[
        ["total", "bad"]].resample(step, origin=start).sum().reindex(index, fill_value=0)
    so_far = binned.cumsum()
    remaining = 1 - so_far["bad"] / allowed if allowed > 0 else pd.Series(np.nan, index=index)
    return pd.DataFrame({"time": index, "total": so_far["total"].to_numpy(),
                         "bad": so_far["bad"].to_numpy(),
                         "budget_remaining": remaining.to_numpy()})


def exhaustion_forecast(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                        at: datetime | None = None) -> pd.DataFrame:
    """Return, for the burn rate of the last 1 h, 24 h and 7 d, when the budget runs out if
    that rate goes on: columns lookback, burn_rate, budget_remaining, exhausted_at, verdict.

    Calendar periods: at burn rate r each further stretch t of the period spends r x t / period
    of its budget (the whole period's), so what is left lasts remaining x period / r, and only
    counts if that is before the period ends.

    Rolling windows: events keep leaving the window as new ones arrive. Going on at the
    lookback's traffic and bad share, after t minutes the window holds the last W - t minutes
    of today's events plus t minutes of new ones; the budget runs out at the first whole minute
    when their bad events reach the allowed share of their events. So a steady burn below 1
    settles at 1 - r of the budget and never runs out once the old spend has left the window.

    ``exhausted_at`` is empty when the budget does not run out within the window (verdict
    "not within the window"); it is ``at`` when the budget is already spent.
    """
    end = _at(at)
    zone = config.timezone_of(slo)
    report = budget_report(con, slo, end, zone, config.min_events, config.probes)
    start = report.window_start
    longest = max(BURN_RATE_WINDOWS.values())
    events = (slo_events(con, slo, min(start, end - longest), end, config.probes)
              if slo.sli in STORED_SLIS else pd.DataFrame(columns=["minute", "good", "total"]))
    window = events[events["minute"] >= start]
    good, total = _sums(window)
    scale = period_scale(slo, start, end, zone)
    _, remaining = _budget(good, total, slo.objective, scale)
    rows = []
    for name, span in BURN_RATE_WINDOWS.items():
        lookback_good, lookback_total = _sums(events, end - span)
        rate = _burn(lookback_good, lookback_total, slo.objective)
        left = report.budget_remaining
        exhausted_at: datetime | None = None
        if left is None or rate is None:
            verdict = report.status if left is None else "no events in this lookback"
        elif remaining <= 0:
            verdict, exhausted_at = "budget already spent", end
        else:
            if slo.is_calendar:
                period = period_end(slo.window, start, zone) - start
                exhausted_at = (end + timedelta(microseconds=float(
                    remaining * (period // _MICROSECOND) / rate))) if rate > 0 else None
                if exhausted_at is not None and exhausted_at > start + period:
                    exhausted_at = None
            else:
                exhausted_at = _rolling_exhaustion(
                    window, start, end, slo.objective,
                    lookback_total - lookback_good, lookback_total, int(span / MINUTE))
            verdict = ("not within the window" if exhausted_at is None
                       else f"runs out in {_human(exhausted_at - end)}")
        rows.append({"lookback": name, "burn_rate": None if rate is None else float(rate),
                     "budget_remaining": left, "exhausted_at": exhausted_at,
                     "verdict": verdict})
    return pd.DataFrame(rows)


def _rolling_exhaustion(window: pd.DataFrame, start: datetime, end: datetime,
                        objective_percent: float, lookback_bad: int, lookback_total: int,
                        lookback_minutes: int) -> datetime | None:
    """Return the first whole minute after ``end`` at which a rolling window [start, end)
    going on at the lookback's rates has spent its budget, or None if it never does.

    After t minutes the window holds today's minutes t.. (those not yet left) and t minutes of
    new events at lookback_bad / lookback_minutes bad and lookback_total / lookback_minutes
    events a minute. Spent when bad >= share x events; multiplied by the share's denominator
    and the lookback length, that is a comparison of integers (exact at a burn of exactly 1).
    """
    dense = dense_minutes(window, start, end)
    bad = (dense["total"] - dense["good"]).to_numpy(dtype=object)
    total = dense["total"].to_numpy(dtype=object)
    # Events still in the window after t minutes: the suffix sums from minute t (t = 0..W).
    old_bad = np.concatenate((np.cumsum(bad[::-1])[::-1], [0]))
    old_total = np.concatenate((np.cumsum(total[::-1])[::-1], [0]))
    t = np.arange(len(old_bad), dtype=object)
    share = allowed_share(objective_percent)
    p, q = share.numerator, share.denominator
    spent = (q * (lookback_minutes * old_bad + lookback_bad * t)
             >= p * (lookback_minutes * old_total + lookback_total * t))
    hits = np.flatnonzero(spent.astype(bool))
    return None if len(hits) == 0 else end + int(hits[0]) * MINUTE


def _human(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
