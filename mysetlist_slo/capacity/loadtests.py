"""Load tests against the plan's scalability targets: per run, the throughput it sustained, its
latency percentiles per endpoint, its error rate, the users it reached, and a verdict.

A run passes only when it reached the target load (``capacity.target_rps`` held for
``load_tests.sustain``, and ``capacity.concurrent_users``) *and* held the API's p95 and the error
rate there; a run that broke them fails whatever load it reached; a run that held them but never
reached the target load says so instead of passing.

Throughput sustained: the highest request rate held over ``sustain`` — from a k6 point stream
(requests per second, rolling window), from Locust's history (its reported rate, rolling window),
or, with only a summary, the run's mean rate (the basis column says which). Latency and errors
are judged *at that load*, inside that window, when the run has a time series (a k6 stream:
exact p95 of the window's requests; Locust: the highest p95 it reported in the window and its
counters' growth), over the whole run otherwise. Per-endpoint percentiles are over the whole
run; from a k6 point stream they are exact (linear interpolation between closest ranks, as k6
computes them).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo._numbers import percent, signed
from mysetlist_slo.capacity.autoscaling import PodModel, fit_pod_model
from mysetlist_slo.capacity.plan import cpu_per_pod
from mysetlist_slo.config import Config, parse_duration

ALL = "(all)"
RUN_COLUMNS = ["run", "tool", "started", "finished", "duration_s", "requests", "failures",
               "error_rate", "mean_rps", "sustained_rps", "throughput_basis", "users",
               "p95_ms", "api_p95_ms", "load_window_start", "load_window_end", "p95_at_load_ms",
               "error_rate_at_load", "load_reached", "users_reached", "latency_ok",
               "errors_ok", "status", "detail"]
ENDPOINT_COLUMNS = ["run", "endpoint", "requests", "failures", "error_rate", "avg_ms",
                    "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms", "is_api"]

_SUMMARY_ROWS = """
SELECT run, any_value(tool) AS tool, endpoint, min(started) AS started, max(finished) AS finished,
       max(duration_s) AS duration_s, sum(requests) AS requests, sum(failures) AS failures,
       max(rps) AS rps, max(users) AS users, max(avg_ms) AS avg_ms, max(p50_ms) AS p50_ms,
       max(p90_ms) AS p90_ms, max(p95_ms) AS p95_ms, max(p99_ms) AS p99_ms, max(max_ms) AS max_ms
FROM load_runs
GROUP BY run, endpoint
"""

# Per endpoint of each run with a k6 point stream: exact percentiles over every request.
_POINT_ENDPOINTS = """
WITH durations AS (
    SELECT run, endpoint, value FROM load_points WHERE metric = 'request_ms'
), failed AS (
    SELECT run, endpoint, sum(value) AS failures, count(*) AS checked
    FROM load_points WHERE metric = 'request_failed' GROUP BY run, endpoint
)
SELECT d.run, d.endpoint, count(*) AS requests, any_value(f.failures) AS failures,
       avg(value) AS avg_ms, quantile_cont(value, 0.5) AS p50_ms,
       quantile_cont(value, 0.9) AS p90_ms, quantile_cont(value, 0.95) AS p95_ms,
       quantile_cont(value, 0.99) AS p99_ms, max(value) AS max_ms
FROM durations AS d LEFT JOIN failed AS f USING (run, endpoint)
GROUP BY GROUPING SETS ((d.run, d.endpoint), (d.run))
"""

_POINT_RUNS = """
SELECT run, min(ts) AS started, max(ts) AS finished,
       sum(value) FILTER (WHERE metric = 'requests') AS requests,
       count(*) FILTER (WHERE metric = 'request_ms') AS timed,
       sum(value) FILTER (WHERE metric = 'request_failed') AS failures,
       max(value) FILTER (WHERE metric = 'users') AS users,
       max(value) FILTER (WHERE metric = 'requests_total' AND endpoint = '(all)') AS total,
       max(value) FILTER (WHERE metric = 'failures_total' AND endpoint = '(all)') AS total_failed
