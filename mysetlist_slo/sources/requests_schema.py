"""The canonical request schema every request source produces, and the SQL that validates it.

A source first *stages* its input as one row per record with the raw values in these columns
(text or already typed), then runs ``validation_query`` over it. Every record comes out either
typed or with the field and problem that make it a reject; none is dropped.

| column        | type        | meaning                                                      |
|---------------|-------------|--------------------------------------------------------------|
| line          | BIGINT      | 1-based line (text) or row (Parquet) number in the file       |
| ts            | TIMESTAMPTZ | when the request was received, UTC                           |
| method        | VARCHAR     | HTTP method, NULL when the request line could not be read    |
| target        | VARCHAR     | request target as sent (path and query), NULL if unreadable  |
| status        | SMALLINT    | HTTP status, 100-599                                         |
| duration_us   | BIGINT      | request time in microseconds, NULL when the source has none  |
| upstream_us   | BIGINT      | upstream (application) time in microseconds, or NULL         |
| bytes         | BIGINT      | response body bytes, or NULL                                 |
| client        | VARCHAR     | client address, or NULL                                      |
| user_agent    | VARCHAR     | User-Agent header, or NULL                                   |
| region        | VARCHAR     | region that served the request (a log field), or NULL        |
| cache_status  | VARCHAR     | cache outcome normalised (CACHE_STATUSES), or NULL: not logged |
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pyarrow as pa

from mysetlist_slo.sources._checks import EARLIEST, LATEST, MAX_BYTES

TimeKind = Literal["nginx_local", "iso8601", "epoch_s", "epoch_ms", "timestamptz", "timestamp"]

CANONICAL_COLUMNS = ["line", "ts", "method", "target", "status", "duration_us", "upstream_us",
                     "bytes", "client", "user_agent", "region", "cache_status"]

CANONICAL_SCHEMA = pa.schema([
    ("line", pa.int64()),
    ("ts", pa.timestamp("us", tz="UTC")),
    ("method", pa.string()),
    ("target", pa.string()),
    ("status", pa.int16()),
    ("duration_us", pa.int64()),
    ("upstream_us", pa.int64()),
    ("bytes", pa.int64()),
    ("client", pa.string()),
    ("user_agent", pa.string()),
    ("region", pa.string()),
    ("cache_status", pa.string()),
])

STAGED_COLUMNS = ["line", "ts", "method", "target", "status", "duration", "upstream", "bytes",
                  "client", "user_agent", "region", "cache_status"]

# The cache outcomes a request is stored with. nginx's $upstream_cache_status values (MISS,
# BYPASS, EXPIRED, STALE, UPDATING, REVALIDATED, HIT), Cloudflare's cf-cache-status (adds
# DYNAMIC, NONE/UNKNOWN), Vercel's x-vercel-cache (adds PRERENDER) and CloudFront's or
# Fastly's x-cache ("Hit from cloudfront", "RefreshHit from cloudfront", "MISS, HIT") all map
# onto these; any other text is OTHER, so log content never becomes a free-form category.
CACHE_STATUSES = ("HIT", "MISS", "EXPIRED", "BYPASS", "STALE", "UPDATING", "REVALIDATED",
                  "DYNAMIC", "PRERENDER", "ERROR", "OTHER")
# Outcomes served from the cache (a stale copy or one revalidated with a 304 from the origin
# too: the origin sent no body). Everything else went to the origin or was never cacheable.
CACHE_HITS = ("HIT", "STALE", "UPDATING", "REVALIDATED", "PRERENDER")


def cache_status_sql(column: str) -> str:
    """Return SQL normalising a logged cache status to one of CACHE_STATUSES, or NULL.

    Fastly and a CDN in front of another CDN list one value per layer ("MISS, HIT"); the
    last is the layer nearest the client, which decided what the client got. CloudFront
    writes "Hit from cloudfront", "RefreshHit from cloudfront" (revalidated), "Miss from
    cloudfront", "Error from cloudfront".
    """
    last = (f"upper(trim(regexp_extract(CAST({column} AS VARCHAR), '([^,]*)$', 1)))")
    word = f"split_part({last}, ' ', 1)"
    known = ", ".join(f"'{status}'" for status in CACHE_STATUSES if status != "OTHER")
    return f"""CASE
        WHEN {column} IS NULL OR trim(CAST({column} AS VARCHAR)) IN ('', '-') THEN NULL
        WHEN {word} = 'REFRESHHIT' THEN 'REVALIDATED'
        WHEN {word} IN ('NONE', 'UNKNOWN') THEN 'DYNAMIC'
        WHEN {word} IN ({known}) THEN {word}
        ELSE 'OTHER' END"""

# How many microseconds one unit of a source's duration is.
UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}

# A date, a time, then the zone: "2026-03-01" alone must not pass for a time with offset -01.
_ZONE_SUFFIX = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|[+-]\d{2}(:?\d{2})?)$"
# Durations and byte counts beyond these are not measurements (a day; a petabyte, MAX_BYTES).
# Below them, the per-minute sums of the rollups fit BIGINT for any plausible request rate.
MAX_DURATION_S = 86_400
# Unix times outside 1970..2100 are typos or units mixed up (seconds read as milliseconds).
EPOCH_RANGE_S = (int(EARLIEST.timestamp()), int(LATEST.timestamp()))
_EARLIEST_SQL = f"TIMESTAMPTZ '{EARLIEST.isoformat()}'"
_LATEST_SQL = f"TIMESTAMPTZ '{LATEST.isoformat()}'"


def quoted(column: str) -> str:
    # Offending values are shown cut to 60 characters, quoted, in the reject reason.
    return f"'''' || left(CAST({column} AS VARCHAR), 60) || ''''"


def validation_sql(staged_sql: str, time_parse: str, conversions: Sequence[str],
                   checks: Sequence[str], outputs: Sequence[str]) -> str:
    """Return the staged -> typed -> checked query that every table-shaped source validates with.

    ``time_parse`` (from ``time_sql``) reads the staged ``ts`` column, renamed ``ts_raw``, as
    ``ts_parsed``; ``ts_value`` is that time when it lies between 1970 and 2100, else NULL
    (parsed once: DuckDB does not share a repeated expression). ``conversions`` are
    ``expression AS name`` items computed once per staged row; ``checks`` are CASE arms over the
    staged and converted values,
    the first that holds giving the reject's ``{'field': ..., 'problem': ...}`` (empty arms are
    skipped); ``outputs`` are the select items of the result, after its ``line``. The result
    ends with ``bad_field`` and ``problem``, NULL for a good record, so no record is dropped.
    """
    def listed(items: Sequence[str], indent: int) -> str:
        return (",\n" + " " * indent).join(items)

    arms = "\n            ".join(arm for arm in checks if arm)
    return f"""
