"""Budget arithmetic worked by hand: calendar periods, burn lookbacks, exhaustion, exactness.

Every expected number below is worked on paper in the test's docstring or comment, never read
back from the code.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mysetlist_slo import (
    error_budget,
    error_budgets,
    exhaustion_forecast,
    ingest_file,
    open_store,
)
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.budgets import budget_report

NOV = datetime(2026, 11, 1, tzinfo=UTC)  # November 2026 has 30 days


def write_requests(path: Path, events: list[tuple[datetime, int]]) -> Path:
    """Write a Parquet request export with one request per (timestamp, status)."""
    pq.write_table(pa.table({
        "timestamp": pa.array([t for t, _ in events], pa.timestamp("us", tz="UTC")),
        "path": ["/"] * len(events), "status": [s for _, s in events]}), path)
    return path


def day_of(day: datetime, requests: int, bad: int) -> list[tuple[datetime, int]]:
    """Return ``requests`` requests spread evenly over one day, the first ``bad`` of them 5xx."""
    step = timedelta(days=1) / requests
    return [(day + i * step, 503 if i < bad else 200) for i in range(requests)]


def config(window: str, objective: float = 99.9, min_events: int = 1, sli: str = "availability",
           extra: str = ""):
    return parse_config(f"""
min_events: {min_events}
slos: [{{name: s, sli: {sli}, objective: {objective}, window: {window}{extra}}}]
""")


def test_calendar_month_budget_is_the_whole_months(store, tmp_path) -> None:
    """The issue's worked example: 99.9 %, a 30-day month, day 1 at 99.0 % availability with
    equal traffic every day: a third of the month's budget is spent (1 % / 0.1 % x 1/30), 66.7 %
    remains, and the status is ok, not hundreds of percent over budget."""
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 2000, 20)))
    report = budget_report(store, config("month").slos[0], NOV + timedelta(days=1))
    assert (report.total, report.bad) == (2000, 20)
    assert report.budget_remaining == pytest.approx(2 / 3, abs=1e-12)
    # The month's budget projected from the traffic so far: 30 days x 2,000 x 0.1 % = 60.
    assert report.allowed_bad == pytest.approx(60)
    assert report.status == "ok"


def test_calendar_budget_weights_by_events(store, tmp_path) -> None:
    """Uneven traffic: day 1 with 1,000 requests all good, day 2 with 3,000 and 12 bad. Events so
    far 4,000 over 2 of 30 days project 60,000 for the month, a budget of 60 at 99.9 %: 12 bad
    spend 20 %, whichever day they fell on."""
    events = day_of(NOV, 1000, 0) + day_of(NOV + timedelta(days=1), 3000, 12)
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    report = budget_report(store, config("month").slos[0], NOV + timedelta(days=2))
    assert report.allowed_bad == pytest.approx(60)
    assert report.budget_remaining == pytest.approx(0.8, abs=1e-12)


def test_rolling_budget_is_unchanged(store, tmp_path) -> None:
    """A rolling 30-day window still budgets on its own events: 20 bad of 2,000 at 99.9 %
    allow 2 and leave 1 - 20 / 2 = -900 %."""
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 2000, 20)))
    report = budget_report(store, config("30d").slos[0], NOV + timedelta(days=1))
    assert report.allowed_bad == pytest.approx(2)
    assert report.budget_remaining == pytest.approx(-9)
    assert report.status == "breach"


def test_burn_rates_look_back_across_the_period_start(store, tmp_path) -> None:
    """Sunday 22 November ends with an hour at 2 % errors; on Monday 23 at 00:30 a weekly SLO's
    1 h burn covers 23:30-00:30 (30 min at 2 %, 30 clean min: 1 % against 0.1 % = 10) and its 24 h
    burn the whole Sunday (60 minutes at 2 % of 1,440 at equal traffic: 20/24 = 0.8333)."""
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    events = []
    for minute in range(-1440, 30):
        t = monday + timedelta(minutes=minute)
        bad = 1 if -60 <= minute < 0 else 0
        events += [(t + timedelta(seconds=s), 503 if s < bad else 200) for s in range(50)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    report = budget_report(store, config("week").slos[0], monday + timedelta(minutes=30))
    assert report.window_start == monday and report.total == 30 * 50
    assert report.burn_rate_1h == pytest.approx(10)
    # From 00:30 Sunday to 00:30 Monday: 60 minutes with 1 error, of 1,440 x 50 requests.
    assert report.burn_rate_24h == pytest.approx((60 / (1440 * 50)) / 0.001)


def test_sli_exactly_at_the_objective_is_not_a_breach(store, tmp_path) -> None:
    """1 bad in 1,000 at 99.9 % spends the budget exactly: remaining is 0, status ok."""
    allowed, remaining = error_budget(999, 1000, 99.9)
    assert (allowed, remaining) == (1, 0)
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 1000, 1)))
    (row,) = error_budgets(store, config("7d"), at=NOV + timedelta(days=1)).to_dict("records")
    assert row["budget_remaining"] == 0 and row["status"] == "ok"
    (row,) = error_budgets(store, config("7d", objective=99.95),
                           at=NOV + timedelta(days=1)).to_dict("records")
    assert row["status"] == "breach"


def test_timeslice_exactly_at_its_target_is_good(store, tmp_path) -> None:
    """A minute with 999 good of 1,000 requests meets a 99.9 % slice target exactly."""
    minute = NOV + timedelta(hours=1)
    events = [(minute + timedelta(milliseconds=50 * i), 503 if i == 0 else 200)
              for i in range(1000)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    report = budget_report(store, config("1d", objective=99.0,
                                         extra=", budgeting: timeslices, timeslice_target: 99.9"
                                         ).slos[0], NOV + timedelta(days=1))
    assert (report.good, report.total) == (1, 1)


def _forecast(store, cfg, at: datetime) -> dict[str, dict]:
    frame = exhaustion_forecast(store, cfg.slos[0], cfg, at)
    return {r["lookback"]: r for r in frame.to_dict("records")}


@pytest.mark.parametrize(("bad_day_2", "lookback_rate", "runs_out_on"), [
    # remaining after day 2 = 1 - (20 + bad) / 60; runs out after remaining x 30 d / rate.
    (1, 0.5, None),  # 0.65 x 30 / 0.5 = 39 days: after the month ends (28 days left)
    (2, 1.0, datetime(2026, 11, 22, tzinfo=UTC)),  # 38/60 x 30 / 1 = 19 days
    (4, 2.0, datetime(2026, 11, 12, tzinfo=UTC)),  # 0.6 x 30 / 2 = 9 days
])
def test_calendar_exhaustion(store, tmp_path, bad_day_2: int, lookback_rate: float,
                             runs_out_on: datetime | None) -> None:
    """A month at 2,000 requests a day, day 1 with 20 bad, day 2 with ``bad_day_2``: on the
    3rd at 00:00 the 24 h burn is bad_day_2 / 2,000 / 0.1 %, and the month's budget runs out
    when what is left, spent at that rate over the whole month, is gone."""
    events = day_of(NOV, 2000, 20) + day_of(NOV + timedelta(days=1), 2000, bad_day_2)
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    rows = _forecast(store, config("month"), NOV + timedelta(days=2))
    day = rows["24h"]
    assert day["burn_rate"] == pytest.approx(lookback_rate)
    assert day["budget_remaining"] == pytest.approx(1 - (20 + bad_day_2) / 60)
    if runs_out_on is None:
        assert pd.isna(day["exhausted_at"]) and day["verdict"] == "not within the window"
    else:
        assert abs(day["exhausted_at"] - runs_out_on) < timedelta(seconds=1)


def _rolling_day(tmp_path: Path, bad_minutes: set[int]) -> Path:
    """One day (minutes 0-1439 before 2 November) at 10 requests a minute; one of them fails
    in each minute of ``bad_minutes`` (counted from the day's start)."""
    events = []
    for minute in range(1440):
        t = NOV + timedelta(minutes=minute)
        events += [(t + timedelta(seconds=6 * i), 503 if i == 0 and minute in bad_minutes
                    else 200) for i in range(10)]
    return write_requests(tmp_path / "r.parquet", events)


def test_rolling_burn_below_one_never_exhausts(store, tmp_path) -> None:
    """A 1-day window at 99 % (budget 144 of 14,400) with one failure every 20 minutes all day:
    burn 0.5 over every lookback, half the budget left, and a steady 0.5 keeps it there (the
    errors leaving the window are replaced at the same rate): it never runs out."""
    ingest_file(store, _rolling_day(tmp_path, set(range(19, 1440, 20))))
    rows = _forecast(store, config("1d", objective=99), NOV + timedelta(days=1))
    for name in ("1h", "24h"):
        assert rows[name]["burn_rate"] == pytest.approx(0.5)
        assert rows[name]["budget_remaining"] == pytest.approx(0.5)
        assert pd.isna(rows[name]["exhausted_at"])


def test_rolling_burn_of_one_exhausts_after_the_clean_history_leaves(store, tmp_path) -> None:
    """The same window clean but for its last hour at 1 % (6 failures): 1 h burn 1. Going on at
    0.1 failures a minute, the 6 old ones plus 0.1 t reach the 144 allowed at t = 1,380 min
    (23 h), while those 6 are still in the window. The 24 h burn (6/14,400/1 % = 1/24) never
    gets there."""
    ingest_file(store, _rolling_day(tmp_path, set(range(1389, 1440, 10))))
    end = NOV + timedelta(days=1)
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["1h"]["burn_rate"] == pytest.approx(1)
    assert rows["1h"]["exhausted_at"] == end + timedelta(hours=23)
    assert rows["24h"]["burn_rate"] == pytest.approx(1 / 24)
    assert pd.isna(rows["24h"]["exhausted_at"])


def test_rolling_burn_above_one(store, tmp_path) -> None:
    """Last hour at 2 % (12 failures): 1 h burn 2; 12 + 0.2 t reaches 144 at t = 660 min."""
    ingest_file(store, _rolling_day(tmp_path, set(range(1384, 1440, 5))))
    end = NOV + timedelta(days=1)
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["1h"]["burn_rate"] == pytest.approx(2)
    assert rows["1h"]["exhausted_at"] == end + timedelta(hours=11)
    assert rows["1h"]["verdict"] == "runs out in 11.0 h"


def test_window_boundary_events(store, tmp_path) -> None:
    """An event exactly at a calendar period's start is in it; one a microsecond before is
    not; one exactly at the reading time is not."""
    start = NOV
    events = [(start - timedelta(microseconds=1), 503), (start, 503),
              (start + timedelta(hours=5), 200), (start + timedelta(days=1), 503)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    report = budget_report(store, config("month").slos[0], start + timedelta(days=1))
    assert (report.total, report.bad) == (2, 1)


def test_json_export_reaches_the_same_numbers(store, write_log) -> None:
    """Through a JSONL export: 4 requests on 1 November, 1 bad, read on the 2nd: projected 120
    events, allowed 0.12, so 1 bad overspends: remaining 1 - 1 / 0.12."""
    lines = [json.dumps({"timestamp": (NOV + timedelta(hours=h)).isoformat(), "path": "/",
                         "status": 500 if h == 0 else 200}) for h in range(4)]
    ingest_file(store, write_log("r.jsonl", lines))
    report = budget_report(store, config("month").slos[0], NOV + timedelta(days=1))
    assert report.budget_remaining == pytest.approx(1 - 1 / 0.12)


def test_rolling_burn_below_one_can_still_run_out_on_recent_spend(store, tmp_path) -> None:
    """Spend packed at the window's recent end: a 1-day window at 99 % (budget 144 of 14,400)
    whose last 12 minutes failed wholly (120 failures): 24 h burn 120/144 = 5/6 < 1, 1/6 left.
    Going on at 120/1,440 = 1/12 failure a minute, 120 + t/12 reaches 144 at t = 288 min, long
    before those failures leave the window (t > 1,428): a burn below 1 is no promise."""
    events = []
    for minute in range(1440):
        t = NOV + timedelta(minutes=minute)
        events += [(t + timedelta(seconds=6 * i), 503 if minute >= 1428 else 200)
                   for i in range(10)]
    ingest_file(store, write_requests(tmp_path / "r.parquet", events))
    end = NOV + timedelta(days=1)
    rows = _forecast(store, config("1d", objective=99), end)
    assert rows["24h"]["burn_rate"] == pytest.approx(5 / 6)
    assert rows["24h"]["budget_remaining"] == pytest.approx(1 / 6)
    assert rows["24h"]["exhausted_at"] == end + timedelta(minutes=288)


def test_calendar_burndown_ends_at_the_reports_figure(store, tmp_path) -> None:
    """The month's burn-down is on the whole month's budget: after day 1 at 99 % (20 bad of
    2,000) it reads 66.7 %, the report's figure, and it held 100 % before the first bad hour."""
    from mysetlist_slo import budget_burndown

    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 2000, 20)))
    cfg = config("month")
    frame = budget_burndown(store, cfg.slos[0], cfg, NOV + timedelta(days=1), step="1h")
    assert len(frame) == 24
    assert frame["budget_remaining"].iloc[-1] == pytest.approx(2 / 3)
    # The 20 failures are the day's first 20 requests (within its first 15 minutes).
    assert frame["bad"].iloc[0] == 20 and frame["budget_remaining"].iloc[0] == pytest.approx(2 / 3)


