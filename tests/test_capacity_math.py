"""HPA formula and replay, and Erlang C pool sizing, against hand-worked and known values."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from scipy.stats import poisson

from mysetlist_slo.capacity.autoscaling import (
    HpaSettings,
    PodModel,
    desired_replicas,
    fit_pod_model,
    recommend_hpa,
    replay_hpa,
    utilization_percent,
)
from mysetlist_slo.capacity.pools import erlang_b, erlang_c, mean_wait, size_pool, wait_longer_than


@pytest.mark.parametrize(("current", "utilization", "target", "expected"), [
    (1, 200, 100, 2),  # the Kubernetes docs' example: 200m used, 100m wanted, 1 pod -> 2
    (4, 50, 100, 2),  # half the target: half the pods
    (3, 76, 70, 3),  # ratio 1.086: inside the 0.1 tolerance, no change
    # 77/70 is 1.1 on paper, but 1 - 77/70 in float64 is a hair over 0.1: the Go controller
    # (float64 ratio, math.Abs(1.0-ratio) <= tolerance) scales, and so do we.
    (3, 77, 70, 4),
    (3, 78, 70, 4),  # ratio 1.114: ceil(3 * 1.114) = 4
    (10, 71, 70, 10),  # just over target, inside tolerance
    (2, 0, 70, 0),  # idle: ceil(0) = 0 before clamping to min
])
def test_desired_replicas_hand_worked(current: int, utilization: int, target: int,
                                      expected: int) -> None:
    """The controller's formula, as the Kubernetes documentation gives it."""
    assert desired_replicas(current, utilization, target) == expected


def test_desired_replicas_clamped() -> None:
    """The result is held within min and max replicas."""
    assert desired_replicas(2, 0, 70, min_replicas=2) == 2
    assert desired_replicas(8, 300, 70, max_replicas=10) == 10
    assert desired_replicas(8, 300, 70) == math.ceil(8 * 300 / 70)


def test_replay_hand_traced() -> None:
    """A step from 50 to 400 req/s: pods at 10 m idle + 10 m per req/s, request 1 core.
    At 2 pods, 400 req/s is 200 req/s a pod = 2.01 cores -> limited to the 1.5-core limit, 150 %
    of the request: the HPA wants ceil(2 * 150 / 70) = 5, may add max(100 %, 4 pods) -> 5 at
    the first sync; then 80 req/s a pod = 81 %: ceil(5 * 81 / 70) = 6; then 67 %: holds."""
    pods = PodModel(idle_cores=0.01, cores_per_rps=0.01, cpu_request=1.0, cpu_limit=1.5)
    settings = HpaSettings(min_replicas=2, max_replicas=10, target_utilization=70)
    times = pd.date_range("2026-11-20", periods=4, freq="1min", tz="UTC")
    load = pd.Series([50.0, 400.0, 400.0, 400.0], index=times)
    replay = replay_hpa(load, pods, settings)
    counts = replay.timeline.set_index("time")["replicas"]
    assert counts.iloc[:4].tolist() == [2, 2, 2, 2]  # 50 req/s: 26 % -> wants 1, min is 2
    assert counts.loc[times[1]] == 5
    assert counts.loc[times[1] + pd.Timedelta(seconds=15)] == 6
    assert counts.iloc[-1] == 6 and replay.scaling_events == 2
    # For the 15 s until the new pods serve, 2 pods serve 2 * (1.5 - 0.01) / 0.01 = 298 req/s.
    assert replay.excess_requests == pytest.approx((400 - 298) * 15)


def test_replay_scale_down_waits_five_minutes() -> None:
    """After a peak, replicas stay up for the 300 s stabilisation window before dropping."""
    pods = PodModel(0.0, 0.01, 1.0, 2.0)
    settings = HpaSettings(2, 10, 70)
    times = pd.date_range("2026-11-20", periods=12, freq="1min", tz="UTC")
    load = pd.Series([500.0] * 2 + [50.0] * 10, index=times)
    timeline = replay_hpa(load, pods, settings).timeline.set_index("time")["replicas"]
    peak = timeline.loc[times[1]]
    assert timeline.loc[times[2] + pd.Timedelta(seconds=285)] == peak
    assert timeline.loc[times[2] + pd.Timedelta(seconds=315)] < peak


