"""Latency percentiles read from the 5-minute sketches, and good counts at a threshold read from
the exact per-minute counters (from the sketch, within a bucket, where the threshold was not
configured when the requests were loaded)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

from mysetlist_slo.store.rollups import SLOT, sketch_value_ms_sql


def route_filter_sql(patterns: Sequence[str], column: str = "route") -> tuple[str, list[str]]:
    """Return (SQL condition, bound values) matching routes against glob ``patterns`` (``*`` only).

    Route templates contain ``[``, ``]`` and ``_``, so the globs become LIKE patterns with
    every other wildcard escaped; the patterns themselves are bound values, never SQL text.
    """
    if not patterns or "*" in patterns:
        return "true", []
    likes = []
    for pattern in patterns:
        escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        likes.append(escaped.replace("*", "%"))
    condition = " OR ".join(f"{column} LIKE ? ESCAPE '\\'" for _ in likes)
    return f"({condition})", likes


def route_filter_named(patterns: Sequence[str],
                       column: str = "route") -> tuple[str, dict[str, str]]:
    """Return route_filter_sql's condition with named parameters ($route_0, ...) and their
    values, for queries that bind by name."""
    condition, values = route_filter_sql(patterns, column)
    for i in range(len(values)):
        condition = condition.replace("?", f"$route_{i}", 1)
    return condition, {f"route_{i}": value for i, value in enumerate(values)}


def latency_events_sql(routes: str) -> str:
    """Return the CTEs (a WITH clause's body) ending in ``latency_events(minute, route, good,
    total)``: answered timed requests in [$start, $end) and those faster than $threshold_ms,
    for routes matching the condition ``routes`` (from route_filter_named).

    An ingest that counted $threshold_ms (it was configured when the file was loaded) gives its
    exact per-minute counts. Any other ingest's requests are estimated from its sketch, whole
    5-minute slots starting in the window, each at its slot's first minute: a bucket counts as
    good when the latency it stands for is under the threshold, which is the exact count at some
    threshold within 1 % of $threshold_ms (see ``count_below``).
    """
    value = sketch_value_ms_sql("bucket")
    return f"""
