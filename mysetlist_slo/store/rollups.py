"""Rollups of canonical request rows: exact per-minute counters, exact good counts at the
configured thresholds, and 5-minute latency sketches with log-spaced buckets.

Latency sketch (DDSketch's mapping, Masson et al., VLDB 2019): a latency of ``v`` microseconds
(v >= 1) falls in bucket ``i = ceil(ln(v) / ln(gamma))`` with ``gamma = (1 + a) / (1 - a)`` and
``a = 1 %``, so bucket ``i`` holds (gamma^(i-1), gamma^i]; 0 us has a bucket of its own
(ZERO_BUCKET). A bucket is read back as ``2 gamma^i / (gamma + 1)``, which is within ``a`` of
every value in it: a percentile read from the sketch is within 1 % of the exact nearest-rank
one. From 1 ms to 10 s that is 461 possible buckets, of which a route's week typically fills
about 250; the rows a slot writes are bounded by that, whatever the traffic.

Sketches are kept per 5-minute slot (UTC-aligned): 5 divides 15, so every day, week and month
boundary in every time zone (all offsets are whole quarter hours) falls on a slot boundary,
and an hour is 12 slots. Burn rates, SLIs and budgets never read the sketch: they read the
per-minute counters, and the good counts at each configured threshold are counted from the raw
durations (``duration_us < threshold``), exact whatever the threshold.

Sketches and "good" counters hold the latency of answered requests (status below 500): a 502
returned in 1 ms by a proxy whose upstream is down is an availability failure, and must not
make the latency SLI look better. ``request_counts.timed`` still counts every timed request.

Rows stored under "(other)" for a template not yet admitted as a route but tracked as a
candidate carry it in ``template`` (NULL everywhere else), so that admitting it later moves
exactly those rows to the route (store/ingest.py); with ``template`` NULL a row is as before.
"""

from __future__ import annotations

import math
from datetime import timedelta

import duckdb
import numpy as np

# Relative accuracy of the sketch and its bucket growth factor.
RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)  # 101 / 99
# The bucket of a 0 us latency (nginx logs milliseconds, so 0.000 s exists): below every other.
ZERO_BUCKET = -32768
# The time grain of the sketches.
SLOT = timedelta(minutes=5)

# Written as the same expression in SQL and Python (both IEEE double, glibc's log), so that the
# package and an independent numpy reading put a value on the same side of every bucket edge.
_LN_GAMMA_SQL = "ln(101 / 99)"


def sketch_index_sql(column: str) -> str:
    """Return SQL for the sketch bucket (SMALLINT) of the non-negative BIGINT ``column`` (us)."""
    return (f"CASE WHEN {column} = 0 THEN {ZERO_BUCKET} "
            f"ELSE CAST(ceil(ln({column}) / {_LN_GAMMA_SQL}) AS SMALLINT) END")


def sketch_value_ms_sql(column: str) -> str:
    """Return SQL for the latency (ms, DOUBLE) a sketch bucket ``column`` stands for: 0 for the
    zero bucket, else 2 gamma^i / (gamma + 1) us, within 1 % of every value in the bucket."""
    return (f"CASE WHEN {column} = {ZERO_BUCKET} THEN 0.0 "
            f"ELSE 2 * pow(101 / 99, {column}) / (101 / 99 + 1) / 1000 END")


def _floor_sql(column: str, seconds: int) -> str:
    """Return SQL for the TIMESTAMPTZ ``column`` cut down to a multiple of ``seconds`` since
    the Unix epoch: integer arithmetic on its microseconds (stored times are after 1970), a
    quarter of the cost of ``time_bucket(..., 'UTC')``, which converts each row's zone."""
    step = seconds * 1_000_000
    return f"make_timestamptz(epoch_us({column}) // {step} * {step})"


def slot_sql(column: str) -> str:
    """Return SQL for the start of the 5-minute UTC slot holding the TIMESTAMPTZ ``column``."""
    return _floor_sql(column, int(SLOT.total_seconds()))


def sketch_index(us: np.ndarray) -> np.ndarray:
    """Return the sketch bucket of each latency in ``us`` (non-negative integer microseconds)."""
    us = np.asarray(us, dtype=np.int64)
    with np.errstate(divide="ignore"):
        index = np.ceil(np.log(us.astype(np.float64)) / math.log(GAMMA))
    return np.where(us == 0, ZERO_BUCKET, index).astype(np.int64)


def sketch_value_ms(index: np.ndarray) -> np.ndarray:
    """Return the latency (ms) each sketch bucket in ``index`` stands for (see the SQL)."""
    index = np.asarray(index, dtype=np.int64)
    value = 2 * np.power(GAMMA, index.astype(np.float64)) / (GAMMA + 1) / 1000
    return np.where(index == ZERO_BUCKET, 0.0, value)


def minute_sql(column: str) -> str:
    """Return SQL for the start of the UTC minute holding the TIMESTAMPTZ ``column``.

    Equal to ``date_trunc('minute', column)`` in UTC, without its per-row time zone
    conversion (a quarter of the rollups' cost on a million requests).
    """
    return _floor_sql(column, 60)