def test_recommendation_says_when_max_is_not_enough() -> None:
    """1,000 req/s with 20 % headroom at 70 % of a 1-core request, 10 m a request: 69.9 req/s
    a pod -> 18 pods, more than the configured 10."""
    pods = PodModel(0.001, 0.01, 1.0, 1.5)
    rec = recommend_hpa(1000, pods, HpaSettings(2, 10, 70), headroom=0.2)
    assert rec.replicas_needed == math.ceil(1200 / ((0.7 - 0.001) / 0.01))
    assert not rec.configured_max_is_enough and "will not be enough" in rec.verdict


@pytest.mark.parametrize(("peak", "shown"), [(0.4, "0.400"), (12.34, "12.3"), (1183.2, "1,183")])
def test_recommendation_prints_a_small_peak_with_its_digits(peak: float, shown: str) -> None:
    """A quiet site's peak of 0.4 req/s reads "0.400 req/s" (3 significant digits), never
    "0 req/s"; a large one keeps its thousands separator."""
    pods = PodModel(0.001, 0.01, 1.0, 1.5)
    rec = recommend_hpa(peak, pods, HpaSettings(2, 10, 70), headroom=0.2)
    assert f"the peak of {shown} req/s" in rec.verdict


def test_pod_model_fit_recovers_a_known_line() -> None:
    """Idle CPU and CPU per request come back from noisy samples with a few outliers."""
    rng = np.random.default_rng(2)
    rps = rng.uniform(5, 200, 500)
    cores = 0.05 + 0.004 * rps + rng.normal(0, 0.01, 500)
    cores[:10] += 1.0  # a deploy's warm-up: outliers the robust fit ignores
    model, quality = fit_pod_model(rps, cores, 1.0, 2.0)
    assert model.idle_cores == pytest.approx(0.05, abs=0.005)
    assert model.cores_per_rps == pytest.approx(0.004, rel=0.02)
    assert quality["points"] == 500


def erlang_c_exact(servers: int, load: Fraction) -> Fraction:
    """Erlang C from its textbook sum, in exact rational arithmetic."""
    terms = sum(load**k / math.factorial(k) for k in range(servers))
    top = load**servers / math.factorial(servers) * servers / (servers - load)
    return top / (terms + top)


@pytest.mark.parametrize(("servers", "load"), [(1, "0.5"), (2, "1"), (10, "8"), (25, "20"),
                                                (50, "45.5")])
def test_erlang_c_against_the_exact_formula(servers: int, load: str) -> None:
    """The stable recursion equals the factorial formula computed exactly."""
    assert erlang_c(servers, float(load)) == pytest.approx(
        float(erlang_c_exact(servers, Fraction(load))), rel=1e-12)


def test_erlang_c_known_value() -> None:
    """Tables give 10 agents at 8 Erlangs a waiting probability of 40.9 %; one server at
    load rho waits with probability rho."""
    assert erlang_c(10, 8.0) == pytest.approx(0.4092, abs=5e-4)
    assert erlang_c(1, 0.3) == pytest.approx(0.3)


def test_erlang_at_500_servers() -> None:
    """500 servers work, and Erlang B agrees with scipy's Poisson (B = pmf(N) / cdf(N))."""
    assert erlang_b(500, 480.0) == pytest.approx(poisson.pmf(500, 480) / poisson.cdf(500, 480),
                                                 rel=1e-9)
    value = erlang_c(500, 480.0)
    assert 0 < value < 1 and math.isfinite(value)
    assert erlang_c(500, 500.0) == 1.0


