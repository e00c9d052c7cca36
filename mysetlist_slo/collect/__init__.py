"""Live collectors: one snapshot per pull from Prometheus, PgBouncer, PostgreSQL, Redis and
PostHog, landed through the store's registry and one-transaction path; imports sources, store and
config."""

from mysetlist_slo.collect.pgbouncer import collect_pgbouncer
from mysetlist_slo.collect.postgres import collect_postgres
from mysetlist_slo.collect.posthog import collect_posthog
from mysetlist_slo.collect.prometheus import PrometheusQuery, collect_prometheus
from mysetlist_slo.collect.redis import collect_redis
from mysetlist_slo.collect.schedule import run_every

__all__ = [
    "PrometheusQuery",
    "collect_pgbouncer",
    "collect_postgres",
    "collect_posthog",
    "collect_prometheus",
    "collect_redis",
    "run_every",
]
