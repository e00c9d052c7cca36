"""The oracle suite for the PostgreSQL and PgBouncer numbers: random SHOW STATS, SHOW POOLS and
pg_stat_statements snapshots (several databases and roles, PgBouncer's admin database, counter
resets, irregular snapshot times, windows not on any boundary), ingested through the public
path and compared with a brute-force oracle over the raw snapshots.

The oracle shares no code with the package: it works row by row in plain Python and pandas from
the definitions in the README — counters are differenced per database (per statement key) over
every snapshot before the window's end, any counter that went down is a reset of them all and
their new values are the increases, the intervals ending inside the window are kept; SHOW
STATS adds up the application databases (not ``pgbouncer``) per snapshot, with times
weighted by transactions; SHOW POOLS' longest wait is maxwait seconds plus maxwait_us
microseconds.
"""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo import ingest_file, open_store
from mysetlist_slo.capacity.plan import pgbouncer_rates, pgbouncer_waits, statement_times

EXAMPLES = int(os.environ.get("MYSETLIST_ORACLE_EXAMPLES", "50"))
_SETTINGS = {"deadline": None, "derandomize": True,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
T0 = datetime(2026, 11, 20, 9, 0, 0, 123456, tzinfo=UTC)
DATABASES = ("app1", "app2", "pgbouncer")
STATEMENT_KEYS = [(u, d, q, t) for u in ("10", "20") for d in ("16384", "16390")
                  for q in ("q1", "-8841") for t in (True, False)]


@dataclass(frozen=True)
class Snapshots:
    """Rows as an exporter would write them, and the window to read."""

    rows: list[dict[str, object]]
    start: datetime
    end: datetime


def _times(draw: st.DrawFn, count: int) -> list[datetime]:
    gaps = draw(st.lists(st.integers(1, 900_000_000), min_size=count, max_size=count))
    stamps, at = [], T0
    for gap in gaps:  # microseconds: snapshots not on any second
        at += timedelta(microseconds=gap)
        stamps.append(at)
    return stamps


def _window(draw: st.DrawFn, stamps: list[datetime]) -> tuple[datetime, datetime]:
    """A window with each end on a snapshot, just around one, or anywhere in the span."""
    def instant() -> datetime:
        base = draw(st.sampled_from(stamps))
        return base + timedelta(microseconds=draw(st.sampled_from(
            [0, 0, 1, -1, 30_000_000, -30_000_000, 450_000_000])))
    first, second = sorted((instant(), instant()))
    if first == second:
        second += timedelta(seconds=1)
    return first, second


@st.composite
def stats_snapshots(draw: st.DrawFn) -> Snapshots:
    """SHOW STATS of two application databases and the admin console, with restarts."""
    stamps = _times(draw, draw(st.integers(2, 10)))
    state = {db: [draw(st.integers(10**6, 10**9)) for _ in range(3)] for db in DATABASES}
    rows = []
    for stamp in stamps:
        for db in DATABASES:
            if not draw(st.booleans()) and db != "app1":
                continue  # a database missing from a snapshot (not yet, or no longer there)
            xacts = draw(st.integers(0, 5000))
            step = [xacts, xacts * draw(st.integers(0, 50_000)), draw(st.integers(0, 10**6))]
            restart = draw(st.integers(0, 6)) == 0
            if restart and all(new < old or old == 0 for new, old in zip(step, state[db],
                                                                       strict=True)):
                state[db] = step  # PgBouncer restarted: counting again from zero
            else:
                state[db] = [old + new for old, new in zip(state[db], step, strict=True)]
            count, busy, wait = state[db]
            rows.append({"timestamp": stamp, "database": db, "total_xact_count": count,
                         "total_query_count": count, "total_received": 0, "total_sent": 0,
                         "total_xact_time": busy, "total_query_time": busy,
                         "total_wait_time": wait})
    start, end = _window(draw, stamps)
    return Snapshots(rows, start, end)


@st.composite
def pools_snapshots(draw: st.DrawFn) -> Snapshots:
    """SHOW POOLS with several pools per snapshot, the admin console's among them."""
    stamps = _times(draw, draw(st.integers(1, 8)))
    rows = []
    for stamp in stamps:
        for db in DATABASES:
            for user in ("web", "worker"):
                if draw(st.integers(0, 2)) == 0 and (db, user) != ("app1", "web"):
                    continue
                rows.append({"timestamp": stamp, "database": db, "user": user,
                             "cl_active": 1, "cl_waiting": draw(st.integers(0, 30)),
                             "sv_active": 1, "sv_idle": 0, "sv_used": 0, "sv_tested": 0,
                             "sv_login": 0, "maxwait": draw(st.integers(0, 7)),
                             "maxwait_us": draw(st.integers(0, 999_999)),
                             "pool_mode": "transaction"})
    start, end = _window(draw, stamps)
    return Snapshots(rows, start, end)


@st.composite
def statement_snapshots(draw: st.DrawFn) -> Snapshots:
    """pg_stat_statements of one statement run by several roles, in two databases, top level
    and nested, with resets of the view."""
    keys = draw(st.lists(st.sampled_from(STATEMENT_KEYS), min_size=1, max_size=5, unique=True))
    stamps = _times(draw, draw(st.integers(2, 8)))
    state = {key: (draw(st.integers(0, 10**6)), float(draw(st.integers(0, 10**8))))
             for key in keys}
    rows = []
    for stamp in stamps:
        for key in keys:
            if draw(st.integers(0, 4)) == 0 and key != keys[0]:
                continue
            calls = draw(st.integers(0, 200))
            spent = calls * draw(st.sampled_from([0.05, 0.5, 2.0, 99.9, 100.0, 180.25]))
            if draw(st.integers(0, 5)) == 0:
                state[key] = (calls, spent)  # pg_stat_statements_reset(): from zero again
            else:
                state[key] = (state[key][0] + calls, state[key][1] + spent)
            userid, dbid, queryid, toplevel = key
            rows.append({"timestamp": stamp, "userid": userid, "dbid": dbid,
                         "queryid": queryid, "toplevel": "t" if toplevel else "f",
                         "query": "SELECT * FROM shows WHERE id = $1",
                         "calls": state[key][0], "total_exec_time": repr(state[key][1])})
    start, end = _window(draw, stamps)
    return Snapshots(rows, start, end)


def _load(rows: list[dict[str, object]], kind: str, read):  # type: ignore[no-untyped-def]
    """Write the rows as a psql --csv export, ingest it into a fresh store, and read."""
    frame = pd.DataFrame(rows)
    frame["timestamp"] = [t.isoformat() for t in frame["timestamp"]]  # type: ignore[union-attr]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.csv"
        frame.to_csv(path, index=False)
        con = open_store(":memory:")
        try:
            assert ingest_file(con, path, kind=kind).loaded == len(rows)
            return read(con)
        finally:
            con.close()


def _intervals(snapshots: list[dict[str, object]], counters: tuple[str, ...],
               start: datetime, end: datetime
               ) -> list[tuple[dict[str, object], dict[str, float], float, set[str]]]:
    """The oracle's intervals of one counter series: (closing row, increases, seconds, the
    counters that went down) for each pair of consecutive snapshots before ``end`` closing in
    [start, end)."""
    ordered = sorted((r for r in snapshots if r["timestamp"] < end),  # type: ignore[operator]
                     key=lambda r: r["timestamp"])  # type: ignore[arg-type, return-value]
    out = []
    for before, after in itertools.pairwise(ordered):
        if not start <= after["timestamp"] < end:  # type: ignore[operator]
            continue
        down = {name for name in counters
                if float(after[name]) < float(before[name])}  # type: ignore[arg-type]
        # Any counter down: the counters were reset together, the new values are the increase.
        increase = {name: float(after[name]) - (0.0 if down else float(before[name]))  # type: ignore[arg-type]
                    for name in counters}
        seconds = (after["timestamp"] - before["timestamp"]).total_seconds()  # type: ignore[operator]
        out.append((after, increase, seconds, down))
    return out


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=stats_snapshots())
def test_pgbouncer_rates_match_the_oracle(case: Snapshots) -> None:
    """Per snapshot in the window: transactions/s summed over the application databases, mean
    transaction and wait time weighted by transactions, restarts, as the oracle counts them."""
    got = _load(case.rows, "pgbouncer-stats",
                lambda con: pgbouncer_rates(con, case.start, case.end))
    per_ts: dict[datetime, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for db in ("app1", "app2"):
        rows = [r for r in case.rows if r["database"] == db]
        for after, inc, seconds, down in _intervals(
                rows, ("total_xact_count", "total_xact_time", "total_wait_time"),
                case.start, case.end):
            cell = per_ts[after["timestamp"]]  # type: ignore[index]
            cell["xacts"] += inc["total_xact_count"]
            cell["xact_us"] += inc["total_xact_time"]
            cell["wait_us"] += inc["total_wait_time"]
            cell["tps"] += inc["total_xact_count"] / seconds
            cell["databases"] += 1
            cell["restarted"] = max(cell["restarted"], float(bool(down)))
    assert [t.to_pydatetime() for t in got["ts"]] == sorted(per_ts)
    for row, ts in zip(got.itertuples(), sorted(per_ts), strict=True):
        cell = per_ts[ts]
        assert row.databases == cell["databases"]
        assert bool(row.restarted) == bool(cell["restarted"])
        assert row.xacts == cell["xacts"] and row.xact_us == cell["xact_us"]
        assert row.tps == pytest.approx(cell["tps"], rel=1e-12)
        if cell["xacts"]:
            assert row.mean_xact_ms == pytest.approx(cell["xact_us"] / cell["xacts"] / 1000)
            assert row.mean_wait_ms == pytest.approx(cell["wait_us"] / cell["xacts"] / 1000)
        else:
            assert math.isnan(row.mean_xact_ms) and math.isnan(row.mean_wait_ms)


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=pools_snapshots())
def test_pgbouncer_waits_match_the_oracle(case: Snapshots) -> None:
    """Per snapshot in the window: waiting clients summed over the application pools and the
    longest wait (maxwait s + maxwait_us us), as the oracle counts them."""
    got = _load(case.rows, "pgbouncer-pools",
                lambda con: pgbouncer_waits(con, case.start, case.end))
    expected: dict[datetime, tuple[int, int]] = {}
    for r in case.rows:
        if r["database"] == "pgbouncer" or not case.start <= r["timestamp"] < case.end:  # type: ignore[operator]
            continue
        waiting, longest = expected.get(r["timestamp"], (0, 0))  # type: ignore[arg-type]
        wait_us = int(r["maxwait"]) * 1_000_000 + int(r["maxwait_us"])  # type: ignore[call-overload]
        expected[r["timestamp"]] = (waiting + int(r["cl_waiting"]),  # type: ignore[index, call-overload]
                                    max(longest, wait_us))
    assert [t.to_pydatetime() for t in got["ts"]] == sorted(expected)
    assert got["clients_waiting"].tolist() == [expected[t][0] for t in sorted(expected)]
    assert got["longest_wait_ms"].tolist() == [expected[t][1] / 1000 for t in sorted(expected)]


