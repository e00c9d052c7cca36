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
"""

from __future__ import annotations

from typing import Literal

import pyarrow as pa

TimeKind = Literal["nginx_local", "iso8601", "epoch_s", "epoch_ms", "timestamptz", "timestamp"]

CANONICAL_COLUMNS = ["line", "ts", "method", "target", "status", "duration_us", "upstream_us",
                     "bytes", "client", "user_agent"]

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
])

STAGED_COLUMNS = ["line", "ts", "method", "target", "status", "duration", "upstream", "bytes",
                  "client", "user_agent"]

# How many microseconds one unit of a source's duration is.
UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}

_ZONE_SUFFIX = r"(Z|z|[+-]\d{2}(:?\d{2})?)$"


def _quoted(column: str) -> str:
    # Offending values are shown cut to 60 characters, quoted, in the reject reason.
    return f"'''' || left(CAST({column} AS VARCHAR), 60) || ''''"


def _time_expression(kind: TimeKind) -> tuple[str, str]:
    """Return (SQL giving the TIMESTAMPTZ, SQL giving a problem text or NULL) for ts_raw."""
    if kind == "nginx_local":
        parsed = "try_strptime(ts_raw, '%d/%b/%Y:%H:%M:%S %z')"
        problem = f"CASE WHEN {parsed} IS NULL THEN 'not a time like 10/Oct/2026:13:55:36 +0000: ' || {_quoted('ts_raw')} END"
        return parsed, problem
    if kind == "iso8601":
        parsed = f"CASE WHEN regexp_matches(trim(ts_raw), '{_ZONE_SUFFIX}') THEN TRY_CAST(trim(ts_raw) AS TIMESTAMPTZ) END"
        problem = (
            f"CASE WHEN NOT regexp_matches(trim(ts_raw), '{_ZONE_SUFFIX}') AND TRY_CAST(ts_raw AS TIMESTAMP) IS NOT NULL "
            f"THEN 'timestamp has no time zone offset (add Z or +hh:mm): ' || {_quoted('ts_raw')} "
            f"WHEN ({parsed}) IS NULL THEN 'not an ISO 8601 timestamp: ' || {_quoted('ts_raw')} END"
        )
        return parsed, problem
    if kind in ("epoch_s", "epoch_ms"):
        scale = "1" if kind == "epoch_s" else "1000"
        parsed = f"to_timestamp(TRY_CAST(ts_raw AS DOUBLE) / {scale})"
        problem = f"CASE WHEN TRY_CAST(ts_raw AS DOUBLE) IS NULL THEN 'not a Unix time: ' || {_quoted('ts_raw')} END"
        return parsed, problem
    if kind == "timestamptz":
        return "ts_raw", "NULL"
    # A timestamp column without a zone cannot be placed in time: refuse it, never guess.
    return "NULL::TIMESTAMPTZ", "'timestamp has no time zone (column type TIMESTAMP without zone)'"


def _duration_expression(column: str, unit_us: int, allow_list: bool) -> tuple[str, str]:
    """Return (SQL giving microseconds or NULL, SQL giving a problem text or NULL)."""
    text = f"trim(CAST({column} AS VARCHAR))"
    absent = f"({column} IS NULL OR {text} IN ('', '-'))"
    if allow_list:
        # nginx writes several upstream times ("0.010, 0.020" or "0.010 : 0.020") when a request
        # went to more than one upstream; the request waited for all of them, so they add up.
        parts = f"string_split_regex({text}, '\\s*[,:]\\s*')"
        value = f"list_sum(list_transform({parts}, lambda x: CASE WHEN x = '-' THEN 0 ELSE TRY_CAST(x AS DOUBLE) END))"
        invalid = f"len(list_filter({parts}, lambda x: x <> '-' AND TRY_CAST(x AS DOUBLE) IS NULL)) > 0"
    else:
        value = f"TRY_CAST({column} AS DOUBLE)"
        invalid = f"{value} IS NULL"
    typed = f"CASE WHEN {absent} THEN NULL ELSE CAST(round({value} * {unit_us}) AS BIGINT) END"
    problem = (
        f"CASE WHEN {absent} THEN NULL "
        f"WHEN {invalid} THEN 'not a number: ' || {_quoted(column)} "
        f"WHEN {value} < 0 THEN 'negative duration: ' || {_quoted(column)} "
        f"WHEN isinf({value}) OR isnan({value}) THEN 'not a finite number: ' || {_quoted(column)} END"
    )
    return typed, problem


def validation_query(staged_sql: str, time_kind: TimeKind, duration_unit_us: int,
                     upstream_unit_us: int, upstream_lists: bool = False,
                     target_required: bool = True, may_be_unmatched: bool = False) -> str:
    """Return SQL turning the rows of ``staged_sql`` into canonical columns plus the reject
    reason (``bad_field``, ``problem``: NULL for a good record), ordered by line.

    With ``may_be_unmatched`` the staged rows carry a boolean ``unmatched`` (the record's
    structure could not be read at all); such rows get ``bad_field`` 'unmatched'.
    """
    ts_value, ts_problem = _time_expression(time_kind)
    dur_value, dur_problem = _duration_expression("duration", duration_unit_us, False)
    up_value, up_problem = _duration_expression("upstream", upstream_unit_us, upstream_lists)
    status_int = "TRY_CAST(status AS SMALLINT)"
    bytes_text = "trim(CAST(bytes AS VARCHAR))"
    target_check = (
        "WHEN target IS NULL OR CAST(target AS VARCHAR) = '' THEN {'field': 'target', 'problem': 'missing'} "
        if target_required else ""
    )
    unmatched_check = (
        "WHEN unmatched THEN {'field': 'unmatched', 'problem': ''}" if may_be_unmatched else ""
    )
    return f"""
