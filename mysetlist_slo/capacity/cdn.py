"""CDN and proxy cache hit ratios from the requests' logged cache status: per route and
overall, by requests and by bytes, per period, and the hours immutable assets missed.

A request counts when its log names a cache outcome (``cache_counts``); a hit is an outcome
served from the cache (``CACHE_HITS``: HIT, STALE, UPDATING, REVALIDATED, PRERENDER). The
ratio's denominator is every request with an outcome, BYPASS and DYNAMIC included, as
Cloudflare's "percent cached" counts them: a route that is never cached shows 0 %, not nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import duckdb
import pandas as pd
from scipy.stats import binom

from mysetlist_slo.config import Config
from mysetlist_slo.sources.requests_schema import CACHE_HITS

ALL_ROUTES = "(all)"
Grain = Literal["hour", "day", "week"]

_BY_ROUTE = """
WITH outcomes AS (
    SELECT route,
           CAST(sum(requests) AS BIGINT) AS requests,
           CAST(sum(requests) FILTER (WHERE cache_status IN (SELECT unnest($hits))) AS BIGINT)
               AS hits,
           CAST(sum(bytes_sum) AS BIGINT) AS bytes,
           CAST(sum(bytes_sum) FILTER (WHERE cache_status IN (SELECT unnest($hits))) AS BIGINT)
               AS hit_bytes,
           CAST(sum(requests) FILTER (WHERE cache_status IN ('MISS', 'EXPIRED')) AS BIGINT)
               AS misses,
           CAST(sum(requests) FILTER (WHERE cache_status IN ('BYPASS', 'DYNAMIC')) AS BIGINT)
               AS uncached
    FROM cache_counts
    WHERE minute >= $start AND minute < $end
    GROUP BY ROLLUP (route)
)
SELECT coalesce(route, $all) AS route,
       requests,
       coalesce(hits, 0) AS hits,
       coalesce(misses, 0) AS misses,
       coalesce(uncached, 0) AS uncached,
       coalesce(hits, 0) / requests AS hit_ratio,
       bytes,
       coalesce(hit_bytes, 0) AS hit_bytes,
       CASE WHEN bytes > 0 THEN coalesce(hit_bytes, 0) / bytes END AS byte_hit_ratio
FROM outcomes
WHERE requests > 0
ORDER BY route IS NOT NULL, requests DESC, route
"""


def cache_hit_ratios(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                     end: datetime) -> pd.DataFrame:
    """Return the cache hit ratio per route over [start, end), the row ``(all)`` first.

    Columns: route, requests (with a cache outcome), hits, misses (MISS, EXPIRED), uncached
    (BYPASS, DYNAMIC), hit_ratio, bytes, hit_bytes, byte_hit_ratio (None when no bytes),
    immutable (the route is one of ``cdn.immutable_routes``) and below_target (an immutable
    route under ``cdn.min_hit_ratio``). Empty when no request in the window logged a cache
    status. Raises duckdb.Error only for a store without the table (an old schema).
    """
    frame = con.execute(_BY_ROUTE, {"start": start, "end": end, "hits": list(CACHE_HITS),
                                    "all": ALL_ROUTES}).df()
    immutable = set(config.cdn.immutable_routes)
    frame["immutable"] = frame["route"].isin(immutable)
    frame["below_target"] = frame["immutable"] & (frame["hit_ratio"] < config.cdn.min_hit_ratio)
    return frame


_TREND = """
WITH periods AS (
    SELECT date_trunc($grain, timezone($tz, minute)) AS period,
           CASE WHEN route IN (SELECT unnest($immutable)) THEN $immutable_label
                ELSE $other_label END AS routes,
           requests,
           CASE WHEN cache_status IN (SELECT unnest($hits)) THEN requests ELSE 0 END AS hits,
           bytes_sum AS bytes,
           CASE WHEN cache_status IN (SELECT unnest($hits)) THEN bytes_sum ELSE 0 END
               AS hit_bytes
    FROM cache_counts
    WHERE minute >= $start AND minute < $end
),
grouped AS (
    SELECT period, routes, CAST(sum(requests) AS BIGINT) AS requests,
           CAST(sum(hits) AS BIGINT) AS hits, CAST(sum(bytes) AS BIGINT) AS bytes,
           CAST(sum(hit_bytes) AS BIGINT) AS hit_bytes
    FROM periods
    GROUP BY GROUPING SETS ((period, routes), (period))
)
SELECT period, coalesce(routes, $all) AS routes, requests, hits, hits / requests AS hit_ratio,
       bytes, hit_bytes, CASE WHEN bytes > 0 THEN hit_bytes / bytes END AS byte_hit_ratio
