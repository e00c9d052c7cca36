"""Outages from health-check probes: confirmation, locations, time to recover, uptime SLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import DEMO_END

from mysetlist_slo import DemoManifest, ingest_file, load_config, open_store
from mysetlist_slo.config import ProbesConfig
from mysetlist_slo.slo.budgets import budget_report
from mysetlist_slo.slo.incidents import probe_outages

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HEADER = "timestamp,target,location,ok,status,latency_ms"


def checks(pattern: dict[str, str]) -> list[str]:
    """One check a minute per location; pattern letters: '.' ok, 'x' failed."""
    lines = [HEADER]
    for location, marks in pattern.items():
        for minute, mark in enumerate(marks):
            ts = (T0 + timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
            ok, status = ("true", 200) if mark == "." else ("false", 503)
            lines.append(f"{ts},https://x/health,{location},{ok},{status},12")
    return lines


@pytest.fixture(name="load")
def fixture_load(store, write_log):
    """Ingest a probe pattern and return the store."""
    def load(pattern: dict[str, str]):
        ingest_file(store, write_log("probes.csv", checks(pattern)))
        return store
    return load


def outages(store, **settings) -> list[tuple]:
    frame = probe_outages(store, T0, T0 + timedelta(hours=1), ProbesConfig(**settings))
    return [(r.start, r.end, r.locations, r.within_target) for r in frame.itertuples()]


def test_one_failed_check_is_a_blip(load) -> None:
    """A single failed check is not an outage; two in a row are, from the first failure."""
    store = load({"a": "..x...xx...."})
    assert outages(store) == [(T0 + timedelta(minutes=6), T0 + timedelta(minutes=8), 1, True)]


def test_recovery_target(load) -> None:
    """Down for 6 minutes misses the 5-minute target; the end is the first good check."""
    store = load({"a": "..xxxxxx...."})
    ((start, end, _, within),) = outages(store)
    assert end - start == timedelta(minutes=6) and within is False


def test_locations_must_agree(load) -> None:
    """With min_locations 2, one failing location is not an outage; overlapping ones are,
    from the earliest failure until fewer than two still fail."""
    store = load({"a": "..xxxx......", "b": "....xxxx....", "c": "xx.........."})
    assert outages(store, min_locations=2) == [
        (T0 + timedelta(minutes=2), T0 + timedelta(minutes=6), 2, True)]
    assert len(outages(store, min_locations=3)) == 0


def test_still_down_at_the_end(load) -> None:
    """An outage that has not recovered ends with the period and is marked as missing."""
    store = load({"a": "........xxxx"})
    ((start, end, _, within),) = outages(store)
    assert start == T0 + timedelta(minutes=8) and end == T0 + timedelta(hours=1)
    assert within is False


def test_demo_outage_from_probes(demo: DemoManifest, demo_store_path) -> None:
    """The demo's 7-minute outage is the only outage its probes confirm; it missed the
    5-minute recovery target; the uptime SLI lost those minutes only."""
    con = open_store(demo_store_path, read_only=True)
    found = probe_outages(con, DEMO_END - timedelta(days=14), DEMO_END)
    outage = demo.event("outage")
    assert len(found) == 1
    row = found.iloc[0]
    assert outage.start <= row["start"] < outage.start + timedelta(seconds=10)
    assert timedelta(minutes=7) <= row["time_to_recover"] < timedelta(minutes=7, seconds=10)
    assert (row["locations"], bool(row["within_target"])) == (3, False)
    config = load_config()
    uptime = next(s for s in config.slos if s.sli == "probe_uptime")
    report = budget_report(con, uptime, DEMO_END, "UTC", 1, config.probes)
    con.close()
    assert report.total == 14 * 24 * 60  # every minute had checks
    assert 7 <= report.bad <= 8  # the minutes the outage touched