exact_ingests AS (
    -- Ingests that counted the threshold: any minute of theirs the window's slots reach has it.
    SELECT DISTINCT ingest_id
    FROM request_good
    WHERE threshold_ms = $threshold_ms AND minute >= $start
      AND minute < $end + INTERVAL 5 minute
),
parts AS (
    SELECT minute, route, sum(timed) AS total, 0 AS good
    FROM request_counts
    WHERE minute >= $start AND minute < $end AND status < 500 AND {routes}
      AND ingest_id IN (SELECT ingest_id FROM exact_ingests)
    GROUP BY minute, route
    UNION ALL
    SELECT minute, route, 0 AS total, sum(good) AS good
    FROM request_good
    WHERE minute >= $start AND minute < $end AND threshold_ms = $threshold_ms AND {routes}
    GROUP BY minute, route
    UNION ALL
    SELECT slot AS minute, route, sum(count) AS total,
           coalesce(sum(count) FILTER (WHERE {value} < $threshold_ms), 0) AS good
    FROM latency_sketch
    WHERE slot >= $start AND slot < $end AND {routes}
      AND ingest_id NOT IN (SELECT ingest_id FROM exact_ingests)
    GROUP BY slot, route
),
latency_events AS (
    SELECT minute, route, sum(good)::BIGINT AS good, sum(total)::BIGINT AS total
    FROM parts
    GROUP BY minute, route
    HAVING sum(total) > 0
)"""


def latency_event_params(threshold_ms: float, start: datetime, end: datetime,
                         routes: dict[str, str]) -> dict[str, object]:
    """Return the named parameters of latency_events_sql."""
    return {"threshold_ms": float(threshold_ms), "start": start, "end": end, **routes}


_PERCENTILES = """
WITH histogram AS (
    SELECT bucket, sum(count) AS n
    FROM latency_sketch
    WHERE slot > $after AND slot < $end AND {routes}
    GROUP BY bucket
),
cumulative AS (
    SELECT bucket,
           sum(n) OVER (ORDER BY bucket) AS up_to,
           sum(n) OVER () AS total
    FROM histogram
),
wanted AS (
    SELECT unnest($quantiles::DOUBLE[]) AS quantile
),
ranked AS (
    -- Nearest rank: the smallest bucket holding at least ceil(q * N) values.
    SELECT quantile,
           min(bucket) FILTER (WHERE up_to >= greatest(ceil(quantile * total), 1)) AS bucket,
           any_value(total) AS samples
    FROM wanted CROSS JOIN cumulative
    GROUP BY quantile
)
SELECT quantile, {value} AS latency_ms, samples
FROM ranked
ORDER BY quantile
"""


def latency_percentiles(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
                        routes: Sequence[str] = ("*",)) -> pd.DataFrame:
    """Return a DataFrame (quantile, latency_ms, samples) for answered requests in the 5-minute
    slots that overlap [start, end) (the window itself when its ends are on 5-minute marks, as
    days, weeks and months are in every time zone).

    Each value is the nearest-rank percentile (numpy's ``inverted_cdf``) within 1 % relative
    error. Empty windows give no rows. Raises ValueError for a quantile outside (0, 1].
    """
    for q in quantiles:
        if not 0 < q <= 1:
            raise ValueError(f"quantile must be in (0, 1]: {q}")
    condition, values = route_filter_named(routes)
    sql = _PERCENTILES.format(routes=condition, value=sketch_value_ms_sql("bucket"))
    return con.execute(sql, {"after": start - SLOT, "end": end,
                             "quantiles": list(quantiles), **values}).df()


def count_below(con: duckdb.DuckDBPyConnection, threshold_ms: float, start: datetime,
                end: datetime, routes: Sequence[str] = ("*",)) -> tuple[int, int]:
    """Return (answered requests faster than ``threshold_ms``, answered timed requests) in
    [start, end).

    Exact for the requests loaded while the threshold was configured (``latency_thresholds_ms``
    or a latency SLO's ``threshold_ms``); the others are counted from the sketch in whole
    5-minute slots, as the exact count at some threshold within 1 % of ``threshold_ms``
    (between threshold / 1.01 and threshold / 0.99): see ``exact_share``.
    """
    condition, values = route_filter_named(routes)
    sql = (f"WITH {latency_events_sql(condition)}\n"
           "SELECT coalesce(sum(good), 0), coalesce(sum(total), 0) FROM latency_events")
    rows = con.execute(sql, latency_event_params(threshold_ms, start, end, values)).fetchall()
    return int(rows[0][0]), int(rows[0][1])


_EXACT_SHARE = """
WITH exact_ingests AS (
    SELECT DISTINCT ingest_id
    FROM request_good
    WHERE threshold_ms = $threshold_ms AND minute >= $start AND minute < $end
)
SELECT sum(timed) FILTER (WHERE ingest_id IN (SELECT ingest_id FROM exact_ingests)) AS exact,
       sum(timed) AS timed
FROM request_counts
WHERE minute >= $start AND minute < $end AND status < 500 AND {routes}
"""


def exact_share(con: duckdb.DuckDBPyConnection, threshold_ms: float, start: datetime,
                end: datetime, routes: Sequence[str] = ("*",)) -> float | None:
    """Return the share (0 to 1) of answered timed requests in [start, end) whose good count at
    ``threshold_ms`` is exact (the threshold was configured when they were loaded); the rest is
    estimated from the sketch. None when the window has no timed request."""
    condition, values = route_filter_named(routes)
    rows = con.execute(_EXACT_SHARE.format(routes=condition),
                       latency_event_params(threshold_ms, start, end, values)).fetchall()
    exact, timed = rows[0]
    if not timed:
        return None
    return float(exact or 0) / float(timed)