WITH staged AS (
{staged_sql}
),
typed AS (
    SELECT
        *,
        {listed(conversions, 8)}
    FROM (
        SELECT *,
               CASE WHEN ts_parsed >= {_EARLIEST_SQL} AND ts_parsed < {_LATEST_SQL}
                    THEN ts_parsed END AS ts_value
        FROM (SELECT *, {time_parse} AS ts_parsed
              FROM (SELECT * EXCLUDE (ts), ts AS ts_raw FROM staged))
    )
),
checked AS (
    SELECT
        *,
        CASE
            {arms}
        END AS error
    FROM typed
)
SELECT
    line,
    {listed(outputs, 4)},
    error.field AS bad_field,
    error.problem AS problem
FROM checked
"""


def _bounded(parsed: str, problem: str) -> tuple[str, str]:
    """Return (parse, explain) SQL; validation_sql keeps only times between 1970 and 2100."""
    return (parsed,
            "CASE WHEN ts_parsed IS NOT NULL THEN 'not a time between 1970 and 2100: ' || "
            f"{quoted('ts_raw')} ELSE {problem} END")


def time_sql(kind: TimeKind) -> tuple[str, str]:
    """Return (SQL parsing ts_raw to TIMESTAMPTZ or NULL, SQL explaining why ``ts_value`` is
    NULL), for validation_sql's ``time_parse``.

    Times outside 1970-2100 are NULL (explained as such), in every format. The explanation is
    only evaluated for the rows that failed.
    """
    if kind == "nginx_local":
        return _bounded("try_strptime(ts_raw, '%d/%b/%Y:%H:%M:%S %z')",
                        f"'not a time like 10/Oct/2026:13:55:36 +0000: ' || {quoted('ts_raw')}")
    if kind == "iso8601":
        return _bounded(
            f"CASE WHEN regexp_matches(trim(ts_raw), '{_ZONE_SUFFIX}') THEN TRY_CAST(trim(ts_raw) AS TIMESTAMPTZ) END",
            f"CASE WHEN regexp_matches(trim(ts_raw), '^[+-]?\\d{{5,}}-') THEN 'not a time between 1970 and 2100: ' || {quoted('ts_raw')} "
            f"WHEN NOT regexp_matches(trim(ts_raw), '{_ZONE_SUFFIX}') AND TRY_CAST(trim(ts_raw) AS TIMESTAMP) IS NOT NULL "
            f"THEN 'timestamp has no time zone offset (add Z or +hh:mm): ' || {quoted('ts_raw')} "
            f"ELSE 'not an ISO 8601 timestamp: ' || {quoted('ts_raw')} END",
        )
    if kind in ("epoch_s", "epoch_ms"):
        scale = "1" if kind == "epoch_s" else "1000"
        seconds = f"TRY_CAST(ts_raw AS DOUBLE) / {scale}"
        low, high = EPOCH_RANGE_S
        return (f"CASE WHEN {seconds} >= {low} AND {seconds} < {high} THEN to_timestamp({seconds}) END",
                f"'not a Unix time between 1970 and 2100: ' || {quoted('ts_raw')}")
    if kind == "timestamptz":
        return _bounded("ts_raw", "'not a timestamp'")
    # A timestamp column without a zone cannot be placed in time: refuse it, never guess.
    return "NULL::TIMESTAMPTZ", "'timestamp has no time zone (column type TIMESTAMP without zone)'"


def _number_sql(column: str, lists: bool, typed: bool) -> tuple[str, str]:
    """Return (SQL: is the value absent, SQL: the value as DOUBLE or NULL when unreadable).

    ``typed`` columns (Parquet numbers) are absent only when NULL and need no text checks.
    """
    if typed:
        return f"({column} IS NULL)", f"TRY_CAST({column} AS DOUBLE)"
    text = f"trim(CAST({column} AS VARCHAR))"
    absent = f"({column} IS NULL OR {text} IN ('', '-'))"
    value = f"TRY_CAST({column} AS DOUBLE)"
    if lists:
        # nginx writes several upstream times ("0.010, 0.020" or "0.010 : 0.020") when a request
        # went to more than one upstream; the request waited for all of them, so they add up.
        parts = f"string_split_regex({text}, '\\s*[,:]\\s*')"
        summed = (f"CASE WHEN len(list_filter({parts}, lambda x: x <> '-' AND TRY_CAST(x AS DOUBLE) IS NULL)) = 0 "
                  f"THEN list_sum(list_transform({parts}, lambda x: CASE WHEN x = '-' THEN 0 ELSE TRY_CAST(x AS DOUBLE) END)) END")
        value = f"CASE WHEN contains({text}, ',') OR contains({text}, ':') THEN {summed} ELSE {value} END"
    return absent, value


def _duration_checks(name: str, unit_us: int) -> str:
    """Return the CASE arms rejecting an unreadable, negative, infinite or over-long duration."""
    def arm(condition: str, problem: str) -> str:
        return (f"WHEN {condition} THEN {{'field': '{name}', "
                f"'problem': '{problem}: ' || {quoted(name)}}}")

    return "\n            ".join([
        arm(f"NOT {name}_absent AND {name}_value IS NULL", "not a number"),
        arm(f"{name}_value < 0", "negative duration"),
        arm(f"NOT isfinite({name}_value)", "not a finite number"),
        arm(f"{name}_value * {unit_us} > {MAX_DURATION_S * 1_000_000}", "longer than a day"),
    ])


def validation_query(staged_sql: str, time_kind: TimeKind, duration_unit_us: int,
                     upstream_unit_us: int, upstream_lists: bool = False,
                     target_required: bool = True, may_be_unmatched: bool = False,
                     typed_columns: frozenset[str] = frozenset(),
                     carried: Sequence[str] = ()) -> str:
    """Return SQL turning the rows of ``staged_sql`` into canonical columns plus the reject
    reason (``bad_field``, ``problem``: NULL for a good record).

    Each raw value is converted once (CTE ``typed``); the checks then read the converted
    values, and the text of a problem is only built for the rows that have one. With
    ``may_be_unmatched`` the staged rows carry a boolean ``unmatched`` (the record's structure
    could not be read at all); such rows get ``bad_field`` 'unmatched'. ``typed_columns`` name
    the staged columns that arrive typed (not text), which skips the text checks on them.
    ``carried`` staged columns are passed through unchanged, after the canonical ones.
    """
    ts_parse, ts_problem = time_sql(time_kind)
    duration_absent, duration_value = _number_sql("duration", False, "duration" in typed_columns)
    upstream_absent, upstream_value = _number_sql("upstream", upstream_lists,
                                                  "upstream" in typed_columns)
    bytes_absent, _ = _number_sql("bytes", False, "bytes" in typed_columns)

    def missing(column: str) -> str:
        if column.removesuffix("_raw") in typed_columns:
            return f"{column} IS NULL"
        return f"{column} IS NULL OR CAST({column} AS VARCHAR) = ''"

    target_check = (
        "WHEN target IS NULL OR CAST(target AS VARCHAR) = '' THEN {'field': 'target', 'problem': 'missing'}"
        if target_required else ""
    )
    unmatched_check = (
        "WHEN unmatched THEN {'field': 'unmatched', 'problem': ''}" if may_be_unmatched else ""
    )
    # Durations are converted to microseconds only for good records: a rejected NaN or 1e20
    # must not fail the cast.
    return validation_sql(
        staged_sql,
        time_parse=ts_parse,
        conversions=[
            "TRY_CAST(status AS SMALLINT) AS status_value",
            f"{duration_absent} AS duration_absent",
            f"{duration_value} AS duration_value",
            f"{upstream_absent} AS upstream_absent",
            f"{upstream_value} AS upstream_value",
            f"{bytes_absent} AS bytes_absent",
            "TRY_CAST(bytes AS BIGINT) AS bytes_value",
        ],
        checks=[
            unmatched_check,
            f"WHEN {missing('ts_raw')} THEN {{'field': 'ts', 'problem': 'missing'}}",
            f"WHEN ts_value IS NULL THEN {{'field': 'ts', 'problem': {ts_problem}}}",
            f"WHEN {missing('status')} THEN {{'field': 'status', 'problem': 'missing'}}",
            f"WHEN status_value IS NULL OR TRY_CAST(status AS DOUBLE) <> status_value THEN {{'field': 'status', 'problem': 'not an integer: ' || {quoted('status')}}}",
            f"WHEN status_value NOT BETWEEN 100 AND 599 THEN {{'field': 'status', 'problem': 'not an HTTP status (100-599): ' || {quoted('status')}}}",
            target_check,
            _duration_checks("duration", duration_unit_us),
            _duration_checks("upstream", upstream_unit_us),
            f"WHEN NOT bytes_absent AND (bytes_value IS NULL OR bytes_value < 0 OR TRY_CAST(bytes AS DOUBLE) <> bytes_value) THEN {{'field': 'bytes', 'problem': 'not a byte count: ' || {quoted('bytes')}}}",
            f"WHEN NOT bytes_absent AND bytes_value > {MAX_BYTES} THEN {{'field': 'bytes', 'problem': 'more than a petabyte: ' || {quoted('bytes')}}}",
        ],
        outputs=[
            "ts_value AS ts",
            "CAST(method AS VARCHAR) AS method",
            "CAST(target AS VARCHAR) AS target",
            "status_value AS status",
            f"CASE WHEN error IS NULL THEN CAST(round(duration_value * {duration_unit_us}) AS BIGINT) END AS duration_us",
            f"CASE WHEN error IS NULL THEN CAST(round(upstream_value * {upstream_unit_us}) AS BIGINT) END AS upstream_us",
            "CASE WHEN error IS NULL AND NOT bytes_absent THEN bytes_value END AS bytes",
            "NULLIF(CAST(client AS VARCHAR), '-') AS client",
            "NULLIF(CAST(user_agent AS VARCHAR), '-') AS user_agent",
            "NULLIF(NULLIF(trim(CAST(region AS VARCHAR)), ''), '-') AS region",
            f"{cache_status_sql('cache_status')} AS cache_status",
            *carried,
        ],
    )
