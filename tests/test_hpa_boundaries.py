"""HPA arithmetic on its boundaries, worked by hand: tolerance exactly at its edge, scaled to
zero, milli-core rounding, a short replay and a recommendation (mutation-testing survivors)."""

from __future__ import annotations

import pandas as pd
import pytest

from mysetlist_slo.capacity.autoscaling import (
    HpaSettings,
    PodModel,
    desired_replicas,
    recommend_hpa,
    replay_hpa,
    utilization_percent,
)

# idle 0.1 core, 0.01 core per req/s, request 0.5 core, limit 1 core: at the limit a pod serves
# (1.0 - 0.1) / 0.01 = 90 req/s; at 70 % of its request (0.35 core), (0.35 - 0.1) / 0.01 = 25.
POD = PodModel(idle_cores=0.1, cores_per_rps=0.01, cpu_request=0.5, cpu_limit=1.0)


def test_bad_arguments_are_refused() -> None:
    """A negative replica count or a target of 0 % is a ValueError, each on its own."""
    with pytest.raises(ValueError, match="current_replicas"):
        desired_replicas(-1, 50, 70)
    with pytest.raises(ValueError, match="target_utilization"):
        desired_replicas(3, 50, 0)


def test_scaled_to_zero_stays_at_zero_unless_a_floor() -> None:
    """At 0 replicas the HPA does not act (0), and minReplicas still applies."""
    assert desired_replicas(0, 150, 70) == 0
    assert desired_replicas(0, 150, 70, min_replicas=2) == 2


def test_tolerance_edge_is_inside() -> None:
    """Kubernetes skips scaling when |1 - ratio| <= tolerance: 125/100 and 75/100 with a 0.25
    tolerance (exact in binary) keep 4 pods; 126 gives ceil(4 x 1.26) = 6, 74 gives 3."""
    assert desired_replicas(4, 125, 100, tolerance=0.25) == 4
    assert desired_replicas(4, 75, 100, tolerance=0.25) == 4
    assert desired_replicas(4, 126, 100, tolerance=0.25) == 6
    assert desired_replicas(4, 74, 100, tolerance=0.25) == 3


def test_utilization_milli_cores_round_up() -> None:
    """Usage and request are whole milli-cores rounded up (Quantity.MilliValue), then integer
    division: 0.999 of 1 core is 99 %; 0.1 m of a 1 m request is 1 m, 100 %; a 0.4 m request
    is 1 m."""
    assert utilization_percent(0.999, 1.0) == 99
    assert utilization_percent(0.0001, 0.001) == 100
    assert utilization_percent(0.001, 0.0004) == 100
    assert utilization_percent(0.768, 1.0) == 76


def test_pod_model_by_hand() -> None:
    """At 20 req/s a pod burns 0.1 + 0.2 = 0.3 core, 60 % of its 0.5 request; it serves 25
    req/s at 70 % and 90 req/s at its limit."""
    assert POD.utilization(20) == pytest.approx(0.6)
    assert POD.capacity_rps(0.7) == pytest.approx(25)
    assert POD.capacity_rps() == pytest.approx(90)


def test_short_replay_by_hand() -> None:
    """120 req/s for a minute from 2 pods (min 2, max 4, target 70 %): the first sync sees
    60 req/s a pod, 0.7 core, 140 % -> 4 pods (within the 100 %/4-pod step), which then run at
    80 % (ratio 1.14, beyond the tolerance, but at max). Five syncs, all at max: 75 s; the 2
    pods served up to 180 req/s, so nothing was beyond capacity; 9,000 requests in all."""
    load = pd.Series([120.0, 120.0], index=pd.to_datetime(
        ["2026-11-20 12:00:00", "2026-11-20 12:01:00"], utc=True))
    settings = HpaSettings(min_replicas=2, max_replicas=4, target_utilization=70)
    replay = replay_hpa(load, POD, settings)
    timeline = replay.timeline
    assert list(timeline.columns) == ["time", "load_rps", "replicas", "utilization",
                                      "capacity_rps", "excess_rps"]
    assert timeline["replicas"].tolist() == [4] * 5
    assert timeline["load_rps"].tolist() == [120.0] * 5
    assert timeline["utilization"].tolist() == pytest.approx([1.4, 0.8, 0.8, 0.8, 0.8])
    assert timeline["capacity_rps"].tolist() == pytest.approx([180, 360, 360, 360, 360])
    assert replay.scaling_events == 1
    assert replay.seconds_at_max == 75.0
    assert replay.excess_requests == 0.0
    assert replay.total_requests == pytest.approx(9000.0)
    with pytest.raises(ValueError, match="at least two points"):
        replay_hpa(load.iloc[:1], POD, settings)


def test_recommendation_by_hand() -> None:
    """125 req/s with the default 20 % headroom needs 150 / 25 = 6 pods at 70 %; 50 req/s in
    the quiet hours need ceil(60 / 25) = 3 as the floor; idle CPU at the target is refused."""
    settings = HpaSettings(min_replicas=2, max_replicas=10, target_utilization=70)
    advice = recommend_hpa(125, POD, settings, quiet_rps=50)
    assert (advice.replicas_needed, advice.min_replicas, advice.max_replicas) == (6, 3, 10)
    assert advice.rps_per_pod_at_target == pytest.approx(25)
    assert advice.configured_max_is_enough
    assert recommend_hpa(125, POD, settings).min_replicas == 2
    busy = recommend_hpa(500, POD, settings)
    assert (busy.replicas_needed, busy.max_replicas, busy.configured_max_is_enough) == (
        24, 24, False)
    assert "raise maxReplicas to 24" in busy.verdict
    idle = PodModel(idle_cores=0.35, cores_per_rps=0.01, cpu_request=0.5, cpu_limit=1.0)
    with pytest.raises(ValueError, match="do no work"):
        recommend_hpa(125, idle, settings)


def test_edges_of_the_recommendation_by_hand() -> None:
    """A 1 % target is a valid target. A pod serving half a request a second at 70 % (0.1 core
    per req/s: (0.35 - 0.3) / 0.1 = 0.5) still gets a recommendation, and with no quiet-hours
    rate the floor is the two pods. 250 req/s without headroom at 25 a pod need exactly the 10
    configured: enough, and the result carries the peak and target it was made for."""
    assert desired_replicas(2, 1, 1) == 2
    settings = HpaSettings(min_replicas=2, max_replicas=10, target_utilization=70)
    slow = PodModel(idle_cores=0.3, cores_per_rps=0.1, cpu_request=0.5, cpu_limit=1.0)
    advice = recommend_hpa(2, slow, settings)
    assert advice.rps_per_pod_at_target == pytest.approx(0.5)
    assert (advice.replicas_needed, advice.min_replicas) == (5, 2)  # 2 x 1.2 / 0.5 = 4.8
    exact = recommend_hpa(250, POD, settings, headroom=0)
    assert (exact.replicas_needed, exact.configured_max_is_enough) == (10, True)
    assert exact.verdict.startswith("10 replicas are enough")
    assert (exact.peak_rps, exact.target_utilization) == (250, 70)
