"""mysetlist-slo: SLO analytics and capacity planning for MySetlist over an embedded DuckDB."""

from importlib.metadata import PackageNotFoundError, version

from mysetlist_slo.budgets import BudgetReport, error_budget, error_budgets
from mysetlist_slo.config import Config, load_config
from mysetlist_slo.demo import DemoManifest, generate_demo
from mysetlist_slo.errors import (
    ConfigError,
    IngestError,
    InsufficientDataError,
    SchemaVersionError,
    SloError,
    StoreBusyError,
)
from mysetlist_slo.ingest import IngestResult, ingest_file, ingest_files
from mysetlist_slo.latency import count_below, latency_percentiles
from mysetlist_slo.routes import RouteNormaliser
from mysetlist_slo.store import ingest_registry, open_store

try:
    __version__ = version("mysetlist-slo")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"

__all__ = [
    "BudgetReport",
    "Config",
    "ConfigError",
    "DemoManifest",
    "IngestError",
    "IngestResult",
    "InsufficientDataError",
    "RouteNormaliser",
    "SchemaVersionError",
    "SloError",
    "StoreBusyError",
    "__version__",
    "count_below",
    "error_budget",
    "error_budgets",
    "generate_demo",
    "ingest_file",
    "ingest_files",
    "ingest_registry",
    "latency_percentiles",
    "load_config",
    "open_store",
]
