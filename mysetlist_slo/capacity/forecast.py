"""Traffic forecasts with prediction intervals, chosen per series by rolling-origin backtest,
and the peak load to plan capacity for.

Two models: seasonal naive (the baseline: the same hour last week) and MSTL + ETS from
statsmodels (daily and weekly seasonality removed by MSTL, the rest forecast by a damped
additive ETS, the seasonal cycles carried forward). Errors are judged by MASE (against the
seasonal naive in-sample error, Hyndman & Koehler 2006), sMAPE and the empirical coverage of
the 80 % and 95 % intervals.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

LEVELS = (0.8, 0.95)
Model = Callable[[pd.Series, int, tuple[int, ...]], pd.DataFrame]

_RATE = """
SELECT time_bucket(CAST(? AS INTERVAL), minute) AS time, sum(requests) AS requests
FROM request_counts
WHERE minute >= ? AND minute < ?
GROUP BY time
ORDER BY time
"""


def request_rate(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                 freq: str = "1h") -> pd.Series:
    """Return requests per second per ``freq`` bucket in [start, end), zero where none."""
    frame = con.execute(_RATE, [pd.Timedelta(freq).to_pytimedelta(), start, end]).df()
    index = pd.date_range(start, end, freq=freq, inclusive="left", tz="UTC", name="time")
    counts = frame.set_index("time")["requests"].reindex(index, fill_value=0)
    return (counts / pd.Timedelta(freq).total_seconds()).astype(float)


def _frame(index: pd.DatetimeIndex, mean: np.ndarray,
           bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    frame = pd.DataFrame({"mean": mean}, index=index)
    for level, (low, high) in bounds.items():
        frame[f"lo{int(level * 100)}"] = low
        frame[f"hi{int(level * 100)}"] = high
    return frame


def _future(history: pd.Series, horizon: int) -> pd.DatetimeIndex:
    step = history.index[1] - history.index[0]
    return pd.date_range(history.index[-1] + step, periods=horizon, freq=step)


def seasonal_naive(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> pd.DataFrame:
    """Return the value one longest season ago for each future step; intervals from the
    empirical quantiles of the in-sample seasonal-naive errors."""
    season = max(periods)
    values = history.to_numpy(dtype=float)
    mean = np.array([values[len(values) - season + (h % season)] for h in range(horizon)])
    errors = values[season:] - values[:-season]
    bounds = {level: (mean + np.quantile(errors, (1 - level) / 2),
                      mean + np.quantile(errors, (1 + level) / 2)) for level in LEVELS}
    return _frame(_future(history, horizon), mean, bounds)


def _mstl_ets_mean(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> np.ndarray:
    """Return the MSTL + damped ETS point forecast."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.seasonal import MSTL

    usable = tuple(p for p in periods if 2 * p <= len(history))
    values = history.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on flat stretches
        decomposition = MSTL(values, periods=usable).fit()
        seasonal = np.asarray(decomposition.seasonal).reshape(len(values), -1)
        adjusted = values - seasonal.sum(axis=1)
        # A Series (plain integer index): statsmodels' prediction object needs an index.
        ets = ETSModel(pd.Series(adjusted), error="add", trend="add",
                       damped_trend=True).fit(disp=False)
        prediction = ets.get_prediction(start=len(values), end=len(values) + horizon - 1)
    ahead = np.zeros(horizon)
    for column, period in enumerate(usable):
        cycle = seasonal[-period:, column]
        ahead += np.array([cycle[h % period] for h in range(horizon)])
    return np.asarray(prediction.predicted_mean) + ahead


CALIBRATION_WINDOWS = 3


