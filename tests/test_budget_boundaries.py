"""Hand-worked cases for slo/budgets.py, written for the survivors of the mutation run of
issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pandas as pd
import pytest
from test_budget_math import NOV, _forecast, config, day_of, write_requests
from test_sli_boundaries import T0, _probe_checks

from mysetlist_slo import error_budget, error_budgets, exhaustion_forecast, ingest_file
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.budgets import _human, budget_report, period_scale


@pytest.mark.parametrize(("span", "text"), [
    (timedelta(hours=47, minutes=30), "47.5 h"),
    (timedelta(hours=48), "2.0 days"),
    (timedelta(hours=60), "2.5 days"),
    (timedelta(days=1000), "1000.0 days"),
])
def test_time_left_in_hours_below_two_days_then_in_days(span: timedelta, text: str) -> None:
    """Under 48 h the time left reads in hours (47.5 h); from exactly 48 h in days: 48 h is
    2.0 days, 60 h is 60 / 24 = 2.5 days, 1000 days 1000.0 days."""
    assert _human(span) == text


def test_calendar_budgets_cut_in_the_configured_zone(store, tmp_path) -> None:
    """Time zone Asia/Kolkata (UTC+5:30): at 2026-11-01 03:00 UTC (08:30 there) November began
    at 2026-10-31 18:30 UTC, so the 10 requests at 20:00 UTC on 31 October (2 bad) are this
    month's, with the 10 at 01:00 UTC on 1 November: 20 events, 2 bad (in UTC: 10, 0 bad)."""
    oct31, nov1 = datetime(2026, 10, 31, 20, tzinfo=UTC), datetime(2026, 11, 1, 1, tzinfo=UTC)
    events = ([(oct31 + timedelta(seconds=i), 503 if i < 2 else 200) for i in range(10)]
              + [(nov1 + timedelta(seconds=i), 200) for i in range(10)])
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    config = parse_config("""
timezone: Asia/Kolkata
slos: [{name: m, sli: availability, objective: 99, window: month}]
""")
    (row,) = error_budgets(store, config, at=datetime(2026, 11, 1, 3, tzinfo=UTC)).to_dict(
        "records")
    assert row["window_start"] == datetime(2026, 10, 31, 18, 30, tzinfo=UTC)
    assert (row["total"], row["bad"]) == (20, 2)


def test_probe_budgets_use_the_configured_probe_settings(store, write_log) -> None:
    """Checks "..xx....": with the default 2 failures in a row the outage is minutes 2 and 3,
    2 bad minutes of 8; with `probes: {confirm: 3}` two failures are a blip, 0 bad of 8, in
    the budget table and in the exhaustion forecast."""
    ingest_file(store, write_log("probes.csv", _probe_checks("..xx....")))
    slos = "slos: [{name: u, sli: probe_uptime, objective: 99, window: 1d}]"
    at = T0 + timedelta(minutes=8)
    (default,) = error_budgets(store, parse_config(slos), at=at).to_dict("records")
    assert (default["total"], default["bad"]) == (8, 2)
    strict_config = parse_config("min_events: 1\nprobes: {confirm: 3}\n" + slos)
    (strict,) = error_budgets(store, strict_config, at=at).to_dict("records")
    assert (strict["total"], strict["bad"]) == (8, 0)
    # The forecast reads the same settings: the whole budget left (by default it would be
    # 1 - 2 / (1 % x 8) = -24).
    forecast = exhaustion_forecast(store, strict_config.slos[0], strict_config, at)
    assert forecast["budget_remaining"].tolist() == [1.0, 1.0, 1.0]
    # No failure at a burn of 0 in every lookback: it never runs out (with the default
    # settings the budget would be spent already).
    assert forecast["verdict"].tolist() == ["not within the window"] * 3


