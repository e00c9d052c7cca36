"""Web Vitals attribution: which element makes LCP slow and through which phase, which
interaction targets are behind poor INP, which elements shift the layout — per route and
device, ranked by the page views they affect.

Read from the web-vitals attribution build's fields stored with each beacon. A phase's p75
is taken over the phase's own values, as the Chrome UX Report reports LCP's subparts (each
subpart's 75th percentile on its own); the dominant phase is the one with the largest p75.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import Config
from mysetlist_slo.sources.vitals import PHASES
from mysetlist_slo.vitals.field import THRESHOLDS, nearest_rank_p75, vitals_samples

# The metrics the attribution build breaks down: LCP, INP and CLS to an element (grouped by,
# beside route and device), LCP, INP and TTFB into phases.
ATTRIBUTED = ("LCP", "INP", "CLS", "TTFB")
NO_TARGET = "(no element)"  # attributed, but no selector: a text node gone, a removed element


def _most_frequent(values: pd.Series) -> Any:
    """Return the most frequent non-null value (the first in sort order on a tie), or None."""
    counts = values.dropna().value_counts()
    if counts.empty:
        return None
    top = counts[counts == counts.iloc[0]].index
    return sorted(top)[0]


def vitals_attribution(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                       end: datetime, metric: str,
                       by: Sequence[str] = ("route", "form_factor")) -> pd.DataFrame:
    """Return, per ``by`` and attributed element, the page views of ``metric`` (one per page
    view, its last report) in [start, end) that carry attribution, ranked by
    ``page_views_affected``: the views rated worse than good (needs improvement or poor).

    Columns: ``by``; ``target`` (LCP element, INP interaction target, CLS largest shift
    source; absent for TTFB, attributed to phases only); ``detail`` (LCP: the most frequent
    resource URL, INP: interaction type, CLS: the median largest-shift time in ms);
    ``page_views``; ``share`` of the ``by`` cell's attributed views; ``page_views_affected``;
    ``poor``; ``p75``; one p75 per phase (LCP, INP, TTFB); ``dominant_phase`` (the phase
    with the largest p75); ``load_state`` (the most frequent); ``status`` ("ok", or "not
    enough data" under ``web_vitals.min_page_views``, where p75s are NaN).

    Raises ValueError for a metric that has no attribution.
    """
    if metric not in ATTRIBUTED:
        raise ValueError(f"no attribution for {metric!r}: one of {', '.join(ATTRIBUTED)}")
    return _ranked(vitals_samples(con, start, end, attribution=True), config, metric, by)


def _ranked(samples: pd.DataFrame, config: Config, metric: str,
            by: Sequence[str]) -> pd.DataFrame:
    """Return ``vitals_attribution``'s table from the period's samples (with attribution)."""
    settings = config.web_vitals
    minimum = settings.min_page_views if settings else 100
    phases = list(PHASES.get(metric, {}))
    samples = samples[(samples["metric"] == metric) & samples["attributed"]].copy()
    keys = [*by] if metric == "TTFB" else [*by, "target"]
    samples["target"] = samples["attribution_target"].fillna(NO_TARGET).replace("", NO_TARGET)
    # The attributed page views of each route and device, for each element's share of them.
    samples["cell_views"] = (samples.groupby(list(by))["value"].transform("size") if by
                             else len(samples))
    good, poor = THRESHOLDS[metric]
    rows = []
    for key, group in (samples.groupby(keys, sort=True) if keys else [((), samples)]):
        cell = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        values = group["value"].to_numpy(dtype=float)
        n = len(values)
        row: dict[str, Any] = {**cell, "detail": _detail(group, metric), "page_views": n,
                               "share": n / int(group["cell_views"].iloc[0]),
                               "page_views_affected": int(np.sum(values > good)),
                               "poor": int(np.sum(values > poor))}
        enough = n >= minimum
        row["p75"] = nearest_rank_p75(values) if enough else np.nan
        phase_p75 = {}
        for phase in phases:
            known = group[phase].dropna().to_numpy(dtype=float)
            phase_p75[phase] = nearest_rank_p75(known) if enough and len(known) else np.nan
        row.update(phase_p75)
        measured = {p: v for p, v in phase_p75.items() if not np.isnan(v)}
        row["dominant_phase"] = max(measured, key=measured.__getitem__) if measured else None
        row["load_state"] = _most_frequent(group["load_state"])
        row["status"] = "ok" if enough else "not enough data"
        rows.append(row)
    columns = [*keys, "detail", "page_views", "share", "page_views_affected", "poor", "p75",
               *phases, "dominant_phase", "load_state", "status"]
    frame = pd.DataFrame(rows, columns=columns)
    if metric == "TTFB":
        frame = frame.drop(columns="detail")
    return frame.sort_values(["page_views_affected", "page_views", *keys],
                             ascending=[False, False, *[True] * len(keys)],
                             ignore_index=True)


def _detail(group: pd.DataFrame, metric: str) -> Any:
    """Return what is shown beside an element: LCP's most frequent resource URL, INP's
    most frequent interaction type, CLS's median largest-shift time (ms)."""
    if metric == "LCP":
        return _most_frequent(group["attribution_url"])
    if metric == "INP":
        return _most_frequent(group["interaction_type"])
    if metric == "CLS":
        times = group["largest_shift_time"].dropna()
        return float(times.median()) if len(times) else None
    return None


def _detail_text(detail: Any, metric: str) -> str | None:
    """Return a finding's detail as text: CLS's median shift time in ms, else as it is."""
    if detail is None or (isinstance(detail, float) and np.isnan(detail)):
        return None
    return f"largest shift at {detail:,.0f} ms (median)" if metric == "CLS" else str(detail)


@dataclass(frozen=True)
class AttributionFinding:
    """One element behind a slow metric on a route and device, and why."""

    metric: str
    route: str
    form_factor: str
    target: str
    page_views: int
    page_views_affected: int
    p75: float | None
    dominant_phase: str | None
    detail: str | None


_ATTRIBUTED_TO = {"LCP": "LCP element", "INP": "INP interaction target",
                  "CLS": "layout shift source"}


def finding_sentence(finding: dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """Return a finding (one of ``VitalsAttribution.to_dict()["findings"]``) as one sentence;
    ``escape`` is applied to the text read from beacons (selector, route, device) for the
    medium it is shown in."""
    metric, p75 = finding["metric"], finding["p75"]
    value = ("no p75 (too few page views)" if p75 is None else
             f"p75 {p75:.2f}" if metric == "CLS" else f"p75 {p75:,.0f} ms")
    phase = finding["dominant_phase"]
    return (f"{_ATTRIBUTED_TO[metric]} {escape(finding['target'])} on "
            f"{escape(finding['route'])} ({escape(finding['form_factor'])}): "
            f"{finding['page_views_affected']:,} of {finding['page_views']:,} page views over "
            f"the good threshold, {value}"
            + (f", mostly {phase.replace('_', ' ')}" if phase else ""))


@dataclass(frozen=True)
class VitalsAttribution:
    """The report section: the top findings per metric and how many views carried
    attribution."""

    findings: dict[str, list[AttributionFinding]] = field(default_factory=dict)
    attributed: dict[str, int] = field(default_factory=dict)  # page views with attribution
    page_views: dict[str, int] = field(default_factory=dict)  # page views of the metric

    @property
    def has_data(self) -> bool:
        """True when any beacon of the period carried attribution."""
        return any(self.attributed.values())

    def lines(self, escape: Callable[[str], str] = str) -> list[str]:
        """Return the top finding per metric as sentences (``finding_sentence``), or one
        sentence saying no beacon carried attribution."""
        if not self.has_data:
            return ["No beacon of the period carries the web-vitals attribution build's "
                    "fields."]
        return [finding_sentence(_finding_dict(found[0]), escape)
                for metric in ("LCP", "INP", "CLS") if (found := self.findings.get(metric))]

    def to_dict(self) -> dict[str, Any]:
        """Return the section as JSON-ready data (numbers rounded; text as read, to be
        escaped by whoever renders it)."""
        return {
            "attributed_page_views": dict(self.attributed),
            "page_views": dict(self.page_views),
            "findings": [_finding_dict(f) for metric in ("LCP", "INP", "CLS")
                         for f in self.findings.get(metric, [])],
        }


def _finding_dict(f: AttributionFinding) -> dict[str, Any]:
    """Return a finding as JSON-ready data, p75 rounded to its metric's precision."""
    return {"metric": f.metric, "route": f.route, "form_factor": f.form_factor,
            "target": f.target, "page_views": f.page_views,
            "page_views_affected": f.page_views_affected,
            "p75": None if f.p75 is None else round(f.p75, 3 if f.metric == "CLS" else 0),
            "dominant_phase": f.dominant_phase, "detail": f.detail}


def vitals_attribution_findings(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                         end: datetime, top: int = 3) -> VitalsAttribution:
    """Return the ``top`` elements per metric (LCP, INP, CLS) with page views affected, over
    all routes and devices, and how many page views carried attribution."""
    samples = vitals_samples(con, start, end, attribution=True)
    findings: dict[str, list[AttributionFinding]] = {}
    for metric in ("LCP", "INP", "CLS"):
        ranked = _ranked(samples, config, metric, ("route", "form_factor"))
        ranked = ranked[ranked["page_views_affected"] > 0].head(top)
        findings[metric] = [AttributionFinding(
            metric, str(r["route"]), str(r["form_factor"]), str(r["target"]),
            int(r["page_views"]), int(r["page_views_affected"]),
            None if pd.isna(r["p75"]) else float(r["p75"]),
            r["dominant_phase"] if isinstance(r["dominant_phase"], str) else None,
            _detail_text(r["detail"], metric))
            for r in ranked.to_dict("records")]
    counts = samples.groupby("metric")["attributed"].agg(["sum", "size"])
    return VitalsAttribution(
        findings,
        {m: int(counts.loc[m, "sum"]) if m in counts.index else 0 for m in ATTRIBUTED},
        {m: int(counts.loc[m, "size"]) if m in counts.index else 0 for m in ATTRIBUTED})
