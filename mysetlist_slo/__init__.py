"""mysetlist-slo: SLO analytics and capacity planning for MySetlist over an embedded DuckDB."""

from importlib.metadata import PackageNotFoundError, version

from mysetlist_slo.capacity.cdn import cache_hit_ratios, cache_hit_trend, cache_miss_episodes
from mysetlist_slo.capacity.loadtests import (
    LoadTestCapacity,
    load_test_capacity,
    load_test_endpoints,
    load_test_runs,
)
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
from mysetlist_slo.config import Config, load_config
from mysetlist_slo.demo import DemoManifest, generate_demo
from mysetlist_slo.engine import RollupResult, rollup_lake
from mysetlist_slo.errors import (
    ConfigError,
    IngestError,
    InsufficientDataError,
    RollupError,
    SchemaVersionError,
    SloError,
    StoreBusyError,
)
from mysetlist_slo.lake import LakeAddResult, add_to_lake, lake_files, lake_manifest
from mysetlist_slo.lake.rollups import RollupLoadResult, load_rollups
from mysetlist_slo.report.budget_policy import BudgetPolicySection, budget_policy_section
from mysetlist_slo.resilience import (
    ScalabilityRecovery,
    backup_growth,
    backup_rpo,
    drill_results,
    drills_due,
    region_availability,
    region_episodes,
    region_traffic,
    render_markdown,
    scalability_recovery,
    traffic_failovers,
)
from mysetlist_slo.rules.backtest import DeployedRules, backtest_rules, read_rules
from mysetlist_slo.rules.prometheus import prometheus_rules
from mysetlist_slo.slo.alerts import (
    AlertBacktest,
    backtest_alerts,
    backtest_verdict,
    budget_incidents,
    burn_rate_alerts,
    burn_rate_series,
    static_alerts,
)
from mysetlist_slo.slo.app_errors import (
    AppErrors,
    AppErrorSli,
    application_error_sli,
    application_errors,
    application_errors_by_route,
    release_health,
)
from mysetlist_slo.slo.attribution import budget_attribution
from mysetlist_slo.slo.budgets import (
    BudgetReport,
    budget_burndown,
    budget_report,
    burn_rate,
    error_budget,
    exhaustion_forecast,
)
from mysetlist_slo.slo.composite import (
    CompositeReport,
    composite_budgets,
    composite_report,
    error_budgets,
)
from mysetlist_slo.slo.deploys import (
    DeployImpact,
    budget_spent,
    deploy_events,
    deploy_impact,
    histogram_mann_whitney,
)
from mysetlist_slo.slo.incidents import probe_outages
from mysetlist_slo.slo.latency import count_below, exact_share, latency_percentiles
from mysetlist_slo.slo.policy import PolicyState, policy_states
from mysetlist_slo.sources import parse_requests
from mysetlist_slo.sources.nextjs import read_build
from mysetlist_slo.store.bundles import store_build
from mysetlist_slo.store.database import ingest_registry, open_store
from mysetlist_slo.store.ingest import IngestResult, ingest_file, ingest_files
from mysetlist_slo.store.routes import RouteNormaliser
from mysetlist_slo.vitals.attribution import (
    VitalsAttribution,
    vitals_attribution,
    vitals_attribution_findings,
)
from mysetlist_slo.vitals.bundles import bundle_check, bundle_regressions
from mysetlist_slo.vitals.delivery import WebDelivery, web_delivery
from mysetlist_slo.vitals.lab import lab_runs, lab_summary

try:
    __version__ = version("mysetlist-slo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "ActiveUsersReport",
    "AlertBacktest",
    "AppErrorSli",
    "AppErrors",
    "BudgetPolicySection",
    "BudgetReport",
    "CompositeReport",
    "Config",
    "ConfigError",
    "DemoManifest",
    "DeployImpact",
    "DeployedRules",
    "IngestError",
    "IngestResult",
    "InsufficientDataError",
    "LakeAddResult",
    "LoadTestCapacity",
    "PolicyState",
    "RollupError",
    "RollupLoadResult",
    "RollupResult",
    "RouteNormaliser",
    "ScalabilityRecovery",
    "SchemaVersionError",
    "SloError",
    "StoreBusyError",
    "UserBehaviour",
    "VitalsAttribution",
    "WebDelivery",
    "__version__",
    "active_user_count",
    "active_users",
    "active_users_report",
    "add_to_lake",
    "application_error_sli",
    "application_errors",
    "application_errors_by_route",
    "backtest_alerts",
    "backtest_rules",
    "backtest_verdict",
    "backup_growth",
    "backup_rpo",
    "budget_attribution",
    "budget_burndown",
    "budget_incidents",
    "budget_policy_section",
    "budget_report",
    "budget_spent",
    "bundle_check",
    "bundle_regressions",
    "burn_rate",
    "burn_rate_alerts",
    "burn_rate_series",
    "cache_hit_ratios",
    "cache_hit_trend",
    "cache_miss_episodes",
    "composite_budgets",
    "composite_report",
    "concurrent_users",
    "count_below",
    "deploy_events",
    "deploy_impact",
    "drill_results",
    "drills_due",
    "error_budget",
    "error_budgets",
    "exact_share",
    "exhaustion_forecast",
    "generate_demo",
    "histogram_mann_whitney",
    "ingest_file",
    "ingest_files",
    "ingest_registry",
    "lab_runs",
    "lab_summary",
    "lake_files",
    "lake_manifest",
    "latency_percentiles",
    "load_config",
    "load_rollups",
    "load_test_capacity",
    "load_test_endpoints",
    "load_test_runs",
    "open_store",
    "parse_requests",
    "person_map",
    "policy_states",
    "probe_outages",
    "prometheus_rules",
    "read_build",
    "read_rules",
    "region_availability",
    "region_episodes",
    "region_traffic",
    "release_health",
    "render_markdown",
    "rollup_lake",
    "scalability_recovery",
    "static_alerts",
    "store_build",
    "traffic_failovers",
    "user_behaviour",
    "vitals_attribution",
    "vitals_attribution_findings",
    "web_delivery",
]