def test_status_fail_on_breach_at_exactly_the_objective(store, tmp_path, db_path) -> None:
    """`status --fail-on breach` exits 0 for 1 bad in 1,000 at 99.9 % (on budget, exactly),
    and 3 once a second request fails."""
    from mysetlist_slo.cli import EXIT_BREACH, EXIT_OK, main

    config_path = tmp_path / "slo.yaml"
    config_path.write_text("min_events: 1\n"
                           "slos: [{name: s, sli: availability, objective: 99.9, window: 7d}]\n")
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 1000, 1)))
    store.close()
    args = ["status", "--db", str(db_path), "--config", str(config_path), "--at",
            "2026-11-02T00:00Z", "--fail-on", "breach", "--json"]
    assert main(args) == EXIT_OK
    con = open_store(db_path)
    ingest_file(con, write_requests(tmp_path / "more.parquet",
                                    [(NOV + timedelta(hours=12, seconds=1), 503)]))
    con.close()
    assert main(args) == EXIT_BREACH


def test_composite_breach_is_named_not_counted(store, tmp_path, db_path, capsys) -> None:
    """Two SLOs at 99 % with 5 bad of 1,000 requests each keep half their budget (10 allowed,
    5 spent): ok. Their weighted composite at 99.9 % allows 1 and sees 5: breached. status
    and the weekly report both say "2 of 2 SLOs ok; composite c breached", and
    `--fail-on breach` exits 0: a composite is a view over its members, not a third SLO."""
    from mysetlist_slo.cli import EXIT_OK, main
    from mysetlist_slo.report.notebook import status_table
    from mysetlist_slo.report.overview import overview_headline, slo_overview

    text = ("min_events: 1\n"
            "slos: [{name: a, sli: availability, objective: 99, window: 7d},\n"
            "       {name: b, sli: availability, objective: 99, window: 7d}]\n"
            "composites: [{name: c, method: weights, objective: 99.9,\n"
            "              members: [{slo: a, weight: 1}, {slo: b, weight: 1}]}]\n")
    config_path = tmp_path / "slo.yaml"
    config_path.write_text(text)
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 1000, 5)))
    at = NOV + timedelta(days=1)
    overview = slo_overview(store, parse_config(text), NOV, at)
    store.close()
    assert overview["status"].tolist() == ["ok", "ok", "breach"]
    assert overview_headline(overview) == ("ok", "2 of 2 SLOs ok; composite c breached")
    assert ">c (composite)<" in status_table(overview)  # named as `status` names it
    capsys.readouterr()
    assert main(["status", "--db", str(db_path), "--config", str(config_path), "--at",
                 "2026-11-02T00:00Z", "--fail-on", "breach"]) == EXIT_OK
    assert "2 of 2 SLOs ok; composite c breached" in capsys.readouterr().out


