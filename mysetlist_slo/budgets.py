"""SLIs and error budgets over each SLO's window, computed as ratios of summed per-minute counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd

from mysetlist_slo.config import Config, SloConfig
from mysetlist_slo.latency import route_filter_sql

REQUEST_SLIS = ("availability", "error_rate", "latency")


@dataclass(frozen=True)
class BudgetReport:
    """One SLO over one window: events, SLI, and what is left of its error budget."""

    slo: str
    sli_kind: str
    objective: float  # percent
    window_start: datetime
    window_end: datetime
    total: int
    good: int
    bad: int
    sli: float | None  # percent; None when there is no verdict (see status)
    allowed_bad: float  # the error budget in events
    budget_remaining: float | None  # fraction; negative once the budget is overspent
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
    return allowed, 1 - bad / allowed if allowed > 0 else float("-inf") if bad else 1.0


_REQUEST_EVENTS = """
WITH counts AS (
    SELECT minute, status, requests
    FROM request_counts
    WHERE minute >= ? AND minute < ? AND {routes}
)
SELECT
    coalesce(sum(requests), 0) AS total,
    coalesce(sum(requests) FILTER (WHERE status < 500), 0) AS good,
    count(DISTINCT minute) AS minutes_with_data
FROM counts
"""

_LATENCY_EVENTS = """
WITH buckets AS (
    SELECT minute, bucket_us, count
    FROM latency_histogram
    WHERE minute >= ? AND minute < ? AND {routes}
)
SELECT
    coalesce(sum(count), 0) AS total,
    coalesce(sum(count) FILTER (WHERE bucket_us < ?), 0) AS good,
    count(DISTINCT minute) AS minutes_with_data
FROM buckets
"""


def _events(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
            end: datetime) -> tuple[int, int, int]:
    condition, values = route_filter_sql(slo.routes)
    if slo.sli == "latency":
        assert slo.threshold_ms is not None  # the config validation guarantees it
        sql = _LATENCY_EVENTS.format(routes=condition)
        params: list[object] = [start, end, *values, round(slo.threshold_ms * 1000)]
    else:
        sql = _REQUEST_EVENTS.format(routes=condition)
        params = [start, end, *values]
    total, good, minutes = con.execute(sql, params).fetchall()[0]
    return int(total), int(good), int(minutes)


def budget_report(con: duckdb.DuckDBPyConnection, slo: SloConfig, end: datetime,
                  min_events: int) -> BudgetReport:
    """Return the BudgetReport of ``slo`` over the window ending at ``end`` (exclusive)."""
    start = end - slo.window_delta
    window_minutes = int(slo.window_delta / timedelta(minutes=1))
    if slo.sli not in REQUEST_SLIS:
        return BudgetReport(slo.name, slo.sli, slo.objective, start, end, 0, 0, 0, None, 0.0,
                            None, 0, window_minutes, "source not loaded")
    total, good, minutes = _events(con, slo, start, end)
    allowed, remaining = error_budget(good, total, slo.objective)
    if total == 0:
        status, sli, left = "no data", None, None
    elif total < min_events:
        status, sli, left = "not enough events", None, None
    else:
        sli, left = 100 * good / total, remaining
        status = "ok" if remaining >= 0 else "breach"
    return BudgetReport(slo.name, slo.sli, slo.objective, start, end, total, good, total - good,
                        sli, allowed, left, minutes, window_minutes, status)


def error_budgets(con: duckdb.DuckDBPyConnection, config: Config,
                  at: datetime | None = None) -> pd.DataFrame:
    """Return one row per configured SLO: window, events, SLI, budget remaining and status."""
    end = (at or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    reports = [budget_report(con, slo, end, config.min_events) for slo in config.slos]
    return pd.DataFrame([asdict(r) for r in reports])
