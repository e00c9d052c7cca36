"""Outages from health-check probes, and their time to recover against the failover target.

An outage is confirmed when a location sees ``confirm`` failed checks in a row (one failed
check is a blip, not an outage) at ``min_locations`` locations at once. It starts at the first
failed check of those runs and ends at the check that succeeded again; that span is its time
to recover, judged against the plan's 5-minute recovery target.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import ProbesConfig

OUTAGE_COLUMNS = ["target", "start", "end", "time_to_recover", "locations", "failed_checks",
                  "within_target"]

_CHECKS = """
SELECT target, location, ts, ok
FROM probes
WHERE ts >= ? AND ts < ?
ORDER BY target, location, ts
"""


@dataclass(frozen=True)
class _Run:
    """Consecutive failed checks at one location."""

    start: datetime
    end: datetime  # the next successful check, or the end of the period
    checks: int
    location: str


def _failed_runs(checks: pd.DataFrame, confirm: int, period_end: datetime) -> list[_Run]:
    """Return the runs of at least ``confirm`` failed checks in one target's checks."""
    runs = []
    for location, group in checks.groupby("location", sort=False):
        ok = group["ok"].to_numpy(dtype=bool)
        times = group["ts"].to_list()
        edges = np.diff(np.concatenate(([0], (~ok).astype(np.int8), [0])))
        for first, after in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1),
                                strict=True):
            if after - first >= confirm:
                end = times[after] if after < len(times) else period_end
                runs.append(_Run(times[first], end, int(after - first), str(location)))
    return runs


def probe_outages(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                  settings: ProbesConfig | None = None) -> pd.DataFrame:
    """Return the outages confirmed by probes in [start, end), one row each: target, start,
    end (recovery; the period's end while still down), time to recover, locations that saw it,
    failed checks, and whether recovery met the target."""
    settings = settings or ProbesConfig()
    target_time = settings.recovery_target_delta
    checks = con.execute(_CHECKS, [start, end]).df()
    rows = []
    for target, group in checks.groupby("target", sort=True):
        runs = _failed_runs(group, settings.confirm, end)
        # Sweep over run edges: an outage is where at least min_locations runs overlap.
        edges = sorted([(r.start, 1, r) for r in runs] + [(r.end, -1, r) for r in runs],
                       key=lambda e: (e[0], e[1]))
        active: list[_Run] = []
        members: list[_Run] = []
        began: datetime | None = None
        for when, step, run in edges:
            if step == 1:
                active.append(run)
                members.append(run)
                if began is None and len(active) >= settings.min_locations:
                    began = min(r.start for r in active)
            else:
                active.remove(run)
                if began is not None and len(active) < settings.min_locations:
                    recovered = when
                    rows.append((target, began, recovered, recovered - began,
                                 len({r.location for r in members}),
                                 sum(r.checks for r in members),
                                 recovered - began <= target_time))
                    began = None
                if not active:
                    members = []
    return pd.DataFrame(rows, columns=OUTAGE_COLUMNS)


_PROBE_MINUTES = """
SELECT DISTINCT date_trunc('minute', ts) AS minute
FROM probes
WHERE ts >= ? AND ts < ?
ORDER BY minute
"""


def uptime_minutes(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                   settings: ProbesConfig | None = None) -> pd.DataFrame:
    """Return (minute, good, total) for each minute of [start, end) with probe checks: one
    event per minute, good unless an outage overlaps it. Minutes without checks are no data."""
    minutes = con.execute(_PROBE_MINUTES, [start, end]).df()["minute"]
    good = np.ones(len(minutes), dtype="int64")
    for outage in probe_outages(con, start, end, settings).itertuples():
        overlapping = (minutes + timedelta(minutes=1) > outage.start) & (minutes < outage.end)
        good[overlapping.to_numpy()] = 0
    return pd.DataFrame({"minute": minutes, "good": good,
                         "total": np.ones(len(minutes), dtype="int64")})
