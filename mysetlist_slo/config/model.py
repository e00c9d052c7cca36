"""The configuration model: SLOs, alert rules, budgets and capacity settings, validated on load."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mysetlist_slo.errors import ConfigError

_DURATION = re.compile(r"^(\d+)(m|h|d|w)$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """Return the timedelta of a duration written like ``5m``, ``6h``, ``28d`` or ``1w``.

    Raises ValueError for anything else (zero included).

    >>> parse_duration("28d")
    datetime.timedelta(days=28)
    >>> parse_duration("90s")
    Traceback (most recent call last):
    ValueError: not a duration like 5m, 6h, 28d or 1w: '90s'
    """
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"not a duration like 5m, 6h, 28d or 1w: {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


Duration = Annotated[str, Field(pattern=_DURATION.pattern)]
# An SLO window: rolling (a duration) or calendar-aligned (the current ISO week or month).
Window = Annotated[str, Field(pattern=r"^(\d+(m|h|d|w)|week|month)$")]


def _check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoutesConfig(_Strict):
    """How paths become route templates."""

    patterns: list[str] = Field(default_factory=list)
    max_routes: int = Field(default=500, ge=1)
    min_requests: int = Field(default=5, ge=1)

    @field_validator("patterns")
    @classmethod
    def _patterns_are_paths(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if not pattern.startswith("/"):
                raise ValueError(f"route pattern must start with '/': {pattern!r}")
        return patterns


SliKind = Literal["availability", "error_rate", "latency", "db_query_time", "probe_uptime"]
# The SLI kinds whose good events are those faster than a threshold.
THRESHOLD_SLIS = ("latency", "db_query_time")


class SloConfig(_Strict):
    """One service level objective."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    sli: SliKind
    routes: list[str] = Field(default_factory=lambda: ["*"])
    threshold_ms: float | None = Field(default=None, gt=0)
    objective: float = Field(gt=0, lt=100, description="percent of good events, e.g. 99.9")
    window: Window = "30d"
    budgeting: Literal["occurrences", "timeslices"] = "occurrences"
    # Timeslices: a minute is good when its own ratio reaches this percent (default: objective).
    timeslice_target: float | None = Field(default=None, gt=0, le=100)
    # Calendar windows are cut in this zone (default: the configuration's timezone).
    timezone: str | None = None

    @field_validator("threshold_ms")
    @classmethod
    def _threshold_exact_in_histograms(cls, value: float | None) -> float | None:
        # Three significant digits at most, as stores written with 3-digit histograms needed;
        # the per-threshold counters (store/rollups.py) would be exact for any whole microsecond.
        if value is not None and float(f"{value:.3g}") != value:
            raise ValueError(f"threshold {value} has more than three significant digits")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return value if value is None else _check_zone(value)

    @model_validator(mode="after")
    def _settings_that_apply(self) -> SloConfig:
        # A setting the SLI kind or budgeting method ignores would be a silent surprise, and a
        # missing threshold a crash at the first query: both are refused here, naming the key.
        if self.sli in THRESHOLD_SLIS and self.threshold_ms is None:
            raise ValueError(f"threshold_ms: required for a {self.sli} SLI")
        if self.sli not in THRESHOLD_SLIS and self.threshold_ms is not None:
            raise ValueError(f"threshold_ms: only for latency and db_query_time SLIs, "
                             f"not {self.sli}")
        if self.budgeting != "timeslices" and self.timeslice_target is not None:
            raise ValueError("timeslice_target: only with budgeting: timeslices")
        return self

    @property
    def is_calendar(self) -> bool:
        """Return True for calendar-aligned windows (week, month)."""
        return self.window in ("week", "month")


class CompositeMember(_Strict):
    """One member SLO of a composite and, when the composite combines by weights, its weight."""

    slo: str
    # OpenSLO's compositeWeight: relative, normalised over the members (default 1).
    weight: float | None = Field(default=None, gt=0, allow_inf_nan=False)


class CompositeSloConfig(_Strict):
    """An SLO over member SLOs (a user journey): by ``events`` it counts the members' good and
    total events together (sum good / sum total); by ``weights`` its SLI is the weighted mean of
    the members' SLIs, as Grafana's and Elastic's composite SLOs compute it. It takes its
    window, budgeting method and time zone from its members, which must share them."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    method: Literal["events", "weights"]
    objective: float = Field(gt=0, lt=100, description="percent, e.g. 99.5")
    members: list[CompositeMember] = Field(min_length=2)

    @model_validator(mode="after")
    def _weights_apply(self) -> CompositeSloConfig:
        seen: set[str] = set()
        for i, member in enumerate(self.members):
            if member.slo in seen:
                raise ValueError(f"members[{i}].slo: {member.slo!r} is listed twice")
            seen.add(member.slo)
            if self.method == "events" and member.weight is not None:
                raise ValueError(f"members[{i}].weight: only with method: weights (by events "
                                 "each member counts by its events)")
        return self

    @property
    def weights(self) -> dict[str, float]:
        """Return each member's weight as written (1 when unset; all 1 for ``events``)."""
        return {m.slo: 1.0 if m.weight is None else m.weight for m in self.members}


