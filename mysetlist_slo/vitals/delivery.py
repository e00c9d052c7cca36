"""The report section on how the site is delivered: CDN and cache hit ratios, JavaScript
bundle sizes, and Lighthouse lab runs against the plan's lab targets — each part a status and
its lines, or one line saying its data is missing — with its digest lines and JSON form."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pandas as pd

from mysetlist_slo._numbers import signed, whole
from mysetlist_slo.capacity.cdn import (
    ALL_ROUTES,
    IMMUTABLE,
    cache_hit_ratios,
    cache_hit_trend,
    cache_miss_episodes,
)
from mysetlist_slo.config import Config
from mysetlist_slo.vitals.bundles import (
    bundle_builds,
    bundle_check,
    bundle_regressions,
    bundle_trend,
    largest_chunks,
)
from mysetlist_slo.vitals.lab import LAB_TARGETS, describe_value, lab_summary, lab_targets

NO_CACHE = ("no request of the period logged a cache status (add $upstream_cache_status or "
            "the CDN's cache header to the log): cache hit ratio not measured")
NO_BUILDS = ("no Next.js build stored (run `mysetlist-slo bundles check .next` in CI): bundle "
             "size not measured")
NO_LAB = "no Lighthouse run in the period: lab targets not checked"


@dataclass(frozen=True)
class DeliveryLine:
    """One judged item: its part, topic, whether it meets its target (None: no data), text."""

    part: str
    topic: str
    ok: bool | None
    text: str

    @property
    def status(self) -> str:
        """Return the machine status: ok, at_risk or no_data."""
        return "no_data" if self.ok is None else ("ok" if self.ok else "at_risk")


@dataclass(frozen=True)
class WebDelivery:
    """The section's data for [start, end): its lines, and the tables behind them."""

    start: datetime
    end: datetime
    lines: tuple[DeliveryLine, ...]
    cache_routes: pd.DataFrame = field(repr=False)
    cache_trend: pd.DataFrame = field(repr=False)
    cache_storms: pd.DataFrame = field(repr=False)
    bundle_routes: pd.DataFrame = field(repr=False)  # the period's last build, per route
    bundle_regressions: pd.DataFrame = field(repr=False)
    lab: pd.DataFrame = field(repr=False)
    data: dict[str, Any] = field(default_factory=dict, repr=False)  # summary.json parts

    @property
    def status(self) -> str:
        """Return ``no_data`` when nothing is known, ``ok`` when every known line meets its
        target, otherwise ``at_risk``."""
        known = [line for line in self.lines if line.ok is not None]
        if not known:
            return "no_data"
        return "ok" if all(line.ok for line in known) else "at_risk"

    def part_status(self, part: str) -> str:
        """Return the status of one part (CDN and cache, Bundle size, Lighthouse lab targets)."""
        known = [line for line in self.lines if line.part == part and line.ok is not None]
        if not known:
            return "no_data"
        return "ok" if all(line.ok for line in known) else "at_risk"

    def table(self) -> pd.DataFrame:
        """Return the lines as rows: part, topic, status, detail."""
        return pd.DataFrame([{"part": line.part, "topic": line.topic, "status": line.status,
                              "detail": line.text} for line in self.lines])

    def digest_lines(self) -> list[str]:
        """Return the findings (lines at risk) as plain text, one per line, for the digest."""
        return [f"{line.part}: {line.topic}: {line.text}" for line in self.lines
                if line.ok is False]

    def to_dict(self) -> dict[str, Any]:
        """Return the section as JSON-ready data for summary.json's ``web_delivery``."""
        return {"status": self.status,
                **{key: {"status": self.part_status(part), **self.data.get(key, {})}
                   for key, part in PARTS.items()},
                "lines": [{"part": line.part, "topic": line.topic, "status": line.status,
                           "text": line.text} for line in self.lines]}


CDN, BUNDLES, LAB = "CDN and cache", "Bundle size", "Lighthouse lab targets"
PARTS = {"cdn": CDN, "bundles": BUNDLES, "lab": LAB}


def _pct(share: float | None) -> str:
    return "n/a" if share is None or pd.isna(share) else f"{100 * share:.1f} %"


def _utc(value: Any) -> str:
    """Return a time as summary.json writes times: ISO 8601 in UTC with a Z."""
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _round(value: Any, digits: int) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), digits)


