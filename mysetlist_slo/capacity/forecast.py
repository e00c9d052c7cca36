"""Traffic forecasts with prediction intervals, chosen per series by rolling-origin backtest,
and the peak load to plan capacity for.

Two models: seasonal naive (the baseline: the same hour last week) and MSTL + ETS from
statsmodels (daily and weekly seasonality removed by MSTL, the rest forecast by a damped
additive ETS, the seasonal cycles carried forward). Errors are judged by MASE (against the
seasonal naive in-sample error, Hyndman & Koehler 2006), sMAPE and the empirical coverage of
the 80 % and 95 % intervals.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.errors import InsufficientDataError

LEVELS = (0.8, 0.95)
DAY = 24  # hourly steps per day
# The least hourly history plan_peak forecasts from: two periods of the daily season to fit
# MSTL, one day after them held out to calibrate the intervals, and one day to backtest on.
MIN_HISTORY_HOURS = 2 * DAY + DAY + DAY
Model = Callable[[pd.Series, int, tuple[int, ...]], pd.DataFrame]

# Buckets counted from the series' own start (not from midnight or the epoch), so the buckets
# and the index built from the same start meet whatever the start's minute or time zone.
_RATE = """
WITH counted AS (
    SELECT minute, sum(requests) AS requests
    FROM request_counts
    WHERE minute >= $start AND minute < $end
    GROUP BY minute
)
SELECT time_bucket($width, minute, $start) AS time, sum(requests) AS requests,
       min(minute) AS first_minute, max(minute) AS last_minute
