"""Recovery drills: each drill's time to recover (RTO) against the plan's 5-minute target, and
the drills overdue for their cadence.

A drill *passes* when it succeeded, recovered within ``probes.recovery_target`` and its data
was verified (a restore nobody checked proves nothing). A kind is overdue when its last
passing drill is older than its cadence (weekly 7 days, monthly 31, quarterly 92) — a failed
drill does not reset the clock.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from mysetlist_slo.config import Config
from mysetlist_slo.config.model import SCHEDULE_PERIOD

DRILL_COLUMNS = ["drill", "started", "recovered", "time_to_recover", "status", "data_verified",
                 "within_target", "passed", "reason"]
DUE_COLUMNS = ["drill", "cadence", "drills", "last_run", "last_passed", "last_rto", "due",
               "overdue", "overdue_by", "status", "detail"]

_DRILLS = """
SELECT drill, started, recovered, status, data_verified
FROM drills
WHERE started < ?
ORDER BY started
"""


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def drill_results(con: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> pd.DataFrame:
    """Return every drill started before ``at``, oldest first: time to recover, whether it is
    within the target, whether it passed, and the reason when it did not."""
    target = config.probes.recovery_target_delta
    drills = con.execute(_DRILLS, [at]).df()
    drills["time_to_recover"] = pd.to_datetime(drills["recovered"]) - pd.to_datetime(
        drills["started"])
    drills["within_target"] = drills["time_to_recover"] <= target
    reasons = []
    for row in drills.itertuples():
        why = []
        if row.status != "success":
            why.append("failed")
        elif not row.within_target:
            why.append(f"recovered in {_minutes(row.time_to_recover.total_seconds())}, over "
                       f"the {_minutes(target.total_seconds())} target")
        if pd.isna(row.data_verified) or not bool(row.data_verified):
            why.append("data not verified")
        reasons.append("; ".join(why))
    drills["reason"] = reasons
    drills["passed"] = drills["reason"] == ""
    return drills[DRILL_COLUMNS]


def drills_due(con: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> pd.DataFrame:
    """Return one row per drill kind of the cadence table: drills run, last run and last passed,
    the last time to recover, when the next is due, whether (and by how long) it is overdue,
    a status (ok, overdue, last drill failed, never passed) and a one-line detail."""
    results = drill_results(con, config, at)
    rows = []
    for drill, cadence in config.drills.cadences.items():
        period = SCHEDULE_PERIOD[cadence]
        mine = results[results["drill"] == drill]
        passed = mine[mine["passed"]]
        last_run = mine["started"].iloc[-1] if len(mine) else None
        last_rto = mine["time_to_recover"].iloc[-1] if len(mine) else None
        if passed.empty:
            status = "never passed"
            rows.append([drill, cadence, len(mine), last_run, None, last_rto, None, True, None,
                         status, f"no passing drill on record ({cadence})"])
            continue
        last_passed = pd.Timestamp(passed["started"].iloc[-1]).to_pydatetime()
        due = last_passed + period
        overdue = at > due
        last_passed_too = bool(mine["passed"].iloc[-1])
        status = "overdue" if overdue else ("ok" if last_passed_too else "last drill failed")
        rto = (f"; last time to recover {_minutes(last_rto.total_seconds())}"
               if last_rto is not None and not pd.isna(last_rto) else "")
        detail = (f"last passed {last_passed:%Y-%m-%d} ({cadence}), "
                  + (f"overdue by {(at - due).total_seconds() / 86400:.1f} days" if overdue
                     else f"next due {due:%Y-%m-%d}") + rto)
        last_failed = mine.iloc[-1]
        if not last_failed["passed"]:
            detail += f"; last drill did not pass ({last_failed['reason']})"
        rows.append([drill, cadence, len(mine), last_run, last_passed, last_rto, due, overdue,
                     at - due if overdue else None, status, detail])
    return pd.DataFrame(rows, columns=DUE_COLUMNS)
