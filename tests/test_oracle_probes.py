"""The oracle suite for probe uptime: random health-check results (several targets and
locations, gaps, failures straddling the window's start, checks at any microsecond), random
confirmation rules and windows (not on the minute; rolling and calendar in zones with DST
changes), loaded through the public path and compared with a brute-force oracle.

The oracle shares no code with the package. It works from the README's definition: at each
location a run of at least ``confirm`` failed checks in a row lasts from its first failed check
to the next successful one (or the end of the time looked at); an outage is a stretch of time
in which runs of at least ``min_locations`` locations overlap, starting at the first failed
check of the runs that confirm it (never before the target's previous outage ended) and ending
when fewer than ``min_locations`` are still failing; time to recover is judged against the
5-minute target. The uptime SLI has one event per minute with checks, bad when an outage
overlaps that minute. CI runs ``ORACLE_EXAMPLES`` examples (default 40; MYSETLIST_ORACLE_EXAMPLES);
``pytest -m fuzz`` runs many more.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo import budget_report, ingest_file, open_store
from mysetlist_slo.config import ProbesConfig, parse_config
from mysetlist_slo.slo.incidents import probe_outages, uptime_minutes

ORACLE_EXAMPLES = int(os.environ.get("MYSETLIST_ORACLE_EXAMPLES", "40"))
FUZZ_EXAMPLES = int(os.environ.get("MYSETLIST_FUZZ_EXAMPLES", "1000"))

ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
# Around 2026 DST changes (US, EU, Lord Howe) and a month start.
ANCHORS = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC),
           datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC),
           datetime(2026, 12, 1, 0, tzinfo=UTC)]
GAPS_S = [0.5, 7, 30, 60, 61.25, 120, 300, 900]
WINDOWS = ["1h", "6h", "1d", "week", "month"]
RECOVERY = pd.Timedelta(minutes=5)
MINUTE = pd.Timedelta(minutes=1)


@dataclass(frozen=True)
class Case:
    """One random set of probe results and what to read from it."""

    checks: pd.DataFrame  # ts, target, location, ok
    confirm: int
    min_locations: int
    start: pd.Timestamp  # a window for probe_outages and uptime_minutes, any microsecond
    end: pd.Timestamp
    window: str  # an SLO window read by budget_report at ``at``
    timezone: str
    at: pd.Timestamp


@st.composite
def cases(draw: st.DrawFn) -> Case:
    anchor = pd.Timestamp(draw(st.sampled_from(ANCHORS)))
    rows = []
    for target in draw(st.sampled_from([["api"], ["api", "web"]])):
        for location in ["eu", "us", "ap"][:draw(st.integers(1, 3))]:
            ts = anchor - pd.Timedelta(hours=3) + pd.Timedelta(
                microseconds=draw(st.integers(0, 3_600_000_000)))
            # Failures come in streaks, so runs of every length up to the rule appear.
            fail_share = draw(st.sampled_from([0.0, 0.2, 0.5, 0.8]))
            for _ in range(draw(st.integers(0, 20))):
                rows.append((ts, target, location, draw(st.floats(0, 1)) >= fail_share))
                ts += pd.Timedelta(seconds=draw(st.sampled_from(GAPS_S))) + pd.Timedelta(
                    microseconds=draw(st.integers(0, 999_999)))
    checks = pd.DataFrame(rows, columns=["ts", "target", "location", "ok"])
    checks["ts"] = pd.to_datetime(checks["ts"], utc=True)
    start = anchor - pd.Timedelta(hours=3) + pd.Timedelta(
        microseconds=draw(st.integers(0, 6 * 3_600_000_000)))
    end = start + pd.Timedelta(microseconds=draw(st.integers(1, 6 * 3_600_000_000)))
    at = anchor + pd.Timedelta(microseconds=draw(st.integers(-3_600_000_000,
                                                             9 * 3_600_000_000)))
    return Case(checks, draw(st.integers(1, 3)), draw(st.integers(1, 3)), start, end,
                draw(st.sampled_from(WINDOWS)), draw(st.sampled_from(ZONES)), at)


@dataclass(frozen=True)
class Run:
    """Failed checks in a row at one location."""

    start: pd.Timestamp
    end: pd.Timestamp
    location: str
    checks: int


def oracle_outages(checks: pd.DataFrame, confirm: int, min_locations: int,
                   start: pd.Timestamp, end: pd.Timestamp) -> list[tuple]:
    """Return (target, start, end, locations, failed checks, within target) of every outage
    overlapping [start, end), from every check before ``end`` (a failure that began before
    the window still counts): a brute-force reading of the definition above."""
    found = []
    for target in sorted(set(checks["target"])):
        runs: list[Run] = []
        mine = checks[(checks["target"] == target) & (checks["ts"] < end)]
        for location in sorted(set(mine["location"])):
            failed: list[pd.Timestamp] = []
            for ts, ok in mine[mine["location"] == location].sort_values("ts")[
                    ["ts", "ok"]].itertuples(index=False):
                if ok:
                    if len(failed) >= confirm:
                        runs.append(Run(failed[0], ts, location, len(failed)))
                    failed = []
                else:
                    failed.append(ts)
            if len(failed) >= confirm:
                runs.append(Run(failed[0], end, location, len(failed)))
        # Cut time at every run edge; between two edges the failing locations are constant.
        edges = sorted({r.start for r in runs} | {r.end for r in runs})
        spans: list[list[pd.Timestamp]] = []
        for left, right in itertools.pairwise(edges):
            failing = [r for r in runs if r.start <= left and r.end >= right]
            if len(failing) < min_locations:  # a location's runs never overlap
                continue
            if spans and spans[-1][1] == left:
                spans[-1][1] = right  # one outage: the failing set changed, not below the rule
            else:
                began = min(r.start for r in failing)
                if spans:
                    began = max(began, spans[-1][1])
                spans.append([began, right])
        for began, recovered in spans:
            if recovered <= start:
                continue
            members = [r for r in runs if r.start < recovered and r.end > began]
            found.append((target, began, recovered, len({r.location for r in members}),
                          sum(r.checks for r in members), recovered - began <= RECOVERY))
    return sorted(found)


def oracle_uptime(case: Case, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return (minute, good) for each minute of a check in [start, end): bad when an outage
    overlapping [start, end) overlaps the minute."""
    inside = case.checks[(case.checks["ts"] >= start) & (case.checks["ts"] < end)]
    minutes = sorted(set(inside["ts"].dt.floor("min")))
    outages = oracle_outages(case.checks, case.confirm, case.min_locations, start, end)
    good = [int(not any(o[1] < m + MINUTE and o[2] > m for o in outages)) for m in minutes]
    return pd.DataFrame({"minute": minutes, "good": good})