FROM load_points
GROUP BY run
"""

# Requests per second of k6 point streams; Locust's reported rate at each history line.
_RATES = """
SELECT run, 'k6' AS source, date_trunc('second', ts) AS ts, sum(value) AS rps
FROM load_points WHERE metric = 'requests'
GROUP BY run, date_trunc('second', ts)
UNION ALL
SELECT run, 'locust' AS source, ts, value AS rps
FROM load_points WHERE metric = 'rps' AND endpoint = '(all)'
"""
_RATE_SERIES = _RATES + "ORDER BY run, ts\n"


def endpoint_path(endpoint: str) -> str:
    """Return the path an endpoint name stands for: a URL's path, or the last word of names
    like ``GET /api/shows``."""
    word = endpoint.strip().split()[-1] if endpoint.strip() else ""
    return urlsplit(word).path if "://" in word else word


def is_api(endpoint: str, patterns: list[str]) -> bool:
    """Return True when the endpoint's path matches one of the API patterns (shell globs)."""
    path = endpoint_path(endpoint)
    return any(fnmatch.fnmatchcase(path, pattern) for pattern in patterns)


def load_test_endpoints(con: duckdb.DuckDBPyConnection, config: Config) -> pd.DataFrame:
    """Return one row per run and endpoint (``(all)`` for the run): requests, failures, error
    rate (percent), latency statistics in ms and whether the endpoint is an API one. Point
    streams take precedence over summaries for the runs that have both."""
    points = con.execute(_POINT_ENDPOINTS).df()
    points["endpoint"] = points["endpoint"].fillna(ALL)
    summary = con.execute(_SUMMARY_ROWS).df()
    summary = summary[~summary["run"].isin(points["run"])]
    frame = pd.concat([points, summary], ignore_index=True) if len(points) else summary
    frame = frame.reindex(columns=[c for c in ENDPOINT_COLUMNS if c != "is_api"
                                   and c != "error_rate"])
    requests = frame["requests"].astype("float64")
    frame["error_rate"] = np.where(requests > 0, 100 * frame["failures"].astype("float64")
                                   / requests.where(requests > 0), np.nan)
    frame["is_api"] = [endpoint != ALL and is_api(str(endpoint), config.load_tests.api_endpoints)
                       for endpoint in frame["endpoint"]]
    return frame[ENDPOINT_COLUMNS].sort_values(["run", "endpoint"]).reset_index(drop=True)


@dataclass(frozen=True)
class _Load:
    """The highest request rate a run held over the sustain window, and where."""

    rps: float
    basis: str
    source: str  # k6 or locust
    start: pd.Timestamp  # the window, [start, end)
    end: pd.Timestamp


def _sustained(series: pd.DataFrame, window: timedelta) -> _Load | None:
    """Return the highest mean rate over ``window`` in a run's rate series (None without one).

    k6 rates are requests counted per second, every second of the run (silent ones as zero);
    Locust's are the rates it reported at each history line.
    """
    if series.empty:
        return None
    source = str(series["source"].iloc[0])
    rates = series.set_index("ts")["rps"].astype("float64").sort_index()
    step = timedelta(seconds=1)
    if source == "k6":
        grid = pd.date_range(rates.index[0], rates.index[-1], freq="s")
        rates = rates.reindex(grid, fill_value=0.0)
    span = rates.index[-1] + step - rates.index[0]
    if span < window:
        return _Load(float(rates.mean()), f"mean over the whole run ({span.total_seconds():.0f}"
                     f" s, shorter than {window.total_seconds():.0f} s)", source,
                     rates.index[0], rates.index[-1] + step)
    # A rolling label is the last second (or history line) of its window.
    rolling = rates.rolling(window, min_periods=1).mean()
    held = rolling[rolling.index >= rates.index[0] + window - step]
    last = held.idxmax()
    what = "requests per second" if source == "k6" else "Locust's reported rate"
    return _Load(float(held.max()), f"highest {what} held over {window.total_seconds():.0f} s",
                 source, last + step - window, last + step)


