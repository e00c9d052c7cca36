"""Health-check probe results (JSON Lines or CSV): one row per check of a target from a location.

| column       | required | meaning                                              |
|--------------|----------|------------------------------------------------------|
| timestamp    | yes      | when the check ran, ISO 8601 with a zone             |
| target       | yes      | what was checked (URL or name)                       |
| location     | yes      | where the check ran from                             |
| ok           | yes      | true / false (also 1 / 0, t / f)                     |
| status       | no       | HTTP status the check saw                            |
| latency_ms   | no       | how long the check took                              |
| region       | no       | the region the check reached (else from the config)  |
"""

from __future__ import annotations

from mysetlist_slo.sources.request_exports import ExportOptions, ExportSchema
from mysetlist_slo.sources.requests_schema import TimeKind, quoted, time_sql, validation_sql

PROBE_COLUMNS: dict[str, tuple[str, ...]] = {
    "ts": ("timestamp",),
    "target": ("target",),
    "location": ("location",),
    "ok": ("ok",),
    "status": ("status",),
    "latency": ("latency_ms",),
    "region": ("region",),
}


def probe_validation_query(staged_sql: str, time_kind: TimeKind, options: ExportOptions,
                           typed: frozenset[str]) -> str:
    """Return SQL turning staged probe rows into typed columns plus the reject reason."""
    ts_parse, ts_problem = time_sql(time_kind)

    def text(column: str) -> str:
        return f"trim(CAST({column} AS VARCHAR))"

    return validation_sql(
        staged_sql,
        time_parse=ts_parse,
        conversions=[
            f"TRY_CAST({text('ok')} AS BOOLEAN) AS ok_value",
            "TRY_CAST(status AS SMALLINT) AS status_value",
            "TRY_CAST(latency AS DOUBLE) AS latency_value",
        ],
        checks=[
            "WHEN unmatched THEN {'field': 'unmatched', 'problem': ''}",
            f"WHEN ts_raw IS NULL OR {text('ts_raw')} = '' "
            "THEN {'field': 'ts', 'problem': 'missing'}",
            f"WHEN ts_value IS NULL THEN {{'field': 'ts', 'problem': {ts_problem}}}",
            f"WHEN target IS NULL OR {text('target')} = '' "
            "THEN {'field': 'target', 'problem': 'missing'}",
            f"WHEN location IS NULL OR {text('location')} = '' "
            "THEN {'field': 'location', 'problem': 'missing'}",
            f"WHEN ok IS NULL OR {text('ok')} = '' THEN {{'field': 'ok', 'problem': 'missing'}}",
            "WHEN ok_value IS NULL "
            f"THEN {{'field': 'ok', 'problem': 'not true or false: ' || {quoted('ok')}}}",
            f"WHEN status IS NOT NULL AND {text('status')} <> '' "
            "AND (status_value IS NULL OR status_value NOT BETWEEN 100 AND 599) "
            f"THEN {{'field': 'status', 'problem': 'not an HTTP status: ' || {quoted('status')}}}",
            f"WHEN latency IS NOT NULL AND {text('latency')} <> '' "
            "AND (latency_value IS NULL OR latency_value < 0 OR NOT isfinite(latency_value)) "
            f"THEN {{'field': 'latency', 'problem': 'not a duration: ' || {quoted('latency')}}}",
        ],
        outputs=[
            "ts_value AS ts",
            "CAST(target AS VARCHAR) AS target",
            "CAST(location AS VARCHAR) AS location",
            "ok_value AS ok",
            "status_value AS status",
            "latency_value AS latency_ms",
            "NULLIF(trim(CAST(region AS VARCHAR)), '') AS region",
        ],
    )

PROBES = ExportSchema("probes", PROBE_COLUMNS, ("ts", "target", "location", "ok"),
                      probe_validation_query)
