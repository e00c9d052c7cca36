"""Per-minute rollups of canonical request rows: exact counters and 3-significant-digit histograms.

A latency's histogram bucket is the value in microseconds rounded *down* to three significant
digits (123 456 us -> 123 000 us; 2 468 us -> 2 460 us). Two facts follow and the SLO engine
relies on them:

* every bucket spans less than 1 % of its lower bound, so a percentile read from the histogram
  is within 1 % of the exact one;
* for a threshold T with at most three significant digits, ``v < T`` exactly when
  ``bucket(v) < T`` (T is itself a bucket bound), so "good" counts at such thresholds are exact.

Histograms and "good" counters hold the latency of answered requests (status below 500): a
502 returned in 1 ms by a proxy whose upstream is down is an availability failure, and must
not make the latency SLI look better. ``request_counts.timed`` still counts every timed request.
"""

from __future__ import annotations

import duckdb


def sig3_floor_sql(column: str) -> str:
    """Return SQL rounding the non-negative BIGINT ``column`` down to three significant digits.

    A ladder of integer comparisons, not log10 or string lengths: exact at powers of ten, and
    cheap enough to run on every request.
    """
    steps = " ".join(f"WHEN {column} < {10 ** (digits + 1)} THEN {column} - {column} % "
                     f"{10 ** (digits - 2)}" for digits in range(3, 18))
    return f"CASE WHEN {column} < 1000 THEN {column} {steps} END"


# One pass over the raw rows; the three rollups are then read off this small aggregate. The
# "good" counts come from the buckets: exact for thresholds of three significant digits.
_AGGREGATE = f"""
CREATE OR REPLACE TEMP TABLE batch_aggregate AS
SELECT
    date_trunc('minute', ts) AS minute,
    routes.route,
    region,
    status,
    {sig3_floor_sql("duration_us")} AS bucket_us,
    count(*) AS requests,
    coalesce(sum(duration_us), 0) AS duration_sum_us,
    coalesce(sum(bytes), 0) AS bytes_sum
FROM checked
JOIN batch_routes AS routes ON checked.target IS NOT DISTINCT FROM routes.target
WHERE checked.bad_field IS NULL
GROUP BY ALL
"""

_COUNTS = """
INSERT INTO request_counts
SELECT
    $ingest_id, minute, route, status,
    sum(requests),
    coalesce(sum(requests) FILTER (WHERE bucket_us IS NOT NULL), 0),
    sum(duration_sum_us),
    sum(bytes_sum)
FROM batch_aggregate
GROUP BY minute, route, status
"""

def _good_sql(count: int) -> str:
    """Return SQL inserting, per minute and route, the requests under each of ``count``
    thresholds (bound as $t0_us, $t1_us, ... and the list $thresholds_ms), in one pass."""
    under = ", ".join(f"coalesce(sum(requests) FILTER (WHERE bucket_us < $t{i}_us), 0)"
                      for i in range(count))
    return f"""
INSERT INTO request_good
SELECT $ingest_id, minute, route, unnest($thresholds_ms), unnest(good)
FROM (
    SELECT minute, route, [{under}] AS good
    FROM batch_aggregate
    WHERE bucket_us IS NOT NULL AND status < 500
    GROUP BY minute, route
)
"""


# Requests that name their region (NULL for sources without one) also count per region.
_REGION_COUNTS = """
INSERT INTO region_counts
SELECT
    $ingest_id, minute, region, status,
    sum(requests),
    coalesce(sum(requests) FILTER (WHERE bucket_us IS NOT NULL), 0),
    sum(duration_sum_us)
FROM batch_aggregate
WHERE region IS NOT NULL
GROUP BY minute, region, status
"""

_REGION_HISTOGRAM = """
INSERT INTO region_latency
SELECT $ingest_id, minute, region, bucket_us, sum(requests)
FROM batch_aggregate
WHERE region IS NOT NULL AND bucket_us IS NOT NULL AND status < 500
GROUP BY minute, region, bucket_us
"""

_HISTOGRAM = """
INSERT INTO latency_histogram
SELECT $ingest_id, minute, route, bucket_us, sum(requests)
FROM batch_aggregate
WHERE bucket_us IS NOT NULL AND status < 500
GROUP BY minute, route, bucket_us
"""


def add_rollups(con: duckdb.DuckDBPyConnection, ingest_id: int,
                thresholds_ms: list[float]) -> None:
    """Append the rollups of the good records in ``checked``, routed by ``batch_routes``.

    Rows are tagged with ``ingest_id``; a minute split across batches or files simply has two
    partial rows, which every reader sums.
    """
    con.execute(_AGGREGATE)
    con.execute(_COUNTS, {"ingest_id": ingest_id})
    if thresholds_ms:
        params: dict[str, object] = {"ingest_id": ingest_id, "thresholds_ms": thresholds_ms}
        params.update({f"t{i}_us": round(t * 1000) for i, t in enumerate(thresholds_ms)})
        con.execute(_good_sql(len(thresholds_ms)), params)
    con.execute(_HISTOGRAM, {"ingest_id": ingest_id})
    con.execute(_REGION_COUNTS, {"ingest_id": ingest_id})
    con.execute(_REGION_HISTOGRAM, {"ingest_id": ingest_id})
    con.execute("DROP TABLE batch_aggregate")
