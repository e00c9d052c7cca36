"""The rollup step (raw request lake -> per-minute counters and 5-minute sketches), defined once
(``definition``) and executed by embedded DuckDB or by Apache Spark (``mysetlist-slo[spark]``)."""

from mysetlist_slo.engine.definition import TABLES
from mysetlist_slo.engine.run import ENGINES, RollupResult, rollup_lake

__all__ = ["ENGINES", "TABLES", "RollupResult", "rollup_lake"]
