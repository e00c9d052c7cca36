"""JavaScript bundle sizes of stored Next.js builds: First Load JS per route against the
budgets in the config, growth over the build before, total static size, largest chunks.

Sizes are gzip bytes as ``next build`` reports First Load JS; budgets are in its kB (1000 B).
A route *regresses* in a build when it grows past its budget (it was within it in the build
before, or is new and over it) or grows by more than ``bundles.max_growth`` over the build
before; a route that stays over its budget is ``over budget`` without regressing again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from mysetlist_slo.config import Config

KB = 1000  # Next.js prints sizes with pretty-bytes: kB of 1000 bytes

_BUILDS = """
SELECT ingest_id, build_id, commit, built_at, static_bytes, static_gzip_bytes, static_files
FROM bundle_builds
WHERE built_at >= $start AND built_at < $end
ORDER BY built_at, ingest_id
"""


def bundle_builds(con: duckdb.DuckDBPyConnection, start: datetime | None = None,
                  end: datetime | None = None) -> pd.DataFrame:
    """Return the stored builds (built in [start, end) when given) in build order: ingest_id,
    build_id, commit, built_at, static_bytes, static_gzip_bytes, static_files."""
    return con.execute(_BUILDS, {"start": start or datetime(1970, 1, 1, tzinfo=UTC),
                                 "end": end or datetime(2100, 1, 1, tzinfo=UTC)}).df()


_FIRST_LOAD = """
WITH route_files AS (
    SELECT DISTINCT route, router, file, bytes, gzip_bytes
    FROM bundle_routes
    WHERE ingest_id = $build
)
SELECT route, router, count(*) AS files, sum(bytes) AS first_load_bytes,
       sum(gzip_bytes) AS first_load_gzip_bytes
FROM route_files
GROUP BY route, router
ORDER BY route
"""


def first_load_js(con: duckdb.DuckDBPyConnection, build: int) -> pd.DataFrame:
    """Return per route of the stored build ``build`` (its ingest id) the First Load JS:
    route, router, files, first_load_bytes (raw) and first_load_gzip_bytes (as Next.js
    reports it)."""
    return con.execute(_FIRST_LOAD, {"build": build}).df()


_LARGEST = """
SELECT file, bytes, gzip_bytes
FROM bundle_files
WHERE ingest_id = $build AND file LIKE '%.js'
ORDER BY gzip_bytes DESC, file
LIMIT $n
"""


def largest_chunks(con: duckdb.DuckDBPyConnection, build: int, n: int = 5) -> pd.DataFrame:
    """Return the ``n`` largest JavaScript files of the stored build ``build`` by gzip size:
    file, bytes, gzip_bytes."""
    return con.execute(_LARGEST, {"build": build, "n": n}).df()


def _previous(con: duckdb.DuckDBPyConnection, build: int) -> int | None:
    row = con.execute("""
        WITH this AS (SELECT built_at, ingest_id FROM bundle_builds WHERE ingest_id = $build)
        SELECT b.ingest_id FROM bundle_builds AS b, this
        WHERE (b.built_at, b.ingest_id) < (this.built_at, this.ingest_id)
        ORDER BY b.built_at DESC, b.ingest_id DESC LIMIT 1""", {"build": build}).fetchone()
    return None if row is None else int(row[0])


def budget_kb(config: Config, route: str) -> float | None:
    """Return the First Load JS budget of ``route`` in kB (its own, else the default)."""
    return config.bundles.budgets_kb.get(route, config.bundles.default_budget_kb)


def bundle_check(con: duckdb.DuckDBPyConnection, config: Config, build: int) -> pd.DataFrame:
    """Return per route of the stored build ``build`` its First Load JS against its budget
    and the build before it.

    Columns: route, router, first_load_kb, budget_kb (None: no budget), previous_kb (None:
    new route or first build), growth (share over the previous, None without one),
    over_budget, regression (grew past the budget, or by more than ``bundles.max_growth``)
    and finding (one phrase: ok, new, over budget, grew past budget, grew N %).
    """
    now = first_load_js(con, build)
    before_id = _previous(con, build)
    before = (first_load_js(con, before_id) if before_id is not None
              else now.iloc[0:0])
    merged = now.merge(before[["route", "first_load_gzip_bytes"]].rename(
        columns={"first_load_gzip_bytes": "previous_bytes"}), on="route", how="left")
    rows = []
    limit = config.bundles.max_growth
    for row in merged.itertuples(index=False):
        size = float(row.first_load_gzip_bytes) / KB
        budget = budget_kb(config, str(row.route))
        previous = None if pd.isna(row.previous_bytes) else float(row.previous_bytes) / KB
        growth = None if previous is None or previous == 0 else size / previous - 1
        over = budget is not None and size > budget
        crossed = over and (previous is None or previous <= budget)  # type: ignore[operator]
        grew = growth is not None and growth > limit
        if crossed:
            finding = "grew past budget" if previous is not None else "new, over budget"
        elif grew:
            finding = f"grew {100 * growth:.1f} %"  # type: ignore[operator]
        elif over:
            finding = "over budget"
        else:
            finding = "new" if previous is None and before_id is not None else "ok"
        rows.append({"route": row.route, "router": row.router, "first_load_kb": size,
                     "budget_kb": budget, "previous_kb": previous, "growth": growth,
                     "over_budget": over, "regression": crossed or grew, "finding": finding})
    return pd.DataFrame(rows, columns=["route", "router", "first_load_kb", "budget_kb",
                                       "previous_kb", "growth", "over_budget", "regression",
                                       "finding"])


def bundle_regressions(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                       end: datetime) -> pd.DataFrame:
    """Return every route that regressed in a build of [start, end), each against the build
    before it: built_at, commit, build_id, then ``bundle_check``'s columns."""
    frames = []
    for build in bundle_builds(con, start, end).itertuples(index=False):
        check = bundle_check(con, config, int(build.ingest_id))
        check = check[check["regression"]]
        if len(check):
            frames.append(check.assign(built_at=build.built_at, commit=build.commit,
                                       build_id=build.build_id))
    if not frames:
        return pd.DataFrame(columns=["built_at", "commit", "build_id", "route", "router",
                                     "first_load_kb", "budget_kb", "previous_kb", "growth",
                                     "over_budget", "regression", "finding"])
    out = pd.concat(frames, ignore_index=True)
    first = ["built_at", "commit", "build_id"]
    return out[first + [c for c in out.columns if c not in first]]


_TREND = """
WITH route_files AS (
    SELECT DISTINCT ingest_id, route, file, gzip_bytes
    FROM bundle_routes
),
first_load AS (
    SELECT ingest_id, max(sum_gzip) AS max_first_load_gzip_bytes
    FROM (SELECT ingest_id, route, sum(gzip_bytes) AS sum_gzip
          FROM route_files GROUP BY ingest_id, route)
    GROUP BY ingest_id
)
SELECT b.built_at, b.commit, b.build_id, b.static_bytes, b.static_gzip_bytes,
       f.max_first_load_gzip_bytes
FROM bundle_builds AS b LEFT JOIN first_load AS f USING (ingest_id)
WHERE b.built_at >= $start AND b.built_at < $end
ORDER BY b.built_at, b.ingest_id
"""


def bundle_trend(con: duckdb.DuckDBPyConnection, start: datetime,
                 end: datetime) -> pd.DataFrame:
    """Return per build of [start, end), in order: built_at, commit, build_id, static_bytes,
    static_gzip_bytes and the largest route's First Load JS (max_first_load_gzip_bytes)."""
    return con.execute(_TREND, {"start": start, "end": end}).df()
