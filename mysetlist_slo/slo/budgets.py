"""Error budgets: SLIs over SLO windows, budget remaining, burn rates, burn-down and exhaustion.

Period SLIs are ratios of summed events (good / all over the window), never means of
per-minute ratios; the timeslice method (share of good minutes) is the explicit alternative.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import Config, ProbesConfig, SloConfig
from mysetlist_slo.slo.sli import (
    MINUTE,
    STORED_SLIS,
    event_minutes,
    period_end,
    timeslices,
    window_bounds,
)

BURN_RATE_WINDOWS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}


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
    allowed_bad: float  # the error budget in events (minutes for timeslices)
    budget_remaining: float | None  # fraction; negative once the budget is overspent
    burn_rate_1h: float | None
    burn_rate_24h: float | None
    minutes_with_data: int
    window_minutes: int
    status: str  # ok | breach | not enough events | no data | source not loaded


def error_budget(good: int, total: int, objective_percent: float) -> tuple[float, float]:
    """Return (allowed bad events, fraction of the budget remaining) for one window.

    The error budget is the share of events the objective lets fail (SRE workbook, ch. 2,
    "Implementing SLOs"): with objective 99.9 % and 1,000,000 events, 1,000 may be bad;
    700 bad leaves 1 - 700 / 1,000 = 30 %.
    """
    allowed = (1 - objective_percent / 100) * total
    bad = total - good
    if allowed > 0:
        return allowed, 1 - bad / allowed
    return allowed, float("-inf") if bad else 1.0


def burn_rate(good: int, total: int, objective_percent: float) -> float | None:
    """Return how fast the budget burns: the bad share over the allowed share (None: no events).

    1 spends the budget exactly over the SLO window; 2 % errors against 99.9 % burns at 20
    (SRE workbook, "Alerting on SLOs").
    """
    if total == 0:
        return None
    return ((total - good) / total) / (1 - objective_percent / 100)


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
    """Return the BudgetReport of ``slo`` over its window ending at ``at`` (exclusive)."""
    start, end = window_bounds(slo.window, at, timezone)
    window_minutes = int((end - start) / MINUTE)
    if slo.sli not in STORED_SLIS:
        return BudgetReport(slo.name, slo.sli, slo.objective, slo.budgeting, slo.window, start,
                            end, 0, 0, 0, None, 0.0, None, None, None, 0, window_minutes,
                            "source not loaded")
    events = slo_events(con, slo, start, end, probes)
    good, total = _sums(events)
    allowed, remaining = error_budget(good, total, slo.objective)
    rates = {name: burn_rate(*_sums(events, end - span), slo.objective)
             for name, span in BURN_RATE_WINDOWS.items() if name != "7d"}
    left: float | None
    if total == 0:
        status, sli, left = "no data", None, None
    elif total < min_events:
        status, sli, left = "not enough events", None, None
    else:
        sli, left = 100 * good / total, remaining
        status = "ok" if remaining >= 0 else "breach"
    return BudgetReport(slo.name, slo.sli, slo.objective, slo.budgeting, slo.window, start, end,
                        total, good, total - good, sli, allowed, left, rates["1h"],
                        rates["24h"], len(events), window_minutes, status)


def _at(at: datetime | None) -> datetime:
    """Return ``at`` (default: now) in UTC, on a whole minute."""
    return (at or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)


def error_budgets(con: duckdb.DuckDBPyConnection, config: Config,
                  at: datetime | None = None) -> pd.DataFrame:
    """Return one row per configured SLO: window, events, SLI, budget left, burn rates, status."""
    end = _at(at)
    reports = [budget_report(con, slo, end, config.timezone_of(slo), config.min_events,
                             config.probes) for slo in config.slos]
    return pd.DataFrame([asdict(r) for r in reports])


def budget_burndown(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                    at: datetime | None = None, step: str = "1h") -> pd.DataFrame:
    """Return the budget over the window, one row per ``step``: events so far, bad so far,
    and the fraction of the window's budget (as allowed by all its events) still left."""
    start, end = window_bounds(slo.window, _at(at), config.timezone_of(slo))
    events = slo_events(con, slo, start, end, config.probes)
    index = pd.date_range(start, end, freq=step, inclusive="left", tz="UTC", name="time")
    if events.empty:
        return pd.DataFrame({"time": index, "total": 0, "bad": 0, "budget_remaining": np.nan})
    allowed, _ = error_budget(*_sums(events), slo.objective)
    binned = events.assign(bad=events["total"] - events["good"]).set_index("minute")[
        ["total", "bad"]].resample(step, origin=start).sum().reindex(index, fill_value=0)
    so_far = binned.cumsum()
    remaining = 1 - so_far["bad"] / allowed if allowed > 0 else pd.Series(np.nan, index=index)
    return pd.DataFrame({"time": index, "total": so_far["total"].to_numpy(),
                         "bad": so_far["bad"].to_numpy(),
                         "budget_remaining": remaining.to_numpy()})


def exhaustion_forecast(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                        at: datetime | None = None) -> pd.DataFrame:
    """Return, for the burn rate of the last 1 h, 24 h and 7 d, when the budget runs out.

    At burn rate r the budget is spent at r / window per unit of time (r = 1 spends it in
    exactly one window), so what is left lasts ``remaining * window / r``. ``exhausted_at``
    is empty and ``verdict`` says "not within the window" when that is after the window ends.
    """
    end = _at(at)
    zone = config.timezone_of(slo)
    report = budget_report(con, slo, end, zone, config.min_events, config.probes)
    length = period_end(slo.window, report.window_start, zone) - report.window_start
    horizon = (report.window_start + length) if slo.is_calendar else end + length
    rows = []
    events = slo_events(con, slo, end - BURN_RATE_WINDOWS["7d"], end, config.probes) if (
        slo.sli in STORED_SLIS) else pd.DataFrame(columns=["minute", "good", "total"])
    for name, span in BURN_RATE_WINDOWS.items():
        rate = burn_rate(*_sums(events, end - span), slo.objective)
        left = report.budget_remaining
        exhausted_at: datetime | None = None
        if left is None or rate is None:
            verdict = report.status if left is None else "no events in this lookback"
        elif left <= 0:
            verdict, exhausted_at = "budget already spent", end
        elif rate == 0:
            verdict = "not within the window"
        else:
            when = end + left * length / rate
            if when <= horizon:
                verdict, exhausted_at = f"runs out in {_human(when - end)}", when
            else:
                verdict = "not within the window"
        rows.append({"lookback": name, "burn_rate": rate, "budget_remaining": left,
                     "exhausted_at": exhausted_at, "verdict": verdict})
    return pd.DataFrame(rows)


def _human(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