class ErrorBudgetPolicy(_Strict):
    """The error-budget policy, in the terms of the SRE workbook's example policy: below
    ``freeze_below`` percent of the budget left, releases freeze except fixes; with no budget
    left, releases freeze and the spend gets a postmortem; the freeze lifts only once more
    than ``thaw_above`` percent is left again (hysteresis, so a budget hovering at the freeze
    line does not flap). Evaluated at the end of every ISO week over ``history_weeks``."""

    freeze_below: float = Field(default=25, gt=0, lt=100)  # percent of the budget left
    thaw_above: float = Field(default=50, gt=0, le=100)  # percent of the budget left
    history_weeks: int = Field(default=8, ge=1, le=104)
    # What each state asks of the team that owns the SLO, in the report.
    normal_action: str = "Release as usual."
    freeze_action: str = ("Release freeze: only fixes (P0 bugs, security) ship until the "
                          "budget recovers.")
    exhausted_action: str = ("Release freeze except P0 and security fixes, and a postmortem "
                             "of what spent the budget.")

    @model_validator(mode="after")
    def _hysteresis(self) -> ErrorBudgetPolicy:
        if self.thaw_above <= self.freeze_below:
            raise ValueError(f"thaw_above: must be above freeze_below ({self.freeze_below:g}) "
                             "so that a thawed budget does not freeze again at once")
        return self


class BurnRateRule(_Strict):
    """One multi-window burn-rate alert rule."""

    # `for` is a Python keyword: the field is `for_`, written `for` in files (both accepted,
    # so a dumped configuration validates again).
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    severity: Literal["page", "ticket"]
    long_window: Duration
    short_window: Duration
    burn_rate: float = Field(gt=0)
    # Prometheus `for:` of the generated alert: the condition must hold this long before it
    # fires (the backtest delays firings the same way). None fires on the first evaluation.
    for_: Duration | None = Field(default=None, alias="for")

    @property
    def for_delta(self) -> timedelta:
        """Return the ``for`` duration as a timedelta (zero when unset)."""
        return timedelta(0) if self.for_ is None else parse_duration(self.for_)


class StaticAlert(_Strict):
    """A threshold alert as the deployment plan wrote it."""

    name: str
    metric: Literal["error_rate", "response_time_ms", "uptime"]
    op: Literal[">", "<"]
    value: float
    severity: str
    window: Duration = "5m"  # evaluated each minute over this window


class AlertsConfig(_Strict):
    """Alert rules to evaluate and backtest."""

    burn_rate: list[BurnRateRule] = Field(default_factory=list)
    static: list[StaticAlert] = Field(default_factory=list)


class WebVitalsConfig(_Strict):
    """Budgets for field (p75) and lab metrics."""

    budgets: dict[Literal["LCP", "FCP", "CLS", "INP", "TTFB"], float]
    lab: dict[str, float] = Field(default_factory=dict)
    min_page_views: int = Field(default=100, ge=1)


class CdnConfig(_Strict):
    """Cache hit ratio targets for what the CDN (or nginx's proxy cache) serves."""

    # Content-hashed files never change: every request after the first per edge should hit.
    immutable_routes: list[str] = Field(default_factory=lambda: ["/_next/static/[...path]"])
    min_hit_ratio: float = Field(default=0.95, gt=0, le=1)  # share of requests, per week
    # An hour with fewer requests on the immutable routes says too little to flag it.
    min_requests: int = Field(default=20, ge=1)


class BundlesConfig(_Strict):
    """Budgets for the JavaScript a route loads first (gzip kB, 1 kB = 1000 bytes, as
    ``next build`` prints its "First Load JS" column)."""

    budgets_kb: dict[str, float] = Field(default_factory=dict)  # route -> budget
    default_budget_kb: float | None = Field(default=None, gt=0)  # routes not listed
    # Growth over the previous build beyond this share is a regression even under budget.
    max_growth: float = Field(default=0.05, gt=0)