# What the requests inside the sustained window saw: a k6 stream's exact p95 per endpoint and
# failures; Locust's reported p95 (the highest in the window) and its cumulative counters.
_K6_AT_LOAD = """
WITH inside AS (
    SELECT endpoint, metric, value FROM load_points
    WHERE run = $run AND ts >= $start AND ts < $end
      AND metric IN ('request_ms', 'request_failed')
)
SELECT endpoint, quantile_cont(value, 0.95) FILTER (WHERE metric = 'request_ms') AS p95,
       sum(value) FILTER (WHERE metric = 'request_failed') AS failed,
       count(*) FILTER (WHERE metric = 'request_failed') AS checked
FROM inside
GROUP BY GROUPING SETS ((endpoint), ())
"""
_LOCUST_AT_LOAD = """
SELECT max(value) FILTER (WHERE metric = 'p95_ms') AS p95,
       max(value) FILTER (WHERE metric = 'requests_total')
         - min(value) FILTER (WHERE metric = 'requests_total') AS requests,
       max(value) FILTER (WHERE metric = 'failures_total')
         - min(value) FILTER (WHERE metric = 'failures_total') AS failures
FROM load_points
WHERE run = $run AND endpoint = '(all)' AND ts >= $start AND ts < $end
"""


def _at_load(con: duckdb.DuckDBPyConnection, run: str, load: _Load,
             patterns: list[str]) -> tuple[float | None, float | None]:
    """Return (p95 in ms, error rate in percent) of the requests in the sustained window: the
    worst API endpoint's p95 when there are API endpoints, else all requests'."""
    params = {"run": run, "start": load.start, "end": load.end}
    if load.source == "locust":
        p95, requests, failures = con.execute(_LOCUST_AT_LOAD, params).fetchall()[0]
        rate = 100 * failures / requests if requests and failures is not None else None
        return _value(p95), rate
    rows = con.execute(_K6_AT_LOAD, params).fetchall()
    everything = next((r for r in rows if r[0] is None), None)
    api = [r[1] for r in rows if r[0] is not None and r[1] is not None and is_api(r[0], patterns)]
    p95 = max(api) if api else (everything[1] if everything else None)
    rate = (100 * everything[2] / everything[3] if everything and everything[3] else None)
    return _value(p95), rate


def _targets(config: Config) -> tuple[float, int]:
    """Return the request rate and users the plan's load must reach."""
    if config.capacity is None:
        return 1000.0, 10_000  # the plan's figures, when the config holds no capacity section
    return config.capacity.target_rps, config.capacity.concurrent_users


