"""Types of the public API for type checkers and the API reference; at run time each name is
imported on first use (``__init__.py``).
"""

from .capacity.cdn import cache_hit_ratios, cache_hit_trend, cache_miss_episodes
from .capacity.loadtests import (
    LoadTestCapacity,
    load_test_capacity,
    load_test_endpoints,
    load_test_runs,
)
from .capacity.users import (
    ActiveUsersReport,
    UserBehaviour,
    active_user_count,
    active_users,
    active_users_report,
    concurrent_users,
    person_map,
    user_behaviour,
)
from .config import Config, load_config
from .demo import DemoManifest, generate_demo
from .engine import RollupResult, rollup_lake
from .errors import (
    ConfigError,
    IngestError,
    InsufficientDataError,
    RollupError,
    SchemaVersionError,
    SloError,
    StoreBusyError,
)
from .lake import LakeAddResult, add_to_lake, lake_files, lake_manifest
from .lake.rollups import RollupLoadResult, load_rollups
from .report.budget_policy import BudgetPolicySection, budget_policy_section
from .resilience import (
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
from .rules.backtest import DeployedRules, backtest_rules, read_rules
from .rules.prometheus import prometheus_rules
from .slo.alerts import (
    AlertBacktest,
    backtest_alerts,
    backtest_verdict,
    budget_incidents,
    burn_rate_alerts,
    burn_rate_series,
    static_alerts,
)
from .slo.app_errors import (
    AppErrors,
    AppErrorSli,
    application_error_sli,
    application_errors,
    application_errors_by_route,
    release_health,
)
from .slo.attribution import budget_attribution
from .slo.budgets import (
    BudgetReport,
    budget_burndown,
    budget_report,
    burn_rate,
    error_budget,
    exhaustion_forecast,
)
from .slo.composite import (
    CompositeReport,
    composite_budgets,
    composite_report,
    error_budgets,
)
from .slo.deploys import (
    DeployImpact,
    budget_spent,
    deploy_events,
    deploy_impact,
    histogram_mann_whitney,
)
from .slo.incidents import probe_outages
from .slo.latency import count_below, exact_share, latency_percentiles
from .slo.policy import PolicyState, policy_states
from .sources import parse_requests
from .sources.nextjs import read_build
from .store.bundles import store_build
from .store.database import ingest_registry, open_store
from .store.ingest import IngestResult, ingest_file, ingest_files
from .store.routes import RouteNormaliser
from .vitals.attribution import (
    VitalsAttribution,
    vitals_attribution,
    vitals_attribution_findings,
)
from .vitals.bundles import bundle_check, bundle_regressions
from .vitals.delivery import WebDelivery, web_delivery
from .vitals.lab import lab_runs, lab_summary

__version__: str

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
