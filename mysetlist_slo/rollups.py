"""Per-minute rollups of canonical request rows: exact counters and 3-significant-digit histograms.

A latency's histogram bucket is the value in microseconds rounded *down* to three significant
digits (123 456 us -> 123 000 us; 2 468 us -> 2 460 us). Two facts follow and the SLO engine
relies on them:

* every bucket spans less than 1 % of its lower bound, so a percentile read from the histogram
  is within 1 % of the exact one;
* for a threshold T with at most three significant digits, ``v < T`` exactly when
  ``bucket(v) < T`` (T is itself a bucket bound), so "good" counts at such thresholds are exact.
"""

from __future__ import annotations

import duckdb


def sig3_floor_sql(column: str) -> str:
    """Return SQL rounding the non-negative BIGINT ``column`` down to three significant digits.

    Integer arithmetic on the digit count, not log10, so that values at powers of ten are exact.
    """
    step = f"CAST(10 ** greatest(length(CAST({column} AS VARCHAR)) - 3, 0) AS BIGINT)"
    return f"({column} - {column} % {step})"


_COUNTS = """
INSERT INTO request_counts
SELECT
    $ingest_id,
    date_trunc('minute', ts) AS minute,
    route,
    status,
    count(*) AS requests,
    count(duration_us) AS timed,
    coalesce(sum(duration_us), 0) AS duration_sum_us,
    coalesce(sum(bytes), 0) AS bytes_sum
FROM batch_rows
GROUP BY ALL
"""

_GOOD = """
INSERT INTO request_good
WITH thresholds AS (
    SELECT unnest($thresholds_ms) AS threshold_ms
)
SELECT
    $ingest_id,
    date_trunc('minute', ts) AS minute,
    route,
    threshold_ms,
    count(*) FILTER (WHERE duration_us < CAST(round(threshold_ms * 1000) AS BIGINT)) AS good
FROM batch_rows CROSS JOIN thresholds
WHERE duration_us IS NOT NULL
GROUP BY ALL
"""

_HISTOGRAM = f"""
INSERT INTO latency_histogram
SELECT
    $ingest_id,
    date_trunc('minute', ts) AS minute,
    route,
    {sig3_floor_sql("duration_us")} AS bucket_us,
    count(*) AS count
FROM batch_rows
WHERE duration_us IS NOT NULL
GROUP BY ALL
"""


def add_rollups(con: duckdb.DuckDBPyConnection, ingest_id: int,
                thresholds_ms: list[float]) -> None:
    """Append the rollups of the relation ``batch_rows`` (canonical rows plus ``route``).

    Rows are tagged with ``ingest_id``; a minute split across batches or files simply has two
    partial rows, which every reader sums.
    """
    con.execute(_COUNTS, {"ingest_id": ingest_id})
    if thresholds_ms:
        con.execute(_GOOD, {"ingest_id": ingest_id, "thresholds_ms": thresholds_ms})
    con.execute(_HISTOGRAM, {"ingest_id": ingest_id})
