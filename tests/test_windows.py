"""SLO windows: rolling and calendar-aligned, cut in the configured time zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mysetlist_slo import ingest_file
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.budgets import budget_report
from mysetlist_slo.slo.sli import period_end, window_bounds


@pytest.mark.parametrize(("at", "days"), [
    (datetime(2027, 2, 10, tzinfo=UTC), 28),
    (datetime(2028, 2, 10, tzinfo=UTC), 29),
    (datetime(2027, 4, 30, 23, 59, tzinfo=UTC), 30),
    (datetime(2027, 1, 1, 0, 0, tzinfo=UTC), 31),
])
def test_calendar_months_of_28_to_31_days(at: datetime, days: int) -> None:
    """A month window starts on the 1st and lasts the month's own number of days."""
    start, end = window_bounds("month", at)
    assert start == at.replace(day=1, hour=0, minute=0) and end == at
    assert period_end("month", start) - start == timedelta(days=days)


def test_month_in_a_time_zone_across_dst() -> None:
    """November in New York starts at 04:00 UTC (EDT) and ends at 05:00 UTC (EST)."""
    start, _ = window_bounds("month", datetime(2026, 11, 15, 12, tzinfo=UTC), "America/New_York")
    assert start == datetime(2026, 11, 1, 4, tzinfo=UTC)
    assert period_end("month", start, "America/New_York") == datetime(2026, 12, 1, 5, tzinfo=UTC)


def test_iso_week_starts_on_monday_local() -> None:
    """A week window starts at Monday 00:00 in the report's zone."""
    at = datetime(2026, 11, 19, 3, tzinfo=UTC)  # Thursday 12:00 in Tokyo
    start, _ = window_bounds("week", at, "Asia/Tokyo")
    assert start == datetime(2026, 11, 15, 15, tzinfo=UTC)  # Monday 16 Nov 00:00 JST
    assert period_end("week", start, "Asia/Tokyo") - start == timedelta(days=7)


def test_rolling_window() -> None:
    """A rolling window ends at the given time and spans its duration."""
    at = datetime(2026, 11, 23, tzinfo=UTC)
    assert window_bounds("28d", at) == (at - timedelta(days=28), at)


def test_report_period_follows_the_time_zone(store, write_log) -> None:
    """An error just before local midnight of the 1st is last month's; one just after counts."""
    rows = [("2026-11-01T03:59:00Z", 500), ("2026-11-01T04:00:00Z", 500),
            ("2026-11-10T00:00:00Z", 200)]
    ingest_file(store, write_log("r.jsonl", [json.dumps(
        {"timestamp": t, "path": "/", "status": s}) for t, s in rows]))
    config = parse_config("""
timezone: America/New_York
slos: [{name: m, sli: availability, objective: 99.9, window: month}]
""")
    report = budget_report(store, config.slos[0], datetime(2026, 11, 20, tzinfo=UTC),
                           config.timezone)
    assert (report.total, report.bad) == (2, 1)
    assert report.window_start == datetime(2026, 11, 1, 4, tzinfo=UTC)
