"""Regions: availability and latency per region from health-check probes and from requests
that name their region, the episodes in which a region fell below the plan's
``failover_threshold``, and failovers seen as traffic shifting between regions, each with its
time to recover.

A probe's region is its own ``region`` field, else ``regions.probe_locations[location]`` (the
location itself when unmapped).
A region's availability is the share of its checks that succeeded. The failover threshold is
evaluated as configured: over every ``regions.window`` (rolling, minute by minute), the share of
good checks is compared with the threshold; an episode is a run of consecutive minutes with a
failed check in that region, which pushes the window below the threshold (at a few checks a
minute, one failed check already does: the report says how many episodes were single checks).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from mysetlist_slo._numbers import counted, whole
from mysetlist_slo.config import Config, parse_duration
from mysetlist_slo.store.rollups import SLOT, sketch_value_ms_sql

REGION_COLUMNS = ["region", "locations", "checks", "failed", "availability", "p50_latency_ms",
                  "p95_latency_ms", "worst_window_availability", "below_threshold",
                  "episodes", "status", "detail"]
EPISODE_COLUMNS = ["region", "start", "end", "time_to_recover", "failed_checks",
                   "within_target"]

_CHECKS = """
SELECT ts, location, ok, latency_ms, region AS own_region
FROM probes
WHERE ts >= ? AND ts < ?
ORDER BY ts
"""


def _checks(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
            end: datetime) -> pd.DataFrame:
    checks = con.execute(_CHECKS, [start, end]).df()
    mapping = config.regions.probe_locations
    checks["region"] = [own if isinstance(own, str) and own else mapping.get(location, location)
                        for own, location in zip(checks["own_region"], checks["location"],
                                                 strict=True)]
    checks["minute"] = pd.to_datetime(checks["ts"]).dt.floor("min")
    return checks


def region_episodes(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                    end: datetime) -> pd.DataFrame:
    """Return the episodes in [start, end) in which a region's probes failed (runs of
    consecutive minutes with a failed check): start (first failed check), end (first good
    check after), time to recover, failed checks, and whether recovery met the target."""
    checks = _checks(con, config, start, end)
    target = config.probes.recovery_target_delta
    rows = []
    for region, group in checks.groupby("region", sort=True):
        failed_minutes = sorted(set(group.loc[~group["ok"].astype(bool), "minute"]))
        runs: list[list[pd.Timestamp]] = []
        for minute in failed_minutes:
            if runs and minute - runs[-1][-1] <= pd.Timedelta(minutes=1):
                runs[-1].append(minute)
            else:
                runs.append([minute])
        for run in runs:
            inside = group[(group["minute"] >= run[0]) & (group["minute"] <= run[-1])]
            failed = inside[~inside["ok"].astype(bool)]
            began = failed["ts"].min()
            after = group[(group["ts"] > failed["ts"].max()) & group["ok"].astype(bool)]
            ended = after["ts"].min() if len(after) else pd.Timestamp(end)
            took = (pd.Timestamp(ended) - pd.Timestamp(began)).to_pytimedelta()
            rows.append([region, began, ended, took, len(failed), took <= target])
    return pd.DataFrame(rows, columns=EPISODE_COLUMNS)


def region_availability(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                        end: datetime) -> pd.DataFrame:
    """Return one row per region seen by probes in [start, end): locations, checks, failed
    checks, availability (percent), latency p50/p95, the worst availability over any rolling
    ``regions.window``, whether that fell below ``failover_threshold``, the failure episodes,
    a status (ok, below threshold) and a one-line detail."""
    settings = config.regions
    window = parse_duration(settings.window)
    checks = _checks(con, config, start, end)
    episodes = region_episodes(con, config, start, end)
    rows = []
    for region, group in checks.groupby("region", sort=True):
        ok = group["ok"].astype(bool)
        per_minute = group.assign(good=ok.astype(int), one=1).groupby("minute")[
            ["good", "one"]].sum()
        grid = pd.date_range(per_minute.index.min(), per_minute.index.max(), freq="min")
        per_minute = per_minute.reindex(grid, fill_value=0)
        rolled = per_minute.rolling(window).sum()
        rolled = rolled[rolled["one"] > 0]
        worst = float(100 * (rolled["good"] / rolled["one"]).min()) if len(rolled) else None
        availability = 100 * float(ok.mean())
        below = worst is not None and worst < settings.failover_threshold
        mine = episodes[episodes["region"] == region]
        single = int((mine["failed_checks"] == 1).sum())
        latency = group["latency_ms"].dropna()
        p50 = float(latency.quantile(0.5)) if len(latency) else None
        p95 = float(latency.quantile(0.95)) if len(latency) else None
        detail = (f"{availability:.3f} % of {len(group):,} checks good; "
                  f"{counted(len(mine), 'episode')} below the "
                  f"{settings.failover_threshold:g} % "
                  f"failover threshold over {settings.window} ({whole(single)} of them a single "
                  "failed check)")
        if len(mine):
            slowest = mine["time_to_recover"].max()
            detail += f"; slowest recovery {slowest.total_seconds() / 60:.1f} min"
        rows.append([region, ", ".join(sorted(set(group["location"]))), len(group),
                     int((~ok).sum()), availability, p50, p95, worst, below, len(mine),
                     "below threshold" if below else "ok", detail])
    return pd.DataFrame(rows, columns=REGION_COLUMNS)


TRAFFIC_COLUMNS = ["region", "requests", "errors_5xx", "availability", "share",
                   "p50_latency_ms", "p95_latency_ms", "minutes_with_data"]
FAILOVER_COLUMNS = ["region", "start", "end", "shifted_to", "share_before", "share_during",
                    "time_to_recover", "within_target"]
# A minute with fewer requests than this says too little about shares to judge a shift.
MIN_MINUTE_REQUESTS = 10
# A region whose share of a minute's traffic falls under this part of its usual share has
# been drained (its traffic went elsewhere).
DRAINED = 0.25

_REGION_TRAFFIC = """
WITH counts AS (
    SELECT region, sum(requests) AS requests,
           coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors_5xx,
           count(DISTINCT minute) AS minutes_with_data
    FROM region_counts
    WHERE minute >= $start AND minute < $end
    GROUP BY region
), histogram AS (
    SELECT region, bucket, sum(count) AS n
    FROM region_latency_sketch
    WHERE slot > $after AND slot < $end
    GROUP BY region, bucket
), cumulative AS (
    SELECT region, bucket, sum(n) OVER (PARTITION BY region ORDER BY bucket) AS up_to,
           sum(n) OVER (PARTITION BY region) AS total
    FROM histogram
), buckets AS (
    -- Nearest rank, as latency_percentiles reads the route sketches (within 1 %).
    SELECT region,
           min(bucket) FILTER (WHERE up_to >= greatest(ceil(0.5 * total), 1)) AS p50,
           min(bucket) FILTER (WHERE up_to >= greatest(ceil(0.95 * total), 1)) AS p95
    FROM cumulative
    GROUP BY region
), percentiles AS (
    SELECT region, {p50} AS p50, {p95} AS p95
    FROM buckets
)
SELECT counts.region, requests, errors_5xx, 100.0 * (requests - errors_5xx) / requests,
       requests / sum(requests) OVER (), p50, p95, minutes_with_data
