"""Web Vitals summary and Core Web Vitals assessment worked by hand, with values exactly on
the good / poor thresholds (mutation-testing survivors)."""

from __future__ import annotations

import json
import math
from datetime import timedelta

import pandas as pd
import pytest
from test_vitals import T0, beacon, lighthouse_report

from mysetlist_slo import ingest_file
from mysetlist_slo.config import parse_config
from mysetlist_slo.vitals.field import (
    cwv_assessment,
    lab_vs_field,
    lighthouse_trends,
    vitals_regressions,
    web_vitals_summary,
)

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


PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


def load_lighthouse(store, tmp_path, runs) -> None:  # type: ignore[no-untyped-def]
    """Load one Lighthouse report per (page, hours after T0, form factor, LCP ms, score,
    TTI ms)."""
    for i, (page, hours, factor, lcp, score, tti) in enumerate(runs):
        report = lighthouse_report(page, T0 + timedelta(hours=hours), lcp=lcp)
        report["configSettings"] = {"formFactor": factor}
        report["categories"] = {"performance": {"score": score}}
        report["audits"]["interactive"] = {"numericValue": tti}  # type: ignore[index]
        (tmp_path / f"lh{i}.json").write_text(json.dumps(report))
        ingest_file(store, tmp_path / f"lh{i}.json")


def test_lighthouse_runs_against_the_lab_targets(store, tmp_path) -> None:
    """A score exactly at the target meets it, as does a TTI exactly at its limit; the
    targets come from the configuration (95 and 3 s here), else 90 and 3.8 s; a run at the
    window's end is left out."""
    load_lighthouse(store, tmp_path, [("/show/1", 0, "mobile", 2000, 0.95, 3000),
                                      ("/show/1", 1, "mobile", 2000, 0.90, 3800),
                                      ("/show/1", 2, "mobile", 2000, 0.89, 3800.5),
                                      ("/show/1", 3, "mobile", 2000, 0.99, 1000)])
    window = (T0, T0 + timedelta(hours=3))
    strict = parse_config("web_vitals: {budgets: {LCP: 2500}, lab: {lighthouse_performance: 95, "
                          "TTI: 3000}}")
    runs = lighthouse_trends(store, strict, *window)
    assert runs["performance"].tolist() == [95, 90, 89]
    assert runs["meets_score"].tolist() == [True, False, False]
    assert runs["meets_tti"].tolist() == [True, False, False]
    bare = lighthouse_trends(store, parse_config("timezone: UTC\n"), *window)
    assert bare["meets_score"].tolist() == [True, True, False]
    assert bare["meets_tti"].tolist() == [True, True, False]
    assert list(bare.columns) == ["fetch_time", "url", "route", "form_factor", "performance",
                                  "lcp", "fcp", "cls", "tbt", "tti", "speed_index",
                                  "meets_score", "meets_tti"]


def test_lab_vs_field_by_hand(store, tmp_path, write_log) -> None:
    """Three mobile runs of the show page (LCP 2000, 2600, 3000 ms; scores 91, 90, 89): median
    LCP 2600, score 90, beside the field p75 of its phone page views (5: the 4th smallest,
    2400) — Lighthouse's "mobile" is the field's "phone". The desktop run (LCP 1500) meets
    the desktop views' p75 (4 views: the 3rd, 1200); the artist page has runs but no views."""
    load_lighthouse(store, tmp_path, [("/show/1", 0.1, "mobile", 2000, 0.91, 3000),
                                      ("/show/1", 0.2, "mobile", 3000, 0.89, 3000),
                                      ("/show/1", 0.3, "mobile", 2600, 0.90, 3000),
                                      ("/show/1", 0.4, "desktop", 1500, 0.95, 3000),
                                      ("/artist/a", 0.5, "desktop", 1800, 0.93, 3000)])
    lines = [beacon("LCP", v, f"p{v}", "/show/1", userAgent=PHONE)
             for v in (2100, 2200, 2300, 2400, 2500)]
    lines += [beacon("LCP", v, f"d{v}", "/show/1") for v in (1000, 1100, 1200, 1300)]
    lines += [beacon("CLS", 0.5, f"c{i}", "/show/1") for i in range(4)]
    ingest_file(store, write_log("field.jsonl", lines))
    compared = lab_vs_field(store, CONFIG, T0, T0 + timedelta(hours=1))
    assert compared.index.tolist() == [0, 1, 2]
    assert list(compared.columns) == ["route", "form_factor", "lab_runs", "lab_lcp",
                                      "lab_score", "field_page_views", "field_p75_lcp"]
    rows = {(r["route"], r["form_factor"]): r for r in compared.to_dict("records")}
    assert set(rows) == {(ARTIST, "desktop"), (SHOW, "desktop"), (SHOW, "phone")}
    phone = rows[SHOW, "phone"]
    assert (phone["lab_runs"], phone["lab_lcp"], phone["lab_score"]) == (3, 2600, 90)
    assert (phone["field_page_views"], phone["field_p75_lcp"]) == (5, 2400)
    desktop = rows[SHOW, "desktop"]
    assert (desktop["lab_runs"], desktop["lab_lcp"], desktop["field_p75_lcp"]) == (1, 1500, 1200)
    assert math.isnan(rows[ARTIST, "desktop"]["field_p75_lcp"])