FROM grouped
ORDER BY period, routes
"""
IMMUTABLE = "immutable assets"
OTHER = "other routes"


def cache_hit_trend(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                    end: datetime, grain: Grain = "day") -> pd.DataFrame:
    """Return the hit ratio per ``grain`` (hour, day or week, cut in the config's time zone)
    over [start, end): one row per period for ``(all)``, for the immutable routes and for the
    other routes. Columns: period (local time, no zone), routes, requests, hits, hit_ratio,
    bytes, hit_bytes, byte_hit_ratio. Periods without requests have no row."""
    return con.execute(_TREND, {
        "grain": grain, "tz": config.timezone, "start": start, "end": end,
        "hits": list(CACHE_HITS), "immutable": list(config.cdn.immutable_routes) or [""],
        "immutable_label": IMMUTABLE, "other_label": OTHER, "all": ALL_ROUTES}).df()


_HOURLY_IMMUTABLE = """
SELECT date_trunc('hour', minute) AS hour,
       CAST(sum(requests) AS BIGINT) AS requests,
       CAST(coalesce(sum(requests) FILTER (WHERE cache_status IN (SELECT unnest($hits))), 0)
            AS BIGINT) AS hits
FROM cache_counts
WHERE minute >= $start AND minute < $end AND route IN (SELECT unnest($immutable))
GROUP BY hour
ORDER BY hour
"""
# An hour is a storm only when its hits are too few for the target to hold by chance: the
# one-sided binomial probability of so few hits at the target ratio is below this. At a few
# dozen requests an hour, 93 % hits is noise around a 95 % target; 20 % is not.
STORM_P_VALUE = 0.001
_EPISODE_COLUMNS = ["start", "end", "hours", "requests", "hits", "hit_ratio"]


def cache_miss_episodes(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                        end: datetime) -> pd.DataFrame:
    """Return the cache-miss storms on the immutable routes in [start, end): runs of
    consecutive UTC hours each with at least ``cdn.min_requests`` requests (the immutable
    routes together) and significantly fewer hits than ``cdn.min_hit_ratio`` allows
    (binomial, one-sided, p < STORM_P_VALUE): a purge, a cache key that varies, a deploy
    that re-hashed every asset. Columns: start, end, hours, requests, hits, hit_ratio."""
    if not config.cdn.immutable_routes:
        return pd.DataFrame(columns=_EPISODE_COLUMNS)
    hours = con.execute(_HOURLY_IMMUTABLE, {
        "start": start, "end": end, "hits": list(CACHE_HITS),
        "immutable": list(config.cdn.immutable_routes)}).df()
    target = config.cdn.min_hit_ratio
    low = hours[(hours["requests"] >= config.cdn.min_requests)
                & (hours["hits"] < target * hours["requests"])].copy()
    low = low[binom.cdf(low["hits"], low["requests"], target) < STORM_P_VALUE]
    if low.empty:
        return pd.DataFrame(columns=_EPISODE_COLUMNS)
    # Consecutive hours share one run number: hour minus its rank is constant along a run.
    low = low.reset_index(drop=True)
    low["run"] = low["hour"] - pd.to_timedelta(low.index, unit="h")
    runs = low.groupby("run", sort=True).agg(start=("hour", "min"), last=("hour", "max"),
                                             hours=("hour", "size"),
                                             requests=("requests", "sum"),
                                             hits=("hits", "sum"))
    runs["end"] = runs["last"] + pd.Timedelta(hours=1)
    runs["hit_ratio"] = runs["hits"] / runs["requests"]
    return runs[_EPISODE_COLUMNS].reset_index(drop=True)
