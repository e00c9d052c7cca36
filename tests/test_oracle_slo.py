"""The oracle suite for SLO math: random request events, windows and objectives, ingested through
the public path and compared with a brute-force oracle over the raw events.

The oracle below shares no code with the package: it works from the raw events in plain
pandas/numpy/fractions, from the definitions in the README (SLIs are ratios of summed events;
a calendar period's budget is the whole period's, projected from the events so far; burn rates
look back 1 h/24 h/7 d from the window's end; the exhaustion forecast goes on at the lookback's
rates). CI runs ``ORACLE_EXAMPLES`` examples (default 50; set MYSETLIST_ORACLE_EXAMPLES to
change it); ``pytest -m fuzz`` runs the fuzz variant with many more.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mysetlist_slo import (
    budget_report,
    count_below,
    exhaustion_forecast,
    ingest_file,
    latency_percentiles,
    open_store,
)
from mysetlist_slo.config import parse_config

ORACLE_EXAMPLES = int(os.environ.get("MYSETLIST_ORACLE_EXAMPLES", "50"))
FUZZ_EXAMPLES = int(os.environ.get("MYSETLIST_FUZZ_EXAMPLES", "1000"))

# Zones with DST changes (New York, London, Lord Howe's half-hour shift), a half-hour and a
# quarter-hour offset; none changes its clocks at midnight, so local midnight always exists.
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata",
         "Asia/Kathmandu"]
# Reading times near the 2026 DST changes of those zones and around month and week starts.
ANCHORS = [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 3, 29, 1, tzinfo=UTC),
           datetime(2026, 4, 5, 15, tzinfo=UTC), datetime(2026, 10, 4, 15, tzinfo=UTC),
           datetime(2026, 11, 1, 6, tzinfo=UTC), datetime(2026, 11, 2, 0, tzinfo=UTC),
           datetime(2026, 12, 1, 0, tzinfo=UTC)]
ROLLING = {"1h": pd.Timedelta(hours=1), "6h": pd.Timedelta(hours=6), "1d": pd.Timedelta(days=1),
           "2d": pd.Timedelta(days=2), "7d": pd.Timedelta(days=7)}
OBJECTIVES = ["90", "95", "97.3", "99", "99.5", "99.9", "99.95", "99.99"]
STATUSES = [200, 200, 200, 204, 301, 404, 499, 500, 502, 503]
THRESHOLDS_MS = [100, 200, 250]
LOOKBACKS = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
US = timedelta(microseconds=1)


@dataclass(frozen=True)
class Case:
    """One generated scenario: the SLO, the reading time and the raw request events."""

    sli: str
    threshold_ms: int
    objective: str
    window: str
    timezone: str
    budgeting: str
    timeslice_target: str | None
    min_events: int
    at: datetime
    events: pd.DataFrame  # ts (UTC), status, latency_us (0: untimed)


def _period(window: str, at: datetime, zone: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Oracle: the calendar period holding ``at``, as UTC instants (local midnights)."""
    local = pd.Timestamp(at).tz_convert(zone)
    if window == "month":
        first = pd.Timestamp(local.year, local.month, 1)
        following = first + pd.DateOffset(months=1)
    else:
        first = pd.Timestamp(local.year, local.month, local.day) - pd.Timedelta(
            days=local.weekday())
        following = first + pd.Timedelta(days=7)  # naive: seven calendar days
    return (first.tz_localize(zone).tz_convert("UTC"),
            following.tz_localize(zone).tz_convert("UTC"))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """A scenario with events placed at random and exactly on (and a microsecond around) the
    window's boundaries and lookback starts."""
    kind = draw(st.sampled_from(["rolling", "calendar"]))
    window = draw(st.sampled_from([*ROLLING] if kind == "rolling" else ["week", "month"]))
    zone = draw(st.sampled_from(ZONES))
    at = draw(st.sampled_from(ANCHORS)) + timedelta(
        seconds=draw(st.integers(-3 * 86400, 3 * 86400)),
        microseconds=draw(st.sampled_from([0, 0, 1, 499_999, 999_999])))
    end = pd.Timestamp(at).floor("min")
    start = _period(window, at, zone)[0] if window in ("week", "month") else end - ROLLING[window]
    marks = [start, end, end - pd.Timedelta(hours=1), end - pd.Timedelta(hours=24)]
    n_random = draw(st.integers(0, 120))
    span = max(end - start, pd.Timedelta(hours=25)) + pd.Timedelta(hours=2)
    offsets = draw(st.lists(st.floats(0, 1), min_size=n_random, max_size=n_random))
    times = [end + pd.Timedelta(hours=1) - span * f for f in offsets]
    # Some events on whole minutes (as many exports have), some in bursts within one minute.
    times = [t.floor("min") if i % 3 == 0 else t for i, t in enumerate(times)]
    for mark in draw(st.lists(st.sampled_from(marks), max_size=6)):
        times.append(mark + draw(st.sampled_from([-US, pd.Timedelta(0), US,
                                                  pd.Timedelta(seconds=30)])))
    burst = draw(st.integers(0, 40))
    if burst:
        minute = end - pd.Timedelta(minutes=draw(st.integers(1, 90)))
        times += [minute + pd.Timedelta(seconds=s) for s in
                  draw(st.lists(st.integers(0, 59), min_size=burst, max_size=burst))]
    n = len(times)
    # Mostly clean traffic, or one failure in about twenty, or anything: budgets both within
    # and beyond.
    pool = draw(st.sampled_from([[200, 204, 404], [200] * 19 + [503], STATUSES]))
    statuses = draw(st.lists(st.sampled_from(pool), min_size=n, max_size=n))
    threshold = draw(st.sampled_from(THRESHOLDS_MS))
    near = [threshold * 1000 - 1, threshold * 1000, threshold * 1000 + 1]
    latencies = draw(st.lists(st.one_of(st.integers(1, 3_000_000), st.sampled_from(near),
                                        st.just(0)), min_size=n, max_size=n))
    budgeting = draw(st.sampled_from(["occurrences", "occurrences", "timeslices"]))
    target = (draw(st.sampled_from([None, "50", "90", "99.9"])) if budgeting == "timeslices"
              else None)
    sli = draw(st.sampled_from(["availability", "error_rate", "latency"]))
    objective = draw(st.sampled_from(OBJECTIVES))
    events = pd.DataFrame({"ts": pd.to_datetime(times, utc=True), "status": statuses,
                           "latency_us": latencies})
    if (window in ROLLING and sli != "latency" and budgeting == "occurrences"
            and draw(st.integers(0, 3)) > 0):
        events, objective = _near_an_objective(events, start, end, objective,
                                               draw(st.sampled_from([0, 1, 2])))
    return Case(
        sli=sli, threshold_ms=threshold, objective=objective, window=window, timezone=zone,
        budgeting=budgeting, timeslice_target=target,
        min_events=draw(st.sampled_from([1, 3, 20])), at=at, events=events)


