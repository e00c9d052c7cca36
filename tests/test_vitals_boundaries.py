"""Web Vitals summary and Core Web Vitals assessment worked by hand, with values exactly on
the good / poor thresholds (mutation-testing survivors)."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest
from test_vitals import T0, beacon

from mysetlist_slo import ingest_file
from mysetlist_slo.config import parse_config
from mysetlist_slo.vitals.field import cwv_assessment, web_vitals_summary

CONFIG = parse_config("""
web_vitals: {min_page_views: 4, budgets: {LCP: 2500, CLS: 0.1, INP: 200}}
""")
SHOW, ARTIST, VENUE = "/show/[id]", "/artist/[slug]", "/venue/[slug]"
# (path, metric, values): four page views each, but INP on the show page (two: not enough).
PAGES = [
    ("/show/1", "LCP", [2500, 2500.1, 4000, 4000.1]),  # good share 1/4, NI 2/4, poor 1/4
    ("/show/1", "CLS", [0.05, 0.1, 0.1, 0.3]),  # good 3/4, poor 1/4; p75 0.1: good
    ("/show/1", "INP", [100, 200]),
    ("/artist/a", "LCP", [1000] * 4),
    ("/artist/a", "CLS", [0.0] * 4),
    ("/artist/a", "INP", [200] * 4),  # exactly the good threshold: good
    ("/venue/v", "LCP", [1000] * 4),
    ("/venue/v", "CLS", [0.0] * 4),
    ("/venue/v", "INP", [500, 500, 500, 500.5]),  # p75 500: needs improvement
]


@pytest.fixture(name="summary")
def fixture_summary(store, write_log):  # type: ignore[no-untyped-def]
    """The summary of the beacons above, per metric, route and form factor."""
    lines = [beacon(metric, value, f"{path}-{metric}-{i}", path)
             for path, metric, values in PAGES for i, value in enumerate(values)]
    ingest_file(store, write_log("beacons.jsonl", lines))
    return web_vitals_summary(store, CONFIG, T0 - timedelta(hours=1), T0 + timedelta(hours=1))


def test_summary_by_hand(summary) -> None:  # type: ignore[no-untyped-def]
    """Shares count a value at the good threshold as good and at the poor one as needs
    improvement; p75 is the nearest-rank third of four; a cell under min_page_views has
    shares but no p75, rating or budget verdict; rows come sorted by metric and route."""
    assert list(summary.columns) == [
        "metric", "route", "form_factor", "page_views", "p75", "p75_low", "p75_high", "rating",
        "good", "needs_improvement", "poor", "budget", "meets_budget", "status"]
    assert list(zip(summary["metric"], summary["route"], strict=True)) == [
        ("CLS", ARTIST), ("CLS", SHOW), ("CLS", VENUE), ("INP", ARTIST), ("INP", SHOW),
        ("INP", VENUE), ("LCP", ARTIST), ("LCP", SHOW), ("LCP", VENUE)]
    rows = {(r["metric"], r["route"]): r for r in summary.to_dict("records")}
    lcp = rows["LCP", SHOW]
    assert (lcp["page_views"], lcp["good"], lcp["needs_improvement"], lcp["poor"]) == (
        4, 0.25, 0.5, 0.25)
    assert (lcp["p75"], lcp["rating"], lcp["status"]) == (4000, "needs-improvement", "ok")
    # 95 % interval by order statistics: ranks binom.ppf(0.025, 4, 0.75) = 1 (P(X <= 0) is
    # 0.4 %, P(X <= 1) 5.1 %) and binom.ppf(0.975, 4, 0.75) + 1 = 5, beyond four values.
    assert lcp["p75_low"] == 2500 and math.isnan(lcp["p75_high"])
    assert (lcp["budget"], lcp["meets_budget"]) == (2500, False)
    cls = rows["CLS", SHOW]
    assert (cls["good"], cls["needs_improvement"], cls["poor"]) == (0.75, 0.0, 0.25)
    assert (cls["p75"], cls["rating"], cls["meets_budget"]) == (0.1, "good", True)
    inp = rows["INP", SHOW]
    assert (inp["page_views"], inp["good"], inp["status"]) == (2, 1.0, "not enough data")
    assert math.isnan(inp["p75"]) and math.isnan(inp["p75_low"]) and math.isnan(inp["p75_high"])
    assert pd.isna(inp["rating"]) and pd.isna(inp["meets_budget"])
    assert (rows["INP", ARTIST]["rating"], rows["INP", ARTIST]["meets_budget"]) == ("good", True)
    venue = rows["INP", VENUE]
    assert (venue["p75"], venue["rating"], venue["poor"]) == (500, "needs-improvement", 0.25)


def test_cwv_assessment_by_hand(summary) -> None:  # type: ignore[no-untyped-def]
    """CrUX's rule over the summary: the show page fails on LCP (INP not judged); the artist
    page passes (INP good at exactly 200 ms); the venue page fails on INP alone."""
    assessed = cwv_assessment(summary)
    assert list(assessed.columns) == ["route", "form_factor", "LCP", "INP", "CLS", "assessment"]
    rows = {r["route"]: r for r in assessed.to_dict("records")}
    assert list(assessed["route"]) == [ARTIST, SHOW, VENUE]
    assert (rows[SHOW]["LCP"], rows[SHOW]["CLS"], rows[SHOW]["assessment"]) == (
        "needs-improvement", "good", "failed")
    assert pd.isna(rows[SHOW]["INP"])
    assert (rows[ARTIST]["INP"], rows[ARTIST]["assessment"]) == ("good", "passed")
    assert (rows[VENUE]["INP"], rows[VENUE]["assessment"]) == ("needs-improvement", "failed")


def test_cwv_assessment_of_no_rows_and_shuffled_rows(summary) -> None:  # type: ignore[no-untyped-def]
    """An empty summary gives an empty assessment with its columns; a summary in any row order
    gives the routes in order."""
    empty = cwv_assessment(summary.iloc[:0])
    assert list(empty.columns) == ["route", "form_factor", "LCP", "INP", "CLS", "assessment"]
    assert empty.empty
    shuffled = cwv_assessment(summary.iloc[::-1])
    assert list(shuffled["route"]) == [ARTIST, SHOW, VENUE]


def test_summary_without_web_vitals_settings(store, write_log) -> None:
    """Without a web_vitals section a cell needs the default 100 page views and has no budget:
    100 views of the show page get a p75, 99 of the artist page do not."""
    lines = [beacon("LCP", 1000, f"s{i}", "/show/1") for i in range(100)]
    lines += [beacon("LCP", 1000, f"a{i}", "/artist/a") for i in range(99)]
    ingest_file(store, write_log("many.jsonl", lines))
    bare = parse_config("timezone: UTC\n")
    assert bare.web_vitals is None
    summary = web_vitals_summary(store, bare, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    rows = {r["route"]: r for r in summary.to_dict("records")}
    assert (rows[SHOW]["status"], rows[SHOW]["p75"]) == ("ok", 1000)
    assert rows[ARTIST]["status"] == "not enough data"
    assert pd.isna(rows[SHOW]["budget"]) and pd.isna(rows[SHOW]["meets_budget"])
