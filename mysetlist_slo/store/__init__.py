"""The embedded DuckDB store: schema and migrations, the ingest registry, loading files, routes and
rollups, snapshots, checks, backups and restores of the file; imports sources and config.
"""

from mysetlist_slo.store.database import (
    DEFAULT_DB,
    ingest_registry,
    open_store,
    table_sizes,
)
from mysetlist_slo.store.ingest import (
    IngestResult,
    ingest_file,
    ingest_files,
)
from mysetlist_slo.store.routes import (
    RouteNormaliser,
)

__all__ = [
    "DEFAULT_DB",
    "IngestResult",
    "RouteNormaliser",
    "ingest_file",
    "ingest_files",
    "ingest_registry",
    "open_store",
    "table_sizes",
]