def _near_an_objective(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                       objective: str, spare: int) -> tuple[pd.DataFrame, str]:
    """Make the window's failures the number an objective allows, less ``spare`` (0: exactly
    at the objective, the case a float comparison gets wrong; more: a budget that is left,
    for the exhaustion forecast to work on)."""
    inside = ((events["ts"] >= start) & (events["ts"] < end)).to_numpy()
    # Drop a few of the window's events so that 90 % at least allows a whole number of them.
    surplus = np.flatnonzero(inside)[: int(inside.sum()) % 10]
    events = events.drop(index=events.index[surplus]).reset_index(drop=True)
    inside = np.delete(inside, surplus)
    n = int(inside.sum())
    for candidate in [objective, *OBJECTIVES]:
        allowed = (1 - Fraction(candidate) / 100) * n
        if n and allowed.denominator == 1 and allowed > 0:
            status = events["status"].to_numpy().copy()
            positions = np.flatnonzero(inside)
            status[positions] = 200
            status[positions[: max(int(allowed) - spare, 0)]] = 503
            return events.assign(status=status), candidate
    return events, objective


# ---------------------------------------------------------------------------------------------
# The oracle: plain pandas over the raw events.


def oracle_events(case: Case) -> pd.DataFrame:
    """The SLO's events, one row per request (or per minute for timeslices): ts, good."""
    ev = case.events
    if case.sli == "latency":
        # Latency events are the answered (non-5xx) timed requests; good ones are faster.
        ev = ev[(ev["status"] < 500) & (ev["latency_us"] > 0)]
        good = ev["latency_us"] < case.threshold_ms * 1000
    else:
        good = ev["status"] < 500
    frame = pd.DataFrame({"ts": ev["ts"], "good": good.astype(int)})
    if case.budgeting == "occurrences":
        return frame
    target = Fraction(case.timeslice_target or case.objective) / 100
    per_minute = frame.groupby(frame["ts"].dt.floor("min"))["good"].agg(["sum", "count"])
    slice_good = [Fraction(int(g), int(c)) >= target for g, c in
                  zip(per_minute["sum"], per_minute["count"], strict=True)]
    return pd.DataFrame({"ts": per_minute.index, "good": np.array(slice_good, dtype=int)})


def between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    return frame[(frame["ts"] >= start) & (frame["ts"] < end)]


