"""Per-minute request and byte counts by route and cache outcome, beside the request rollups."""

from __future__ import annotations

import duckdb

from mysetlist_slo.store.rollups import minute_sql

# Reads the batch's validated rows (temp table ``checked``) routed by ``batch_routes``, as the
# request rollups do; requests without a cache status (not logged) get no row.
_CACHE_COUNTS = f"""
INSERT INTO cache_counts
SELECT
    $ingest_id,
    {minute_sql("ts")} AS minute,
    routes.route,
    cache_status,
    count(*) AS requests,
    coalesce(sum(bytes), 0) AS bytes_sum,
    routes.template
FROM checked
JOIN batch_routes AS routes ON checked.target IS NOT DISTINCT FROM routes.target
WHERE checked.bad_field IS NULL AND checked.cache_status IS NOT NULL
GROUP BY ALL
"""


def add_cache_counts(con: duckdb.DuckDBPyConnection, ingest_id: int) -> None:
    """Append the cache outcome counts of the good records in ``checked`` (see module doc)."""
    con.execute(_CACHE_COUNTS, {"ingest_id": ingest_id})