def test_budget_left_says_the_end_of_its_windows(store, tmp_path, db_path, capsys) -> None:
    """status over windows ending 2 Nov 00:00 says that end in the title of the table that
    shows budget left, and the report's status table heads its budget-left column with the
    end it was given (the week's end): two different figures read as two different windows."""
    from mysetlist_slo.cli import EXIT_OK, main
    from mysetlist_slo.report.notebook import status_table
    from mysetlist_slo.report.overview import slo_overview

    text = "min_events: 1\nslos: [{name: s, sli: availability, objective: 99.9, window: 7d}]\n"
    config_path = tmp_path / "slo.yaml"
    config_path.write_text(text)
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 1000, 0)))
    html = status_table(slo_overview(store, parse_config(text), NOV, NOV + timedelta(days=1)),
                        NOV + timedelta(days=1))
    store.close()
    assert "budget left at 2026-11-02 00:00 UTC" in html
    capsys.readouterr()
    assert main(["status", "--db", str(db_path), "--config", str(config_path), "--at",
                 "2026-11-02T00:00Z"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "SLOs over their windows ending 2026-11-02 00:00 UTC" in out
    assert "budget left" in out


def test_status_writes_missing_and_negative_apart(store, tmp_path, db_path, capsys) -> None:
    """3 bad of 1,000 requests at 99.9 % over 7 days spend 3 of the 1 allowed: budget left
    1 - 3 = -200.0 %, written with a minus sign; no request in the last hour, so the 1 h burn
    is missing, written as an en dash as the reports write it (a hyphen for both lost the sign)."""
    from mysetlist_slo.cli import main

    config_path = tmp_path / "slo.yaml"
    config_path.write_text("min_events: 1\n"
                           "slos: [{name: s, sli: availability, objective: 99.9, window: 7d}]\n")
    ingest_file(store, write_requests(tmp_path / "r.parquet", day_of(NOV, 1000, 3)))
    store.close()
    capsys.readouterr()
    main(["status", "--db", str(db_path), "--config", str(config_path), "--at",
          "2026-11-03T00:00Z"])
    row = next(line for line in capsys.readouterr().out.splitlines() if "│ s " in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    assert cells[5] == "\u2212200.0 %" and cells[6] == "\u2013", cells