class CapacityConfig(_Strict):
    """Scalability targets and planning parameters."""

    target_rps: float = Field(gt=0)
    concurrent_users: int = Field(gt=0)
    think_time_s: float = Field(gt=0)
    forecast_horizon_days: int = Field(gt=0)
    headroom: float = Field(ge=0, lt=1)


class AutoscalingConfig(_Strict):
    """The Kubernetes HPA settings in force."""

    min_replicas: int = Field(ge=1)
    max_replicas: int = Field(ge=1)
    target_cpu_utilization: int = Field(gt=0, le=100)


class PgBouncerConfig(_Strict):
    """The PgBouncer pool settings in force and the waiting limits to plan for."""

    pool_mode: Literal["session", "transaction", "statement"]
    max_client_conn: int = Field(gt=0)
    default_pool_size: int = Field(gt=0)
    max_wait_probability: float = Field(gt=0, lt=1)
    max_mean_wait_ms: float = Field(gt=0)
    postgres_max_connections: int = Field(default=100, gt=0)
    reserve_connections: int = Field(default=3, ge=0)  # superuser_reserved_connections


class ProbesConfig(_Strict):
    """How health-check probe results become outages."""

    confirm: int = Field(default=2, ge=1)  # failed checks in a row at one location
    min_locations: int = Field(default=1, ge=1)  # locations failing at once
    recovery_target: Duration = "5m"  # the plan's failover / recovery time

    @property
    def recovery_target_delta(self) -> timedelta:
        """Return the recovery target as a timedelta."""
        return parse_duration(self.recovery_target)


class LoadTestConfig(_Strict):
    """What a load test must show at the load it reached (the plan's scalability targets; the
    request rate and users to reach are ``capacity.target_rps`` and ``concurrent_users``)."""

    p95_ms: float = Field(default=200, gt=0)  # API response time at that load
    max_error_rate: float = Field(default=0.1, ge=0, lt=100)  # percent of requests
    sustain: Duration = "1m"  # a rate counts as reached when held this long
    api_endpoints: list[str] = Field(default_factory=lambda: ["/api/*"])  # whose p95 is judged
    # Per-pod capacity measured in a load test vs fitted from production: warn beyond this.
    capacity_disagreement: float = Field(default=0.25, gt=0, lt=10)


Schedule = Literal["daily", "weekly", "monthly", "quarterly"]
BackupKind = Literal["database", "system", "archive"]
DrillKind = Literal["database_restore", "application_failover", "full_recovery"]
# How long each schedule allows between two good backups (or drills): a calendar month or
# quarter at its longest, so that "monthly" on the 1st is never late by calendar length alone.
SCHEDULE_PERIOD = {"daily": timedelta(days=1), "weekly": timedelta(days=7),
                   "monthly": timedelta(days=31), "quarterly": timedelta(days=92)}


_BACKUP_SCHEDULES: dict[BackupKind, Schedule] = {
    "database": "daily", "system": "weekly", "archive": "monthly"}
_DRILL_CADENCES: dict[DrillKind, Schedule] = {
    "database_restore": "monthly", "application_failover": "weekly",
    "full_recovery": "quarterly"}


class BackupsConfig(_Strict):
    """The backup schedule of the plan and what makes a backup suspect."""

    schedules: dict[BackupKind, Schedule] = Field(
        default_factory=lambda: dict(_BACKUP_SCHEDULES))
    grace: Duration = "6h"  # a backup this late past its schedule still counts as on time
    shrink_share: float = Field(default=0.2, gt=0, lt=1)  # smaller than the last by this share
    min_bytes: int = Field(default=1, ge=1)  # smaller than this is an empty backup

    @property
    def grace_delta(self) -> timedelta:
        """Return the grace period as a timedelta."""
        return parse_duration(self.grace)


class DrillsConfig(_Strict):
    """How often each recovery test must run (the recovery target is probes.recovery_target)."""

    cadences: dict[DrillKind, Schedule] = Field(default_factory=lambda: dict(_DRILL_CADENCES))


class RegionsConfig(_Strict):
    """Where probes run from, which region each location checks, and when to fail over."""

    probe_locations: dict[str, str] = Field(default_factory=dict)  # location -> region
    failover_threshold: float = Field(default=99.9, gt=0, lt=100)  # availability, percent
    window: Duration = "5m"  # availability below the threshold over this long calls failover
# One PromQL label matcher (name, operator, double-quoted value); matchers are comma-separated.
_MATCHER = r'[A-Za-z_][A-Za-z0-9_]*\s*(=|!=|=~|!~)\s*"(?:[^"\\\n]|\\.)*"'
_SELECTOR = rf"^({_MATCHER}(\s*,\s*{_MATCHER})*)?$"
_LABEL_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"



