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

# The checks of [start, end), and before start those since the target's last quiet instant
# (after a check at which every location's latest check succeeded): no run of failures
# crosses it, so an outage under way at ``start`` is read whole, from its first failed check,
# and what came before cannot change it. ``failing`` counts the locations whose latest check
# failed (a RANGE frame: all checks of one instant counted together).
_CHECKS = """
WITH changes AS (
    SELECT target, ts,
           (NOT ok)::INTEGER - (NOT coalesce(lag(ok) OVER (PARTITION BY target, location
                                                          ORDER BY ts), true))::INTEGER AS step
    FROM probes
    WHERE ts < $start
),
failing AS (
    SELECT target, ts,
           sum(step) OVER (PARTITION BY target ORDER BY ts
                           RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS failing
    FROM changes
),
quiet AS (
    SELECT target, max(ts) AS since
    FROM failing
    WHERE failing = 0
    GROUP BY target
)
SELECT target, location, ts, ok
FROM probes
LEFT JOIN quiet USING (target)
WHERE ts < $end AND (ts >= $start OR since IS NULL OR ts >= since)
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
    failed checks, and whether recovery met the target.

    An outage under way at ``start`` counts from its first failed check (see _CHECKS)."""
    settings = settings or ProbesConfig()
    target_time = settings.recovery_target_delta
    checks = con.execute(_CHECKS, {"start": start, "end": end}).df()
    rows = []
    for target, group in checks.groupby("target", sort=True):
        runs = _failed_runs(group, settings.confirm, end)
        # Sweep over run edges: an outage is where at least min_locations runs overlap. Runs
        # are half-open [start, end); all edges at one instant are applied before judging, so
        # a location failing just as another recovers continues the outage.
        instants: dict[datetime, tuple[list[_Run], list[_Run]]] = {}
        for run in runs:
            instants.setdefault(run.start, ([], []))[0].append(run)
            instants.setdefault(run.end, ([], []))[1].append(run)
        active: list[_Run] = []
        began: datetime | None = None
        last_recovered: datetime | None = None
        for when in sorted(instants):
            starting, ending = instants[when]
            active = [r for r in active if r not in ending] + starting
            if began is None and len(active) >= settings.min_locations:
                # From the first failed check of the runs confirming it, but never before
                # the previous outage ended: outages do not overlap.
                began = min(r.start for r in active)
                if last_recovered is not None:
                    began = max(began, last_recovered)
            elif began is not None and len(active) < settings.min_locations:
                members = [r for r in runs if r.start < when and r.end > began]
                rows.append((target, began, when, when - began,
                             len({r.location for r in members}),
                             sum(r.checks for r in members), when - began <= target_time))
                began, last_recovered = None, when
        # Outages read from before ``start`` that were over by then are not this window's.
        rows = [row for row in rows if row[0] != target or row[2] > start]
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