FROM counted
GROUP BY time
ORDER BY time
"""


def request_rate(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                 freq: str = "1h") -> pd.Series:
    """Return requests per second per ``freq`` bucket, the buckets counted from ``start``.

    ``start`` and ``end`` are taken down to the whole minute (the rollups' grain). The series
    covers only the data's span, from the first minute with requests in [start, end) to the
    last: a bucket inside it without requests is zero traffic, time before the data begins or
    after it ends is no data and left out. A bucket the span covers in part is divided by the
    seconds it covers. Empty when there are no requests.
    """
    width = pd.Timedelta(freq)
    start_at = pd.Timestamp(start).tz_convert("UTC").floor("min")
    end_at = pd.Timestamp(end).tz_convert("UTC").floor("min")
    frame = con.execute(_RATE, {"width": width.to_pytimedelta(), "start": start_at,
                                "end": end_at}).df()
    if frame.empty:
        return pd.Series([], index=pd.DatetimeIndex([], tz="UTC", name="time"), dtype=float,
                         name="rps")
    first = pd.Timestamp(frame["first_minute"].min())
    last = pd.Timestamp(frame["last_minute"].max()) + pd.Timedelta(minutes=1)
    index = pd.date_range(start_at, end_at, freq=width, inclusive="left", name="time")
    index = index[(index + width > first) & (index < last)]
    counts = frame.set_index("time")["requests"].reindex(index, fill_value=0)
    covered = (np.minimum(index + width, last) - np.maximum(index, first)).total_seconds()
    return pd.Series(counts.to_numpy(dtype=float) / covered.to_numpy(), index=index,
                     name="rps")


def _frame(index: pd.DatetimeIndex, mean: np.ndarray,
           bounds: dict[float, tuple[np.ndarray, np.ndarray]]) -> pd.DataFrame:
    # Traffic is never negative: the mean and the bounds are clipped at zero.
    frame = pd.DataFrame({"mean": np.maximum(mean, 0.0)}, index=index)
    for level, (low, high) in bounds.items():
        frame[f"lo{int(level * 100)}"] = np.maximum(low, 0.0)
        frame[f"hi{int(level * 100)}"] = np.maximum(high, 0.0)
    return frame


def _future(history: pd.Series, horizon: int) -> pd.DatetimeIndex:
    step = history.index[1] - history.index[0]
    return pd.date_range(history.index[-1] + step, periods=horizon, freq=step)


def conformal_quantile(errors: np.ndarray, level: float) -> float:
    """Return the split-conformal quantile of absolute errors: the ceil((n + 1) level)-th
    smallest of the n errors, the finite-sample rank that makes a new error fall at or below
    it with probability at least ``level`` (Lei et al. 2018, "Distribution-free predictive
    inference for regression", section 2.2); infinite when that rank exceeds n."""
    ordered = np.sort(np.asarray(errors, dtype=float))
    rank = math.ceil((len(ordered) + 1) * level)
    return float(ordered[rank - 1]) if rank <= len(ordered) else math.inf


def _bounds(mean: np.ndarray, width: dict[float, np.ndarray]
            ) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    return {level: (mean - width[level], mean + width[level]) for level in LEVELS}


def seasonal_naive(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> pd.DataFrame:
    """Return the value one longest season ago for each future step (the same hour of the
    last season in the history), with split-conformal intervals from the in-sample errors of
    the same lag: a step k seasons ahead is judged by the errors of k-seasons-old values."""
    season = max(periods)
    values = history.to_numpy(dtype=float)
    mean = np.array([values[len(values) - season + (h % season)] for h in range(horizon)])
    width = {level: np.empty(horizon) for level in LEVELS}
    for h in range(horizon):
        lag = season * (h // season + 1)
        while lag >= len(values) - 1 and lag > season:
            lag -= season  # no errors that far apart in the history: the longest there is
        errors = np.abs(values[lag:] - values[:-lag])
        for level in LEVELS:
            width[level][h] = conformal_quantile(errors, level)
    return _frame(_future(history, horizon), mean, _bounds(mean, width))


def _mstl_ets_mean(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> np.ndarray:
    """Return the MSTL + damped ETS point forecast."""
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    from statsmodels.tsa.seasonal import MSTL

    # statsmodels' MSTL keeps a period only under half the series, and fails with none left
    # (a week of hourly history calibrates on exactly two days): then no season is removed.
    usable = tuple(p for p in periods if 2 * p < len(history))
    values = history.to_numpy(dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on flat stretches
        seasonal = np.zeros((len(values), 0))
        if usable:
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


# Calibration origins, one day apart going back from the end of the history: at least three
# (72 one-day-ahead errors), and one per day of the horizon as far back as the history allows
# (each origin keeps two longest seasons before it), so a step d days ahead is
# judged by errors made d days ahead (rolling origins).
CALIBRATION_WINDOWS = 3


def mstl_ets(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> pd.DataFrame:
    """Return the MSTL + damped ETS forecast with split-conformal prediction intervals.

    ETS's own intervals ignore the noise the seasonal components soak up (a weekly cycle
    fitted from a few weeks follows last week's noise), so they come out too narrow. The
    intervals are instead conformal quantiles of the absolute errors the same model made
    from origins one day apart at the end of the history, held out (split conformal
    prediction), at matching lead times: steps on day d of the horizon take the errors made d
    days ahead, from every origin at least d days back. Past the longest lead the history can
    calibrate (origins need two longest seasons before them), the errors of that
    longest lead are reused, and the column ``calibrated_lead_days`` says which lead each step
    took.
    Raises ValueError when the history is too short for even one calibration day.
    """
    mean = _mstl_ets_mean(history, horizon, periods)
    step_day = np.arange(horizon) // DAY  # 0: the first day ahead
    days = max(CALIBRATION_WINDOWS, int(step_day[-1]) + 1)
    by_lead: dict[int, list[float]] = {}
    for k in range(1, days + 1):
        cut = len(history) - k * DAY
        if cut < 2 * max(periods):
            break  # two cycles of the longest season before the origin, at least
        steps = min(horizon, k * DAY)
        held_out = history.iloc[cut:cut + steps].to_numpy()
        errors = np.abs(held_out - _mstl_ets_mean(history.iloc[:cut], steps, periods))
        for lead_day in range(math.ceil(steps / DAY)):
            by_lead.setdefault(lead_day, []).extend(
                errors[lead_day * DAY:(lead_day + 1) * DAY])
    if not by_lead:
        raise ValueError("too little history to calibrate the intervals")
    longest = max(by_lead)
    calibrated = np.minimum(step_day, longest)
    width = {level: np.empty(horizon) for level in LEVELS}
    for lead_day in np.unique(calibrated):
        for level in LEVELS:
            width[level][calibrated == lead_day] = conformal_quantile(
                np.asarray(by_lead[int(lead_day)]), level)
    frame = _frame(_future(history, horizon), mean, _bounds(mean, width))
    frame["calibrated_lead_days"] = calibrated + 1
    return frame


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

    Raises InsufficientDataError when ``hourly`` holds fewer than MIN_HISTORY_HOURS hours.

    The model with the lower backtest MASE forecasts the hourly rate; its highest 95 %
    bound, scaled by ``growth`` (0.2 = 20 % more users) and by how far 5-minute bursts rise
    above the hourly mean (p99 ratio, from history), is the peak to plan for.
    """
    if len(hourly) < MIN_HISTORY_HOURS:
        raise InsufficientDataError("traffic history", len(hourly), MIN_HISTORY_HOURS,
                                    unit="hours")
    # A weekly cycle needs two weeks, a calibration day and a backtest day; with less history
    # only the daily one is modelled, and as many folds as fit are run.
    periods: tuple[int, ...] = (DAY, 7 * DAY)
    if len(hourly) < 2 * 7 * DAY + 2 * DAY:
        periods = (DAY,)
    folds = max(1, min(folds, (len(hourly) - 2 * max(periods) - DAY) // DAY))
    folds_frame = backtest(hourly, 24, folds, periods)
    best = backtest_summary(folds_frame)["model"].iloc[0]
    forecast = MODELS[best](hourly, horizon_hours, periods)
    # Hours counted from the series' own start, as request_rate buckets them.
    hourly_mean = (five_minute.resample("1h", origin="start").mean()
                   .reindex(five_minute.index, method="ffill"))
    ratio = (five_minute / hourly_mean.replace(0, np.nan)).dropna()
    burst = float(np.quantile(ratio, 0.99)) if len(ratio) else 1.0
    peak = float(forecast["hi95"].max()) * (1 + growth) * burst
    scenario = concurrent_users_rps(users, think_time_s) if users else None
    return PeakPlan(best, forecast, burst, peak, growth, scenario), folds_frame