def _cdn(con: duckdb.DuckDBPyConnection, config: Config, start: datetime, end: datetime
         ) -> tuple[list[DeliveryLine], pd.DataFrame, pd.DataFrame, pd.DataFrame,
                    dict[str, Any]]:
    routes = cache_hit_ratios(con, config, start, end)
    trend = cache_hit_trend(con, config, start - timedelta(days=28), end, grain="week")
    storms = cache_miss_episodes(con, config, start, end)
    if routes.empty:
        return [DeliveryLine(CDN, "cache hit ratio", None, NO_CACHE)], routes, trend, storms, {}
    overall = routes[routes["route"] == ALL_ROUTES].iloc[0]
    before = cache_hit_ratios(con, config, start - (end - start), start)
    previous = before[before["route"] == ALL_ROUTES]
    points = None if previous.empty else 100 * (overall["hit_ratio"]
                                                 - previous.iloc[0]["hit_ratio"])
    change = "" if points is None else f", {signed(points, '+.1f')} points on the period before"
    target = config.cdn.min_hit_ratio
    lines = [DeliveryLine(
        CDN, "all routes", True,
        f"{_pct(overall['hit_ratio'])} of {int(overall['requests']):,} requests and "
        f"{_pct(overall['byte_hit_ratio'])} of bytes served from cache{change}")]
    immutable = routes[routes["immutable"]]
    for row in immutable.itertuples(index=False):
        ok = bool(row.hit_ratio >= target)
        lines.append(DeliveryLine(
            CDN, str(row.route), ok,
            f"{_pct(row.hit_ratio)} hits of {int(row.requests):,} requests "
            f"({_pct(row.byte_hit_ratio)} of bytes); immutable assets, target {_pct(target)}"))
    if immutable.empty:
        lines.append(DeliveryLine(CDN, "immutable assets", None,
                                  "no request to " + ", ".join(config.cdn.immutable_routes)
                                  + " logged a cache status"))
    weekly = trend[trend["routes"].isin([ALL_ROUTES, IMMUTABLE])]
    if weekly["period"].nunique() > 1:
        series = {label: "; ".join(f"{_pct(r.hit_ratio)}" for r in group.itertuples())
                  for label, group in weekly.groupby("routes")}
        lines.append(DeliveryLine(
            CDN, "trend", True,
            f"weekly hit ratio, oldest first: all routes {series.get(ALL_ROUTES, 'n/a')}"
            + (f"; immutable assets {series[IMMUTABLE]}" if IMMUTABLE in series else "")))
    for storm in storms.itertuples(index=False):
        lines.append(DeliveryLine(
            CDN, "cache-miss storm", False,
            f"{storm.start:%Y-%m-%d %H:%M} to {storm.end:%H:%M} UTC: {_pct(storm.hit_ratio)} hits "
            f"on immutable assets over {int(storm.requests):,} requests"))
    data = {"requests": int(overall["requests"]),
            "hit_ratio_pct": _round(100 * overall["hit_ratio"], 2),
            "byte_hit_ratio_pct": _round(100 * overall["byte_hit_ratio"], 2),
            "target_pct": round(100 * target, 2),
            "immutable": [{"route": str(r.route), "requests": int(r.requests),
                           "hit_ratio_pct": _round(100 * r.hit_ratio, 2),
                           "below_target": bool(r.below_target)}
                          for r in immutable.itertuples(index=False)],
            "storms": [{"start": _utc(s.start), "end": _utc(s.end),
                        "requests": int(s.requests), "hit_ratio_pct": _round(100 * s.hit_ratio, 2)}
                       for s in storms.itertuples(index=False)],
            "trend": [{"week_start": pd.Timestamp(r.period).strftime("%Y-%m-%d"),
                       "routes": str(r.routes), "requests": int(r.requests),
                       "hit_ratio_pct": _round(100 * r.hit_ratio, 2)}
                      for r in weekly.itertuples(index=False)]}
    return lines, routes, trend, storms, data


def _change(metric: str, delta: float) -> str:
    return signed(delta, "+.0f") if metric == "score" else f"{signed(delta / 1000, '+.2f')} s"


def _kb(value: float | None) -> str:
    return "none" if value is None or pd.isna(value) else f"{value:.1f} kB"