def mstl_ets(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> pd.DataFrame:
    """Return the MSTL + damped ETS forecast with split-conformal prediction intervals.

    ETS's own intervals ignore the noise the seasonal components soak up (a weekly cycle
    fitted from a few weeks follows last week's noise), so they come out too narrow. The
    intervals are instead the quantiles of the absolute errors the same model made on the
    last three days held out (split conformal prediction), one width for every step.
    """
    mean = _mstl_ets_mean(history, horizon, periods)
    window = min(horizon, 24)
    errors: list[float] = []
    for k in range(1, CALIBRATION_WINDOWS + 1):
        cut = len(history) - k * window
        if cut < 2 * max(periods):
            break
        held_out = history.iloc[cut:cut + window].to_numpy()
        errors += list(np.abs(held_out - _mstl_ets_mean(history.iloc[:cut], window, periods)))
    if not errors:
        raise ValueError("too little history to calibrate the intervals")
    bounds = {level: (mean - np.quantile(errors, level), mean + np.quantile(errors, level))
              for level in LEVELS}
    return _frame(_future(history, horizon), mean, bounds)


MODELS: dict[str, Model] = {"seasonal naive": seasonal_naive, "MSTL + ETS": mstl_ets}


def mase(actual: np.ndarray, forecast: np.ndarray, history: np.ndarray, season: int) -> float:
    """Return the mean absolute scaled error: forecast MAE over the in-sample MAE of the
    seasonal naive method (below 1: better than last season's value)."""
    scale = np.mean(np.abs(history[season:] - history[:-season]))
    return float(np.mean(np.abs(actual - forecast)) / scale)


def smape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Return the symmetric mean absolute percentage error, in percent (0/0 counts as 0)."""
    denominator = np.abs(actual) + np.abs(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(denominator > 0, 2 * np.abs(actual - forecast) / denominator, 0.0)
    return float(100 * np.mean(terms))


def backtest(series: pd.Series, horizon: int, folds: int, periods: tuple[int, ...],
             models: dict[str, Model] | None = None) -> pd.DataFrame:
    """Return, per model and fold of a rolling-origin backtest (each fold forecasts the
    ``horizon`` steps after an origin moved ``horizon`` steps on), MASE, sMAPE and the share of
    actual values inside the 80 % and 95 % intervals."""
    rows = []
    season = max(periods)
    for fold in range(folds):
        origin = len(series) - (folds - fold) * horizon
        if origin < 2 * season:
            raise ValueError(f"fold {fold}: only {origin} points before the origin; need "
                             f"two seasons ({2 * season})")
        history, actual = series.iloc[:origin], series.iloc[origin:origin + horizon]
        for name, model in (models or MODELS).items():
            forecast = model(history, horizon, periods)
            truth = actual.to_numpy()
            rows.append({
                "model": name, "fold": fold, "origin": series.index[origin],
                "mase": mase(truth, forecast["mean"].to_numpy(), history.to_numpy(), season),
                "smape": smape(truth, forecast["mean"].to_numpy()),
                **{f"coverage{int(level * 100)}": float(np.mean(
                    (truth >= forecast[f"lo{int(level * 100)}"].to_numpy())
                    & (truth <= forecast[f"hi{int(level * 100)}"].to_numpy())))
                   for level in LEVELS},
            })
    return pd.DataFrame(rows)


def backtest_summary(folds: pd.DataFrame) -> pd.DataFrame:
    """Return the backtest averaged per model, best (lowest MASE) first."""
    return (folds.groupby("model", as_index=False)
            [["mase", "smape", "coverage80", "coverage95"]].mean()
            .sort_values("mase", ignore_index=True))


@dataclass(frozen=True)
class PeakPlan:
    """The load to plan for over the horizon."""

    model: str
    forecast: pd.DataFrame  # per step: mean and intervals, req/s
    burst_factor: float  # p99 of 5-minute rates over the hourly mean, from history
    peak_rps: float  # the highest 95 % upper bound, times growth and burst factor
    growth: float
    concurrent_users_rps: float | None  # the N-concurrent-users scenario by Little's law


def concurrent_users_rps(users: int, think_time_s: float, response_time_s: float = 0.0
                         ) -> float:
    """Return the request rate of ``users`` each waiting ``think_time_s`` between requests:
    Little's law, N = X (Z + R), so X = N / (Z + R)."""
    return users / (think_time_s + response_time_s)


def plan_peak(hourly: pd.Series, five_minute: pd.Series, horizon_hours: int,
              growth: float = 0.0, users: int | None = None, think_time_s: float = 10.0,
              folds: int = 3) -> tuple[PeakPlan, pd.DataFrame]:
    """Return the peak plan over ``horizon_hours`` and the backtest that chose its model.

    The model with the lower backtest MASE forecasts the hourly rate; its highest 95 %
    bound, scaled by ``growth`` (0.2 = 20 % more users) and by how far 5-minute bursts rise
    above the hourly mean (p99 ratio, from history), is the peak to plan for.
    """
    # A weekly cycle needs two weeks before the first backtest origin; with less history
    # only the daily one is modelled, and as many folds as fit are run.
    periods: tuple[int, ...] = (24, 24 * 7)
    if len(hourly) < 2 * 168 + 24:
        periods = (24,)
    folds = max(1, min(folds, (len(hourly) - 2 * max(periods)) // 24))
    folds_frame = backtest(hourly, 24, folds, periods)
    best = backtest_summary(folds_frame)["model"].iloc[0]
    forecast = MODELS[best](hourly, horizon_hours, periods)
    hourly_mean = five_minute.resample("1h").mean().reindex(five_minute.index, method="ffill")
    ratio = (five_minute / hourly_mean.replace(0, np.nan)).dropna()
    burst = float(np.quantile(ratio, 0.99)) if len(ratio) else 1.0
    peak = float(forecast["hi95"].max()) * (1 + growth) * burst
    scenario = concurrent_users_rps(users, think_time_s) if users else None
    return PeakPlan(best, forecast, burst, peak, growth, scenario), folds_frame
