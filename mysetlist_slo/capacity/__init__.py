"""Capacity planning: traffic forecasts, the Kubernetes HPA, connection pools by queueing theory,
the plan, load tests against the scalability targets; imports store and config.
"""

from mysetlist_slo.capacity.autoscaling import (
    HpaSettings,
    PodModel,
    desired_replicas,
    fit_pod_model,
    recommend_hpa,
    replay_hpa,
)
from mysetlist_slo.capacity.cache import redis_health
from mysetlist_slo.capacity.cdn import cache_hit_ratios, cache_hit_trend, cache_miss_episodes
from mysetlist_slo.capacity.forecast import (
    PeakPlan,
    backtest_summary,
    plan_peak,
    request_rate,
)
from mysetlist_slo.capacity.loadtests import (
    LoadTestCapacity,
    load_test_capacity,
    load_test_endpoints,
    load_test_runs,
    production_pod_model,
)
from mysetlist_slo.capacity.plan import (
    CapacityPlan,
    capacity_outlook,
    capacity_plan,
    cpu_per_pod,
    pgbouncer_rates,
    pgbouncer_waits,
    statement_times,
    technical_metrics,
)
from mysetlist_slo.capacity.pools import (
    PoolSize,
    erlang_b,
    erlang_c,
    size_pool,
)
from mysetlist_slo.capacity.settings import PoolSettings, ServerSetting, pool_settings
from mysetlist_slo.capacity.users import (
    ActiveUsersReport,
    UserBehaviour,
    active_user_count,
    active_users,
    active_users_report,
    concurrent_users,
    person_map,
    user_behaviour,
)

__all__ = [
    "ActiveUsersReport",
    "CapacityPlan",
    "HpaSettings",
    "LoadTestCapacity",
    "PeakPlan",
    "PodModel",
    "PoolSettings",
    "PoolSize",
    "ServerSetting",
    "UserBehaviour",
    "active_user_count",
    "active_users",
    "active_users_report",
    "backtest_summary",
    "cache_hit_ratios",
    "cache_hit_trend",
    "cache_miss_episodes",
    "capacity_outlook",
    "capacity_plan",
    "concurrent_users",
    "cpu_per_pod",
    "desired_replicas",
    "erlang_b",
    "erlang_c",
    "fit_pod_model",
    "load_test_capacity",
    "load_test_endpoints",
    "load_test_runs",
    "person_map",
    "pgbouncer_rates",
    "pgbouncer_waits",
    "plan_peak",
    "pool_settings",
    "production_pod_model",
    "recommend_hpa",
    "redis_health",
    "replay_hpa",
    "request_rate",
    "size_pool",
    "statement_times",
    "technical_metrics",
    "user_behaviour",
]