# The rollups read the batch's good records (temp table ``checked``) with their route.
_ROUTED_GOOD = """FROM checked
JOIN batch_routes AS routes ON checked.target IS NOT DISTINCT FROM routes.target
WHERE checked.bad_field IS NULL"""


def _counts_sql(count: int) -> str:
    """Return SQL for one pass over the raw rows, grouped by minute, route, region and status
    (no latency bucket: a few groups per minute, not one per request), with the requests
    faster than each of ``count`` thresholds ($t0_us, ...) counted from the raw durations:
    exact whatever the threshold."""
    good = "".join(f",\n    count(*) FILTER (WHERE duration_us < $t{i}_us) AS good{i}"
                   for i in range(count))
    return f"""
CREATE OR REPLACE TEMP TABLE batch_counts AS
SELECT
    {minute_sql("ts")} AS minute,
    routes.route,
    routes.template,
    region,
    status,
    count(*) AS requests,
    count(duration_us) AS timed,
    coalesce(sum(duration_us), 0) AS duration_sum_us,
    coalesce(sum(bytes), 0) AS bytes_sum{good}
{_ROUTED_GOOD}
GROUP BY ALL
"""


_COUNTS = """
INSERT INTO request_counts
    (ingest_id, minute, route, status, requests, timed, duration_sum_us, bytes_sum, template)
SELECT $ingest_id, minute, route, status,
       sum(requests), sum(timed), sum(duration_sum_us), sum(bytes_sum), template
FROM batch_counts
GROUP BY minute, route, status, template
"""


def _good_sql(count: int) -> str:
    """Return SQL inserting, per minute and route with answered timed requests, those under
    each of ``count`` thresholds (the list $thresholds_ms, counted in batch_counts' good0,
    good1, ...)."""
    under = ", ".join(f"sum(good{i})" for i in range(count))
    return f"""
INSERT INTO request_good (ingest_id, minute, route, threshold_ms, good, template)
SELECT $ingest_id, minute, route, unnest($thresholds_ms), unnest(good), template
FROM (
    SELECT minute, route, template, [{under}] AS good
    FROM batch_counts
    WHERE timed > 0 AND status < 500
    GROUP BY minute, route, template
)
"""


# Requests that name their region (NULL for sources without one) also count per region.
_REGION_COUNTS = """
INSERT INTO region_counts
    (ingest_id, minute, region, status, requests, timed, duration_sum_us)
SELECT $ingest_id, minute, region, status, sum(requests), sum(timed), sum(duration_sum_us)
FROM batch_counts
WHERE region IS NOT NULL
GROUP BY minute, region, status
"""

# The sketches: the second and third passes over the raw rows, the answered timed requests
# per slot and route (or region: no route needed) and sketch bucket.
_ANSWERED = "checked.duration_us IS NOT NULL AND checked.status < 500"
_SKETCH = f"""
INSERT INTO latency_sketch (ingest_id, slot, route, bucket, count, template)
SELECT $ingest_id, {slot_sql("ts")}, routes.route, {sketch_index_sql("duration_us")}, count(*),
       routes.template
{_ROUTED_GOOD} AND {_ANSWERED}
GROUP BY ALL
"""

_REGION_SKETCH = f"""
INSERT INTO region_latency_sketch (ingest_id, slot, region, bucket, count)
SELECT $ingest_id, {slot_sql("ts")}, region, {sketch_index_sql("duration_us")}, count(*)
FROM checked
WHERE checked.bad_field IS NULL AND checked.region IS NOT NULL AND {_ANSWERED}
GROUP BY ALL
"""


def add_rollups(con: duckdb.DuckDBPyConnection, ingest_id: int,
                thresholds_ms: list[float]) -> None:
    """Append the rollups of the good records in ``checked``, routed by ``batch_routes``.

    Rows are tagged with ``ingest_id``; a minute or slot split across batches or files simply
    has two partial rows, which every reader sums.
    """
    params: dict[str, object] = {f"t{i}_us": round(t * 1000) for i, t in enumerate(thresholds_ms)}
    # Each pass over the raw rows groups only as finely as its tables need: one group per
    # minute x route x region x status x bucket (the old single pass, which every table was
    # read from) is about one group per request at moderate traffic, and was most of the
    # ingest's cost.
    con.execute(_counts_sql(len(thresholds_ms)), params)
    con.execute(_COUNTS, {"ingest_id": ingest_id})
    if thresholds_ms:
        con.execute(_good_sql(len(thresholds_ms)),
                    {"ingest_id": ingest_id, "thresholds_ms": thresholds_ms})
    con.execute(_SKETCH, {"ingest_id": ingest_id})
    con.execute(_REGION_COUNTS, {"ingest_id": ingest_id})
    con.execute(_REGION_SKETCH, {"ingest_id": ingest_id})
    con.execute("DROP TABLE batch_counts")
