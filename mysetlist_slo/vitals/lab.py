"""Lighthouse lab runs against the plan's lab targets: repeated runs of a page collapsed to
their median as Lighthouse CI asserts them, per route and form factor, and the trend."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import Config

# Lab metric -> (stored column, target key in ``web_vitals.lab``, default target, direction).
# The plan: performance score >= 90, FCP < 1.8 s, LCP < 2.5 s, CLS < 0.1, TTI < 3.8 s.
LAB_TARGETS: dict[str, tuple[str, str, float, str]] = {
    "score": ("performance", "lighthouse_performance", 90.0, ">="),
    "FCP": ("fcp", "FCP", 1800.0, "<"),
    "LCP": ("lcp", "LCP", 2500.0, "<"),
    "CLS": ("cls", "CLS", 0.1, "<"),
    "TTI": ("tti", "TTI", 3800.0, "<"),
}
# Lighthouse CI runs a URL ``numberOfRuns`` times back to back: runs of one URL and form
# factor less than this apart belong to one collection (a weekly job is days apart).
RUN_GAP = timedelta(minutes=30)
NOT_MEASURED = "not measured"

_RUNS = """
SELECT fetch_time, url, route, form_factor, performance, fcp, lcp, cls, tti
FROM lighthouse
WHERE fetch_time >= $start AND fetch_time < $end
ORDER BY url, form_factor, fetch_time
"""


def lab_targets(config: Config) -> dict[str, tuple[str, float]]:
    """Return metric -> (comparison, target) for the lab targets, from ``web_vitals.lab``
    where it sets them, else the plan's defaults."""
    lab = config.web_vitals.lab if config.web_vitals else {}
    return {metric: (direction, float(lab.get(key, default)))
            for metric, (_, key, default, direction) in LAB_TARGETS.items()}


def _meets(value: float, direction: str, target: float) -> bool | None:
    if value is None or np.isnan(value):
        return None
    return bool(value >= target) if direction == ">=" else bool(value < target)


def lab_runs(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
             end: datetime) -> pd.DataFrame:
    """Return one row per collection of Lighthouse runs in [start, end) (runs of one URL and
    form factor within RUN_GAP of each other), each metric the median of the collection's
    runs as Lighthouse CI's ``median`` aggregation takes it (the mean of the two middle runs
    for an even count), over the runs that measured it.

    Columns: fetch_time (the collection's first run), url, route, form_factor, runs, then per
    metric of LAB_TARGETS its median (score, FCP, LCP, CLS, TTI; NaN when no run measured
    it: Lighthouse 10+ has no TTI) and ``meets_<metric>`` (True, False, or None when not
    measured), and ``meets_all`` (False if any measured metric misses; None if none was).
    """
    runs = con.execute(_RUNS, {"start": start, "end": end}).df()
    targets = lab_targets(config)
    columns = ["fetch_time", "url", "route", "form_factor", "runs", *LAB_TARGETS,
               *(f"meets_{m}" for m in LAB_TARGETS), "meets_all"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    key = ["url", "form_factor"]
    gap = runs.groupby(key)["fetch_time"].diff() > pd.Timedelta(RUN_GAP)
    runs["collection"] = gap.astype(int).groupby([runs[k] for k in key]).cumsum()
    stored = {metric: column for metric, (column, *_rest) in LAB_TARGETS.items()}
    grouped = runs.groupby([*key, "collection"], sort=False)
    out = grouped.agg(fetch_time=("fetch_time", "min"), route=("route", "first"),
                      runs=("fetch_time", "size"),
                      **{metric: (column, "median") for metric, column in stored.items()})
    out = out.reset_index().drop(columns="collection")
    for metric, (direction, target) in targets.items():
        out[f"meets_{metric}"] = [_meets(v, direction, target) for v in out[metric]]
    verdicts = out[[f"meets_{m}" for m in LAB_TARGETS]]
    out["meets_all"] = [None if all(v is None for v in row) else
                        all(v is not False for v in row) for row in verdicts.itertuples(False)]
    return out[columns].sort_values(["fetch_time", "route", "form_factor"],
                                    ignore_index=True)


def lab_summary(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                end: datetime) -> pd.DataFrame:
    """Return per route and form factor the latest collection in [start, end) against the
    lab targets, with the change of each metric since the collection before it (in the
    whole store, so a weekly job is compared with last week's). Columns: route, form_factor,
    fetch_time, runs, per metric its value, ``meets_<metric>`` and ``<metric>_change``
    (NaN without an earlier collection or a measurement), ``meets_all`` and ``failing``
    (the metrics that miss, comma-separated). Empty when no run in the window."""
    recent = lab_runs(con, config, start, end)
    if recent.empty:
        return recent.assign(failing=pd.Series(dtype=object))
    earliest = datetime(1970, 1, 1, tzinfo=start.tzinfo)
    history = lab_runs(con, config, earliest, end)
    rows = []
    for (route, factor), group in recent.groupby(["route", "form_factor"], sort=True):
        latest = group.sort_values("fetch_time").iloc[-1]
        before = history[(history["route"] == route) & (history["form_factor"] == factor)
                         & (history["fetch_time"] < latest["fetch_time"])]
        row = latest.to_dict()
        for metric in LAB_TARGETS:
            previous = before.sort_values("fetch_time")[metric].iloc[-1] if len(before) else np.nan
            row[f"{metric}_change"] = latest[metric] - previous
        row["failing"] = ", ".join(m for m in LAB_TARGETS if latest[f"meets_{m}"] is False)
        rows.append(row)
    return pd.DataFrame(rows).drop(columns="url")


def lab_trend(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
              end: datetime) -> pd.DataFrame:
    """Return the collections of [start, end) in time order, one row per route, form factor
    and collection, with each metric's median (``lab_runs`` without the verdicts): the
    series a trend figure or table draws."""
    runs = lab_runs(con, config, start, end)
    return runs[["fetch_time", "route", "form_factor", "runs", *LAB_TARGETS]]


def describe_value(metric: str, value: float) -> str:
    """Return a lab value as the report shows it: score as a whole number, times in seconds,
    CLS with three decimals, and "not measured" for a missing value (never 0)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NOT_MEASURED
    if metric == "score":
        return f"{value:.0f}"
    if metric == "CLS":
        return f"{value:.3f}"
    return f"{value / 1000:.2f} s"
