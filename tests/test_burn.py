"""Burn rates, timeslices, burn-down and budget exhaustion: hand-worked numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mysetlist_slo import ingest_file
from mysetlist_slo.config import load_config, parse_config
from mysetlist_slo.slo.alerts import REFERENCE_WINDOW, rolling_burn_rate, scaled_rules
from mysetlist_slo.slo.budgets import (
    budget_burndown,
    budget_report,
    burn_rate,
    exhaustion_forecast,
)

END = datetime(2026, 11, 23, tzinfo=UTC)


def write_minutes(path: Path, counts: list[tuple[datetime, int, int]]) -> Path:
    """Write a Parquet export with, per (minute, requests, errors), that many requests."""
    ts, status = [], []
    for minute, requests, errors in counts:
        for i in range(requests):
            ts.append(minute + timedelta(seconds=i % 60))
            status.append(500 if i < errors else 200)
    pq.write_table(pa.table({"timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                             "path": ["/"] * len(ts), "status": status}), path)
    return path


def config(window: str = "7d", objective: float = 99.0, budgeting: str = "occurrences",
           extra: str = ""):
    return parse_config(f"""
slos: [{{name: s, sli: availability, objective: {objective}, window: {window},
        budgeting: {budgeting}{extra}}}]
""")


def test_burn_rate_hand_worked() -> None:
    """2 % errors in an hour against 99.9 % burns the budget at 20."""
    assert burn_rate(98_000, 100_000, 99.9) == pytest.approx(20)
    assert burn_rate(0, 0, 99.9) is None


def test_burn_rate_from_the_store(store, tmp_path) -> None:
    """One hour with 2 % errors (and a clean hour before it): 1 h burn 20, 24 h burn 10."""
    minutes = [(END - timedelta(minutes=m), 50, 1 if m <= 60 else 0) for m in range(1, 121)]
    ingest_file(store, write_minutes(tmp_path / "r.parquet", minutes))
    report = budget_report(store, config(objective=99.9).slos[0], END)
    assert report.burn_rate_1h == pytest.approx(20)
    assert report.burn_rate_24h == pytest.approx(10)


def test_rolling_burn_rate_matches_a_plain_loop() -> None:
    """The vectorised rolling burn rate equals a minute-by-minute recount."""
    rng = np.random.default_rng(5)
    total = rng.integers(0, 40, 500)
    bad = rng.binomial(total, 0.01)
    got = rolling_burn_rate(bad, total, 99.5, 60)
    for i in range(len(total)):
        lo = max(0, i - 59)
        t, b = total[lo:i + 1].sum(), bad[lo:i + 1].sum()
        expected = np.nan if t == 0 else (b / t) / 0.005
        assert got[i] == pytest.approx(expected, nan_ok=True)


def test_rolling_burn_rate_exactly_at_one() -> None:
    """1 failure in 100 against 99 % burns at exactly 1 (a ticket rule's threshold), not at
    0.9999999999999991 as 0.01 / (1 - 0.99) gives in floats."""
    got = rolling_burn_rate(np.array([1, 0]), np.array([50, 50]), 99.0, 2)
    assert got[-1] == 1.0
    assert rolling_burn_rate(np.array([1]), np.array([1000]), 99.9, 1)[0] == 1.0


def test_rules_scale_with_the_window() -> None:
    """The workbook's 30-day table spends 2/5/10/10 % of budget; a 28-day window keeps that:
    its page fires at 14.4 x 28/30 = 13.44, named so, and 13.44 x 1 h / 28 d is still 2 %."""
    rules = load_config().alerts.burn_rate
    same = scaled_rules(rules, REFERENCE_WINDOW)
    assert [round(r.budget_share, 4) for r in same] == [0.02, 0.05, 0.1, 0.1]
    assert [r.burn_rate for r in same] == [14.4, 6, 3, 1]
    assert same[0].name == "page 1h/5m x14.4"
    shorter = scaled_rules(rules, timedelta(days=28))
    assert shorter[0].burn_rate == pytest.approx(13.44)
    assert [r.name for r in shorter] == ["page 1h/5m x13.44", "page 6h/30m x5.6",
                                         "ticket 1d/2h x2.8", "ticket 3d/6h x0.933333"]
    assert [round(r.budget_share, 4) for r in shorter] == [0.02, 0.05, 0.1, 0.1]


def test_timeslices_against_occurrences_under_uneven_traffic(store, tmp_path) -> None:
    """One busy minute with 2 % errors and nine quiet clean minutes: 98.2 % of requests are
    good (occurrences) but only 9 of 10 minutes (timeslices at 99 %)."""
    minutes = [(END - timedelta(minutes=10), 1000, 20)] + [
        (END - timedelta(minutes=m), 10, 0) for m in range(1, 10)]
    ingest_file(store, write_minutes(tmp_path / "r.parquet", minutes))
    occurrences = budget_report(store, config(window="1h").slos[0], END)
    assert (occurrences.good, occurrences.total) == (1070, 1090)
    assert occurrences.sli == pytest.approx(100 * 1070 / 1090)
    slices = budget_report(store, config(window="1h", budgeting="timeslices").slos[0], END)
    assert (slices.good, slices.total) == (9, 10)
    assert slices.allowed_bad == pytest.approx(0.1)
    strict = budget_report(store, config(window="1h", budgeting="timeslices",
                                         extra=", timeslice_target: 97").slos[0], END)
    assert strict.good == 10  # 98 % clears a 97 % slice target


@pytest.fixture(name="steady_burn")
def fixture_steady_burn(store, tmp_path):
    """Seven days of 10 requests a minute; in the last day every fifth minute has one error."""
    minutes = [(END - timedelta(minutes=m), 10, 1 if m <= 1440 and m % 5 == 0 else 0)
               for m in range(1, 7 * 1440 + 1)]
    ingest_file(store, write_minutes(tmp_path / "r.parquet", minutes))
    return store


def test_exhaustion_forecast(steady_burn) -> None:
    """Budget 1 % of 100,800 = 1,008; 288 spent leaves 71.4 %. At the last day's burn rate (2)
    that lasts 0.714 * 7 d / 2 = 2.5 days; at the week's (0.286) 17.5 days: not in the window."""
    forecast = exhaustion_forecast(steady_burn, config().slos[0], load_config(), END)
    rows = {r["lookback"]: r for r in forecast.to_dict("records")}
    remaining = 1 - 288 / 1008
    assert rows["24h"]["budget_remaining"] == pytest.approx(remaining)
    assert rows["24h"]["burn_rate"] == pytest.approx(2)
    assert rows["1h"]["burn_rate"] == pytest.approx(2)
    expected = END + timedelta(days=remaining * 7 / 2)
    assert abs(rows["24h"]["exhausted_at"] - expected) < timedelta(seconds=1)
    assert rows["7d"]["burn_rate"] == pytest.approx(288 / 100_800 / 0.01)
    assert pd.isna(rows["7d"]["exhausted_at"])
    assert rows["7d"]["verdict"] == "not within the window"


def test_burndown(steady_burn) -> None:
    """The burn-down holds the whole budget for six days, then falls to the report's figure."""
    slo = config().slos[0]
    frame = budget_burndown(steady_burn, slo, load_config(), END, step="1h")
    assert len(frame) == 7 * 24
    assert (frame["budget_remaining"].iloc[: 6 * 24] == 1).all()
    assert frame["budget_remaining"].is_monotonic_decreasing
    final = budget_report(steady_burn, slo, END).budget_remaining
    assert frame["budget_remaining"].iloc[-1] == pytest.approx(final)