class DeploysConfig(_Strict):
    """How deploys are judged: the hours compared before and after each, which environments
    serve the SLOs' traffic, and what counts as a regression."""

    hours: Duration = "2h"  # compared: this long after each deploy against as long before
    environments: list[str] = Field(default_factory=lambda: ["production"])  # deploys judged
    routes: list[str] = Field(default_factory=lambda: ["*"])  # requests whose errors and latency
    alpha: float = Field(default=0.01, gt=0, lt=1)  # significance level of each test
    # A latency regression must also move p95 up by at least this share (with 10,000 requests
    # a rank test finds shifts no user notices).
    min_latency_change: float = Field(default=0.1, ge=0, lt=10)
    min_requests: int = Field(default=100, ge=1)  # in each window, else "not enough requests"

    @property
    def span(self) -> timedelta:
        """Return the compared span as a timedelta."""
        return parse_duration(self.hours)


class PromSliQueries(_Strict):
    """One SLO's events as PromQL, each returning one series without labels (``sum(...)``);
    ``{{.window}}`` stands for the range of each recording rule, as in Sloth specs."""

    good: str = Field(min_length=1, pattern=r"\{\{\.window\}\}")
    total: str = Field(min_length=1, pattern=r"\{\{\.window\}\}")


class PrometheusConfig(_Strict):
    """How the SLOs map onto Prometheus series, for the generated rules and dashboards."""

    # Series names and labels of a common exporter: ingress-nginx's controller metrics, or the
    # http_request_duration_seconds histogram of Node exporters (prom-client, express-prom-bundle).
    preset: Literal["nginx-ingress", "node-http"] = "nginx-ingress"
    selector: str = Field(default="", pattern=_SELECTOR)  # e.g. 'namespace="prod"'
    # Label holding the route template; needed for SLOs on some routes (default per preset).
    route_label: str | None = Field(default=None, pattern=_LABEL_NAME)
    slis: dict[str, PromSliQueries] = Field(default_factory=dict)  # per SLO: overrides preset
    # Evaluation interval of the generated rule groups; the backtest evaluates every minute,
    # so 1m is the interval it replays exactly.
    interval: str = Field(default="1m", pattern=r"^[1-9]\d*(s|m|h)$")
    # Annotations of the generated alerts; ``{slo}`` is replaced by the SLO's name.
    runbook_url: str | None = None
    dashboard_url: str | None = None
# What the reports need from Prometheus, for the standard exporters: cAdvisor (container CPU and
# memory), kube-state-metrics (replicas), node_exporter (node CPU, memory, disk, network) and the
# blackbox exporter (network latency). The names are what the capacity plan reads.
DEFAULT_PROMETHEUS_QUERIES = {
    "mysetlist_cpu_cores":
        'sum(rate(container_cpu_usage_seconds_total{namespace="mysetlist",container!=""}[5m]))',
    "mysetlist_memory_bytes":
        'sum(container_memory_working_set_bytes{namespace="mysetlist",container!=""})',
    "mysetlist_replicas": 'sum(kube_deployment_status_replicas_available{namespace="mysetlist"})',
    "mysetlist_request_rate": 'sum(rate(http_requests_total{namespace="mysetlist"}[5m]))',
    "node_cpu_utilisation": '1 - avg(rate(node_cpu_seconds_total{mode="idle"}[5m]))',
    "node_memory_utilisation":
        "1 - sum(node_memory_MemAvailable_bytes) / sum(node_memory_MemTotal_bytes)",
    "node_disk_utilisation":
        '1 - sum(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay"})'
        ' / sum(node_filesystem_size_bytes{fstype!~"tmpfs|overlay"})',
    "node_network_receive_bytes_rate":
        'sum(rate(node_network_receive_bytes_total{device!="lo"}[5m]))',
    "node_network_transmit_bytes_rate":
        'sum(rate(node_network_transmit_bytes_total{device!="lo"}[5m]))',
    "network_latency_seconds": 'avg(probe_duration_seconds{job="blackbox"})',
}


class CollectConfig(_Strict):
    """What the live collectors pull: the named PromQL queries of ``collect prometheus``."""

    prometheus_queries: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_PROMETHEUS_QUERIES))

    @field_validator("prometheus_queries")
    @classmethod
    def _names(cls, values: dict[str, str]) -> dict[str, str]:
        for name, expr in values.items():
            if not re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", name) or not expr.strip():
                raise ValueError(f"{name!r}: a metric name and a PromQL expression expected")
        return values


