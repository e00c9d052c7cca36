"""Web Vitals field analytics: p75 with confidence intervals, ratings, the Core Web Vitals
assessment, week-over-week regressions, CrUX beside our own data, Lighthouse lab trends.

p75 is the 75th percentile as the Chrome UX Report reports it, computed exactly from the
samples (nearest rank); its 95 % interval is distribution-free (binomial order statistics).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu, quantile_test

from mysetlist_slo.config import Config
from mysetlist_slo.sources.vitals import ATTRIBUTION_COLUMNS
from mysetlist_slo.store.routes import RouteNormaliser

# web-vitals thresholds (good up to and including the first, poor above the second).
THRESHOLDS = {"LCP": (2500, 4000), "INP": (200, 500), "CLS": (0.1, 0.25),
              "FCP": (1800, 3000), "TTFB": (800, 1800)}
CORE_WEB_VITALS = ("LCP", "INP", "CLS")

# The last report of each metric id wins: CLS and INP are reported again as they grow. The
# last report is taken over every report of the id, wherever it falls, and the sample belongs
# to the window of its page view (the id's first report), so a window's end never cuts a
# page view's value short nor moves it to another window.
_SAMPLES = """
WITH reports AS (
    SELECT *, row_number() OVER (PARTITION BY metric_id, metric
                                 ORDER BY ts DESC, ingest_id DESC, line DESC) AS newest,
           min(ts) OVER (PARTITION BY metric_id, metric) AS viewed
    FROM vitals
)
SELECT viewed AS ts, metric, value, route, form_factor, metric_id{attribution}
FROM reports
WHERE newest = 1 AND viewed >= ? AND viewed < ?
"""
# The attribution of the last report goes with its value (an INP's target changes as a
# worse interaction replaces it); ``attributed``: the report carried any attribution field.
_ATTRIBUTION = "".join(f", {column}" for column in ATTRIBUTION_COLUMNS) + (
    ", " + " OR ".join(f"{column} IS NOT NULL" for column in ATTRIBUTION_COLUMNS)
    + " AS attributed")


def vitals_samples(con: duckdb.DuckDBPyConnection, start: datetime,
                   end: datetime, attribution: bool = False) -> pd.DataFrame:
    """Return one sample per page view and metric whose page view (first report) is in
    [start, end): ts (of the page view), metric, value (of the id's last report, wherever it
    falls), route, form_factor, metric_id; with ``attribution``, also that report's
    attribution columns and ``attributed`` (whether it carried any)."""
    query = _SAMPLES.format(attribution=_ATTRIBUTION if attribution else "")
    return con.execute(query, [start, end]).df()


def rating(metric: str, value: float) -> str:
    """Return good, needs-improvement or poor; a value equal to a threshold is the better.

    >>> rating("LCP", 2500), rating("LCP", 2501), rating("CLS", 0.25), rating("INP", 501)
    ('good', 'needs-improvement', 'needs-improvement', 'poor')
    """
    good, poor = THRESHOLDS[metric]
    if value <= good:
        return "good"
    return "needs-improvement" if value <= poor else "poor"


def nearest_rank_p75(values: np.ndarray) -> float:
    """Return the nearest-rank 75th percentile of a non-empty array, as CrUX reports p75.

    >>> nearest_rank_p75(np.array([4.0, 1.0, 3.0, 2.0]))
    3.0
    """
    ordered = np.sort(np.asarray(values, dtype=float))
    return float(ordered[int(np.ceil(0.75 * len(ordered))) - 1])


def p75_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Return (p75, low, high): the nearest-rank 75th percentile and its distribution-free
    confidence interval (scipy's quantile test, binomial order statistics)."""
    ordered = np.sort(np.asarray(values, dtype=float))
    p75 = nearest_rank_p75(ordered)
    interval = quantile_test(ordered, q=p75, p=0.75).confidence_interval(confidence)
    return p75, float(interval.low), float(interval.high)


def _cell(values: np.ndarray, metric: str, minimum: int) -> dict[str, object]:
    n = len(values)
    good, poor = THRESHOLDS[metric]
    row: dict[str, object] = {
        "page_views": n,
        "good": float(np.mean(values <= good)) if n else np.nan,
        "needs_improvement": float(np.mean((values > good) & (values <= poor))) if n else np.nan,
        "poor": float(np.mean(values > poor)) if n else np.nan,
    }
    if n < minimum:
        return {**row, "p75": np.nan, "p75_low": np.nan, "p75_high": np.nan, "rating": None,
                "status": "not enough data"}
    p75, low, high = p75_interval(values)
    return {**row, "p75": p75, "p75_low": low, "p75_high": high,
            "rating": rating(metric, p75), "status": "ok"}


