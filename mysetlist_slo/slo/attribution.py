"""Where the error budget went: the routes, status codes and hours that spent it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import duckdb
import pandas as pd

from mysetlist_slo.config import SloConfig
from mysetlist_slo.slo.latency import (
    latency_event_params,
    latency_events_sql,
    route_filter_named,
    route_filter_sql,
)

Dimension = Literal["route", "status", "hour"]

_KEYS = {"route": "route", "status": "CAST(status AS VARCHAR)",
         "hour": "strftime(date_trunc('hour', minute), '%Y-%m-%d %H:00')"}

_REQUEST_BAD = """
WITH bad AS (
    SELECT {key} AS key, sum(requests) AS bad
    FROM request_counts
    WHERE minute >= ? AND minute < ? AND status >= 500 AND {routes}
    GROUP BY key
)
SELECT key, bad, bad / sum(bad) OVER () AS share
FROM bad
ORDER BY bad DESC, key
LIMIT ?
"""

# Bad latency events are the answered timed requests not under the threshold, from the same
# counts as the SLI (exact where the threshold was configured at ingest).
_LATENCY_BAD = """
WITH {events},
bad AS (
    SELECT {key} AS key, sum(total - good) AS bad
    FROM latency_events
    GROUP BY key
    HAVING sum(total - good) > 0
)
SELECT key, bad, bad / sum(bad) OVER () AS share
FROM bad
ORDER BY bad DESC, key
LIMIT $top
"""


def budget_attribution(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
                       end: datetime, by: Dimension = "route", top: int = 10) -> pd.DataFrame:
    """Return the ``top`` contributors of bad events in [start, end) by route, status code or
    clock hour (UTC): key, bad events, and share of all the window's bad events.

    Raises ValueError for a breakdown the SLI has no data for (latency has no status codes).
    """
    condition, values = route_filter_sql(slo.routes)
    if slo.sli == "latency":
        if by == "status":
            raise ValueError("latency SLIs are kept per route and minute, not per status")
        assert slo.threshold_ms is not None
        named, routes = route_filter_named(slo.routes)
        sql = _LATENCY_BAD.format(key=_KEYS[by], events=latency_events_sql(named))
        latency = con.execute(sql, {**latency_event_params(slo.threshold_ms, start, end, routes),
                                    "top": top}).df()
        return latency.rename(columns={"key": by})
    if slo.sli in ("availability", "error_rate"):
        sql = _REQUEST_BAD.format(key=_KEYS[by], routes=condition)
        params: list[object] = [start, end, *values, top]
    else:
        raise ValueError(f"no attribution for SLI kind {slo.sli!r}")
    frame = con.execute(sql, params).df()
    return frame.rename(columns={"key": by})