class Config(_Strict):
    """The whole configuration file."""

    version: Literal[1] = 1
    timezone: str = "UTC"
    routes: RoutesConfig = RoutesConfig()
    latency_thresholds_ms: list[float] = Field(default_factory=lambda: [200.0])
    min_events: int = Field(default=100, ge=1)
    slos: list[SloConfig] = Field(default_factory=list)
    composites: list[CompositeSloConfig] = Field(default_factory=list)
    error_budget_policy: ErrorBudgetPolicy | None = None
    alerts: AlertsConfig = AlertsConfig()
    probes: ProbesConfig = ProbesConfig()
    web_vitals: WebVitalsConfig | None = None
    capacity: CapacityConfig | None = None
    autoscaling: AutoscalingConfig | None = None
    pgbouncer: PgBouncerConfig | None = None
    load_tests: LoadTestConfig = LoadTestConfig()
    backups: BackupsConfig = BackupsConfig()
    drills: DrillsConfig = DrillsConfig()
    regions: RegionsConfig = RegionsConfig()
    deploys: DeploysConfig = DeploysConfig()
    prometheus: PrometheusConfig = PrometheusConfig()
    collect: CollectConfig = CollectConfig()
    cdn: CdnConfig = CdnConfig()
    bundles: BundlesConfig = BundlesConfig()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("latency_thresholds_ms")
    @classmethod
    def _thresholds(cls, values: list[float]) -> list[float]:
        for value in values:
            if value <= 0 or float(f"{value:.3g}") != value:
                raise ValueError(
                    f"threshold {value} must be positive with at most three significant digits"
                )
        return sorted(set(values))

    def with_timezone(self, timezone: str, source: str = "--timezone") -> Config:
        """Return this configuration with ``timezone`` in force, validated like the file's
        own setting; raise ConfigError naming ``source`` and the key when it is unknown."""
        try:
            return Config.model_validate({**self.model_dump(), "timezone": timezone})
        except ValidationError as exc:
            raise ConfigError(source, validation_problems(exc)) from None

    @model_validator(mode="after")
    def _prometheus_slis_name_slos(self) -> Config:
        names = {slo.name for slo in self.slos}
        unknown = sorted(set(self.prometheus.slis) - names)
        if unknown:
            raise ValueError(f"prometheus.slis: no SLO named {', '.join(map(repr, unknown))}")
        return self

    @model_validator(mode="after")
    def _composites_name_slos(self) -> Config:
        # A composite inherits its members' window, budgeting and calendar zone: members that
        # disagree would make its budget mean nothing, so they are refused naming the member.
        slos = {slo.name: slo for slo in self.slos}
        names = set(slos)
        for i, composite in enumerate(self.composites):
            key = f"composites[{i}]"
            if composite.name in names:
                raise ValueError(f"{key}.name: {composite.name!r} is already an SLO's or "
                                 "composite's name")
            names.add(composite.name)
            first = None
            for j, member in enumerate(composite.members):
                slo = slos.get(member.slo)
                if slo is None:
                    raise ValueError(f"{key}.members[{j}].slo: no SLO named {member.slo!r}")
                shape = (slo.window, slo.budgeting,
                         self.timezone_of(slo) if slo.is_calendar else None)
                if first is None:
                    first = shape
                elif shape != first:
                    raise ValueError(
                        f"{key}.members[{j}].slo: {member.slo!r} has window {slo.window}, "
                        f"budgeting {slo.budgeting}; members must share the first member's "
                        f"({first[0]}, {first[1]}{', ' + first[2] if first[2] else ''})")
        return self

    def members_of(self, composite: CompositeSloConfig) -> list[SloConfig]:
        """Return the member SloConfigs of ``composite``, in its order."""
        slos = {slo.name: slo for slo in self.slos}
        return [slos[member.slo] for member in composite.members]

    def timezone_of(self, slo: SloConfig) -> str:
        """Return the time zone that cuts the calendar windows of ``slo``."""
        return slo.timezone or self.timezone

    @property
    def all_thresholds_ms(self) -> list[float]:
        """Return every latency threshold the rollups keep counters for, sorted."""
        extra = [s.threshold_ms for s in self.slos if s.sli == "latency" and s.threshold_ms]
        return sorted(set(self.latency_thresholds_ms) | set(extra))


def _location(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validation_problems(exc: ValidationError) -> list[str]:
    """Return one ``key: problem`` line per validation error in ``exc``."""
    return [f"{_location(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()]