def test_vitals_regressions_by_hand(store, write_log) -> None:
    """Hour [T0, T0 + 1 h) against the hour before, at least 5 page views a side.

    Show page LCP: before 1000-1004 (p75, the 4th of 5: 1003), now 2000-2002, 4000 and 5000 (p75
    4000): change 2997 / 1003; every new value above every old one, no ties: the exact one-sided
    Mann-Whitney p is 1 / C(10, 5) = 1/252 < 1 %: a regression; 1 view of 5 poor (5000 > 4000; 4000
    itself is not poor): 1 user affected. Artist page LCP unchanged: change 0, no regression. Show
    page CLS from all 0 to 0.01-0.05: p75 before 0, so the change is infinite; with the old values
    tied, p is the normal approximation: U = 25, mean 12.5, variance 25/12 x (11 - 120/90) = 20.14,
    z = (25 - 12.5 - 0.5) / 4.488 = 2.674, p = 0.00375: a regression too, with no poor view. Venue
    LCP has 4 views now and INP no views before: neither is compared. Regressions first, by users
    affected.
    """
    before, now = T0 - timedelta(minutes=30), T0 + timedelta(minutes=10)
    samples = [("/show/1", "LCP", [1000, 1001, 1002, 1003, 1004], [2000, 2001, 2002, 4000, 5000]),
               ("/artist/a", "LCP", [1000, 1001, 1002, 1003, 1004], [1000, 1001, 1002, 1003, 1004]),
               ("/show/1", "CLS", [0.0] * 5, [0.01, 0.02, 0.03, 0.04, 0.05]),
               ("/venue/v", "LCP", [1000] * 5, [3000] * 4),
               ("/venue/v", "INP", [], [900] * 5)]
    lines = [beacon(metric, value, f"{path}-{metric}-{when}-{i}", path,
                    timestamp=moment.isoformat())
             for path, metric, old, new in samples
             for when, moment, values in (("old", before, old), ("new", now, new))
             for i, value in enumerate(values)]
    ingest_file(store, write_log("weeks.jsonl", lines))
    config = parse_config("web_vitals: {min_page_views: 5, budgets: {LCP: 2500}}")
    window = (T0, T0 + timedelta(hours=1))
    found = vitals_regressions(store, config, *window)
    assert list(found.columns) == ["metric", "route", "form_factor", "page_views", "p75_before",
                                   "p75", "change", "p_value", "regression", "poor",
                                   "users_affected"]
    assert found.index.tolist() == [0, 1, 2]
    first = found.iloc[0].to_dict()
    assert first == {"metric": "LCP", "route": SHOW, "form_factor": "desktop", "page_views": 5,
                     "p75_before": 1003, "p75": 4000, "change": pytest.approx(2997 / 1003),
                     "p_value": pytest.approx(1 / 252), "regression": True, "poor": 0.2,
                     "users_affected": 1}
    assert list(zip(found["metric"], found["route"], found["regression"], strict=True)) == [
        ("LCP", SHOW, True), ("CLS", SHOW, True), ("LCP", ARTIST, False)]
    cls, artist = found.iloc[1], found.iloc[2]
    assert (cls["change"], cls["poor"], cls["users_affected"]) == (math.inf, 0.0, 0)
    assert cls["p_value"] == pytest.approx(0.00375, abs=1e-5)
    assert (artist["change"], artist["p75"]) == (0.0, 1003)
    # The thresholds decide, strictly: neither p (0.00397, 0.00375) is below 0.3 %, nor the
    # show page's exactly below 1/252; a rise of exactly the minimum change is not above it.
    assert not vitals_regressions(store, config, *window, significance=0.003)["regression"].any()
    at_p = vitals_regressions(store, config, *window, significance=1 / 252)
    assert at_p["regression"].tolist() == [True, False, False]
    assert at_p["metric"].tolist() == ["CLS", "LCP", "LCP"]
    at_change = vitals_regressions(store, config, *window, min_change=2997 / 1003)
    assert at_change["metric"].tolist() == ["CLS", "LCP", "LCP"]
    assert at_change["regression"].tolist() == [True, False, False]
    # Nothing to compare in the window after: an empty frame with its columns.
    later = vitals_regressions(store, config, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert later.empty and list(later.columns) == list(found.columns)


def test_vitals_regressions_need_100_views_without_settings(store, write_log) -> None:
    """Without a web_vitals section a route is compared from 100 page views a side: 100 views
    before and 100 after are compared; the artist page's 99 after are not."""
    before, now = T0 - timedelta(minutes=30), T0 + timedelta(minutes=10)
    lines = [beacon("LCP", 1000 + i, f"{path}-{when}-{i}", path, timestamp=moment.isoformat())
             for path, views in (("/show/1", 100), ("/artist/a", 99))
             for when, moment in (("old", before), ("new", now)) for i in range(views)]
    ingest_file(store, write_log("many.jsonl", lines))
    found = vitals_regressions(store, parse_config("timezone: UTC\n"), T0,
                               T0 + timedelta(hours=1))
    assert found["route"].tolist() == [SHOW] and found["page_views"].tolist() == [100]
