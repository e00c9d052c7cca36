"""Hand-worked cases for capacity/ (pools, plan, forecast, autoscaling), written for the
survivors of the mutation run of issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from test_capacity_math import erlang_c_exact
from test_capacity_sources import T0, prometheus_matrix, show_stats, statements_csv
from test_forecast import write_requests

from mysetlist_slo import ingest_file, load_config
from mysetlist_slo.capacity.autoscaling import HpaSettings, PodModel, fit_pod_model, replay_hpa
from mysetlist_slo.capacity.forecast import (
    _mstl_ets_mean,
    backtest,
    backtest_summary,
    concurrent_users_rps,
    mstl_ets,
    plan_peak,
    request_rate,
    seasonal_naive,
    smape,
)
from mysetlist_slo.capacity.plan import (
    PoolObservation,
    capacity_plan,
    cpu_per_pod,
    fast_statement_share,
    mean_transaction_s,
    technical_metrics,
)
from mysetlist_slo.capacity.pools import (
    PoolSize,
    erlang_b,
    erlang_c,
    mean_wait,
    size_pool,
    wait_longer_than,
)
from mysetlist_slo.config import parse_config


def test_a_saturated_pool_always_waits() -> None:
    """Offered load equal to the servers (2 erlangs on 2 connections) or above: the queue
    grows without bound, so the mean wait is infinite and every transaction waits longer than
    any t (probability 1.0, not a formula divided by N - A = 0)."""
    assert mean_wait(2, 2.0, 0.01) == math.inf
    assert wait_longer_than(2, 2.0, 0.01, 0.1) == 1.0
    assert wait_longer_than(2, 3.0, 0.01, 0.1) == 1.0


def test_erlang_b_by_hand() -> None:
    """B(0) = 1 (no server: every call is blocked); one erlang on one server: B(1) = 1 / 2;
    on two: B(2) = 1 x 0.5 / (2 + 0.5) = 0.2; no load is never blocked by a server."""
    assert erlang_b(0, 3.0) == 1.0
    assert erlang_b(1, 1.0) == pytest.approx(0.5, rel=1e-15)
    assert erlang_b(2, 1.0) == pytest.approx(0.2, rel=1e-15)
    assert erlang_b(3, 0.0) == 0.0


@pytest.mark.parametrize(("servers", "load"), [(-1, 1.0), (2, -0.5), (-1, -1.0)])
def test_erlang_b_refuses_negative_arguments(servers: int, load: float) -> None:
    """A negative pool or a negative load is a mistake, named as such."""
    with pytest.raises(ValueError, match=r"^servers and offered_load must be non-negative$"):
        erlang_b(servers, load)


@pytest.mark.parametrize("servers", [0, -1])
def test_erlang_c_needs_a_server(servers: int) -> None:
    """Erlang C of no server is undefined (not "always waits"): ValueError, even at a load
    below one erlang."""
    with pytest.raises(ValueError, match=r"^servers must be positive$"):
        erlang_c(servers, 0.5)


def test_erlang_c_by_hand() -> None:
    """Two servers at half an erlang: B(1) = 1/3, B(2) = (1/6) / (13/6) = 1/13, so
    C = (2/13) / (2 - 0.5 x 12/13) = (2/13) / (20/13) = 0.1; one server at load 0.5 waits
    with probability 0.5 (M/M/1: rho); from one erlang on up, one server always waits."""
    assert erlang_c(2, 0.5) == pytest.approx(0.1, rel=1e-12)
    assert erlang_c(1, 0.5) == pytest.approx(0.5, rel=1e-12)
    assert erlang_c(1, 1.0) == 1.0
    assert erlang_c(1, 0.0) == 0.0


def test_pool_meets_the_default_mean_wait_of_5_ms() -> None:
    """Half an erlang of 5.5 ms transactions (1000/11 tps), with the waiting probability left
    free (1.0): one server waits E[Wq] = rho s / (1 - rho) = 5.5 ms, over the default 5 ms, so
    two servers: C = 0.1 and E[Wq] = 0.1 x 5.5 / 1.5 = 0.3667 ms. A 6 ms limit keeps one."""
    pool = size_pool(1000 / 11, 0.0055, max_wait_probability=1.0)
    assert pool.offered_load == pytest.approx(0.5)
    assert pool.servers == 2
    assert pool.wait_probability == pytest.approx(0.1)
    assert pool.mean_wait_ms == pytest.approx(0.1 * 5.5 / 1.5)
    assert pool.rule_of_thumb is None
    assert size_pool(1000 / 11, 0.0055, max_wait_probability=1.0,
                     max_mean_wait_ms=6.0).servers == 1


def test_pool_limits_each_bind_alone_and_at_equality() -> None:
    """Load 0.5 erlang of 10 ms (50 tps). One server: P(wait) = 0.5, E[Wq] = 10 ms; two:
    P(wait) = 0.1, E[Wq] = 0.1 x 10 / 1.5 = 0.667 ms. Each limit alone asks for two; a value
    exactly at the limit meets it (1 server at P = 0.5 or at 10 ms); no traffic needs one
    server, and free limits give the least stable pool, floor(A) + 1 (3 at 2.5 erlangs)."""
    free = math.inf
    assert size_pool(50, 0.01, max_wait_probability=0.2, max_mean_wait_ms=free).servers == 2
    assert size_pool(50, 0.01, max_wait_probability=1.0, max_mean_wait_ms=9.0).servers == 2
    assert size_pool(50, 0.01, max_wait_probability=0.5, max_mean_wait_ms=free).servers == 1
    assert size_pool(50, 0.01, max_wait_probability=1.0, max_mean_wait_ms=10.0).servers == 1
    assert size_pool(0.0, 0.01).servers == 1
    assert size_pool(100, 0.025, max_wait_probability=1.0, max_mean_wait_ms=free).servers == 3


def test_pool_default_wait_probability_is_1_percent() -> None:
    """Half an erlang of 10 ms under the default limits (P(wait) <= 1 %, E[Wq] <= 5 ms):
    C(2) = 0.1; B(3) = (1/26) / (79/26) = 1/79, C(3) = (3/79) / (198/79) = 1.52 % > 1 %;
    B(4) = (1/158) / (633/158) = 1/633, C(4) = (4/633) / (2216/633) = 0.18 %: 4 servers
    (the mean-wait limit alone would stop at 2)."""
    pool = size_pool(50, 0.01)
    assert pool.servers == 4
    assert pool.wait_probability == pytest.approx(4 / 2216)


def test_rule_of_thumb_counts_cores_and_spindles() -> None:
    """2 x cores + spindles: 3 cores and 2 disks give 8; 4 cores and the default one disk 9;
    without cores (None or 0) there is no rule of thumb."""
    assert size_pool(50, 0.01, cores=3, spindles=2).rule_of_thumb == 8
    assert size_pool(50, 0.01, cores=4).rule_of_thumb == 9
    assert size_pool(50, 0.01, cores=0).rule_of_thumb is None


def test_pod_model_fit_by_hand() -> None:
    """Four samples (0, 1), (0, 3), (2, 5), (2, 7): the least-squares line is 2 + 2 x with
    residuals of +-1. The Huber fit's MAD scale is 1 / 0.6745, so every scaled residual is
    0.6745 < 1.345 and the robust fit is the least-squares one: R^2 = 1 - 4 / 20 = 0.8 (y mean
    4, total 9 + 1 + 1 + 9), s^2 = 4 / (4 - 2) = 2, (X'X)^-1 = [[0.5, -0.25], [-0.25, 0.25]]:
    idle SE = sqrt(2 x 0.5) = 1, slope SE = sqrt(2 x 0.25) = 0.7071."""
    model, quality = fit_pod_model(np.array([0, 0, 2, 2]), np.array([1, 3, 5, 7]), 0.5, 1.5)
    assert model == PodModel(pytest.approx(2.0), pytest.approx(2.0), 0.5, 1.5)
    assert quality == {"r_squared": pytest.approx(0.8), "slope_se": pytest.approx(0.5**0.5),
                       "idle_se": pytest.approx(1.0), "points": 4.0}


def test_pod_model_idle_cpu_is_never_negative() -> None:
    """The same samples 3 cores lower fit -1 + 2 x: idle CPU below zero is not physical, so
    the model's idle is 0 and its slope stays 2."""
    model, _ = fit_pod_model(np.array([0.0, 0, 2, 2]), np.array([-2.0, 0, 2, 4]), 1.0, 2.0)
    assert model.idle_cores == 0.0
    assert model.cores_per_rps == pytest.approx(2.0)



# The hand-worked capacity plan: four days of traffic from Tuesday 17 November 2026, planned at
# Saturday 00:00 for one day with 50 % growth. Every minute of an hour holds the same number
# of requests: 2 a minute from 12:00 to 18:00, 1 a minute otherwise (7,200 requests in all),
# except on the first day, where 05:00 has 2 a minute and 06:00 none.
PLAN_T0 = datetime(2026, 11, 17, tzinfo=UTC)
PLAN_AT = PLAN_T0 + timedelta(days=4)


def per_minute(day: int, hour: int) -> int:
    """Requests in each minute of ``hour`` on ``day`` (0 to 3) of the plan's traffic."""
    if day == 0 and hour in (5, 6):
        return 2 if hour == 5 else 0
    return 2 if 12 <= hour < 18 else 1


def write_plan_store(store: duckdb.DuckDBPyConnection, folder: Path, cpu_points: int = 24,
                     pools: bool = True) -> None:
    """Load the plan's traffic, CPU (``cpu_points`` 5-minute samples, half of them before
    Friday 12:00), SHOW STATS, SHOW POOLS (unless not ``pools``), pg_stat_statements and
    PostHog events."""
    minutes = [PLAN_T0 + timedelta(minutes=m) for m in range(4 * 24 * 60)]
    ingest_file(store, write_requests(folder / "r.jsonl", [
        t + timedelta(seconds=20 * k) for t in minutes
        for k in range(per_minute((t - PLAN_T0).days, t.hour))]))
    # CPU on Friday 11:00-13:00 from 4 replicas: 1/240 then 1/120 req/s a pod, burning 0.1
    # idle cores + 150 cores per req/s, -0.01 and +0.01 in turn (0.725 and 1.35 cores a pod).
    start = PLAN_T0 + timedelta(days=3, hours=12, minutes=-5 * (cpu_points // 2))
    points = [start + timedelta(minutes=5 * i) for i in range(cpu_points)]
    per_pod = [0.1 + 150 * per_minute(3, t.hour) / 60 / 4 + (0.01 if i % 2 else -0.01)
               for i, t in enumerate(points)]
    (folder / "prom.json").write_text(prometheus_matrix([
        ({"__name__": "mysetlist_cpu_cores"}, [(t, 4 * v) for t, v in zip(points, per_pod,
                                                                           strict=True)]),
        ({"__name__": "mysetlist_replicas"}, [(t, 4.0) for t in points])]))
    ingest_file(store, folder / "prom.json")
    # SHOW STATS every minute of Friday 00:00-00:09 (test_capacity_sources' T0): app1 30
    # transactions a minute of 10 ms with 60 ms of waiting, app2 30 of 25 ms; the admin
    # console's own traffic is left out.
    (folder / "stats.csv").write_text(show_stats({"app1": (30, 30 * 10_000, 60_000),
                                                  "app2": (30, 30 * 25_000, 0),
                                                  "pgbouncer": (5, 5_000, 9_000)}, minutes=9))
    ingest_file(store, folder / "stats.csv")
    stamp = (T0 + timedelta(minutes=5)).isoformat()
    (folder / "pools.csv").write_text(
        "timestamp,database,user,cl_active,cl_waiting,sv_active,sv_idle,sv_used,sv_tested,"
        "sv_login,maxwait,maxwait_us,pool_mode\n"
        f"{stamp},app1,web,10,3,5,0,0,0,0,0,250000,transaction\n"
        f"{stamp},pgbouncer,pgbouncer,1,7,0,0,0,0,0,9,0,statement\n")
    if pools:
        ingest_file(store, folder / "pools.csv")
    # One statement run by twelve roles over Friday 00:00-03:00: role 10 30 calls of 5 ms,
    # role 20 10 calls of 200 ms, roles 21 to 30 one call each of exactly 100 ms.
    (folder / "pss.csv").write_text(statements_csv([
        (0, "10", 1000, 5000.0), (0, "20", 500, 2500.0),
        *[(0, str(role), 7, 700.0) for role in range(21, 31)],
        (3, "10", 1030, 5150.0), (3, "20", 510, 4500.0),
        *[(3, str(role), 8, 800.0) for role in range(21, 31)]]))
    ingest_file(store, folder / "pss.csv")
    # One PostHog session on Friday 12:00:30-12:09: one concurrent user in the 12:00 and 12:05
    # windows, each with 10 requests (2 a minute).
    (folder / "posthog.jsonl").write_text("".join(json.dumps({
        "uuid": f"0193a1b2-0000-7000-8000-00000000000{i}", "event": "$pageview",
        "properties": {"$session_id": "s1"}, "distinct_id": "anon-1",
        "timestamp": (PLAN_T0 + timedelta(days=3, hours=12, seconds=seconds)).isoformat()})
        + "\n" for i, seconds in enumerate((30, 540))))
    ingest_file(store, folder / "posthog.jsonl")


# The shipped settings, but maxReplicas 8 (so the replayed history reaches it).
HAND_CONFIG = """
capacity: {target_rps: 1000, concurrent_users: 10000, think_time_s: 10, forecast_horizon_days: 30,
           headroom: 0.2}
autoscaling: {min_replicas: 2, max_replicas: 8, target_cpu_utilization: 70}
pgbouncer: {pool_mode: transaction, max_client_conn: 100, default_pool_size: 25,
            max_wait_probability: 0.01, max_mean_wait_ms: 5}
"""


def test_capacity_plan_hand_worked(store, tmp_path) -> None:
    """The whole plan on paper (PLAN_T0's traffic, planned at PLAN_AT for 1 day, +50 %).

    Forecast: 96 hourly points, so one daily season and one backtest fold; last day's hours
    repeat the day before's exactly, so the seasonal naive errs 0 (MASE 0) and is chosen; its
    same-hour errors are 0 but for the first day's 05:00 and 06:00 (2 of 72), so the 95 %
    bound (70th smallest) is the forecast itself: 1/30 req/s at 12:00-18:00. Bursts: flat
    within each hour, factor 1. Peak 1/30 x 1.5 = 0.05 req/s. Mean rate 7,200 / 96 h = 1/48.
    Pods: the line 0.1 + 150 x (req/s a pod) (residuals all +-0.01: the Huber fit is the
    least-squares one); at 70 % of 1 core a pod serves (0.7 - 0.1) / 150 = 0.004 req/s:
    0.05 x 1.2 / 0.004 = 15 replicas > maxReplicas 8; the quietest 5 % hour (1/60) x 1.2 /
    0.004 = 5. 8 pods carry 0.032 req/s: the forecast x 1.5 x 1.2 is 0.03 req/s at night and
    0.06 from 12:00, first over at 2026-11-21 12:00. 10,000 users / 10 s = 1,000 req/s =
    20,000 x the peak, needing 1,200 / 0.004 = 300,000 replicas.
    PostHog: one user in two 5-minute windows of 10 requests: 10 / 300 = 1/30 req/s a user (a
    request every 30 s), 10,000 users send 333 req/s: 400 / 0.004 = 100,000 replicas.
    PgBouncer: 1 tps of (30 x 10 + 30 x 25) / 60 = 17.5 ms, 48 transactions per request, 2.4
    tps at the peak: A = 0.042, rho = 0.021 a server: one server waits with P = 0.042 > 1 %,
    two with C = 2 rho^2 / (1 + rho) = 0.000864 (0.09 %), E[Wq] = C x 17.5 / 1.958 =
    0.00772 ms: 2 servers. Waits 540,000 us over 540 transactions: 1 ms; SHOW POOLS: 3
    clients, 250 ms (the admin pool's 7 and 9 s left out). 8 replicas x 13 clients = 104 >
    max_client_conn 100. Statements: 30 of 50 calls under 100 ms (60.0 %; 100 ms is not
    under it); 11 statements take 100 ms or more, the 10 costliest are listed: role 20's
    (2,000 ms), then roles 21 to 29 (100 ms each, in key order)."""
    write_plan_store(store, tmp_path)
    plan = capacity_plan(store, parse_config(HAND_CONFIG), PLAN_AT, horizon_days=1,
                         growth=0.5, client_pool_per_replica=13)
    assert plan.peak.model == "seasonal naive" and len(plan.backtest) == 2
    hours = pd.date_range(PLAN_AT, periods=24, freq="1h")
    high = pd.Series([1 / 30 if 12 <= t.hour < 18 else 1 / 60 for t in hours], index=hours)
    assert plan.peak.forecast["hi95"].to_numpy() == pytest.approx(high.to_numpy(), rel=1e-12)
    assert plan.peak.burst_factor == pytest.approx(1.0)
    assert plan.peak.peak_rps == pytest.approx(0.05)
    assert plan.pod_model == PodModel(pytest.approx(0.1), pytest.approx(150.0), 1.0, 2.0)
    assert plan.fit_quality["points"] == 24.0
    assert plan.fit_quality["r_squared"] == pytest.approx(1 - 24 * 0.01**2 / 2.34615)
    pods, settings = PodModel(0.1, 150.0, 1.0, 2.0), HpaSettings(2, 8, 70)
    assert plan.hpa is not None and plan.hpa.replicas_needed == 15
    assert plan.hpa.min_replicas == 5 and not plan.hpa.configured_max_is_enough
    assert plan.hpa_concurrent_users is not None
    assert plan.hpa_concurrent_users.replicas_needed == 300_000
    assert plan.max_replicas_exceeded_at == datetime(2026, 11, 21, 12, tzinfo=UTC)
    # The replays are the HPA's on the hand-built load: the 5-minute history, and the
    # forecast's 95 % bound x 1.5.
    five = pd.date_range(PLAN_T0, PLAN_AT, freq="5min", inclusive="left")
    history = pd.Series([per_minute((t - PLAN_T0).days, t.hour) / 60 for t in five],
                        index=five)
    expected = {"history": replay_hpa(history, pods, settings),
                "forecast": replay_hpa(high * 1.5, pods, settings)}
    for name, got in (("history", plan.replay_history), ("forecast", plan.replay_forecast)):
        assert got is not None
        want = expected[name]
        assert (got.scaling_events, got.seconds_at_max) == (want.scaling_events,
                                                            want.seconds_at_max)
        assert got.excess_requests == pytest.approx(want.excess_requests)
        assert got.total_requests == pytest.approx(want.total_requests)
    replayed = expected["history"]
    assert replayed.seconds_at_max > 0  # the history's afternoons need 8 pods
    assert plan.pool == PoolSize(pytest.approx(0.042), 2, pytest.approx(0.000864, abs=5e-7),
                                 pytest.approx(0.00772, abs=5e-6), 9)
    assert plan.pool_now_wait_probability == pytest.approx(
        float(erlang_c_exact(25, Fraction(175, 10_000))), rel=1e-9, abs=0)
    assert plan.client_connections_at_max == 104
    assert plan.pool_observed == PoolObservation(pytest.approx(1.0), pytest.approx(17.5),
                                                 pytest.approx(1.0), 3, 250.0)
    assert plan.statements_fast_share == pytest.approx(0.6)
    assert plan.slow_statements[["userid", "calls", "mean_ms"]].values.tolist() == [
        ["20", 10, pytest.approx(200.0)],
        *[[str(role), 1, pytest.approx(100.0)] for role in range(21, 30)]]
    assert plan.pool_settings is not None
    assert {s.source for s in plan.pool_settings.all} == {"configured"}
    assert plan.user_behaviour is not None and plan.user_behaviour.windows == 2
    assert plan.measured_users_rps == pytest.approx(10_000 / 30)
    assert plan.hpa_measured_users is not None
    assert plan.hpa_measured_users.replicas_needed == 100_000
    assert plan.verdict == " ".join([
        "Forecast (seasonal naive, chosen by backtest): the peak over the next 1 days is "
        "0.0500 req/s including 50 % growth and 5-minute bursts.",
        "8 replicas will not be enough: the peak of 0.0500 req/s with 20 % headroom needs 15 "
        "at 70 % CPU; raise maxReplicas to 15.",
        "The forecast first needs more than 8 replicas on 2026-11-21 12:00 UTC.",
        f"Replaying the HPA over the last week: {replayed.scaling_events} scaling events, "
        f"{replayed.seconds_at_max / 3600:.1f} h at maxReplicas, "
        f"{round(replayed.excess_requests):,} requests beyond capacity.",
        "10,000 concurrent users at a 10 s think time send 1,000 req/s (Little's law), "
        "20,000 times the forecast peak.",
        "For that scenario: 8 replicas will not be enough: the peak of 1,000 req/s with 20 % "
        "headroom needs 300,000 at 70 % CPU; raise maxReplicas to 300,000.",
        "Measured (PostHog sessions x requests, 2 5-minute windows): one concurrent user "
        "sends 0.0333 req/s, a request every 30.0 s (assumed: 10 s), so 10,000 users send "
        "333 req/s.",
        "At the measured rate: 8 replicas will not be enough: the peak of 333 req/s with 20 % "
        "headroom needs 100,000 at 70 % CPU; raise maxReplicas to 100,000.",
        "Observed: up to 3 clients waiting, longest wait 250.0 ms, mean wait 1.000 ms per "
        "transaction.",
        "PgBouncer: 2.4 transactions/s of 17.5 ms at the peak need 2 server connections "
        "(P(wait) 0.09 %); default_pool_size is 25 (rule of thumb 2 x cores + 1 = 9).",
        "Settings used: default_pool_size 25 (configured), max_client_conn 100 (configured), "
        "max_connections 100 (configured), superuser_reserved_connections 3 (configured).",
        "max_client_conn 100 is below the 104 client connections of maxReplicas x 13: "
        "raise it.",
        "60.0 % of statement calls average under 100 ms."])


def hourly_series(values: np.ndarray | list[float]) -> pd.Series:
    """Hourly values from Monday 16 November 2026 00:00 UTC."""
    return pd.Series(np.asarray(values, dtype=float),
                     index=pd.date_range("2026-11-16", periods=len(values), freq="1h",
                                         tz="UTC"))


def test_mstl_ets_calibrates_each_lead_day_from_origins_a_day_apart() -> None:
    """Five days of a noise-free daily cycle, forecast 4 days: MSTL repeats the cycle (to
    1e-6); origins 1, 2 and 3 days back (the 4th would leave one day, under two seasons)
    forecast 1, 2 and 3 days, so lead day 1 has 72 errors, day 2 48 and day 3 24, and day 4
    reuses day 3's; each width is the ceil((n + 1) level)-th smallest error of its lead day
    (recomputed here from the model's forecasts at those origins), the bounds the forecast
    +- width with the lower one stopped at 0."""
    hours = np.arange(24 * 5)
    cycle = lambda h: 100 + 20 * np.sin(2 * np.pi * h / 24) + 7.0 * (h % 24 == 3)  # noqa: E731
    series = hourly_series(cycle(hours))
    forecast = mstl_ets(series, 96, (24,))
    assert forecast.index[0] == series.index[-1] + pd.Timedelta(hours=1)
    assert forecast["mean"].to_numpy() == pytest.approx(cycle(np.arange(120, 216)), abs=1e-6)
    assert forecast["calibrated_lead_days"].tolist() == [1] * 24 + [2] * 24 + [3] * 48
    by_lead: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for back in (1, 2, 3):
        cut = 120 - 24 * back
        errors = np.abs(series.to_numpy()[cut:] - _mstl_ets_mean(series.iloc[:cut], 24 * back,
                                                                 (24,)))
        for day in range(back):
            by_lead[day].extend(errors[24 * day:24 * day + 24])
    for level, name in ((0.8, "80"), (0.95, "95")):
        widths = []
        for day in (0, 1, 2, 2):
            ordered = sorted(by_lead[day])
            widths += [ordered[math.ceil((len(ordered) + 1) * level) - 1]] * 24
        mean = forecast["mean"].to_numpy()
        assert forecast[f"hi{name}"].to_numpy() == pytest.approx(mean + widths)
        assert forecast[f"lo{name}"].to_numpy() == pytest.approx(
            np.maximum(mean - widths, 0.0))


def test_mstl_ets_refuses_a_history_too_short_to_calibrate() -> None:
    """Two days of hourly history leave no origin with two daily seasons before it."""
    with pytest.raises(ValueError, match=r"^too little history to calibrate the intervals$"):
        mstl_ets(hourly_series(np.ones(48)), 24, (24,))


def rising(days: int) -> pd.Series:
    """A flat day (100 req/s) rising by 10 req/s each day: day d is 100 + 10 d."""
    return hourly_series(np.repeat(100.0 + 10 * np.arange(days), 24))


def zeros(history: pd.Series, horizon: int, periods: tuple[int, ...]) -> pd.DataFrame:
    """A model that always forecasts 0 with 0-width intervals."""
    index = pd.date_range(history.index[-1] + pd.Timedelta(hours=1), periods=horizon,
                          freq="1h")
    return pd.DataFrame({"mean": 0.0, "lo80": 0.0, "hi80": 0.0, "lo95": 0.0, "hi95": 0.0},
                        index=index)


def test_backtest_by_hand() -> None:
    """Four days rising by 10 a day, 2 folds of 24 h: the seasonal naive forecasts yesterday,
    10 too low: MASE 10 / 10 = 1 (the in-sample same-hour error is 10 too); sMAPE 2 x 10 /
    (120 + 110) = 8.696 % on the first fold, 20 / 250 = 8 % on the second; its same-hour
    errors are all 10, so both intervals reach exactly the actual value: covered. A model of
    zeros errs 120 and 130 (MASE 12 and 13, sMAPE 200 %, nothing covered) and ranks second."""
    series = rising(4)
    folds = backtest(series, 24, 2, (24,), {"always zero": zeros,
                                            "seasonal naive": seasonal_naive})
    assert list(folds.columns) == ["model", "fold", "origin", "mase", "smape", "coverage80",
                                   "coverage95"]
    naive = folds[folds["model"] == "seasonal naive"]
    assert naive["fold"].tolist() == [0, 1]
    assert naive["origin"].tolist() == [series.index[48], series.index[72]]
    assert naive["mase"].tolist() == pytest.approx([1.0, 1.0])
    assert naive["smape"].tolist() == pytest.approx([100 * 20 / 230, 100 * 20 / 250])
    assert naive[["coverage80", "coverage95"]].to_numpy().tolist() == [[1.0, 1.0]] * 2
    zero = folds[folds["model"] == "always zero"]
    assert zero["mase"].tolist() == pytest.approx([12.0, 13.0])
    assert zero["smape"].tolist() == pytest.approx([200.0, 200.0])
    assert zero[["coverage80", "coverage95"]].to_numpy().tolist() == [[0.0, 0.0]] * 2
    summary = backtest_summary(folds)
    assert summary["model"].tolist() == ["seasonal naive", "always zero"]
    assert summary.index.tolist() == [0, 1]
    assert summary.loc[0, ["mase", "smape", "coverage80", "coverage95"]].tolist() == \
        pytest.approx([1.0, (100 * 20 / 230 + 100 * 20 / 250) / 2, 1.0, 1.0])
    assert list(summary.columns) == ["model", "mase", "smape", "coverage80", "coverage95"]


def test_backtest_covers_an_actual_value_on_the_lower_bound() -> None:
    """Four days falling by 10 a day: yesterday's value is 10 too high and the same-hour
    errors are all 10, so the lower bounds reach exactly the actual values: covered."""
    falling = hourly_series(np.repeat(130.0 - 10 * np.arange(4), 24))
    folds = backtest(falling, 24, 2, (24,), {"seasonal naive": seasonal_naive})
    assert folds[["coverage80", "coverage95"]].to_numpy().tolist() == [[1.0, 1.0]] * 2


def test_smape_of_values_below_one() -> None:
    """0.5 forecast as 0.25: 2 x 0.25 / 0.75 = 66.7 % (a denominator under 1 counts too)."""
    assert smape(np.array([0.5]), np.array([0.25])) == pytest.approx(200 / 3)


def test_seasonal_naive_shortens_lags_the_history_cannot_hold() -> None:
    """Season 3, ten values 0 10 20 1 12 23 3 15 27 6, 9 steps: same-hour errors 3 apart are
    1 2 3 2 3 4 3 (80 %: the ceil(8 x 0.8) = 7th smallest, 4), 6 apart 3 5 7 5 (the 4th, 7);
    steps 7-9 would need errors 9 apart, of which there is one (the lag is 9 = n - 1), so
    they take the 6-apart ones. Season 2, eight values 0 10 1 11 3 13 6 16: steps 5-6 take
    errors 6 apart (two: rank 3 of 2, unbounded), not 4 apart. Season 3 on four values: one
    error 3 apart, a lag of one season is never shortened."""
    forecast = seasonal_naive(hourly_series([0, 10, 20, 1, 12, 23, 3, 15, 27, 6]), 9, (3,))
    assert forecast["mean"].tolist() == [15.0, 27.0, 6.0] * 3
    width = [4.0] * 3 + [7.0] * 6
    assert (forecast["hi80"] - forecast["mean"]).tolist() == pytest.approx(width)
    assert forecast["lo80"].tolist() == pytest.approx(
        [max(m - w, 0.0) for m, w in zip([15.0, 27.0, 6.0] * 3, width, strict=True)])
    two = seasonal_naive(hourly_series([0, 10, 1, 11, 3, 13, 6, 16]), 8, (2,))
    assert (two["hi80"] - two["mean"]).tolist()[:4] == [3.0, 3.0, 5.0, 5.0]
    assert np.isinf(two["hi80"].to_numpy()[4:]).all()
    short = seasonal_naive(hourly_series([1, 2, 3, 4]), 1, (3,))
    assert short["mean"].tolist() == [2.0] and np.isinf(short["hi80"].to_numpy()).all()


def test_backtest_needs_two_seasons_before_each_origin() -> None:
    """Three folds of a day on four days put the first origin at 24 h, under two daily
    seasons (48): refused, naming the fold."""
    with pytest.raises(ValueError, match=r"^fold 0: only 24 points before the origin; need "
                                         r"two seasons \(48\)$"):
        backtest(rising(4), 24, 3, (24,), {"seasonal naive": seasonal_naive})


def test_plan_peak_by_hand() -> None:
    """Five days of 100 req/s until noon and 150 after, the same every day but for the first
    day's 05:00 (150) and 06:00 (50): the seasonal naive errs 0 on the (120 - 48 - 24) / 24 =
    2 folds the history allows (MASE 0) and is chosen; with 2 of 96 (and of 72) same-hour
    errors non-zero, its 95 % bounds are the forecast itself. Each hour's 5-minute rates are
    11 at 1.0 and one at 2.2 (hourly mean 1.1): ratios 0.909 and 2.0, one in 12 at 2.0, so
    the p99 burst factor is 2.0 (the first hour, all zeros, has no ratio). Peak: 150 x 1.2
    growth x 2.0 = 360 req/s; 10,000 users thinking 20 s send 500 req/s."""
    day = [100.0] * 12 + [150.0] * 12
    history = hourly_series(day * 5)
    history.iloc[5], history.iloc[6] = 150.0, 50.0
    five_index = pd.date_range("2026-11-16", periods=12 * 24 * 5, freq="5min", tz="UTC")
    five = pd.Series(np.where(np.arange(len(five_index)) % 12 == 5, 2.2, 1.0),
                     index=five_index)
    five.iloc[:12] = 0.0
    plan, folds = plan_peak(history, five, 48, growth=0.2, users=10_000, think_time_s=20.0)
    assert len(folds) == 4 and set(folds["fold"]) == {0, 1}
    assert plan.model == "seasonal naive"
    assert plan.forecast["mean"].tolist() == day * 2
    assert plan.forecast["hi95"].tolist() == day * 2
    assert plan.burst_factor == pytest.approx(2.0)
    assert plan.peak_rps == pytest.approx(150 * 1.2 * 2.0)
    assert plan.growth == 0.2
    assert plan.concurrent_users_rps == pytest.approx(500.0)
    quiet, _ = plan_peak(history, five, 24)
    assert quiet.concurrent_users_rps is None
    assert quiet.peak_rps == pytest.approx(150 * 2.0)
    # Hours averaging exactly 1 req/s (11 x 0.5 and one 6.5) keep their ratios (p99 6.5);
    # 5-minute rates all zero give no ratio at all, and a burst factor of 1.
    even = pd.Series(np.where(np.arange(len(five_index)) % 12 == 5, 6.5, 0.5), index=five_index)
    assert plan_peak(history, even, 24)[0].burst_factor == pytest.approx(6.5)
    assert plan_peak(history, five * 0, 24)[0].burst_factor == 1.0
    # The default think time is 10 s: 1,000 users send 100 req/s.
    assert plan_peak(history, five, 24, users=1_000)[0].concurrent_users_rps == \
        pytest.approx(100.0)


def test_plan_peak_backtests_three_folds_at_most() -> None:
    """A week of hourly history would allow (168 - 48 - 24) / 24 = 4 daily folds; the default
    runs 3 (two models each: 6 rows)."""
    week = hourly_series(np.tile([100.0] * 12 + [150.0] * 12, 7))
    week.iloc[5] = 120.0
    five = pd.Series(1.0, index=pd.date_range(week.index[0], periods=12 * 168, freq="5min"))
    _, folds = plan_peak(week, five, 24)
    assert len(folds) == 6 and sorted(set(folds["fold"])) == [0, 1, 2]


PLAN_SETTINGS = """
autoscaling: {min_replicas: 2, max_replicas: 10, target_cpu_utilization: 70}
pgbouncer: {pool_mode: transaction, max_client_conn: 100, default_pool_size: 25,
            max_wait_probability: 0.01, max_mean_wait_ms: 5, postgres_max_connections: 28}
"""


def test_capacity_plan_takes_its_defaults_from_the_configuration(store, tmp_path) -> None:
    """The plan's traffic with a configured 2-day horizon, 50 % headroom and 100 users
    thinking 5 s, the call's defaults otherwise (no growth, 10 clients a replica). The second
    forecast day's bound adds the 95 % same-hour error two days apart: 2 of 48 differ by 1/60,
    the 47th smallest is 1/60, so the peak is 1/30 + 1/60 = 0.05 req/s. Replicas: 0.05 x 1.5
    / 0.004 = 18.75, so 19; the quietest hour 1/60 x 1.5 / 0.004 = 6.25, so 7; 0.025 req/s x
    1.5 fits 10 pods' 0.04 at night, 0.05 x 1.5 does not from 12:00. Users: 100 / 5 = 20
    req/s, 400 times the peak, 30 / 0.004 = 7,500 replicas. 10 x 10 = 100 clients are not
    over max_client_conn 100, nor is the pool of 25 plus 3 reserved over max_connections 28."""
    write_plan_store(store, tmp_path)
    config = parse_config(PLAN_SETTINGS + """
capacity: {target_rps: 1000, concurrent_users: 100, think_time_s: 5, forecast_horizon_days: 2,
           headroom: 0.5}
""")
    plan = capacity_plan(store, config, PLAN_AT)
    assert len(plan.peak.forecast) == 48 and plan.peak.growth == 0.0
    assert plan.peak.peak_rps == pytest.approx(0.05)
    assert plan.hpa is not None
    assert (plan.hpa.replicas_needed, plan.hpa.min_replicas) == (19, 7)
    assert plan.max_replicas_exceeded_at == datetime(2026, 11, 21, 12, tzinfo=UTC)
    assert plan.peak.concurrent_users_rps == pytest.approx(20.0)
    assert plan.hpa_concurrent_users is not None
    assert plan.hpa_concurrent_users.replicas_needed == 7_500
    assert plan.client_connections_at_max == 100
    assert plan.verdict.startswith(
        "Forecast (seasonal naive, chosen by backtest): the peak over the next 2 days is "
        "0.0500 req/s including 0 % growth and 5-minute bursts. 10 replicas will not be "
        "enough: the peak of 0.0500 req/s with 50 % headroom needs 19 at 70 % CPU")
    assert ("100 concurrent users at a 5 s think time send 20.0 req/s (Little's law), 400 "
            "times the forecast peak. For that scenario: 10 replicas will not be enough: the "
            "peak of 20.0 req/s with 50 % headroom needs 7,500") in plan.verdict
    assert "client connections of maxReplicas" not in plan.verdict
    assert "PostgreSQL max_connections" not in plan.verdict
    # PostHog's 1/30 req/s a user: 100 users send 3.33 req/s, x 1.5 / 0.004 = 1,250 replicas.
    assert ("so 100 users send 3.33 req/s. At the measured rate: 10 replicas will not be "
            "enough: the peak of 3.33 req/s with 50 % headroom needs 1,250") in plan.verdict


def test_capacity_plan_without_capacity_or_autoscaling_settings(store, tmp_path) -> None:
    """Without a capacity section the horizon is 30 days (720 hours; from the third day on the
    bound adds the 1/60 same-hour error, so the peak is 0.05 req/s again) and there is no
    users scenario; without autoscaling the HPA is not judged and one replica's 10 clients
    count: 10 > max_client_conn 5; a pool of 18 plus 3 reserved exceeds max_connections 20.
    The pool is sized as in the hand-worked plan: 2.4 tps of 17.5 ms, 2 connections; without
    SHOW POOLS nobody was seen waiting."""
    write_plan_store(store, tmp_path, pools=False)
    config = parse_config("""
pgbouncer: {pool_mode: transaction, max_client_conn: 5, default_pool_size: 18,
            max_wait_probability: 0.01, max_mean_wait_ms: 5, postgres_max_connections: 20}
""")
    plan = capacity_plan(store, config, PLAN_AT)
    assert len(plan.peak.forecast) == 720
    assert plan.peak.peak_rps == pytest.approx(0.05)
    assert plan.peak.concurrent_users_rps is None and plan.hpa_concurrent_users is None
    assert (plan.pod_model, plan.hpa, plan.replay_history) == (None, None, None)
    assert plan.max_replicas_exceeded_at is None and plan.fit_quality == {}
    assert plan.pool is not None and plan.pool.servers == 2
    assert plan.client_connections_at_max == 10
    assert plan.pool_observed is not None
    assert (plan.pool_observed.clients_waiting_max, plan.pool_observed.longest_wait_ms) == (0, 0.0)
    assert "Observed: up to 0 clients waiting, longest wait 0.0 ms" in plan.verdict
    assert ("5-minute bursts. No autoscaling section is configured: the HPA cannot be judged. "
            "Observed:") in plan.verdict
    assert plan.hpa_not_judged == "No autoscaling section is configured: the HPA cannot be judged."
    assert "concurrent users" not in plan.verdict
    assert ("PostgreSQL max_connections 20 is below the pool (18) plus the reserve (3). "
            "max_client_conn 5 is below the 10 client connections of maxReplicas x 10: "
            "raise it.") in plan.verdict


def test_fast_statement_share_counts_100_ms_as_slow() -> None:
    """Under 100 ms means strictly under: of 1 call at 99.9 ms, 2 at exactly 100 ms and 4 at
    100.5 ms, 1/7 are fast; at a 100.5 ms threshold 3/7; no calls, no share."""
    statements = pd.DataFrame({"calls": [1, 2, 4], "mean_ms": [99.9, 100.0, 100.5]})
    assert fast_statement_share(statements) == pytest.approx(1 / 7)
    assert fast_statement_share(statements, threshold_ms=100.5) == pytest.approx(3 / 7)
    assert fast_statement_share(statements.iloc[:0]) is None


def test_mean_transaction_of_a_single_transaction() -> None:
    """One transaction of 5 ms in all: 0.005 s (the guard against 0 transactions divides by
    at least 1, never by more)."""
    rates = pd.DataFrame({"xacts": [1, 0], "xact_us": [5_000, 0]})
    assert mean_transaction_s(rates) == pytest.approx(0.005)
    assert mean_transaction_s(rates.iloc[1:]) == 0.0


def test_technical_metrics_by_hand(store, tmp_path) -> None:
    """Hourly means per series name: CPU 1 at 10:00 and 3 at 10:30 is 2 for the 10:00 hour,
    5 at 11:15 for 11:00; memory only at 10:10; a point at the window's end (11:30) is out.
    No samples in the window: an empty frame."""
    at = datetime(2026, 11, 20, 10, tzinfo=UTC)
    (tmp_path / "prom.json").write_text(prometheus_matrix([
        ({"__name__": "node_cpu"}, [(at, 1.0), (at + timedelta(minutes=30), 3.0),
                                    (at + timedelta(minutes=75), 5.0),
                                    (at + timedelta(minutes=90), 100.0)]),
        ({"__name__": "node_memory"}, [(at + timedelta(minutes=10), 64.0)])]))
    ingest_file(store, tmp_path / "prom.json")
    table = technical_metrics(store, at, at + timedelta(minutes=90))
    assert list(table.columns) == ["node_cpu", "node_memory"]
    assert list(table.index) == [pd.Timestamp(at), pd.Timestamp(at + timedelta(hours=1))]
    assert table["node_cpu"].tolist() == [2.0, 5.0]
    assert table.loc[pd.Timestamp(at), "node_memory"] == 64.0
    assert math.isnan(table["node_memory"].iloc[1])
    assert technical_metrics(store, at - timedelta(hours=2), at).empty


def test_capacity_plan_headroom_decides_when_max_replicas_is_exceeded(store, tmp_path) -> None:
    """The hand-worked plan's forecast x 1.5 is 0.025 req/s at night against 10 pods'
    10 x (0.7 - 0.1) / 150 = 0.04: with 59 % headroom 0.03975 fits (first over at 12:00),
    with 62 % 0.0405 does not (over from the first hour, 00:00)."""
    write_plan_store(store, tmp_path)
    config = load_config()
    for headroom, first in ((0.59, datetime(2026, 11, 21, 12, tzinfo=UTC)), (0.62, PLAN_AT)):
        plan = capacity_plan(store, config, PLAN_AT, horizon_days=1, growth=0.5,
                             headroom=headroom)
        assert plan.max_replicas_exceeded_at == first


def test_hpa_is_judged_from_ten_cpu_samples(store, tmp_path) -> None:
    """Ten 5-minute CPU samples are the least the pod model is fitted from. With autoscaling
    but no capacity section, the HPA is judged with the default 20 % headroom and there is
    no users scenario."""
    write_plan_store(store, tmp_path, cpu_points=10)
    plan = capacity_plan(store, parse_config(PLAN_SETTINGS), PLAN_AT, horizon_days=1)
    assert plan.hpa is not None and plan.pod_model is not None
    assert "req/s with 20 % headroom needs" in plan.verdict
    assert plan.hpa_concurrent_users is None and plan.hpa_measured_users is None
    assert "concurrent users" not in plan.verdict and "Measured" not in plan.verdict


def test_hpa_is_not_judged_from_nine_cpu_samples(store, tmp_path) -> None:
    """With nine CPU samples the plan says the HPA cannot be judged and has no replicas for
    the users scenarios (assumed and measured) though it states their rates. Without
    pgbouncer settings the pool is not planned though SHOW STATS are loaded."""
    write_plan_store(store, tmp_path, cpu_points=9)
    plan = capacity_plan(store, parse_config(HAND_CONFIG.split("pgbouncer:")[0]), PLAN_AT,
                         horizon_days=1)
    assert (plan.pod_model, plan.hpa, plan.hpa_concurrent_users, plan.hpa_measured_users) == (
        None, None, None, None)
    assert ("Only 9 five-minute CPU samples are loaded (Prometheus), fewer than the 10 the pod "
            "model needs: the HPA cannot be judged.") in plan.verdict
    assert plan.hpa_not_judged is not None and plan.hpa_not_judged in plan.verdict
    assert "concurrent users" in plan.verdict and "Measured" in plan.verdict
    assert "For that scenario" not in plan.verdict and "At the measured rate" not in plan.verdict
    assert (plan.pool, plan.pool_settings, plan.client_connections_at_max) == (None, None, None)
    assert "PgBouncer" not in plan.verdict and "Settings used" not in plan.verdict


def test_cpu_per_pod_without_cpu_series(store, tmp_path) -> None:
    """Requests but no CPU series: no samples, in a frame that still has its four columns."""
    start = datetime(2026, 11, 20, 10, tzinfo=UTC)
    ingest_file(store, write_requests(tmp_path / "r.jsonl", [start]))
    samples = cpu_per_pod(store, start, start + timedelta(hours=1))
    assert samples.empty
    assert list(samples.columns) == ["time", "replicas", "cores_per_pod", "rps_per_pod"]


def test_littles_law_counts_the_response_time() -> None:
    """N = X (Z + R): 100 users thinking 8 s on responses of 2 s send 100 / 10 = 10 req/s."""
    assert concurrent_users_rps(100, 8.0, 2.0) == pytest.approx(10.0)


def test_request_rate_of_an_empty_store(store) -> None:
    """No requests: an empty float series named rps on an empty UTC index named time."""
    rate = request_rate(store, datetime(2026, 11, 20, tzinfo=UTC),
                        datetime(2026, 11, 21, tzinfo=UTC))
    assert rate.empty and rate.dtype == np.float64 and rate.name == "rps"
    assert isinstance(rate.index, pd.DatetimeIndex)
    assert (str(rate.index.tz), rate.index.name) == ("UTC", "time")
