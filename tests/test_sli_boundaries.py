"""Hand-worked cases for slo/sli.py and slo/incidents.py, written for the survivors of the
mutation run of issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd

from mysetlist_slo import ingest_file
from mysetlist_slo.config import ProbesConfig, parse_config
from mysetlist_slo.slo.incidents import probe_outages, uptime_minutes
from mysetlist_slo.slo.sli import (
    dense_minutes,
    event_minutes,
    period_end,
    timeslices,
    window_bounds,
)

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


def _probe_checks(pattern: str | dict[str, str]) -> list[str]:
    """One check a minute per location from T0 ("a" for a plain string): "." ok, "x" failed."""
    patterns = {"a": pattern} if isinstance(pattern, str) else pattern
    lines = ["timestamp,target,location,ok,status,latency_ms"]
    for location, marks in patterns.items():
        for minute, mark in enumerate(marks):
            ts = (T0 + minute * MIN).strftime("%Y-%m-%dT%H:%M:%SZ")
            ok = "true" if mark == "." else "false"
            lines.append(f"{ts},https://x/health,{location},{ok},200,12")
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


def test_recovery_in_exactly_the_target_meets_it(store, write_log) -> None:
    """Checks "..xxxxx....": failed at minutes 2-6, good again at 7: 5 minutes to recover,
    exactly the 5-minute target, which counts as met; 1 location, 5 failed checks."""
    ingest_file(store, write_log("probes.csv", _probe_checks("..xxxxx....")))
    found = probe_outages(store, T0, T0 + 11 * MIN)
    assert [(r.start, r.end, r.time_to_recover, r.locations, r.failed_checks, r.within_target)
            for r in found.itertuples()] == [
        (T0 + 2 * MIN, T0 + 7 * MIN, 5 * MIN, 1, 5, True)]


def test_an_outage_over_at_the_window_start_is_not_the_windows(store, write_log) -> None:
    """Checks "..xx....": the outage is [T0+2m, T0+4m); a window from T0+4m has none, a
    window from T0+3m has it whole (from T0+2m)."""
    ingest_file(store, write_log("probes.csv", _probe_checks("..xx....")))
    assert probe_outages(store, T0 + 4 * MIN, T0 + 8 * MIN).empty
    during = probe_outages(store, T0 + 3 * MIN, T0 + 8 * MIN)
    assert [(r.start, r.end) for r in during.itertuples()] == [(T0 + 2 * MIN, T0 + 4 * MIN)]


def test_an_outage_lasts_while_enough_locations_still_fail(store, write_log) -> None:
    """min_locations 1: "a" fails at minutes 2-5 and "b" at 2-3; the outage lasts until "a"
    recovers at minute 6, not until "b" does at 4: [T0+2m, T0+6m), 2 locations, 6 checks."""
    ingest_file(store, write_log("probes.csv", _probe_checks(
        {"a": "..xxxx....", "b": "..xx......"})))
    found = probe_outages(store, T0, T0 + 10 * MIN, ProbesConfig(min_locations=1))
    assert [(r.start, r.end, r.locations, r.failed_checks) for r in found.itertuples()] == [
        (T0 + 2 * MIN, T0 + 6 * MIN, 2, 6)]


def test_a_run_starting_as_the_outage_ends_is_not_part_of_it(store, write_log) -> None:
    """min_locations 2: "a" (minutes 2-5) and "b" (4-5) both recover at 6, when "c" starts
    failing (6-7) alone: the outage is [T0+2m, T0+6m) with 2 locations and 4 + 2 = 6 failed
    checks; "c" is not a member of it."""
    ingest_file(store, write_log("probes.csv", _probe_checks(
        {"a": "..xxxx......", "b": "....xx......", "c": "......xx...."})))
    found = probe_outages(store, T0, T0 + 12 * MIN, ProbesConfig(min_locations=2))
    assert [(r.start, r.end, r.locations, r.failed_checks) for r in found.itertuples()] == [
        (T0 + 2 * MIN, T0 + 6 * MIN, 2, 6)]


def test_calendar_windows_start_at_midnight_to_the_microsecond() -> None:
    """At 15 Nov 2026 (a Sunday) 12:34:56.789 UTC the month window starts at 1 Nov 00:00:00.000
    and the week window at Monday 9 Nov 00:00:00.000, seconds and microseconds cleared too."""
    at = datetime(2026, 11, 15, 12, 34, 56, 789, tzinfo=UTC)
    assert window_bounds("month", at) == (datetime(2026, 11, 1, tzinfo=UTC), at)
    assert window_bounds("week", at) == (datetime(2026, 11, 9, tzinfo=UTC), at)


def test_availability_events_keep_to_the_slos_routes(store, write_log) -> None:
    """At T0: 10 requests to /show/1 (1 is a 500) and 10 to /artist/x (5 are 503s). An
    availability SLO on routes ["/show/*"] counts the show page only: 10 events, 9 good; on
    every route, 20 events, 14 good; int64 counts."""
    rows = ([("/show/1", 500 if i == 0 else 200) for i in range(10)]
            + [("/artist/x", 503 if i < 5 else 200) for i in range(10)])
    ingest_file(store, write_log("r.jsonl", [json.dumps(
        {"timestamp": (T0 + timedelta(seconds=i)).isoformat(), "path": p, "status": st})
        for i, (p, st) in enumerate(rows)]))
    shows = parse_config(
        "slos: [{name: a, sli: availability, objective: 99, routes: ['/show/*']}]").slos[0]
    events = event_minutes(store, shows, T0, T0 + MIN)
    assert events[["good", "total"]].values.tolist() == [[9, 10]]
    # Integer counts in exactly these columns (DuckDB's sums come back as floats).
    assert list(events.columns) == ["minute", "good", "total"]
    assert str(events["good"].dtype) == "int64" and str(events["total"].dtype) == "int64"
    every = parse_config("slos: [{name: a, sli: availability, objective: 99}]").slos[0]
    assert event_minutes(store, every, T0, T0 + MIN)[["good", "total"]].values.tolist() == [
        [14, 20]]