def web_vitals_summary(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                       end: datetime, by: Sequence[str] = ("route", "form_factor"),
                       period: str | None = None) -> pd.DataFrame:
    """Return p75 (with its 95 % interval), good / needs-improvement / poor shares and the
    budget verdict of every metric per ``by`` (and per ISO week of the configured time zone
    when ``period='week'``).

    Cells with fewer page views than ``web_vitals.min_page_views`` say "not enough data".
    """
    samples = vitals_samples(con, start, end)
    settings = config.web_vitals
    minimum = settings.min_page_views if settings else 100
    budgets = dict(settings.budgets) if settings else {}
    keys = ["metric", *by]
    if period == "week":
        # ISO weeks cut in the configured zone, as every report period is.
        iso = samples["ts"].dt.tz_convert(config.timezone).dt.isocalendar()
        samples["week"] = iso["year"].astype(str) + "-W" + iso["week"].astype(str).str.zfill(2)
        keys.append("week")
    rows = []
    for key, group in samples.groupby(keys, sort=True):
        cell = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        metric = str(cell["metric"])
        row = {**cell, **_cell(group["value"].to_numpy(), metric, minimum)}
        budget = budgets.get(metric)  # type: ignore[call-overload]
        row["budget"] = budget
        row["meets_budget"] = (None if budget is None or row["status"] != "ok"
                               else bool(row["p75"] <= budget))  # type: ignore[operator]
        rows.append(row)
    columns = [*keys, "page_views", "p75", "p75_low", "p75_high", "rating", "good",
               "needs_improvement", "poor", "budget", "meets_budget", "status"]
    return pd.DataFrame(rows, columns=columns)


def cwv_assessment(summary: pd.DataFrame, by: Sequence[str] = ("route", "form_factor")
                   ) -> pd.DataFrame:
    """Return the Core Web Vitals assessment per ``by``, as CrUX decides it: passed when the
    p75 of LCP and CLS are good and INP's is good or INP has no data."""
    rows = []
    for key, group in summary.groupby(list(by), sort=True):
        ratings = {m: r for m, r, s in zip(group["metric"], group["rating"], group["status"],
                                           strict=True) if s == "ok"}
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        for metric in CORE_WEB_VITALS:
            row[metric] = ratings.get(metric)
        if ratings.get("LCP") is None or ratings.get("CLS") is None:
            row["assessment"] = "not enough data"
        elif (ratings["LCP"] == "good" and ratings["CLS"] == "good"
              and ratings.get("INP") in ("good", None)):
            row["assessment"] = "passed"
        else:
            row["assessment"] = "failed"
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, *CORE_WEB_VITALS, "assessment"])


def vitals_regressions(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                       end: datetime, significance: float = 0.01,
                       min_change: float = 0.05) -> pd.DataFrame:
    """Return week-over-week p75 changes per metric, route and form factor, [start, end)
    against the same span before it, with a one-sided Mann-Whitney U test on the samples.

    A change is a ``regression`` when the samples got larger with p below ``significance``
    and p75 rose by more than ``min_change``; rows are ranked by users affected (page views
    times the share rated poor now).
    """
    span = end - start
    now = vitals_samples(con, start, end)
    before = vitals_samples(con, start - span, start)
    settings = config.web_vitals
    minimum = settings.min_page_views if settings else 100
    rows = []
    keys = ["metric", "route", "form_factor"]
    previous = dict(iter(before.groupby(keys)))
    for key, group in now.groupby(keys, sort=True):
        old = previous.get(key)
        if old is None or len(group) < minimum or len(old) < minimum:
            continue
        metric = str(key[0])
        values, old_values = group["value"].to_numpy(), old["value"].to_numpy()
        p75_now, p75_before = p75_interval(values)[0], p75_interval(old_values)[0]
        change = (p75_now - p75_before) / p75_before if p75_before else np.inf
        p_value = float(mannwhitneyu(values, old_values, alternative="greater").pvalue)
        poor_share = float(np.mean(values > THRESHOLDS[metric][1]))
        rows.append({
            "metric": metric, "route": key[1], "form_factor": key[2],
            "page_views": len(values), "p75_before": p75_before, "p75": p75_now,
            "change": change, "p_value": p_value,
            "regression": bool(p_value < significance and change > min_change),
            "poor": poor_share, "users_affected": round(len(values) * poor_share),
        })
    frame = pd.DataFrame(rows, columns=["metric", "route", "form_factor", "page_views",
                                        "p75_before", "p75", "change", "p_value",
                                        "regression", "poor", "users_affected"])
    return frame.sort_values(["regression", "users_affected"], ascending=False,
                             ignore_index=True)