def calendar_start(window: str, at: pd.Timestamp, zone: str) -> pd.Timestamp:
    """Return the local midnight of the week's Monday or the month's 1st before ``at``."""
    local = at.tz_convert(ZoneInfo(zone))
    day = local.date()
    day = day - timedelta(days=day.weekday()) if window == "week" else day.replace(day=1)
    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return pd.Timestamp(midnight).tz_convert("UTC")


def load(case: Case, folder: Path):  # type: ignore[no-untyped-def]
    path = folder / "probes.csv"
    lines = ["timestamp,target,location,ok"] + [
        f"{ts.strftime('%Y-%m-%dT%H:%M:%S.%fZ')},{target},{location},{str(ok).lower()}"
        for ts, target, location, ok in case.checks.itertuples(index=False)]
    path.write_text("\n".join(lines) + "\n")
    con = open_store(folder / "store.duckdb")
    if len(case.checks):
        ingest_file(con, path)
    return con


def check(case: Case) -> None:
    settings_ = ProbesConfig(confirm=case.confirm, min_locations=case.min_locations)
    with tempfile.TemporaryDirectory() as folder:
        con = load(case, Path(folder))
        start, end = case.start.to_pydatetime(), case.end.to_pydatetime()
        got = probe_outages(con, start, end, settings_)
        got_rows = sorted((r.target, pd.Timestamp(r.start), pd.Timestamp(r.end), r.locations,
                           r.failed_checks, bool(r.within_target)) for r in got.itertuples())
        assert got_rows == oracle_outages(case.checks, case.confirm, case.min_locations,
                                          case.start, case.end)
        minutes = uptime_minutes(con, start, end, settings_)
        want = oracle_uptime(case, case.start, case.end)
        assert [pd.Timestamp(m) for m in minutes["minute"]] == list(want["minute"])
        assert list(minutes["good"]) == list(want["good"])
        assert (minutes["total"] == 1).all()

        config = parse_config(f"""
timezone: {case.timezone}
probes: {{confirm: {case.confirm}, min_locations: {case.min_locations}}}
slos: [{{name: up, sli: probe_uptime, objective: 99.9, window: {case.window},
        budgeting: timeslices}}]
""")
        report = budget_report(con, config.slos[0], case.at.to_pydatetime(), case.timezone,
                               1, config.probes)
        con.close()
    at = case.at.floor("min")  # the store counts whole minutes
    begin = (calendar_start(case.window, at, case.timezone) if case.window in ("week", "month")
             else at - pd.Timedelta(case.window.replace("d", "D")))
    window = oracle_uptime(case, begin, at)
    assert (report.total, report.good) == (len(window), int(window["good"].sum()))
    assert report.minutes_with_data == len(window)
    if len(window):
        assert report.sli == pytest.approx(100 * window["good"].mean(), rel=1e-12)
    for hours, rate in ((1, report.burn_rate_1h), (24, report.burn_rate_24h)):
        recent = oracle_uptime(case, at - pd.Timedelta(hours=hours), at)
        if len(recent) == 0:
            assert rate is None
        else:
            bad_share = 1 - recent["good"].mean()
            assert rate == pytest.approx(bad_share / 0.001, rel=1e-9, abs=1e-9)


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large])


@settings(max_examples=ORACLE_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_probe_uptime_matches_the_oracle(case: Case) -> None:
    """Outages (start, recovery, locations, failed checks, within target), the uptime minutes
    and the uptime SLO's events, SLI and 1 h / 24 h burn all agree with the oracle."""
    check(case)


@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_probe_uptime_matches_the_oracle_fuzz(fuzz_selected: None, case: Case) -> None:
    """The same comparison with many more examples."""
    check(case)
