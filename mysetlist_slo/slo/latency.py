"""Latency percentiles and threshold counts read from the mergeable per-minute histograms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd


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


_PERCENTILES = """
WITH histogram AS (
    SELECT bucket_us, sum(count) AS n
    FROM latency_histogram
    WHERE minute >= ? AND minute < ? AND {routes}
    GROUP BY bucket_us
),
cumulative AS (
    SELECT bucket_us,
           sum(n) OVER (ORDER BY bucket_us) AS up_to,
           sum(n) OVER () AS total
    FROM histogram
),
wanted AS (
    SELECT unnest(?::DOUBLE[]) AS quantile
)
SELECT
    quantile,
    -- Nearest rank: the smallest bucket holding at least ceil(q * N) values.
    min(bucket_us) FILTER (WHERE up_to >= greatest(ceil(quantile * total), 1)) / 1000.0
        AS latency_ms,
    any_value(total) AS samples
FROM wanted CROSS JOIN cumulative
GROUP BY quantile
ORDER BY quantile
"""


def latency_percentiles(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                        quantiles: Sequence[float] = (0.5, 0.95, 0.99),
                        routes: Sequence[str] = ("*",)) -> pd.DataFrame:
    """Return a DataFrame (quantile, latency_ms, samples) for requests in [start, end).

    Each value is the lower bound of the histogram bucket holding the nearest-rank percentile
    (numpy's ``inverted_cdf``), so it is within 1 % below the exact value. Empty windows give
    no rows.
    """
    for q in quantiles:
        if not 0 < q <= 1:
            raise ValueError(f"quantile must be in (0, 1]: {q}")
    condition, values = route_filter_sql(routes)
    return con.execute(_PERCENTILES.format(routes=condition),
                       [start, end, *values, list(quantiles)]).df()


_BELOW = """
SELECT coalesce(sum(count) FILTER (WHERE bucket_us < ?), 0) AS below,
       coalesce(sum(count), 0) AS total
FROM latency_histogram
WHERE minute >= ? AND minute < ? AND {routes}
"""


def count_below(con: duckdb.DuckDBPyConnection, threshold_ms: float, start: datetime,
                end: datetime, routes: Sequence[str] = ("*",)) -> tuple[int, int]:
    """Return (requests faster than ``threshold_ms``, timed requests) in [start, end).

    Exact when the threshold has at most three significant digits (see rollups.py).
    """
    condition, values = route_filter_sql(routes)
    rows = con.execute(_BELOW.format(routes=condition),
                       [round(threshold_ms * 1000), start, end, *values]).fetchall()
    return int(rows[0][0]), int(rows[0][1])