def test_rolling_budget_runs_out_the_minute_the_clean_day_has_left(store, tmp_path) -> None:
    """A 1-day window at 99 % read at 8 November 00:00: 10 requests a minute for 7 days, the
    last day clean, 7 failures an hour in the 6 days before it (1,008 of 100,800): the 7 d burn
    is 1,008 / 100,800 / 1 % = 1 exactly. Going on at it, the window's bad share stays under 1 %
    while any of today's clean minutes is in it and reaches 1 % exactly when the last one has
    left, at t = 1,440 min: end + 24 h. The 1 h and 24 h burns are 0: never."""
    events = []
    for minute in range(7 * 1440):
        t = NOV + timedelta(minutes=minute)
        bad = minute < 6 * 1440 and minute % 60 < 7
        events += [(t + timedelta(seconds=6 * i), 503 if bad and i == 0 else 200)
                   for i in range(10)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    end = NOV + timedelta(days=7)
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["7d"]["burn_rate"] == 1.0
    assert rows["7d"]["budget_remaining"] == 1.0
    assert rows["7d"]["exhausted_at"] == end + timedelta(days=1)
    assert rows["7d"]["verdict"] == "runs out in 24.0 h"
    for name in ("1h", "24h"):
        assert rows[name]["burn_rate"] == 0.0
        assert pd.isna(rows[name]["exhausted_at"])


def test_forecast_verdicts_without_a_judgement(store, tmp_path) -> None:
    """10 requests 3 hours before the reading, 1 bad, a 1-day window at 99 %: allowed 0.1 bad,
    remaining 1 - 1 / 0.1 = -9. The 1 h lookback has no events ("no events in this lookback");
    the 24 h and 7 d lookbacks burn at 10 % / 1 % = 10 on a spent budget ("budget already
    spent", at the reading). With min_events 100 the report has no verdict and the forecast
    says why ("not enough events"); an empty store says "no data"."""
    end = NOV + timedelta(days=1)
    empty = _forecast(store, config("1d", objective=99), end)
    assert [row["verdict"] for row in empty.values()] == ["no data"] * 3
    events = [(end - timedelta(hours=3, seconds=i), 503 if i == 0 else 200) for i in range(10)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["1h"]["verdict"] == "no events in this lookback"
    assert pd.isna(rows["1h"]["burn_rate"]) and rows["1h"]["budget_remaining"] == -9.0
    for name in ("24h", "7d"):
        assert rows[name]["burn_rate"] == 10.0
        assert rows[name]["verdict"] == "budget already spent"
        assert rows[name]["exhausted_at"] == end
    few = _forecast(store, config("1d", objective=99, min_events=100), end)
    assert [row["verdict"] for row in few.values()] == ["not enough events"] * 3


def test_a_budget_spent_exactly_is_already_spent(store, tmp_path) -> None:
    """100 requests 3 hours before the reading, 1 bad, a 1-day window at 99 %: allowed exactly
    1 bad, remaining 1 - 1 / 1 = 0: the status is ok (at the objective), and the forecast says
    the budget is already spent (not that it runs out in 0.0 h)."""
    end = NOV + timedelta(days=1)
    events = [(end - timedelta(hours=3, seconds=i), 503 if i == 0 else 200) for i in range(100)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["24h"]["budget_remaining"] == 0.0
    assert rows["24h"]["verdict"] == "budget already spent"
    assert rows["24h"]["exhausted_at"] == end


def test_calendar_budget_running_out_at_the_period_end_runs_out(store, tmp_path) -> None:
    """November (30 days) at 99.9 %, read on the 2nd at 00:00: day 1 had 2,000 requests, 2 bad.
    The month's budget is 0.1 % x 2,000 x 30 = 60, 58 left (58/60); the 24 h burn is 2 / 2,000
    / 0.1 % = 1, so it lasts 58/60 x 30 days = 29 days: it runs out exactly at 1 December
    00:00, the period's end, which is still within the period."""
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 2000, 2)))
    rows = _forecast(store, config("month"), NOV + timedelta(days=1))
    day = rows["24h"]
    assert day["burn_rate"] == 1.0
    assert day["budget_remaining"] == pytest.approx(58 / 60)
    assert day["exhausted_at"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert day["verdict"] == "runs out in 29.0 days"


def test_one_event_is_enough_by_default(store, tmp_path) -> None:
    """``budget_report`` without ``min_events`` judges any window with events: one good
    request in a 1-day window at 99 % is SLI 100 %, status ok, the whole budget left."""
    end = NOV + timedelta(days=1)
    ingest_file(store, write_requests(tmp_path / "r.parquet", [(end - timedelta(hours=1), 200)]))
    report = budget_report(store, config("1d", objective=99).slos[0], end)
    assert (report.total, report.sli, report.status, report.budget_remaining) == (
        1, 100.0, "ok", 1.0)


def test_budget_report_field_by_field(store, tmp_path) -> None:
    """A 1-day rolling window at 99 % read at 2 November 00:00: 100 requests 3 hours before
    (1 bad) over 100 seconds from a whole minute (2 minutes with data) and 10 good requests in
    the last hour (1 more minute). Total 110, good 109, bad 1; SLI 109/110 = 99.09 %; allowed
    1 % x 110 = 1.1 bad, remaining 1 - 1/1.1 = 1/11; burn 1 h 0, 24 h 1/110/1 % = 10/11."""
    end = NOV + timedelta(days=1)
    early = end - timedelta(hours=3)
    events = ([(early + timedelta(seconds=i), 503 if i == 0 else 200) for i in range(100)]
              + [(end - timedelta(minutes=30) + timedelta(seconds=i), 200) for i in range(10)])
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    report = asdict(budget_report(store, config("1d", objective=99).slos[0], end))
    assert report == {
        "slo": "s", "sli_kind": "availability", "objective": 99.0, "budgeting": "occurrences",
        "window": "1d", "window_start": NOV, "window_end": end, "total": 110, "good": 109,
        "bad": 1, "sli": pytest.approx(100 * 109 / 110), "allowed_bad": pytest.approx(1.1),
        "budget_remaining": pytest.approx(1 / 11), "burn_rate_1h": 0.0,
        "burn_rate_24h": pytest.approx(10 / 11), "minutes_with_data": 3,
        "window_minutes": 1440, "status": "ok"}


def test_period_scale_by_hand() -> None:
    """November (30 days) after 1 day: its budget is sized on 30 times the day's events; after
    1 day and 12 hours, 30 / 1.5 = 20 times (in UTC by default). A rolling window, or no time
    elapsed, is sized on its own events: 1."""
    month = config("month").slos[0]
    assert period_scale(month, NOV, NOV + timedelta(days=1)) == Fraction(30)
    assert period_scale(month, NOV, NOV + timedelta(days=1, hours=12)) == Fraction(20)
    assert period_scale(month, NOV, NOV) == Fraction(1)
    assert period_scale(config("1d").slos[0], NOV, NOV + timedelta(hours=6)) == Fraction(1)


def test_a_window_without_events_has_its_whole_budget() -> None:
    """No events: nothing is allowed to fail and nothing has, so the whole budget is left (1.0,
    not more); 0 bad of 1,000 at 99.9 % also leaves exactly 1.0 of 1 allowed."""
    assert error_budget(0, 0, 99.9) == (0.0, 1.0)
    assert error_budget(1000, 1000, 99.9) == (1.0, 1.0)
