"""The rollup step over the raw request lake, defined once and spelled for DuckDB or Spark SQL.

Each query below is written once; a ``Dialect`` supplies the few functions whose names or
argument conventions differ between the two engines (parameter markers, replace-all regexes,
list lambdas, epoch arithmetic). Every value that comes from the configuration (route patterns,
thresholds) is a bound parameter or an integer formatted by Python, never SQL text.

What must come out identical in both engines, and how this module makes sure it does:

* **Regexes** (RE2 in DuckDB, java.util.regex in Spark): only constructs both read the same
  way. ``.`` is spelled ``[^\\n]`` (Java's dot also refuses ``\\r`` and U+2028, RE2's only
  ``\\n``) and "end of text" is ``\\z`` (Java's ``$`` also matches before a final newline,
  RE2's does not). With those spellings both equal the store's RE2 rules (store/routes.py).
* **Time**: minutes, slots and UTC dates are computed from epoch microseconds, so neither
  engine's session time zone takes part.
* **Sketch buckets**: ``ceil(ln(v) / ln(101/99))`` as store/rollups.py defines it. ``ln(101/99)``
  is bound as the double DuckDB computes (not recomputed by the JVM); ``ln(v)`` is glibc's log in
  DuckDB and fdlibm's (StrictMath) in Spark. tests/test_engine_parity.py evaluates both at every
  bucket edge up to the largest duration a request may have and requires the same bucket:
  the two functions are monotonic, so agreeing at every edge means agreeing everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mysetlist_slo.store.rollups import ZERO_BUCKET
from mysetlist_slo.store.routes import (
    _HASH_MIN_LENGTH,
    _SEGMENT_RULES,
    INVALID_ROUTE,
    MAX_TEMPLATE_LENGTH,
    OTHER_ROUTE,
    SCHEME_AND_HOST,
    ordered_patterns,
)

# The output tables, in the order they are written; each maps to its columns (the store table's
# columns without ingest_id and template). Its Hive ``date`` is the UTC day of the first column.
TABLES: dict[str, tuple[str, ...]] = {
    "request_counts": ("minute", "route", "status", "requests", "timed", "duration_sum_us",
                       "bytes_sum"),
    "request_good": ("minute", "route", "threshold_ms", "good"),
    "latency_sketch": ("slot", "route", "bucket", "count"),
    "region_counts": ("minute", "region", "status", "requests", "timed", "duration_sum_us"),
    "region_latency_sketch": ("slot", "region", "bucket", "count"),
    "cache_counts": ("minute", "route", "cache_status", "requests", "bytes_sum"),
}

# The lake's request columns the rollups read.
LAKE_COLUMNS = ("ts", "target", "status", "duration_us", "bytes", "region", "cache_status")

# ln(101/99) as DuckDB (glibc) computes it, which is what store/rollups.py divides by. Python's
# math.log is the same libm call; the parity test checks the two agree.
LN_GAMMA = math.log(101 / 99)

_ANY = r"[^\n]"
_END = r"\z"
MINUTE_US = 60_000_000
SLOT_US = 5 * MINUTE_US
DAY_US = 24 * 60 * MINUTE_US


@dataclass(frozen=True)
class Dialect:
    """How one engine spells the functions whose names differ; everything else is shared."""

    name: str
    marker: str  # prefix of a named parameter: $name (DuckDB) or :name (Spark)
    group1: str  # the first capture group in a regex replacement
    quote: str  # identifier quote

    def param(self, name: str) -> str:
        """Return the marker of the named parameter ``name``."""
        return f"{self.marker}{name}"

    def ident(self, name: str) -> str:
        """Return ``name`` quoted as an identifier (``count`` is a function name in both)."""
        return f"{self.quote}{name}{self.quote}"

    def matches(self, text: str, regex: str) -> str:
        """Return SQL: does ``regex`` match anywhere in ``text`` (both are SQL expressions)."""
        if self.name == "duckdb":
            return f"regexp_matches({text}, {regex})"
        return f"({text} RLIKE {regex})"

    def replace_all(self, text: str, regex: str, replacement: str) -> str:
        """Return SQL replacing every match of ``regex`` in ``text`` by ``replacement``."""
        if self.name == "duckdb":
            return f"regexp_replace({text}, {regex}, {replacement}, 'g')"
        return f"regexp_replace({text}, {regex}, {replacement})"

    def map_segments(self, text: str, variable: str, body: str) -> str:
        """Return SQL splitting ``text`` at '/', mapping each piece (``variable``) through
        ``body`` and joining the pieces with '/' again (empty pieces kept)."""
        if self.name == "duckdb":
            return (f"array_to_string(list_transform(string_split({text}, '/'), "
                    f"lambda {variable}: {body}), '/')")
        return f"array_join(transform(split({text}, '/', -1), {variable} -> {body}), '/')"

    def epoch_us(self, ts: str) -> str:
        """Return SQL for the microseconds since 1970 (BIGINT) of the timestamp ``ts``."""
        return f"epoch_us({ts})" if self.name == "duckdb" else f"unix_micros({ts})"

    def from_epoch_us(self, micros: str) -> str:
        """Return SQL for the UTC timestamp ``micros`` microseconds after 1970."""
        if self.name == "duckdb":
            # Whole minutes only: the division by 10^6 is exact in a double.
            return f"to_timestamp(CAST({micros} AS DOUBLE) / 1000000)"
        return f"timestamp_micros({micros})"

    def floor_to(self, ts: str, grain_us: int) -> str:
        """Return SQL for ``ts`` floored to a multiple of ``grain_us`` since 1970 (UTC)."""
        return self.from_epoch_us(f"{self.div(self.epoch_us(ts), grain_us)} * {grain_us}")

    def div(self, value: str, divisor: int) -> str:
        """Return SQL for the integer quotient of the non-negative BIGINT ``value``."""
        return f"({value} // {divisor})" if self.name == "duckdb" else f"({value} div {divisor})"

    def utc_date(self, ts: str) -> str:
        """Return SQL for the UTC calendar date (DATE) of the timestamp ``ts``."""
        days = f"CAST({self.div(self.epoch_us(ts), DAY_US)} AS INTEGER)"
        if self.name == "duckdb":
            return f"CAST(DATE '1970-01-01' + {days} AS DATE)"
        return f"date_add(DATE '1970-01-01', {days})"


DUCKDB = Dialect("duckdb", "$", "\\1", '"')
SPARK = Dialect("spark", ":", "$1", "`")


@dataclass(frozen=True)
class RollupSettings:
    """What a rollup reads from the configuration: patterns, admission bounds, thresholds."""

    patterns: tuple[str, ...]
    max_routes: int
    min_requests: int
    thresholds_ms: tuple[float, ...]


@dataclass(frozen=True)
class Query:
    """One SQL text and the values of its named parameters."""

    sql: str
    params: dict[str, object]


def _template_sql(d: Dialect, settings: RollupSettings,
                  params: dict[str, object]) -> tuple[str, str]:
    """Return SQL for the cleaned path of ``target`` and for the route template of ``path``
    (store/routes.py's rules), adding the regexes they bind to ``params``."""
    def bind(name: str, value: object) -> str:
        params[name] = value
        return d.param(name)

    # clean_paths: drop scheme and host, query and fragment, repeated and trailing slashes.
    # A scheme and host alone is the path "/" (see clean_paths).
    path = d.replace_all("target", bind("scheme", SCHEME_AND_HOST), bind("slash", "/"))
    path = d.replace_all(path, bind("query", rf"[?#]{_ANY}*{_END}"), bind("empty", ""))
    path = d.replace_all(path, bind("slashes", "//+"), d.param("slash"))
    path = d.replace_all(path, bind("trailing", rf"({_ANY})/{_END}"), bind("group1", d.group1))
    arms = []
    for i, (pattern, regex) in enumerate(ordered_patterns(settings.patterns, _ANY, _END)):
        arms.append(f"WHEN {d.matches('path', bind(f'pattern{i}', regex))} "
                    f"THEN {bind(f'route{i}', pattern)}")
    segment_arms = []
    for i, (rule, placeholder) in enumerate(_SEGMENT_RULES):
        regex = bind(f"segment{i}", rule.removesuffix("$") + _END)
        if placeholder is None:  # hex with a digit: a hash when long enough
            segment_arms.append(f"WHEN {d.matches('seg', regex)} AND length(seg) >= "
                                f"{_HASH_MIN_LENGTH} THEN '[hash]'")
        else:
            segment_arms.append(f"WHEN {d.matches('seg', regex)} THEN {bind(f'p{i}', placeholder)}")
    collapsed = d.map_segments("path", "seg", f"CASE {' '.join(segment_arms)} ELSE seg END")
    return f"""CASE
            WHEN path IS NULL THEN {bind("invalid", INVALID_ROUTE)}
            {' '.join(arms)}
            ELSE substring({collapsed}, 1, {MAX_TEMPLATE_LENGTH})
        END""", path


def route_map_query(d: Dialect, settings: RollupSettings) -> Query:
    """Return the query mapping each distinct lake ``target`` to its ``route``, with
    ``admitted`` true for templates admitted by count (routes.parquet's rows).

    Admission is lake-wide and order-free: a template a configured pattern produced is a route;
    any other is one if it has at least min_requests requests and is among the max_routes most
    frequent such templates (ties by template text); the rest are "(other)".
    """
    params: dict[str, object] = {"min_requests": settings.min_requests,
                                 "max_routes": settings.max_routes,
                                 "other": OTHER_ROUTE}
    template, path = _template_sql(d, settings, params)
    configured = ", ".join(d.param(f"route{i}") for i in range(len(settings.patterns)))

    def is_configured(column: str) -> str:
        return f"{column} IN ({configured})" if configured else "FALSE"

    sql = f"""
WITH targets AS (
    SELECT target, count(*) AS requests
    FROM lake_requests
    GROUP BY target
),
paths AS (
    SELECT target, requests,
           CASE WHEN cleaned LIKE '/%' THEN cleaned END AS path
    FROM (SELECT target, requests, {path} AS cleaned FROM targets) AS cleaning
),
templated AS (
    SELECT target, requests, {template} AS template
    FROM paths
),
counted AS (
    SELECT template, sum(requests) AS requests
    FROM templated
    GROUP BY template
),
admitted AS (
    -- The top max_routes by a sort and a limit: a window over all templates would be one
    -- partition on Spark (which warns of it for every query reading route_map).
    SELECT template
    FROM counted
    WHERE template <> {d.param("invalid")} AND NOT ({is_configured("template")})
      AND requests >= {d.param("min_requests")}
    ORDER BY requests DESC, template
    LIMIT {d.param("max_routes")}
)
SELECT templated.target,
       CASE WHEN templated.template = {d.param("invalid")}
                 OR ({is_configured("templated.template")})
                 OR admitted.template IS NOT NULL
            THEN templated.template ELSE {d.param("other")} END AS route,
       admitted.template IS NOT NULL AS admitted
FROM templated
LEFT JOIN admitted ON templated.template = admitted.template
"""
    return Query(sql, params)


def bucket_sql(d: Dialect, column: str) -> str:
    """Return SQL for the sketch bucket (SMALLINT) of the non-negative BIGINT ``column`` (us),
    store/rollups.py's sketch_index_sql with ln(101/99) bound as ``ln_gamma`` (LN_GAMMA)."""
    return (f"CAST(CASE WHEN {column} = 0 THEN {ZERO_BUCKET} "
            f"ELSE ceil(ln({column}) / {d.param('ln_gamma')}) END AS SMALLINT)")


def aggregate_query(d: Dialect, settings: RollupSettings) -> Query:
    """Return the one pass over the lake rows (joined to ``route_map``), grouped by minute,
    route, region, status and sketch bucket, with the requests under each threshold counted
    from the raw durations (as store/rollups.py's batch_aggregate)."""
    good = "".join(
        f",\n    count(CASE WHEN duration_us < {round(t * 1000)} THEN 1 END) AS good{i}"
        for i, t in enumerate(settings.thresholds_ms))
    bucket = bucket_sql(d, "duration_us")
    sql = f"""
WITH routed AS (
    SELECT {d.floor_to("lake_requests.ts", MINUTE_US)} AS minute,
           route_map.route, region, status, duration_us, bytes,
           {bucket} AS bucket
    FROM lake_requests
    JOIN route_map ON lake_requests.target IS NOT DISTINCT FROM route_map.target
)
SELECT minute, route, region, status, bucket,
    count(*) AS requests,
    coalesce(sum(duration_us), 0) AS duration_sum_us,
    coalesce(sum(bytes), 0) AS bytes_sum{good}
FROM routed
GROUP BY minute, route, region, status, bucket
"""
    return Query(sql, {"ln_gamma": LN_GAMMA})


def table_queries(d: Dialect, settings: RollupSettings) -> dict[str, Query]:
    """Return, for each output table, the query of its rows over ``aggregate`` (and, for
    cache_counts, the lake rows joined to ``route_map``), with the Hive ``date`` last."""
    count = d.ident("count")
    timed = "sum(CASE WHEN bucket IS NOT NULL THEN requests ELSE 0 END)"
    answered = "bucket IS NOT NULL AND status < 500"
    minute_date = d.utc_date("minute")
    slot = d.floor_to("minute", SLOT_US)
    goods = [f"""
    SELECT minute, route, CAST({d.param(f"t{i}")} AS DOUBLE) AS threshold_ms,
           CAST(sum(good{i}) AS BIGINT) AS good, {minute_date} AS date
    FROM aggregate
    WHERE {answered}
    GROUP BY minute, route""" for i in range(len(settings.thresholds_ms))]
    thresholds: dict[str, object] = {f"t{i}": float(t)
                                     for i, t in enumerate(settings.thresholds_ms)}
    if not goods:  # no thresholds configured: the table is empty, with its columns
        goods = [f"""
    SELECT minute, route, CAST(0 AS DOUBLE) AS threshold_ms, CAST(0 AS BIGINT) AS good,
           {minute_date} AS date
    FROM aggregate WHERE 1 = 0"""]
    sketch_source = f"""
    SELECT {slot} AS slot, {{key}}, bucket, requests
    FROM aggregate
    WHERE {answered}{{where}}"""
    queries = {
        "request_counts": f"""
SELECT minute, route, CAST(status AS SMALLINT) AS status,
       CAST(sum(requests) AS BIGINT) AS requests, CAST({timed} AS BIGINT) AS timed,
       CAST(sum(duration_sum_us) AS BIGINT) AS duration_sum_us,
       CAST(sum(bytes_sum) AS BIGINT) AS bytes_sum, {minute_date} AS date
FROM aggregate
GROUP BY minute, route, status""",
        "request_good": "\nUNION ALL".join(goods),
        "latency_sketch": f"""
SELECT slot, route, bucket, CAST(sum(requests) AS BIGINT) AS {count}, {d.utc_date("slot")} AS date
FROM ({sketch_source.format(key="route", where="")}) AS slotted
GROUP BY slot, route, bucket""",
        "region_counts": f"""
SELECT minute, region, CAST(status AS SMALLINT) AS status,
       CAST(sum(requests) AS BIGINT) AS requests, CAST({timed} AS BIGINT) AS timed,
       CAST(sum(duration_sum_us) AS BIGINT) AS duration_sum_us, {minute_date} AS date
FROM aggregate
WHERE region IS NOT NULL
GROUP BY minute, region, status""",
        "region_latency_sketch": f"""
SELECT slot, region, bucket, CAST(sum(requests) AS BIGINT) AS {count},
       {d.utc_date("slot")} AS date
FROM ({sketch_source.format(key="region", where=" AND region IS NOT NULL")}) AS slotted
GROUP BY slot, region, bucket""",
        "cache_counts": f"""
WITH cached AS (
    SELECT {d.floor_to("lake_requests.ts", MINUTE_US)} AS minute, route_map.route,
           cache_status, bytes
    FROM lake_requests
    JOIN route_map ON lake_requests.target IS NOT DISTINCT FROM route_map.target
    WHERE cache_status IS NOT NULL
)
SELECT minute, route, cache_status, count(*) AS requests,
       CAST(coalesce(sum(bytes), 0) AS BIGINT) AS bytes_sum, {minute_date} AS date
FROM cached
GROUP BY minute, route, cache_status""",
    }
    return {name: Query(sql, thresholds if name == "request_good" else {})
            for name, sql in queries.items()}
