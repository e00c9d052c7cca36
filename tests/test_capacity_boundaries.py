"""Hand-worked cases for capacity/ (pools, plan, forecast, autoscaling), written for the
survivors of the mutation run of issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mysetlist_slo.capacity.autoscaling import PodModel, fit_pod_model
from mysetlist_slo.capacity.pools import erlang_b, erlang_c, mean_wait, size_pool, wait_longer_than


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
    with pytest.raises(ValueError, match="servers and offered_load must be non-negative"):
        erlang_b(servers, load)


@pytest.mark.parametrize("servers", [0, -1])
def test_erlang_c_needs_a_server(servers: int) -> None:
    """Erlang C of no server is undefined (not "always waits"): ValueError, even at a load
    below one erlang."""
    with pytest.raises(ValueError, match="servers must be positive"):
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