@settings(max_examples=EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=statement_snapshots())
def test_statement_times_match_the_oracle(case: Snapshots) -> None:
    """Per statement key: calls, execution time and mean of the intervals closing in the
    window, differenced per (userid, dbid, queryid, toplevel) with resets, as the oracle
    counts them; keys without calls are left out."""
    got = _load(case.rows, "pg-statements",
                lambda con: statement_times(con, case.start, case.end))
    expected = {}
    for key in STATEMENT_KEYS:
        userid, dbid, queryid, toplevel = key
        rows = [r for r in case.rows if (r["userid"], r["dbid"], r["queryid"], r["toplevel"])
                == (userid, dbid, queryid, "t" if toplevel else "f")]
        intervals = _intervals(rows, ("calls", "total_exec_time"), case.start, case.end)
        calls = sum(inc["calls"] for _, inc, _, _ in intervals)
        if calls > 0:
            spent = math.fsum(inc["total_exec_time"] for _, inc, _, _ in intervals)
            expected[key] = (int(calls), spent, sum(bool(down) for *_, down in intervals))
    found = {(r.userid, r.dbid, r.queryid, bool(r.toplevel)): (int(r.calls), r.exec_ms,
                                                              int(r.resets))
             for r in got.itertuples()}
    assert set(found) == set(expected)
    for key, (calls, spent, resets) in expected.items():
        assert found[key][0] == calls and found[key][2] == resets
        assert found[key][1] == pytest.approx(spent, rel=1e-9, abs=1e-6)
    means = got["mean_ms"].to_numpy()
    assert (abs(means - got["exec_ms"].to_numpy() / got["calls"].to_numpy()) < 1e-9).all()
