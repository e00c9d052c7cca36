"""Regions: availability and latency per region from health-check probes, and the episodes in
which a region fell below the plan's ``failover_threshold``, each with its time to recover.

A probe's region is ``regions.probe_locations[location]`` (the location itself when unmapped).
A region's availability is the share of its checks that succeeded. The failover threshold is
evaluated as configured: over every ``regions.window`` (rolling, minute by minute), the share of
good checks is compared with the threshold; an episode is a run of consecutive minutes with a
failed check in that region, which pushes the window below the threshold (at a few checks a
minute, one failed check already does: the report says how many episodes were single checks).
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from mysetlist_slo.config import Config, parse_duration

REGION_COLUMNS = ["region", "locations", "checks", "failed", "availability", "p50_latency_ms",
                  "p95_latency_ms", "worst_window_availability", "below_threshold",
                  "episodes", "status", "detail"]
EPISODE_COLUMNS = ["region", "start", "end", "time_to_recover", "failed_checks",
                   "within_target"]

_CHECKS = """
SELECT ts, location, ok, latency_ms
FROM probes
WHERE ts >= ? AND ts < ?
ORDER BY ts
"""


def _checks(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
            end: datetime) -> pd.DataFrame:
    checks = con.execute(_CHECKS, [start, end]).df()
    mapping = config.regions.probe_locations
    checks["region"] = [mapping.get(location, location) for location in checks["location"]]
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
        detail = (f"{region}: {availability:.3f} % of {len(group):,} checks good; "
                  f"{len(mine)} episodes below the {settings.failover_threshold:g} % failover "
                  f"threshold over {settings.window} ({single} of them a single failed check)")
        if len(mine):
            slowest = mine["time_to_recover"].max()
            detail += f"; slowest recovery {slowest.total_seconds() / 60:.1f} min"
        rows.append([region, ", ".join(sorted(set(group["location"]))), len(group),
                     int((~ok).sum()), availability, p50, p95, worst, below, len(mine),
                     "below threshold" if below else "ok", detail])
    return pd.DataFrame(rows, columns=REGION_COLUMNS)