def oracle(case: Case) -> dict[str, object]:
    """Every number the package should give, from the raw events."""
    end = pd.Timestamp(case.at).floor("min")
    share = 1 - Fraction(case.objective) / 100
    if case.window in ("week", "month"):
        start, period_end = _period(case.window, case.at, case.timezone)
        period = period_end - start
    else:
        start = end - ROLLING[case.window]
        period_end, period = None, end - start
    events = oracle_events(case)
    inside = between(events, start, end)
    total, good = len(inside), int(inside["good"].sum())
    bad = total - good
    # A calendar period's budget: the events so far, scaled up to the whole period.
    # At the very start of a period nothing has elapsed and no event can be inside.
    scale = (Fraction(period // US, (end - start) // US) if period_end is not None
             and end > start else Fraction(1))
    allowed = share * total * scale
    remaining = 1 - bad / allowed if total else None
    if total == 0:
        status = "no data"
    elif total < case.min_events:
        status = "not enough events"
    else:
        status = "ok" if remaining >= 0 else "breach"
    burns = {}
    for name, span in LOOKBACKS.items():
        recent = between(events, end - span, end)
        burns[name] = (None if len(recent) == 0
                       else Fraction(len(recent) - int(recent["good"].sum()), len(recent)) / share)
    exhaustion = {}
    for name, span in LOOKBACKS.items():
        rate = burns[name]
        if status not in ("ok", "breach") or rate is None:
            exhaustion[name] = None
        elif remaining <= 0:
            exhaustion[name] = end
        elif period_end is not None:
            when = (None if rate == 0
                    else end + pd.Timedelta(microseconds=float(remaining * (period // US) / rate)))
            exhaustion[name] = when if when is not None and when <= period_end else None
        else:
            exhaustion[name] = rolling_exhaustion(events, start, end, share, span, rate)
    return {"start": start, "end": end, "total": total, "good": good, "status": status,
            "remaining": remaining, "burns": burns, "exhaustion": exhaustion,
            "minutes": inside["ts"].dt.floor("min").nunique()}


def rolling_exhaustion(events: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp,
                       share: Fraction, span: timedelta, rate: Fraction) -> pd.Timestamp | None:
    """Brute force over every whole minute t of the window: today's events from start + t on,
    plus t minutes of new events at the lookback's rates; the first t where bad reaches the
    allowed share. Counted from the raw timestamps (sorted, searched for each cut-off), in
    integers: multiplied through by the lookback's minutes and the share's denominator."""
    recent = between(events, end - span, end)
    lookback = int(span / timedelta(minutes=1))
    new_total, new_bad = len(recent), len(recent) - int(recent["good"].sum())
    inside = between(events, start, end).sort_values("ts")
    stamps = inside["ts"].to_numpy()
    bad_after = np.concatenate((np.cumsum((1 - inside["good"].to_numpy())[::-1])[::-1], [0]))
    t = np.arange(int((end - start) / pd.Timedelta(minutes=1)) + 1, dtype=np.int64)
    cutoffs = (start + pd.to_timedelta(t, unit="min")).to_numpy()
    first_kept = np.searchsorted(stamps, cutoffs, side="left")
    kept_total = len(inside) - first_kept
    kept_bad = bad_after[first_kept]
    p, q = share.numerator, share.denominator
    spent = (q * (lookback * kept_bad + new_bad * t)
             >= p * (lookback * kept_total + new_total * t))
    hits = np.flatnonzero(spent)
    return None if len(hits) == 0 else end + pd.Timedelta(minutes=int(hits[0]))


# ---------------------------------------------------------------------------------------------
# The package, through the public path.


def write_export(case: Case, path: Path) -> Path:
    """Write the events as a JSONL request export (latency in ms, absent when untimed)."""
    lines = []
    for ts, status, latency_us in case.events.itertuples(index=False):
        row: dict[str, object] = {"timestamp": ts.isoformat().replace("+00:00", "Z"),
                                  "path": "/", "status": int(status)}
        if latency_us:
            row["duration_ms"] = latency_us / 1000
        lines.append(json.dumps(row))
    path.write_text("\n".join(lines) + "\n" if lines else "")
    return path


def check(case: Case) -> None:
    """Ingest the case into a fresh store and compare every result with the oracle."""
    extra = "" if case.sli != "latency" else f", threshold_ms: {case.threshold_ms}"
    if case.timeslice_target:
        extra += f", timeslice_target: {case.timeslice_target}"
    config = parse_config(f"""
timezone: {case.timezone}
min_events: {case.min_events}
latency_thresholds_ms: [{case.threshold_ms}]
slos: [{{name: s, sli: {case.sli}, objective: {case.objective}, window: {case.window},
        budgeting: {case.budgeting}{extra}}}]
""")
    slo = config.slos[0]
    expected = oracle(case)
    # Shown by --hypothesis-show-statistics: how the examples spread over the cases that matter.
    event(f"status: {expected['status']}")
    event(f"window: {'calendar' if case.window in ('week', 'month') else 'rolling'}")
    event(f"runs out (24h): {expected['exhaustion']['24h'] is not None}")
    event(f"exactly at the objective: {expected['remaining'] == 0}")
    forecast_case = (case.window in ROLLING and expected["status"] == "ok"
                     and bool(expected["burns"]["24h"]))
    event(f"rolling forecast with budget left and a burn: {forecast_case}")
    with tempfile.TemporaryDirectory() as folder:
        con = open_store(Path(folder) / "oracle.duckdb")
        try:
            if len(case.events):
                # Loaded with the case's configuration: its threshold is counted exactly.
                ingest_file(con, write_export(case, Path(folder) / "requests.jsonl"),
                            config=config)
            report = budget_report(con, slo, case.at, case.timezone, case.min_events)
            forecast = exhaustion_forecast(con, slo, config, case.at).set_index("lookback")
            latency = (latency_percentiles(con, expected["start"], expected["end"], (0.75, 0.95))
                       if case.sli == "latency" else None)
            below = count_below(con, case.threshold_ms, expected["start"], expected["end"])
        finally:
            con.close()
    assert report.window_start == expected["start"] and report.window_end == expected["end"]
    assert (report.total, report.good) == (expected["total"], expected["good"])
    assert report.status == expected["status"]
    if expected["status"] in ("ok", "breach"):
        assert report.budget_remaining == pytest.approx(float(expected["remaining"]),
                                                        rel=1e-9, abs=1e-12)
        assert report.sli == pytest.approx(100 * expected["good"] / expected["total"])
    else:
        assert report.budget_remaining is None and report.sli is None
    if case.budgeting == "occurrences":
        assert report.minutes_with_data == expected["minutes"]
    for name, got in (("1h", report.burn_rate_1h), ("24h", report.burn_rate_24h)):
        want = expected["burns"][name]
        assert (got is None) == (want is None), name
        if want is not None:
            assert got == pytest.approx(float(want), rel=1e-9, abs=1e-12), name
    for name in LOOKBACKS:
        want = expected["burns"][name]
        got = forecast.loc[name, "burn_rate"]
        assert (want is None) == pd.isna(got), name
        if want is not None:
            assert got == pytest.approx(float(want), rel=1e-9, abs=1e-12), name
        want_at, got_at = expected["exhaustion"][name], forecast.loc[name, "exhausted_at"]
        assert (want_at is None) == pd.isna(got_at), (name, want_at, got_at)
        if want_at is not None:
            assert abs(pd.Timestamp(got_at) - want_at) <= pd.Timedelta(milliseconds=1), name
    answered = between(case.events.assign(good=0), expected["start"], expected["end"])
    timed = answered[(answered["status"] < 500) & (answered["latency_us"] > 0)]
    assert below == (int((timed["latency_us"] < case.threshold_ms * 1000).sum()), len(timed))
    if latency is not None:
        # Percentiles read the 5-minute slots overlapping the window (rollups.py).
        slots = between(case.events, expected["start"].floor("5min"),
                        expected["end"].ceil("5min"))
        answered_slots = slots[(slots["status"] < 500) & (slots["latency_us"] > 0)]
        check_percentiles(latency, answered_slots["latency_us"].to_numpy())


def check_percentiles(latency: pd.DataFrame, exact_us: np.ndarray) -> None:
    """p75/p95 from the sketches are within the documented 1 % of the exact nearest-rank
    percentiles of the raw latencies."""
    if len(exact_us) == 0:
        assert latency["latency_ms"].isna().all()
        return
    for q, got in zip(latency["quantile"], latency["latency_ms"], strict=True):
        exact_ms = float(np.quantile(exact_us, q, method="inverted_cdf")) / 1000
        assert abs(got - exact_ms) <= exact_ms * 0.01 + 1e-9, (q, got, exact_ms)


_SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                       HealthCheck.data_too_large,
                                                       HealthCheck.function_scoped_fixture])


@settings(max_examples=ORACLE_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_slo_numbers_match_the_oracle(case: Case) -> None:
    """SLI, budget remaining, status, burn rates, exhaustion, coverage, good counts at the
    threshold and p75/p95 all agree with the brute-force oracle over the raw events."""
    check(case)


@pytest.mark.fuzz
@settings(max_examples=FUZZ_EXAMPLES, **_SETTINGS)  # type: ignore[arg-type]
@given(case=cases())
def test_slo_numbers_match_the_oracle_fuzz(fuzz_selected: None, case: Case) -> None:
    """The same comparison with many more examples."""
    check(case)