def _value(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def load_test_runs(con: duckdb.DuckDBPyConnection, config: Config) -> pd.DataFrame:
    """Return one row per load-test run: times, requests, failures, error rate (percent), mean
    and sustained request rate (with its basis), users reached, overall and worst API p95, and
    the verdict against the plan's targets (``status``: passed, failed, target load not
    reached; ``detail``: one line of what the run reached against each target, the status not
    repeated). Newest run last; empty when no run is stored."""
    settings = config.load_tests
    window = parse_duration(settings.sustain)
    target_rps, target_users = _targets(config)
    endpoints = load_test_endpoints(con, config)
    summary = con.execute(_SUMMARY_ROWS).df().set_index(["run", "endpoint"])
    points = con.execute(_POINT_RUNS).df().set_index("run")
    series = con.execute(_RATE_SERIES).df()
    rows = []
    for run in sorted(set(endpoints["run"]) | set(points.index)):
        whole = summary.loc[(run, ALL)] if (run, ALL) in summary.index else None
        pts = points.loc[run] if run in points.index else None
        everything = endpoints[(endpoints["run"] == run) & (endpoints["endpoint"] == ALL)]

        def pick(name: str, from_points: Any = None, *,
                 _whole: Any = whole) -> float | None:
            value = _value(_whole[name]) if _whole is not None else None
            return value if value is not None else _value(from_points)

        requests = pick("requests", pts["requests"] if pts is not None else None)
        if requests is None and pts is not None:
            requests = _value(pts["total"]) or _value(pts["timed"])
        failures = pick("failures", pts["failures"] if pts is not None else None)
        if failures is None and pts is not None:
            failures = _value(pts["total_failed"])
        started = pts["started"] if pts is not None else (whole["started"] if whole is not None
                                                           else None)
        finished = pts["finished"] if pts is not None else (whole["finished"]
                                                            if whole is not None else None)
        duration = pick("duration_s")
        if duration is None and pts is not None and started is not None:
            duration = (pd.Timestamp(finished) - pd.Timestamp(started)).total_seconds() or None
        users = max((u for u in (pick("users"), _value(pts["users"]) if pts is not None
                                 else None) if u is not None), default=None)
        mean_rps = requests / duration if requests is not None and duration else None
        load = _sustained(series[series["run"] == run], window)
        if load is None:
            sustained, basis, at_load = mean_rps, "mean over the run (no time series)", None
        else:
            sustained, basis = load.rps, load.basis
            at_load = (load.start, load.end,
                       *_at_load(con, run, load, config.load_tests.api_endpoints))
        p95 = _value(everything["p95_ms"].iloc[0]) if len(everything) else None
        api = endpoints[(endpoints["run"] == run) & endpoints["is_api"]]["p95_ms"].dropna()
        api_p95 = float(api.max()) if len(api) else None
        tool = (str(whole["tool"]) if whole is not None
                else ("locust" if series[(series["run"] == run)
                                         & (series["source"] == "locust")].size else "k6"))
        rows.append(_verdict(run, tool, started, finished, duration, requests, failures,
                             mean_rps, sustained, basis, users, p95, api_p95, at_load, config,
                             target_rps, target_users))
    frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
    # Runs without times (k6 summaries alone) first, then oldest to newest.
    return frame.sort_values(["finished", "run"], na_position="first").reset_index(drop=True)


def _verdict(run: str, tool: str, started: Any, finished: Any, duration: float | None,
             requests: float | None, failures: float | None, mean_rps: float | None,
             sustained: float | None, basis: str, users: float | None, p95: float | None,
             api_p95: float | None, at_load: tuple[Any, ...] | None, config: Config,
             target_rps: float, target_users: int) -> list[Any]:
    """Return a run's row with its verdict: latency and errors are judged in the sustained
    window when the run has a time series, over the whole run otherwise."""
    settings = config.load_tests
    error_rate = (100 * failures / requests if requests and failures is not None else None)
    window_start, window_end, p95_at_load, errors_at_load = at_load or (None, None, None, None)
    judged_p95 = p95_at_load if p95_at_load is not None else (
        api_p95 if api_p95 is not None else p95)
    judged_errors = errors_at_load if errors_at_load is not None else error_rate
    load_reached = sustained is not None and sustained >= target_rps
    users_reached = None if users is None else users >= target_users
    latency_ok = None if judged_p95 is None else judged_p95 < settings.p95_ms
    errors_ok = None if judged_errors is None else judged_errors < settings.max_error_rate
    which = "API p95" if api_p95 is not None else "p95"
    where = " at that load" if p95_at_load is not None else ""
    parts = [f"{sustained:,.0f} req/s sustained of {target_rps:,.0f}" if sustained is not None
             else "request rate unknown",
             f"{users:,.0f} users of {target_users:,}" if users is not None
             else "users unknown",
             f"{which}{where} {judged_p95:,.0f} ms (target < {settings.p95_ms:g})"
             if judged_p95 is not None else "no latency",
             f"errors{where if errors_at_load is not None else ''} {judged_errors:.3f} % "
             f"(target < {settings.max_error_rate:g} %)"
             if judged_errors is not None else "error rate unknown"]
    if not requests:
        status = "no data"
    elif latency_ok is False or errors_ok is False:
        status = "failed"
    elif not load_reached or users_reached is not True or latency_ok is None or errors_ok is None:
        status = "target load not reached" if (not load_reached or users_reached is False) \
            else "incomplete"
    else:
        status = "passed"
    return [run, tool, started, finished, duration,
            None if requests is None else int(requests),
            None if failures is None else int(failures), error_rate, mean_rps, sustained, basis,
            None if users is None else int(users), p95, api_p95, window_start, window_end,
            p95_at_load, errors_at_load, load_reached, users_reached, latency_ok, errors_ok,
            status, "; ".join(parts)]


@dataclass(frozen=True)
class LoadTestCapacity:
    """Requests per second one pod serves at the HPA's CPU target, measured during a load test
    and as fitted from production, side by side."""

    run: str
    points: int  # Prometheus samples during the run used for the fit
    measured_rps_per_pod: float | None
    production_rps_per_pod: float | None
    difference: float | None  # measured / production - 1
    disagree: bool | None  # |difference| over load_tests.capacity_disagreement
    pod_model: PodModel | None
    detail: str


# Prometheus samples of CPU and replicas during a run, and the run's request rate over each
# sample's scrape interval (the ``step`` before it): Prometheus' own rate() windows end there.
_RUN_CPU = """
WITH samples AS (
    SELECT ts, name, avg(value) AS value
    FROM metrics
    WHERE ts > $start AND ts <= $end AND name IN ('mysetlist_cpu_cores', 'mysetlist_replicas')
    GROUP BY ts, name
), wide AS (
    SELECT ts, any_value(value) FILTER (WHERE name = 'mysetlist_cpu_cores') AS cores,
           any_value(value) FILTER (WHERE name = 'mysetlist_replicas') AS replicas
    FROM samples GROUP BY ts
), rates AS (
    SELECT ts, rps FROM ({rates}) WHERE run = $run
)
SELECT wide.ts, cores, replicas,
       (SELECT avg(rps) FROM rates WHERE rates.ts > wide.ts - $step AND rates.ts <= wide.ts) AS rps
FROM wide
WHERE cores IS NOT NULL AND replicas > 0
ORDER BY wide.ts
"""


def production_pod_model(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                         cpu_request: float = 1.0, cpu_limit: float = 2.0) -> PodModel | None:
    """Return the PodModel fitted to production traffic in [start, end) as the capacity plan
    fits it (5-minute CPU and replicas against the request rollups), or None with fewer than
    10 samples."""
    samples = cpu_per_pod(con, start, end)
    if len(samples) < 10:
        return None
    model, _ = fit_pod_model(samples["rps_per_pod"].to_numpy(),
                             samples["cores_per_pod"].to_numpy(), cpu_request, cpu_limit)
    return model


def load_test_capacity(con: duckdb.DuckDBPyConnection, config: Config, run: str,
                       production: PodModel | None = None, cpu_request: float = 1.0,
                       cpu_limit: float = 2.0, step: timedelta = timedelta(seconds=15)
                       ) -> LoadTestCapacity:
    """Return the per-pod capacity at ``autoscaling.target_cpu_utilization`` measured in load-test
    ``run`` — CPU cores per pod (Prometheus ``mysetlist_cpu_cores`` / ``mysetlist_replicas``)
    against the run's requests per second per pod, a robust line through at least 3 samples —
    beside ``production``'s (see production_pod_model), and whether they disagree by more than
    ``load_tests.capacity_disagreement``. A run without a time series or without CPU samples
    says so in ``detail``."""
    target = (config.autoscaling.target_cpu_utilization if config.autoscaling else 70) / 100
    share = config.load_tests.capacity_disagreement
    baseline = production.capacity_rps(target) if production is not None else None
    frame = con.execute(_RUN_CPU.format(rates=_RATES), {
        "run": run, "start": _run_start(con, run), "end": _run_end(con, run),
        "step": step}).df().dropna()
    if len(frame) < 3:
        return LoadTestCapacity(run, len(frame), None, baseline, None, None, None,
                                f"{run}: fewer than 3 CPU samples (Prometheus "
                                "mysetlist_cpu_cores, mysetlist_replicas) during the run")
    model, _ = fit_pod_model((frame["rps"] / frame["replicas"]).to_numpy(),
                             (frame["cores"] / frame["replicas"]).to_numpy(), cpu_request,
                             cpu_limit)
    measured = model.capacity_rps(target)
    detail = (f"{run}: {measured:,.1f} req/s per pod at {percent(target, 0)} CPU measured "
              "under load")
    difference = disagree = None
    if baseline:
        difference = measured / baseline - 1
        disagree = abs(difference) > share
        detail += (f", {baseline:,.1f} fitted from production ({signed(difference, '+.0%')}"
                   + (f": they disagree by more than {percent(share, 0)})" if disagree else ")"))
    return LoadTestCapacity(run, len(frame), measured, baseline, difference, disagree, model,
                            detail)


def _run_start(con: duckdb.DuckDBPyConnection, run: str) -> Any:
    return con.execute("SELECT min(ts) FROM load_points WHERE run = ?", [run]).fetchall()[0][0]


def _run_end(con: duckdb.DuckDBPyConnection, run: str) -> Any:
    return con.execute("SELECT max(ts) FROM load_points WHERE run = ?", [run]).fetchall()[0][0]
