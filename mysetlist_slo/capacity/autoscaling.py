"""Kubernetes Horizontal Pod Autoscaler: its formula, a replay of its behaviour over a load
series, and the settings that keep a forecast peak below capacity."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mysetlist_slo._numbers import percent, significant, whole

SYNC_SECONDS = 15  # the controller's default --horizontal-pod-autoscaler-sync-period


def desired_replicas(current_replicas: int, current_utilization: int, target_utilization: int,
                     tolerance: float = 0.1, min_replicas: int | None = None,
                     max_replicas: int | None = None) -> int:
    """Return the replica count the HPA controller asks for.

    Kubernetes documentation, "Horizontal Pod Autoscaling", algorithm details:
    ``desiredReplicas = ceil[currentReplicas * (currentMetricValue / desiredMetricValue)]``;
    when the ratio is within ``tolerance`` of 1.0 (default 0.1) the controller does not scale;
    the result is then held within minReplicas..maxReplicas. Utilizations are whole percents
    of the pods' CPU request, as the resource metrics API reports them.

    >>> desired_replicas(3, 140, 70)  # twice the target: twice the pods
    6
    >>> desired_replicas(4, 75, 70)  # ratio 1.07, inside the tolerance: no change
    4
    >>> desired_replicas(8, 210, 70, max_replicas=10)
    10
    """
    if current_replicas < 0 or target_utilization <= 0:
        raise ValueError("current_replicas must be >= 0 and target_utilization > 0")
    ratio = current_utilization / target_utilization
    if current_replicas == 0:
        desired = 0  # scaled to zero: the HPA is not acting
    elif abs(1.0 - ratio) <= tolerance:
        desired = current_replicas
    else:
        desired = math.ceil(current_replicas * ratio)
    if min_replicas is not None:
        desired = max(desired, min_replicas)
    if max_replicas is not None:
        desired = min(desired, max_replicas)
    return desired


def utilization_percent(cores_per_pod: float, cpu_request: float) -> int:
    """Return CPU utilization as the HPA controller computes it: a whole percent, truncated.

    Kubernetes pkg/controller/podautoscaler/metrics/utilization.go,
    GetResourceUtilizationRatio: ``currentUtilization = int32((metricsTotal * 100) /
    requestsTotal)``, integer division of milli-cores, so 76.8 % is 76 %. The usage is in
    milli-cores as resource.Quantity.MilliValue gives it (rounded up).
    """
    # round(..., 6) first: 0.768 * 1000 is 768.0000000000001 in binary floating point.
    usage_milli = math.ceil(round(cores_per_pod * 1000, 6))
    request_milli = math.ceil(round(cpu_request * 1000, 6))
    return usage_milli * 100 // request_milli


@dataclass(frozen=True)
class PodModel:
    """How much CPU one pod burns: idle cores plus cores per request per second, and the CPU
    it requests (the base of utilization) and may use (its limit)."""

    idle_cores: float
    cores_per_rps: float
    cpu_request: float
    cpu_limit: float

    def utilization(self, rps_per_pod: float) -> float:
        """Return CPU use as a share of the request (1.0 = 100 %) at a load per pod."""
        return (self.idle_cores + self.cores_per_rps * rps_per_pod) / self.cpu_request

    def capacity_rps(self, utilization: float | None = None) -> float:
        """Return the requests per second one pod serves at ``utilization`` of its request,
        or at its CPU limit when None."""
        cores = self.cpu_limit if utilization is None else utilization * self.cpu_request
        return max(cores - self.idle_cores, 0.0) / self.cores_per_rps


@dataclass(frozen=True)
class HpaSettings:
    """The HPA's settings, with Kubernetes' default behaviour."""

    min_replicas: int
    max_replicas: int
    target_utilization: int  # percent
    tolerance: float = 0.1
    scale_up_percent: float = 100  # per 15 s (default policy)
    scale_up_pods: int = 4  # per 15 s (default policy; the larger of the two applies)
    scale_down_window: int = 300  # seconds of stabilisation before scaling down


@dataclass(frozen=True)
class HpaReplay:
    """What the HPA would have done over a load series."""

    # time, load_rps, replicas (after the sync), and the utilization, capacity and excess of
    # the replicas that served the load until that sync
    timeline: pd.DataFrame
    scaling_events: int
    seconds_at_max: float
    excess_requests: float  # requests beyond what the pods could serve (CPU over its limit)
    total_requests: float


def replay_hpa(load: pd.Series, pods: PodModel, settings: HpaSettings,
               start_replicas: int | None = None) -> HpaReplay:
    """Replay the HPA every 15 s over ``load`` (requests per second, indexed by time, held
    until the next point): formula and tolerance, the default scale-up policies (100 % or
    4 pods per 15 s, whichever is more), the 300 s scale-down stabilisation, min and max."""
    if len(load) < 2:
        raise ValueError("the load series needs at least two points")
    times = pd.DatetimeIndex(load.index)
    ticks = pd.date_range(times[0], times[-1], freq=f"{SYNC_SECONDS}s")
    values = load.reindex(ticks, method="ffill").to_numpy(dtype=float)
    replicas = start_replicas or settings.min_replicas
    recommendations: deque[tuple[pd.Timestamp, int]] = deque()
    rows, events = [], 0
    for tick, rps in zip(ticks, values, strict=True):
        # Pods cannot use more CPU than their limit: that is what the metrics API reports.
        cores = min(pods.idle_cores + pods.cores_per_rps * rps / replicas, pods.cpu_limit)
        wanted = desired_replicas(replicas, utilization_percent(cores, pods.cpu_request),
                                  settings.target_utilization, settings.tolerance,
                                  settings.min_replicas, settings.max_replicas)
        recommendations.append((tick, wanted))
        while recommendations[0][0] < tick - pd.Timedelta(seconds=settings.scale_down_window):
            recommendations.popleft()
        if wanted > replicas:
            # Kubernetes pkg/controller/podautoscaler/horizontal.go,
            # calculateScaleUpLimitWithScalingRules: the percent policy proposes
            # ceil(periodStartReplicas * (1 + value / 100)) ("rounded up because the proposed
            # change might not increase the replica count"), the pods policy
            # periodStartReplicas + value, and the default selectPolicy Max takes the larger.
            # Syncs are one policy period (15 s) apart, so the period starts at ``replicas``.
            limit = max(math.ceil(replicas * (1 + settings.scale_up_percent / 100)),
                        replicas + settings.scale_up_pods)
            new = min(wanted, limit, settings.max_replicas)
        else:
            # Scale down only to the highest recommendation of the stabilisation window.
            new = min(replicas, max(r for _, r in recommendations))
        # Until the next sync the load meets the pods that were running when it came; new pods
        # serve from the next sync on (sooner than real pods start: an optimistic replay).
        capacity = replicas * pods.capacity_rps()
        rows.append((tick, rps, new, pods.utilization(rps / replicas), capacity,
                     max(rps - capacity, 0.0)))
        events += new != replicas
        replicas = new
    timeline = pd.DataFrame(rows, columns=["time", "load_rps", "replicas", "utilization",
                                           "capacity_rps", "excess_rps"])
    return HpaReplay(
        timeline, events,
        float((timeline["replicas"] == settings.max_replicas).sum() * SYNC_SECONDS),
        float(timeline["excess_rps"].sum() * SYNC_SECONDS),
        float(timeline["load_rps"].sum() * SYNC_SECONDS))


@dataclass(frozen=True)
class HpaRecommendation:
    """Replica bounds and target that keep a peak load below capacity with headroom."""

    peak_rps: float
    rps_per_pod_at_target: float
    replicas_needed: int
    min_replicas: int
    max_replicas: int
    target_utilization: int
    configured_max_is_enough: bool
    verdict: str


def recommend_hpa(peak_rps: float, pods: PodModel, current: HpaSettings,
                  headroom: float = 0.2, quiet_rps: float | None = None) -> HpaRecommendation:
    """Return the HPA settings for ``peak_rps`` with ``headroom`` spare: enough replicas at the
    target utilization to serve the peak plus headroom; at least two for the quiet hours (one
    pod lost must not take the service down)."""
    per_pod = pods.capacity_rps(current.target_utilization / 100)
    if per_pod <= 0:
        raise ValueError("pods do no work at the target utilization (idle CPU above it)")
    # round(..., 9) before ceil: 0.35 - 0.1 core is 0.24999999999999997 in binary floating
    # point, and 150 req/s at 25 req/s a pod must be 6 pods, not 7.
    needed = math.ceil(round(peak_rps * (1 + headroom) / per_pod, 9))
    quiet = math.ceil(round((quiet_rps or 0) * (1 + headroom) / per_pod, 9))
    minimum = max(2, quiet)
    enough = needed <= current.max_replicas
    if enough:
        verdict = (f"{whole(current.max_replicas)} replicas are enough: the peak of "
                   f"{significant(peak_rps)} req/s with {percent(headroom, 0)} headroom needs "
                   f"{whole(needed)}.")
    else:
        verdict = (f"{whole(current.max_replicas)} replicas will not be enough: the peak of "
                   f"{significant(peak_rps)} req/s with {percent(headroom, 0)} headroom needs "
                   f"{whole(needed)} at {current.target_utilization} % CPU; raise maxReplicas "
                   f"to {whole(needed)}.")
    return HpaRecommendation(peak_rps, per_pod, needed, minimum,
                             max(needed, current.max_replicas), current.target_utilization,
                             enough, verdict)


def fit_pod_model(requests_per_pod: np.ndarray, cores_per_pod: np.ndarray, cpu_request: float,
                  cpu_limit: float) -> tuple[PodModel, dict[str, float]]:
    """Return the PodModel fitted to observed (req/s per pod, CPU cores per pod) pairs by a
    robust line (Huber, statsmodels) whose intercept is idle CPU, and the fit's quality."""
    import statsmodels.api as sm

    design = sm.add_constant(np.asarray(requests_per_pod, dtype=float))
    fit = sm.RLM(np.asarray(cores_per_pod, dtype=float), design,
                 M=sm.robust.norms.HuberT()).fit()
    idle, slope = (float(v) for v in fit.params)
    predicted = fit.predict(design)
    residual = np.asarray(cores_per_pod) - predicted
    total = np.asarray(cores_per_pod) - np.mean(cores_per_pod)
    quality = {"r_squared": float(1 - np.sum(residual**2) / np.sum(total**2)),
               "slope_se": float(fit.bse[1]), "idle_se": float(fit.bse[0]),
               "points": float(len(residual))}
    return PodModel(max(idle, 0.0), slope, cpu_request, cpu_limit), quality