FROM counts LEFT JOIN percentiles USING (region)
ORDER BY counts.region
""".format(p50=sketch_value_ms_sql("p50"), p95=sketch_value_ms_sql("p95"))

_REGION_MINUTES = """
SELECT minute, region, sum(requests) AS requests,
       coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS bad
FROM region_counts
WHERE minute >= ? AND minute < ?
GROUP BY minute, region
ORDER BY minute, region
"""


def region_traffic(con: duckdb.DuckDBPyConnection, start: datetime,
                   end: datetime) -> pd.DataFrame:
    """Return one row per region named by requests in [start, end): requests, 5xx, availability
    (percent non-5xx), share of all regional traffic, p50/p95 latency of answered requests (ms,
    nearest rank from the 5-minute sketches overlapping the window, within 1 %) and minutes
    with data."""
    rows = con.execute(_REGION_TRAFFIC, {"start": start, "end": end,
                                         "after": start - SLOT}).fetchall()
    return pd.DataFrame(rows, columns=TRAFFIC_COLUMNS)


def traffic_failovers(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                      end: datetime) -> pd.DataFrame:
    """Return the episodes in [start, end) in which a region failed — its minute availability
    under ``failover_threshold``, or its share of traffic drained below a quarter of its usual
    share — with the region traffic shifted to (the one whose share rose most, None when users
    were not moved), the shares before and during, and the time to recover: how long from the
    episode's start all regions together stayed under the threshold (what users saw), against
    ``probes.recovery_target``. Minutes with fewer than 10 requests are not judged."""
    minutes = con.execute(_REGION_MINUTES, [start, end]).df()
    if minutes.empty:
        return pd.DataFrame(columns=FAILOVER_COLUMNS)
    threshold = config.regions.failover_threshold / 100
    target = config.probes.recovery_target_delta
    requests = minutes.pivot_table(index="minute", columns="region", values="requests",
                                   aggfunc="sum", fill_value=0)
    bad = minutes.pivot_table(index="minute", columns="region", values="bad", aggfunc="sum",
                              fill_value=0).reindex_like(requests).fillna(0)
    grid = pd.date_range(requests.index.min(), requests.index.max(), freq="min")
    requests, bad = requests.reindex(grid, fill_value=0), bad.reindex(grid, fill_value=0)
    total = requests.sum(axis=1)
    judged = total >= MIN_MINUTE_REQUESTS
    share = requests.div(total.where(total > 0), axis=0)
    usual = requests.sum() / requests.values.sum()
    overall_good = (total - bad.sum(axis=1)) / total.where(total > 0)
    rows = []
    for region in requests.columns:
        with_traffic = requests[region] > 0
        availability = (requests[region] - bad[region]) / requests[region].where(with_traffic)
        failing = judged & ((with_traffic & (availability < threshold))
                            | (share[region] < DRAINED * usual[region]))
        runs = (failing != failing.shift()).cumsum()[failing]
        for _, run in runs.groupby(runs):
            first, last = run.index[0], run.index[-1]
            before = share.loc[:first - pd.Timedelta(minutes=1)]
            during = share.loc[first:last]
            rise = (during.mean() - usual).drop(region)
            shifted = str(rise.idxmax()) if len(rise) and rise.max() > 0.1 else None
            down = 0
            for value in overall_good.loc[first:]:
                if pd.isna(value) or value >= threshold:
                    break
                down += 1
            took = timedelta(minutes=down)
            rows.append([region, first, last + pd.Timedelta(minutes=1), shifted,
                         float(before[region].mean()) if len(before) else float(usual[region]),
                         float(during[region].mean()), took, took <= target])
    return pd.DataFrame(rows, columns=FAILOVER_COLUMNS)
