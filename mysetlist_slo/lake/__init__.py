"""The raw Parquet lake: request rows Hive-partitioned by UTC day with a manifest of the files
added, and loading rollups made from it into the store; imports sources, config and store.
"""

from mysetlist_slo.lake.layout import LAKE_SCHEMA, LakeEntry, Manifest, lake_files, lake_manifest
from mysetlist_slo.lake.writer import LakeAddResult, add_to_lake

__all__ = [
    "LAKE_SCHEMA",
    "LakeAddResult",
    "LakeEntry",
    "Manifest",
    "add_to_lake",
    "lake_files",
    "lake_manifest",
]
