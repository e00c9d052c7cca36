"""Snapshot-based SLIs (db-query-time from pg_stat_statements): calls belong to the time their
interval spans, and coverage is the share of the window the intervals cover."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mysetlist_slo import ingest_file
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.budgets import budget_report

T0 = datetime(2026, 11, 20, 10, 0, 30, tzinfo=UTC)
HEADER = "timestamp,queryid,query,calls,total_exec_time,mean_exec_time,rows\n"


def slo(window: str = "1h", objective: float = 99.0):
    return parse_config(f"""
min_events: 1
slos: [{{name: db, sli: db_query_time, threshold_ms: 100, objective: {objective},
        window: {window}}}]
""").slos[0]


def write_snapshots(path: Path, rows: list[tuple[datetime, str, int, float]]) -> Path:
    """Write a pg_stat_statements export: (snapshot time, queryid, calls, total ms)."""
    path.write_text(HEADER + "".join(
        f"{t.isoformat()},{q},select {q},{c},{ms},{ms / c if c else 0},1\n"
        for t, q, c, ms in rows))
    return path


def test_calls_spread_over_the_interval_they_span(store, tmp_path) -> None:
    """600 calls between snapshots at 10:00:30 and 11:00:30 are 10 a minute. A 1 h window ending
    10:30 holds 30 s of 10:00 (floor(600 x 30 / 3600) = 5 calls) and 29 whole minutes (290):
    295 calls over 30 covered minutes; the window ending 11:30 holds the other 305. None are
    dated at the closing snapshot's minute."""
    ingest_file(store, write_snapshots(tmp_path / "pss.csv", [
        (T0, "a", 0, 0.0), (T0 + timedelta(hours=1), "a", 600, 1200.0)]))
    first = budget_report(store, slo(), datetime(2026, 11, 20, 10, 30, tzinfo=UTC))
    assert (first.good, first.total) == (295, 295)
    assert (first.minutes_with_data, first.window_minutes) == (30, 60)
    assert first.burn_rate_1h == 0
    second = budget_report(store, slo(), datetime(2026, 11, 20, 11, 30, tzinfo=UTC))
    assert second.total == 305
    assert second.minutes_with_data == 31  # 10:30 to 11:00, the last minute in part


def test_slow_interval_is_bad_for_the_time_it_spans(store, tmp_path) -> None:
    """Two statements between the same snapshots: 900 calls at 2 ms (good), 100 at 150 ms (bad
    against 100 ms). Over the whole interval 900 of 1,000 are good; the 1 h burn at the
    interval's end sees the 10 % slow share: burn 10 against 99 %."""
    first = T0.replace(second=0)
    later = first + timedelta(hours=1)
    ingest_file(store, write_snapshots(tmp_path / "pss.csv", [
        (first, "a", 100, 200.0), (first, "b", 10, 1500.0),
        (later, "a", 1000, 2000.0), (later, "b", 110, 16500.0)]))
    report = budget_report(store, slo(window="1d"), later)
    assert (report.good, report.total) == (900, 1000)
    assert report.burn_rate_1h == pytest.approx(10)


def test_coverage_is_the_share_of_the_window_spanned(store, tmp_path) -> None:
    """Snapshots every 6 hours for 29 days cover a 28-day window wholly: coverage 40,320 of
    40,320 minutes, not the 112 minutes in which a snapshot landed."""
    end = datetime(2026, 11, 23, tzinfo=UTC)
    rows = [(end - timedelta(days=29) + timedelta(hours=6 * i, seconds=7), "a", 10 * i,
             20.0 * i) for i in range(29 * 4 + 2)]
    ingest_file(store, write_snapshots(tmp_path / "pss.csv", rows))
    report = budget_report(store, slo(window="28d"), end)
    assert (report.minutes_with_data, report.window_minutes) == (40_320, 40_320)
    # 10 calls per 6 h: 28 days hold 1,120 calls (the boundary intervals split exactly, both
    # ends being 7 s after the 6-hour marks).
    assert report.total == 1120 and report.good == 1120
