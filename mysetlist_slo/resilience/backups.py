"""Backups against the plan's schedule: recovery point (RPO) per kind, suspect backups, growth.

A backup is *good* when its job succeeded with at least ``backups.min_bytes``. The RPO of a kind
is the longest gap between consecutive good backups; it holds when no gap exceeds the schedule's
period plus ``backups.grace`` (daily: 1 day, weekly: 7, monthly: 31). The current exposure is
the time since the last good backup. Flagged: failed jobs, empty backups, and good backups
smaller than the previous good one of the same kind by more than ``backups.shrink_share`` (a
shrinking dump still counts as a backup — nothing says it is unusable — but is listed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from mysetlist_slo._numbers import whole
from mysetlist_slo.config import Config
from mysetlist_slo.config.model import SCHEDULE_PERIOD

JOB_COLUMNS = ["kind", "job", "started", "finished", "status", "bytes", "destination", "good",
               "change_share", "flag"]
RPO_COLUMNS = ["kind", "schedule", "allowed_gap", "good_backups", "failed", "empty",
               "shrinking", "last_good", "exposure", "longest_gap", "longest_gap_end",
               "rpo_ok", "exposure_ok", "status", "detail"]
GROWTH_COLUMNS = ["kind", "backups", "latest_bytes", "bytes_per_day", "forecast_bytes",
                  "storage_bytes", "horizon_days"]

_JOBS = """
SELECT kind, job, started, finished, status, bytes, destination
FROM backups
WHERE started < ?
ORDER BY kind, started
"""


def backup_jobs(con: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> pd.DataFrame:
    """Return every backup job started before ``at``, oldest first per kind, with ``good``,
    ``change_share`` (size change against the previous good backup of its kind) and ``flag``
    (failed, empty, shrinking, or None)."""
    settings = config.backups
    jobs = con.execute(_JOBS, [at]).df()
    jobs["good"] = (jobs["status"] == "success") & (jobs["bytes"].fillna(0) >= settings.min_bytes)
    jobs["change_share"] = np.nan
    for _, index in jobs[jobs["good"]].groupby("kind").groups.items():
        sizes = jobs.loc[index, "bytes"].astype("float64")
        jobs.loc[index, "change_share"] = sizes / sizes.shift(1) - 1
    failed = jobs["status"] != "success"
    empty = ~failed & ~jobs["good"]
    shrinking = jobs["good"] & (jobs["change_share"] < -settings.shrink_share)
    jobs["flag"] = pd.Series([None] * len(jobs), index=jobs.index, dtype=object)
    for name, mask in (("failed", failed), ("empty", empty), ("shrinking", shrinking)):
        jobs.loc[mask, "flag"] = name
    return jobs[JOB_COLUMNS]


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.0f} h" if hours < 72 else f"{hours / 24:.1f} days"


def backup_rpo(con: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> pd.DataFrame:
    """Return one row per scheduled backup kind: schedule, the gap it allows, counts of good,
    failed, empty and shrinking backups, the last good one and the exposure since, the longest
    gap between good backups (and when it ended), whether both hold, a status (ok, late, no
    data) and a one-line detail."""
    settings = config.backups
    jobs = backup_jobs(con, config, at)
    rows = []
    for kind, schedule in settings.schedules.items():
        allowed = SCHEDULE_PERIOD[schedule] + settings.grace_delta
        mine = jobs[jobs["kind"] == kind]
        good = mine[mine["good"]]
        counts = [len(good), int((mine["flag"] == "failed").sum()),
                  int((mine["flag"] == "empty").sum()), int((mine["flag"] == "shrinking").sum())]
        if good.empty:
            rows.append([kind, schedule, allowed, *counts, None, None, None, None, None, None,
                         "no data", "no successful backup on record"])
            continue
        # A backup protects data from when it started (a dump is a snapshot at its start).
        times = pd.to_datetime(good["started"]).sort_values().reset_index(drop=True)
        gaps = times.diff().dropna()
        longest = gaps.max().to_pytimedelta() if len(gaps) else None
        longest_end = times[gaps.idxmax()] if len(gaps) else None
        last = times.iloc[-1].to_pydatetime()
        exposure = at - last
        rpo_ok = None if longest is None else bool(longest <= allowed)
        exposure_ok = bool(exposure <= allowed)
        status = "ok" if rpo_ok is not False and exposure_ok else "late"
        gap_text = (f"longest gap {_hours(longest)}" if longest is not None
                    else "only one good backup")
        detail = (f"last good backup {_hours(exposure)} ago; {gap_text} "
                  f"(schedule {schedule}: at most {_hours(allowed)})")
        if counts[1] or counts[2] or counts[3]:
            detail += (f"; {whole(counts[1])} failed, {whole(counts[2])} empty, "
                       f"{whole(counts[3])} shrinking")
        rows.append([kind, schedule, allowed, *counts, last, exposure, longest, longest_end,
                     rpo_ok, exposure_ok, status, detail])
    return pd.DataFrame(rows, columns=RPO_COLUMNS)


def backup_growth(con: duckdb.DuckDBPyConnection, config: Config, at: datetime,
                  horizon_days: int = 90) -> pd.DataFrame:
    """Return per kind the growth of good backups (bytes per day, Theil-Sen slope: robust to
    the odd shrinking dump), the size forecast ``horizon_days`` after ``at``, and the storage
    needed to keep every backup the schedule takes over that horizon."""
    jobs = backup_jobs(con, config, at)
    rows = []
    for kind, schedule in config.backups.schedules.items():
        good = jobs[(jobs["kind"] == kind) & jobs["good"]]
        if len(good) < 2:
            continue
        days = (pd.to_datetime(good["started"]) - pd.Timestamp(at)).dt.total_seconds() / 86400
        sizes = good["bytes"].astype("float64").to_numpy()
        slope, intercept, _, _ = stats.theilslopes(sizes, days.to_numpy())
        period_days = SCHEDULE_PERIOD[schedule].total_seconds() / 86400
        future = np.arange(period_days, horizon_days + 1e-9, period_days)
        sizes_ahead = np.maximum(intercept + slope * future, 0)
        rows.append([kind, len(good), int(sizes[-1]), float(slope),
                     float(max(intercept + slope * horizon_days, 0)), float(sizes_ahead.sum()),
                     horizon_days])
    return pd.DataFrame(rows, columns=GROWTH_COLUMNS)
