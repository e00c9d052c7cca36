"""Traffic forecasts: known seasonality recovered, metrics hand-checked, real NASA traffic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mysetlist_slo.capacity.forecast import (
    backtest,
    backtest_summary,
    concurrent_users_rps,
    mase,
    mstl_ets,
    plan_peak,
    seasonal_naive,
    smape,
)


@pytest.fixture(name="synthetic", scope="module")
def fixture_synthetic() -> pd.Series:
    """Five weeks of hourly traffic: a daily and a weekly cycle, slow growth, noise (seeded)."""
    index = pd.date_range("2026-10-05", periods=5 * 168, freq="1h", tz="UTC")
    hours = np.arange(len(index))
    rng = np.random.default_rng(11)
    daily = 40 * np.sin(2 * np.pi * hours / 24)
    weekly = 15 * (index.day_of_week >= 4)
    level = 200 + 0.02 * hours
    return pd.Series(level + daily + weekly + rng.normal(0, 5, len(index)), index=index)


def test_metrics_hand_worked() -> None:
    """MASE scales by the in-sample seasonal-naive error; sMAPE is symmetric in percent."""
    history = np.array([1.0, 2, 3, 2, 3, 4])  # season 3: errors 1, 1, 1 -> scale 1
    assert mase(np.array([5.0, 5]), np.array([4.0, 7]), history, 3) == pytest.approx(1.5)
    assert smape(np.array([100.0, 0]), np.array([50.0, 0])) == pytest.approx(100 * (2 / 3) / 2)


def test_seasonal_naive_repeats_last_week(synthetic: pd.Series) -> None:
    """The baseline's forecast is the same hour one week before."""
    forecast = seasonal_naive(synthetic, 48, (24, 168))
    assert np.allclose(forecast["mean"], synthetic.iloc[-168:-120].to_numpy())
    assert forecast.index[0] == synthetic.index[-1] + pd.Timedelta(hours=1)


def test_mstl_ets_beats_the_baseline_on_known_seasonality(synthetic: pd.Series) -> None:
    """With true seasonality and white noise, MSTL + ETS errs less than last week's value
    (which carries last week's noise too), and its 95 % intervals cover about 95 %."""
    summary = backtest_summary(backtest(synthetic, 24, 5, (24, 168))).set_index("model")
    assert summary.loc["MSTL + ETS", "mase"] < summary.loc["seasonal naive", "mase"]
    assert summary.loc["MSTL + ETS", "coverage95"] >= 0.85
    forecast = mstl_ets(synthetic, 24, (24, 168))
    assert (forecast["lo95"] <= forecast["mean"]).all()
    assert (forecast["mean"] <= forecast["hi95"]).all()


def test_littles_law() -> None:
    """10,000 users thinking 10 s between requests send 1,000 req/s."""
    assert concurrent_users_rps(10_000, 10.0) == pytest.approx(1000)


def test_peak_plan(synthetic: pd.Series) -> None:
    """The peak is the highest 95 % bound times growth times the 5-minute burst factor."""
    five = synthetic.resample("5min").ffill()
    plan, folds = plan_peak(synthetic, five, 24 * 30, growth=0.2, users=10_000)
    assert plan.model == backtest_summary(folds)["model"].iloc[0]
    assert plan.burst_factor == pytest.approx(1.0)  # flat within each hour here
    assert plan.peak_rps == pytest.approx(plan.forecast["hi95"].max() * 1.2)
    assert plan.concurrent_users_rps == pytest.approx(1000)


@pytest.mark.slow
def test_backtest_on_real_nasa_traffic(real_data: Path) -> None:
    """Real traffic nobody here made (NASA 1995, with an outage and bursts): both models run
    on 7 daily folds; numbers are finite and intervals cover most of what happened."""
    raw = pd.read_csv(real_data / "nasa_http_1995_5min_train.csv", parse_dates=["timestamp"])
    hourly = raw.set_index("timestamp")["requests"].resample("1h").sum() / 3600
    folds = backtest(hourly, 24, 7, (24, 168))
    assert len(folds) == 14
    assert np.isfinite(folds[["mase", "smape"]].to_numpy()).all()
    summary = backtest_summary(folds).set_index("model")
    assert (summary["coverage95"] >= 0.8).all()
    # The baseline's MASE on one fold, recomputed by hand from the series.
    origin = len(hourly) - 7 * 24
    actual = hourly.iloc[origin:origin + 24].to_numpy()
    last_week = hourly.iloc[origin - 168:origin - 144].to_numpy()
    history = hourly.iloc[:origin].to_numpy()
    scale = np.mean(np.abs(history[168:] - history[:-168]))
    first = folds[(folds["model"] == "seasonal naive") & (folds["fold"] == 0)]
    assert first["mase"].item() == pytest.approx(np.mean(np.abs(actual - last_week)) / scale)