WITH staged AS (
{staged_sql}
),
renamed AS (
    SELECT line, ts AS ts_raw, * EXCLUDE (line, ts) FROM staged
),
checked AS (
    SELECT
        *,
        CASE
            {unmatched_check}
            WHEN ts_raw IS NULL OR CAST(ts_raw AS VARCHAR) = '' THEN {{'field': 'ts', 'problem': 'missing'}}
            WHEN ({ts_problem}) IS NOT NULL THEN {{'field': 'ts', 'problem': {ts_problem}}}
            WHEN status IS NULL OR CAST(status AS VARCHAR) = '' THEN {{'field': 'status', 'problem': 'missing'}}
            WHEN {status_int} IS NULL THEN {{'field': 'status', 'problem': 'not an integer: ' || {_quoted('status')}}}
            WHEN {status_int} NOT BETWEEN 100 AND 599 THEN {{'field': 'status', 'problem': 'not an HTTP status (100-599): ' || {_quoted('status')}}}
            {target_check}
            WHEN ({dur_problem}) IS NOT NULL THEN {{'field': 'duration', 'problem': {dur_problem}}}
            WHEN ({up_problem}) IS NOT NULL THEN {{'field': 'upstream', 'problem': {up_problem}}}
            WHEN bytes IS NOT NULL AND {bytes_text} NOT IN ('', '-')
                 AND (TRY_CAST(bytes AS BIGINT) IS NULL OR TRY_CAST(bytes AS BIGINT) < 0)
                THEN {{'field': 'bytes', 'problem': 'not a byte count: ' || {_quoted('bytes')}}}
        END AS error
    FROM renamed
)
SELECT
    line,
    CAST({ts_value} AS TIMESTAMPTZ) AS ts,
    CAST(method AS VARCHAR) AS method,
    CAST(target AS VARCHAR) AS target,
    {status_int} AS status,
    {dur_value} AS duration_us,
    {up_value} AS upstream_us,
    CASE WHEN bytes IS NULL OR {bytes_text} IN ('', '-') THEN NULL ELSE TRY_CAST(bytes AS BIGINT) END AS bytes,
    NULLIF(CAST(client AS VARCHAR), '-') AS client,
    NULLIF(CAST(user_agent AS VARCHAR), '-') AS user_agent,
    error.field AS bad_field,
    error.problem AS problem
FROM checked
ORDER BY line
"""