def _bundles(con: duckdb.DuckDBPyConnection, config: Config, start: datetime, end: datetime
             ) -> tuple[list[DeliveryLine], pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    builds = bundle_builds(con, start, end)
    regressions = bundle_regressions(con, config, start, end)
    if builds.empty:
        return ([DeliveryLine(BUNDLES, "builds", None, NO_BUILDS)], pd.DataFrame(),
                regressions, {})
    last = builds.iloc[-1]
    check = bundle_check(con, config, int(last["ingest_id"]))
    biggest = largest_chunks(con, int(last["ingest_id"]), 1)
    chunk = ("" if biggest.empty else f"; largest chunk {biggest.iloc[0]['file']} "
             f"{biggest.iloc[0]['gzip_bytes'] / 1000:.1f} kB")
    lines = [DeliveryLine(
        BUNDLES, "static files", True,
        f"{whole(len(builds))} build(s); the last ({last['commit']}) holds "
        f"{last['static_gzip_bytes'] / 1000:.1f} kB gzip of static files "
        f"({whole(last['static_files'])} files){chunk}")]
    for row in regressions.itertuples(index=False):
        lines.append(DeliveryLine(
            BUNDLES, str(row.route), False,
            f"{row.finding} in commit {row.commit}: First Load JS {_kb(row.first_load_kb)} "
            f"(before {_kb(row.previous_kb)}, budget {_kb(row.budget_kb)})"))
    over = check[check["over_budget"] & ~check["route"].isin(regressions["route"])]
    for row in over.itertuples(index=False):
        lines.append(DeliveryLine(BUNDLES, str(row.route), False,
                                  f"over budget: First Load JS {_kb(row.first_load_kb)} "
                                  f"(budget {_kb(row.budget_kb)})"))
    if regressions.empty and over.empty:
        lines.append(DeliveryLine(BUNDLES, "First Load JS", True,
                                  f"every route of the last build within its budget; largest "
                                  f"{_kb(check['first_load_kb'].max())}"))
    history = bundle_trend(con, start - timedelta(days=28), end)
    if len(history) > 1:
        lines.append(DeliveryLine(
            BUNDLES, "trend", True,
            "largest route's First Load JS per build, oldest first: " + "; ".join(
                f"{r.commit[:7]} {_kb(r.max_first_load_gzip_bytes / 1000)}"
                for r in history.tail(6).itertuples(index=False))))
    data = {"builds": len(builds),
            "last_build": {"commit": str(last["commit"]), "build_id": str(last["build_id"]),
                           "built_at": _utc(last["built_at"]),
                           "static_gzip_bytes": int(last["static_gzip_bytes"])},
            "regressions": [{"route": str(r.route), "commit": str(r.commit),
                             "first_load_kb": _round(r.first_load_kb, 1),
                             "previous_kb": _round(r.previous_kb, 1),
                             "budget_kb": _round(r.budget_kb, 1), "finding": str(r.finding)}
                            for r in regressions.itertuples(index=False)]}
    return lines, check, regressions, data


def _lab(con: duckdb.DuckDBPyConnection, config: Config, start: datetime, end: datetime
         ) -> tuple[list[DeliveryLine], pd.DataFrame, dict[str, Any]]:
    summary = lab_summary(con, config, start, end)
    if summary.empty:
        return [DeliveryLine(LAB, "Lighthouse", None, NO_LAB)], summary, {}
    targets = lab_targets(config)
    lines = []
    for row in summary.to_dict("records"):
        topic = f"{row['route']} ({row['form_factor']})"
        values = ", ".join(f"{metric} {describe_value(metric, row[metric])}"
                           for metric in LAB_TARGETS)
        failing = [m for m in LAB_TARGETS if row[f"meets_{m}"] is False]
        missing = ", ".join(f"{direction} {describe_value(m, target)}"
                            for m, (direction, target) in targets.items() if m in failing)
        verdict = (f"misses {', '.join(failing)} (target {missing})" if failing
                   else "meets the lab targets")
        changes = [f"{m} {_change(m, row[f'{m}_change'])}" for m in ("score", "LCP")
                   if not pd.isna(row[f"{m}_change"])]
        if changes:
            values += "; since the collection before: " + ", ".join(changes)
        lines.append(DeliveryLine(LAB, topic, None if row["meets_all"] is None
                                  else not failing,
                                  f"{verdict}; median of {row['runs']} run(s): {values}"))
    data = {"pages": [{"route": r["route"], "form_factor": r["form_factor"],
                       "runs": int(r["runs"]), "fetch_time": _utc(r["fetch_time"]),
                       **{m.lower(): _round(r[m], 3) for m in LAB_TARGETS},
                       "failing": [m for m in LAB_TARGETS if r[f"meets_{m}"] is False]}
                      for r in summary.to_dict("records")]}
    return lines, summary, data


def web_delivery(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                 end: datetime) -> WebDelivery:
    """Return the "CDN cache, bundle size and Lighthouse lab targets" section for the period
    [start, end): cache hit ratios (flagging immutable assets under ``cdn.min_hit_ratio`` and
    cache-miss storms), the builds of the period (regressions against budgets and the build
    before), and the latest Lighthouse collection per route and form factor against the lab
    targets. A part without data is one line saying so. Raises duckdb.Error only for a store
    of an older schema."""
    cdn_lines, routes, trend, storms, cdn_data = _cdn(con, config, start, end)
    bundle_lines, check, regressions, bundle_data = _bundles(con, config, start, end)
    lab_lines, lab, lab_data = _lab(con, config, start, end)
    return WebDelivery(start, end, tuple(cdn_lines + bundle_lines + lab_lines), routes, trend,
                       storms, check, regressions, lab,
                       {"cdn": cdn_data, "bundles": bundle_data, "lab": lab_data})
