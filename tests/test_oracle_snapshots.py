"""The oracle suite for snapshot-based SLIs: random pg_stat_statements snapshots (several roles,
databases and nested statements, counter resets, snapshots off the minute) ingested through the
public path, and the db-query-time SLI compared with a brute-force oracle over the snapshots.

The oracle shares no code with the package and works from the README's definition, not the
package's per-minute SQL: within each (userid, dbid, queryid, toplevel) key the calls of an
interval are the difference of two snapshots (the later count itself after a reset), good when
their mean time is under the threshold; the calls up to an instant t of the interval
[previous, ts) are floor(calls x (t - previous) / length), so the calls inside a window are the
difference of that function at the window's two ends, clipped to the interval. A minute holds
data when an interval overlaps it. CI runs ``ORACLE_EXAMPLES`` examples; ``-m fuzz`` many more.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo import budget_report, ingest_file, open_store
from mysetlist_slo.config import parse_config

ORACLE_EXAMPLES = int(os.environ.get("MYSETLIST_ORACLE_EXAMPLES", "50"))
FUZZ_EXAMPLES = int(os.environ.get("MYSETLIST_FUZZ_EXAMPLES", "1000"))
ORIGIN = datetime(2026, 11, 20, 6, tzinfo=UTC)
WINDOWS = {"1h": timedelta(hours=1), "6h": timedelta(hours=6), "1d": timedelta(days=1)}
OBJECTIVES = ["90", "99", "99.5", "99.9"]
THRESHOLD_MS = 100
# Keys as the view has them: two roles, two databases, a statement nested in a function.
KEYS = [("10", "5", "q1", True), ("11", "5", "q1", True), ("10", "6", "q1", True),
        ("10", "5", "q1", False), ("10", "5", "q2", True)]
_SETTINGS = {"deadline": None, "derandomize": True, "database": None,
             "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}


@dataclass(frozen=True)
class Snapshot:
    ts: datetime
    key: tuple[str, str, str, bool]
    calls: int
    total_ms: float


@dataclass(frozen=True)
class Case:
    snapshots: list[Snapshot]
    window: str
    objective: str
    at: datetime  # the reading time; the package floors it to the minute


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Snapshots every few minutes to hours per key, at any second; counters that grow or reset;
    per-interval mean times on both sides of (and exactly at) the threshold."""
    snapshots: list[Snapshot] = []
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)):
        ts = ORIGIN + timedelta(seconds=draw(st.integers(0, 3 * 3600)))
        calls, total_ms = 0, 0.0
        for _ in range(draw(st.integers(2, 8))):
            if draw(st.integers(0, 5)) == 0:  # pg_stat_statements_reset()
                calls, total_ms = 0, 0.0
            added = draw(st.integers(0, 5_000))
            mean = draw(st.sampled_from([1.5, 40.0, 99.0, 100.0, 100.5, 250.0]))
            calls, total_ms = calls + added, total_ms + added * mean
            snapshots.append(Snapshot(ts, key, calls, total_ms))
            ts += timedelta(seconds=draw(st.integers(30, 5 * 3600)))
    last = max(s.ts for s in snapshots)
    at = ORIGIN + timedelta(seconds=draw(st.integers(0, int((last - ORIGIN).total_seconds())
                                                     + 7200)))
    return Case(snapshots, draw(st.sampled_from(sorted(WINDOWS))),
                draw(st.sampled_from(OBJECTIVES)), at)


def _us(t: datetime) -> int:
    return (t - ORIGIN) // timedelta(microseconds=1)


def oracle_counts(case: Case, start: datetime, end: datetime) -> tuple[int, int]:
    """Return (good, total) calls inside [start, end), straight from the definition."""
    good = total = 0
    for key in {s.key for s in case.snapshots}:
        series = sorted((s for s in case.snapshots if s.key == key), key=lambda s: s.ts)
        for before, after in itertools.pairwise(series):
            reset = after.calls < before.calls
            calls = after.calls if reset else after.calls - before.calls
            spent = after.total_ms if reset else after.total_ms - before.total_ms
            lo, hi = max(before.ts, start), min(after.ts, end)
            if calls == 0 or lo >= hi:
                continue
            length = _us(after.ts) - _us(before.ts)

            def upto(t: datetime, calls: int = calls, first: datetime = before.ts,
                     length: int = length) -> int:
                return calls * (_us(t) - _us(first)) // length

            inside = upto(hi) - upto(lo)
            total += inside
            if Fraction(spent) / calls < THRESHOLD_MS:
                good += inside
    return good, total


def oracle_minutes(case: Case, start: datetime, end: datetime) -> int:
    """Return the minutes of [start, end) that some snapshot interval overlaps."""
    covered = 0
    minute = start
    spans: list[tuple[datetime, datetime]] = []
    for key in {s.key for s in case.snapshots}:
        spans += itertools.pairwise(sorted(s.ts for s in case.snapshots if s.key == key))
    while minute < end:
        nxt = minute + timedelta(minutes=1)
        covered += any(a < nxt and b > minute for a, b in spans)
        minute = nxt
    return covered


def write_export(case: Case, path: Path) -> Path:
    """Write the snapshots as the pg_stat_statements CSV export the package reads."""
    lines = ["timestamp,userid,dbid,queryid,toplevel,query,calls,total_exec_time,"
             "mean_exec_time,rows"]
    for s in case.snapshots:
        mean = s.total_ms / s.calls if s.calls else 0
        lines.append(f"{s.ts.isoformat()},{s.key[0]},{s.key[1]},{s.key[2]},"
                     f"{str(s.key[3]).lower()},select {s.key[2]},{s.calls},{s.total_ms!r},"
                     f"{mean!r},1")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def check(case: Case) -> None:
    slo = parse_config(f"""
min_events: 1
slos: [{{name: db, sli: db_query_time, threshold_ms: {THRESHOLD_MS},
        objective: {case.objective}, window: {case.window}}}]
""").slos[0]
    with tempfile.TemporaryDirectory() as scratch:
        con = open_store(Path(scratch) / "store.duckdb")
        try:
            ingest_file(con, write_export(case, Path(scratch) / "pss.csv"))
            report = budget_report(con, slo, case.at)
        finally:
            con.close()
    end = case.at.replace(second=0, microsecond=0)
    start = end - WINDOWS[case.window]
    good, total = oracle_counts(case, start, end)
    assert (report.good, report.total) == (good, total)
    assert report.minutes_with_data == oracle_minutes(case, start, end)
    allowed = 1 - Fraction(case.objective) / 100
    if total:
        expected = 1 - Fraction(total - good) / (allowed * total)
        assert report.budget_remaining == pytest.approx(float(expected), rel=1e-12, abs=1e-12)
    for lookback, burn in ((timedelta(hours=1), report.burn_rate_1h),
                           (timedelta(hours=24), report.burn_rate_24h)):
        g, t = oracle_counts(case, end - lookback, end)
        if t == 0:
            assert burn is None
        else:
            assert burn == pytest.approx(float(Fraction(t - g, t) / allowed), rel=1e-12)


@settings(max_examples=ORACLE_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_statement_sli_matches_the_oracle(case: Case) -> None:
    """Calls, good calls, covered minutes, budget left and 1 h/24 h burn of the db-query-time
    SLI equal the brute-force oracle over the raw snapshots."""
    check(case)


@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_statement_sli_matches_the_oracle_fuzz(fuzz_selected: None, case: Case) -> None:
    """As above, with many more examples (``pytest -m fuzz``)."""
    check(case)