def test_waits_and_pool_size() -> None:
    """M/M/1 checks: E[Wq] = rho / (mu - lambda); P(wait > t) = rho e^{-(mu - lambda) t}."""
    assert mean_wait(1, 0.5, 0.01) == pytest.approx(0.5 * 0.01 / 0.5)
    assert wait_longer_than(1, 0.5, 0.01, 0.02) == pytest.approx(0.5 * math.exp(-0.5 * 2))
    pool = size_pool(tps=2000, mean_xact_s=0.005, max_wait_probability=0.01,
                     max_mean_wait_ms=5, cores=4)
    assert pool.offered_load == pytest.approx(10)
    assert erlang_c(pool.servers, 10) <= 0.01 < erlang_c(pool.servers - 1, 10)
    assert pool.rule_of_thumb == 9


def test_utilization_truncated_as_the_controller_does() -> None:
    """GetResourceUtilizationRatio divides milli-cores as integers: 0.768 of a 1-core request
    is 76 % (not 77 %), 0.7999 of 1 core is 80 % (799.9 m is 800 m, rounded up as
    Quantity.MilliValue does), 1.05 of a 1.5-core request is 70 %."""
    assert utilization_percent(0.768, 1.0) == 76
    assert utilization_percent(0.7999, 1.0) == 80
    assert utilization_percent(1.05, 1.5) == 70


def test_replay_stays_inside_tolerance_at_76_8_percent() -> None:
    """2 pods at 76.8 % against 70 %: the controller reads 76 %, 76 / 70 = 1.086, within the
    0.1 tolerance, and keeps 2 replicas (rounded to 77 %, 1.1 would have scaled to 3)."""
    pods = PodModel(idle_cores=0.0, cores_per_rps=0.01, cpu_request=1.0, cpu_limit=2.0)
    settings = HpaSettings(min_replicas=2, max_replicas=10, target_utilization=70)
    times = pd.date_range("2026-11-20", periods=5, freq="1min", tz="UTC")
    load = pd.Series([153.6] * 5, index=times)  # 76.8 req/s a pod = 0.768 cores
    replay = replay_hpa(load, pods, settings)
    assert replay.timeline["replicas"].eq(2).all() and replay.scaling_events == 0


def test_percent_scale_up_rounds_up_as_the_controller_does() -> None:
    """A 50 % policy from 3 replicas proposes ceil(3 x 1.5) = 5 (calculateScaleUpLimit-
    WithScalingRules rounds up), more than the 1-pod policy's 4: 3 -> 5 at the first sync."""
    pods = PodModel(idle_cores=0.0, cores_per_rps=0.01, cpu_request=1.0, cpu_limit=4.0)
    settings = HpaSettings(min_replicas=3, max_replicas=10, target_utilization=70,
                           scale_up_percent=50, scale_up_pods=1)
    times = pd.date_range("2026-11-20", periods=2, freq="1min", tz="UTC")
    load = pd.Series([1000.0, 1000.0], index=times)  # 333 req/s a pod: wants 10
    timeline = replay_hpa(load, pods, settings).timeline
    assert timeline["replicas"].iloc[:2].tolist() == [5, 8]  # then ceil(5 x 1.5) = 8


def test_recommendation_separates_thousands_in_every_count() -> None:
    """No idle CPU and 10 m a request: 0.7 of a 1-core request serves 70 req/s a pod. A peak
    of 64,420 req/s with 20 % headroom is 77,304 req/s, 1,104.3 pods -> 1,105, more than a
    maxReplicas of 1,000; every count in the verdict has its separator."""
    rec = recommend_hpa(64_420, PodModel(0.0, 0.01, 1.0, 2.0), HpaSettings(2, 1000, 70),
                        headroom=0.2)
    assert rec.replicas_needed == 1105
    assert rec.verdict == ("1,000 replicas will not be enough: the peak of 64,420 req/s with "
                           "20 % headroom needs 1,105 at 70 % CPU; raise maxReplicas to 1,105.")
    enough = recommend_hpa(64_420, PodModel(0.0, 0.01, 1.0, 2.0), HpaSettings(2, 2000, 70),
                           headroom=0.2)
    assert enough.verdict.startswith("2,000 replicas are enough")