_CRUX = """
SELECT key_type, key, form_factor, connection_type, metric, first_date, last_date, p75
FROM crux
ORDER BY key_type, key, form_factor, connection_type, metric, first_date
"""


def crux_comparison(con: duckdb.DuckDBPyConnection, minimum: int = 100,
                    config: Config | None = None) -> pd.DataFrame:
    """Return each CrUX p75 beside our own p75 for the same 28 days, compared like with
    like: an origin record against every page, a URL record against that URL's route (its
    template under ``config``'s route patterns), the record's form factor against ours. A
    record of one connection type (``4G``) cannot be matched, since beacons carry none: it
    is compared with all our page views and flagged ``like_for_like`` False. Our sample
    count and 95 % interval come with it: a CrUX p75 inside our interval is no disagreement,
    and CrUX's coarse histogram bins say nothing finer."""
    normaliser = RouteNormaliser(config.routes.patterns if config else ())
    windows: dict[tuple[object, object], pd.DataFrame] = {}
    rows = []
    for crux in con.execute(_CRUX).df().itertuples():
        period = (crux.first_date, crux.last_date)
        if period not in windows:
            start = pd.Timestamp(crux.first_date, tz="UTC").to_pydatetime()
            end = pd.Timestamp(crux.last_date, tz="UTC").to_pydatetime() + timedelta(days=1)
            windows[period] = vitals_samples(con, start, end)
        samples = windows[period]
        mine = samples[samples["metric"] == crux.metric]
        route = None
        if crux.key_type == "url":
            route = normaliser.template(str(crux.key))
            mine = mine[mine["route"] == route]
        if crux.form_factor != "all_form_factors":
            mine = mine[mine["form_factor"] == crux.form_factor]
        connection = crux.connection_type if isinstance(crux.connection_type, str) else None
        ours = (p75_interval(mine["value"].to_numpy()) if len(mine) >= minimum
                else (np.nan, np.nan, np.nan))
        rows.append({"key_type": crux.key_type, "key": crux.key, "route": route,
                     "form_factor": crux.form_factor, "connection_type": connection,
                     "like_for_like": connection is None, "metric": crux.metric,
                     "first_date": crux.first_date, "last_date": crux.last_date,
                     "crux_p75": crux.p75, "our_page_views": len(mine), "our_p75": ours[0],
                     "our_p75_low": ours[1], "our_p75_high": ours[2],
                     "within_our_interval": (None if np.isnan(ours[0])
                                             else bool(ours[1] <= crux.p75 <= ours[2]))})
    return pd.DataFrame(rows)


_LIGHTHOUSE = """
SELECT fetch_time, url, route, form_factor, performance, lcp, fcp, cls, tbt, tti, speed_index
FROM lighthouse
WHERE fetch_time >= ? AND fetch_time < ?
ORDER BY fetch_time, route
"""


def lighthouse_trends(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                      end: datetime) -> pd.DataFrame:
    """Return the Lighthouse runs in [start, end) with whether each meets the lab targets
    (performance score and TTI)."""
    runs = con.execute(_LIGHTHOUSE, [start, end]).df()
    lab = config.web_vitals.lab if config.web_vitals else {}
    runs["meets_score"] = runs["performance"] >= lab.get("lighthouse_performance", 90)
    runs["meets_tti"] = runs["tti"] <= lab.get("TTI", 3800)
    return runs


def lab_vs_field(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                 end: datetime) -> pd.DataFrame:
    """Return per route and form factor the median lab LCP beside the field p75 LCP."""
    lab = lighthouse_trends(con, config, start, end)
    field = web_vitals_summary(con, config, start, end)
    field = field[field["metric"] == "LCP"][["route", "form_factor", "page_views", "p75"]]
    medians = (lab.groupby(["route", "form_factor"], as_index=False)
               .agg(lab_runs=("lcp", "size"), lab_lcp=("lcp", "median"),
                    lab_score=("performance", "median")))
    merged = medians.merge(field, on=["route", "form_factor"], how="left")
    return merged.rename(columns={"p75": "field_p75_lcp", "page_views": "field_page_views"})
