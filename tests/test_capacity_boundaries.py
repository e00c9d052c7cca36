"""Hand-worked cases for capacity/ (pools, plan, forecast, autoscaling), written for the
survivors of the mutation run of issue 20 (bench/MUTATION.md): each number is worked on paper."""

from __future__ import annotations

import math

from mysetlist_slo.capacity.pools import mean_wait, wait_longer_than


def test_a_saturated_pool_always_waits() -> None:
    """Offered load equal to the servers (2 erlangs on 2 connections) or above: the queue
    grows without bound, so the mean wait is infinite and every transaction waits longer than
    any t (probability 1.0, not a formula divided by N - A = 0)."""
    assert mean_wait(2, 2.0, 0.01) == math.inf
    assert wait_longer_than(2, 2.0, 0.01, 0.1) == 1.0
    assert wait_longer_than(2, 3.0, 0.01, 0.1) == 1.0
