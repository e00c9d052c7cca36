"""Hand-worked cases for slo/sli.py and slo/incidents.py, written for the survivors of the
mutation run of issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from mysetlist_slo import ingest_file
from mysetlist_slo.slo.incidents import uptime_minutes
from mysetlist_slo.slo.sli import dense_minutes, period_end, timeslices

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def test_dense_minutes_fills_the_gaps_with_zero_events() -> None:
    """Events at minutes 1 and 3 of a 4-minute window [T0, T0+4m) give the 4 UTC minutes
    T0..T0+3m (the end excluded), 0/0 at minutes 0 and 2, integer counts, column "minute"."""
    events = pd.DataFrame({"minute": pd.to_datetime([T0 + MIN, T0 + 3 * MIN], utc=True),
                           "good": [5, 0], "total": [7, 2]})
    dense = dense_minutes(events, T0, T0 + 4 * MIN)
    assert list(dense.columns) == ["minute", "good", "total"]
    assert list(dense["minute"]) == [pd.Timestamp(T0 + k * MIN) for k in range(4)]
    assert str(dense["minute"].dt.tz) == "UTC"
    assert dense["good"].tolist() == [0, 5, 0, 0]
    assert dense["total"].tolist() == [0, 7, 0, 2]
    assert dense["good"].dtype.kind == "i" and dense["total"].dtype.kind == "i"


def test_rolling_period_ends_one_window_after_its_start() -> None:
    """A rolling 28d window that starts at T0 lasts to T0 + 28 days (not before T0)."""
    assert period_end("28d", T0) == T0 + timedelta(days=28)
    assert period_end("6h", T0) == datetime(2026, 11, 2, 16, 0, tzinfo=UTC)


def _minutes(counts: list[tuple[int, int]]) -> pd.DataFrame:
    return pd.DataFrame({"minute": pd.to_datetime([T0 + k * MIN for k in range(len(counts))],
                                                  utc=True),
                         "good": [g for g, _ in counts], "total": [t for _, t in counts]})


def test_timeslices_at_the_target_are_good_and_empty_minutes_do_not_count() -> None:
    """Target 99 %: 99/100 is exactly at it (good), 97/100 is below (bad), 0/0 is no timeslice,
    1000/1000 is good: 3 integer timeslices, good 1, 0, 1."""
    slices = timeslices(_minutes([(99, 100), (97, 100), (0, 0), (1000, 1000)]), 99.0)
    assert slices["minute"].tolist() == [pd.Timestamp(T0 + k * MIN) for k in (0, 1, 3)]
    assert slices["good"].tolist() == [1, 0, 1]
    assert slices["total"].tolist() == [1, 1, 1]
    assert str(slices["good"].dtype) == "int64" and str(slices["total"].dtype) == "int64"


def test_timeslices_compare_a_fractional_target_exactly() -> None:
    """Target 97.5 %: 97/100 is 0.5 point below it (bad), 98/100 above (good), 39/40 = 97.5 %
    exactly (good)."""
    slices = timeslices(_minutes([(97, 100), (98, 100), (39, 40)]), 97.5)
    assert slices["good"].tolist() == [0, 1, 1]


def _probe_checks(pattern: str) -> list[str]:
    """One check a minute at location "a" from T0: "." ok, "x" failed."""
    lines = ["timestamp,target,location,ok,status,latency_ms"]
    for minute, mark in enumerate(pattern):
        ts = (T0 + minute * MIN).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{ts},https://x/health,a,{'true' if mark == '.' else 'false'},200,12")
    return lines


def test_uptime_minutes_lose_the_minutes_an_outage_overlaps(store, write_log) -> None:
    """Checks "..xxx..." (default: 2 failures in a row confirm): the outage spans
    [T0+2m, T0+5m), so of minutes 0..7 exactly 2, 3 and 4 are bad; from T0+3m the outage is
    read whole and minutes 3 and 4 are bad. One integer event per minute."""
    ingest_file(store, write_log("probes.csv", _probe_checks("..xxx...")))
    minutes = uptime_minutes(store, T0, T0 + 8 * MIN)
    assert minutes["minute"].tolist() == [pd.Timestamp(T0 + k * MIN) for k in range(8)]
    assert minutes["good"].tolist() == [1, 1, 0, 0, 0, 1, 1, 1]
    assert minutes["total"].tolist() == [1] * 8
    assert str(minutes["good"].dtype) == "int64" and str(minutes["total"].dtype) == "int64"
    later = uptime_minutes(store, T0 + 3 * MIN, T0 + 8 * MIN)
    assert later["good"].tolist() == [0, 0, 1, 1, 1]
