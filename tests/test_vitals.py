"""Web Vitals: beacons, PostHog, CrUX and Lighthouse in; p75, ratings, CWV, regressions out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import DEMO_END
from scipy.stats import binom

from mysetlist_slo import DemoManifest, IngestError, ingest_file, load_config
from mysetlist_slo.sources.vitals import form_factor
from mysetlist_slo.vitals.field import (
    crux_comparison,
    cwv_assessment,
    p75_interval,
    rating,
    vitals_regressions,
    vitals_samples,
    web_vitals_summary,
)

T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def beacon(name: str, value: float, id_: str, path: str = "/show/1", **extra: object) -> str:
    return json.dumps({"name": name, "value": value, "id": id_, "rating": "good",
                       "navigationType": "navigate", "url": f"https://mysetlist.example{path}",
                       "userAgent": DESKTOP, "timestamp": T0.isoformat(), **extra})


def test_p75_and_interval_against_order_statistics() -> None:
    """p75 is numpy's nearest-rank percentile; the interval is the binomial order statistics."""
    values = np.random.default_rng(4).lognormal(7.5, 0.5, 1_000)
    p75, low, high = p75_interval(values)
    assert p75 == np.percentile(values, 75, method="inverted_cdf")
    ordered = np.sort(values)
    lower = int(binom.ppf(0.025, len(values), 0.75))
    upper = int(binom.ppf(0.975, len(values), 0.75)) + 1
    assert (low, high) == (ordered[lower - 1], ordered[upper - 1])


def test_interval_covers_the_true_p75() -> None:
    """Over 400 seeded samples of 150 page views, about 95 % of intervals hold the true p75."""
    rng = np.random.default_rng(9)
    true_p75 = np.exp(7.5 + 0.5 * 0.6744897501960817)  # log-normal quantile at 0.75
    covered = [low <= true_p75 <= high for low, high in
               (p75_interval(rng.lognormal(7.5, 0.5, 150))[1:] for _ in range(400))]
    assert 0.92 <= np.mean(covered) <= 0.99


@pytest.mark.parametrize(("metric", "value", "expected"), [
    ("LCP", 2500, "good"), ("LCP", 2500.1, "needs-improvement"), ("LCP", 4000, "needs-improvement"),
    ("LCP", 4000.1, "poor"), ("CLS", 0.1, "good"), ("CLS", 0.25, "needs-improvement"),
    ("INP", 200, "good"), ("INP", 500.5, "poor"), ("TTFB", 800, "good"), ("FCP", 1800, "good"),
])
def test_thresholds_at_the_boundary(metric: str, value: float, expected: str) -> None:
    """A value equal to the first threshold is good; equal to the second, needs improvement."""
    assert rating(metric, value) == expected


def test_dedupe_keeps_the_last_report(store, write_log) -> None:
    """A CLS reported twice under one id counts once, with its last value."""
    lines = [beacon("CLS", 0.05, "a"), beacon("CLS", 0.3, "a"), beacon("CLS", 0.01, "b")]
    ingest_file(store, write_log("v.jsonl", lines))
    samples = vitals_samples(store, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert sorted(zip(samples["metric_id"], samples["value"], strict=True)) == [
        ("a", 0.3), ("b", 0.01)]


def test_unknown_metrics_counted_and_bad_values_rejected(store, write_log) -> None:
    """Retired FID records are counted and reported; impossible values are rejected."""
    path = write_log("v.jsonl", [beacon("LCP", 1200, "a"), beacon("FID", 12, "f1"),
                                 beacon("FID", 9, "f2"), beacon("LCP", -5, "b"),
                                 beacon("LCP", 20 * 60_000, "c")])
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    assert f"{path}:4: value: LCP of -5 is outside" in str(caught.value)
    result = ingest_file(store, path, max_bad_rows=2)
    assert (result.loaded, result.rejected) == (1, 2)
    assert "FID x2" in result.message
    ignored = store.execute("SELECT ignored FROM ingests").fetchall()
    assert ignored == [(2,)]


def test_posthog_events(store, write_log) -> None:
    """A PostHog $web_vitals event brings each metric it carries, with page and device."""
    event = {"event": "$web_vitals", "uuid": "e1", "timestamp": T0.isoformat(),
             "properties": {"$current_url": "https://mysetlist.example/artist/x?ref=1",
                            "$raw_user_agent": DESKTOP, "$web_vitals_LCP_value": 1900.5,
                            "$web_vitals_CLS_value": 0.02,
                            "$web_vitals_LCP_event": {"id": "v4-1", "rating": "good"}}}
    ingest_file(store, write_log("ph.jsonl", [json.dumps(event)]))
    rows = store.execute("SELECT metric, value, metric_id, route, form_factor, source "
                         "FROM vitals ORDER BY metric").fetchall()
    assert rows == [("CLS", 0.02, "e1-CLS", "/artist/[slug]", "desktop", "posthog"),
                    ("LCP", 1900.5, "v4-1", "/artist/[slug]", "desktop", "posthog")]


@pytest.mark.parametrize(("agent", "expected"), [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
     "phone"),
    ("Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "tablet"),
    ("Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 Chrome/131.0 Mobile "
     "Safari/537.36", "phone"),
    (DESKTOP, "desktop"),
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "unknown"),
    (None, "unknown"),
])
def test_form_factor_from_user_agent(agent: str | None, expected: str) -> None:
    """Phones, tablets and desktops as CrUX buckets them; bots and missing agents unknown."""
    assert form_factor(agent) == expected


def test_cwv_rule_with_inp_missing() -> None:
    """Passed needs good LCP and CLS; INP must be good only when it has data."""
    import pandas as pd

    def summary(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
        return pd.DataFrame([{"route": "/", "form_factor": "phone", "metric": m, "rating": r,
                              "status": s} for m, r, s in rows])

    ok = "ok"
    assert cwv_assessment(summary([("LCP", "good", ok), ("CLS", "good", ok)]))[
        "assessment"].item() == "passed"
    no_inp = summary([("LCP", "good", ok), ("CLS", "good", ok), ("INP", None, "not enough data")])
    assert cwv_assessment(no_inp)["assessment"].item() == "passed"
    assert cwv_assessment(summary([("LCP", "good", ok), ("CLS", "good", ok),
                                   ("INP", "poor", ok)]))["assessment"].item() == "failed"
    assert cwv_assessment(summary([("CLS", "good", ok)]))["assessment"].item() == "not enough data"


def test_summary_not_enough_data(store, write_log) -> None:
    """Below the minimum page views a cell has no p75, only its count and shares."""
    ingest_file(store, write_log("v.jsonl", [beacon("LCP", 1000 + i, f"i{i}") for i in range(20)]))
    (row,) = web_vitals_summary(store, load_config(), T0 - timedelta(hours=1),
                                T0 + timedelta(hours=1)).to_dict("records")
    assert row["status"] == "not enough data" and np.isnan(row["p75"])
    assert row["page_views"] == 20 and row["good"] == 1.0


def test_planted_regression_found_and_nothing_else(demo: DemoManifest, demo_con) -> None:
    """The demo's /show/[id] LCP regression is flagged; unchanged routes are not."""
    week = DEMO_END - timedelta(days=7)
    found = vitals_regressions(demo_con, load_config(), week, DEMO_END)
    flagged = found[found["regression"]]
    lcp = flagged[flagged["metric"] == "LCP"]
    assert set(lcp["route"]) == {"/show/[id]"}
    assert (lcp["change"] > 0.2).all()
    assert not found[(found["route"] == "/artist/[slug]") & (found["metric"] == "LCP")][
        "regression"].any()


def test_real_crux_files_read_back(store, real_data: Path) -> None:
    """The three real CrUX responses load, and their p75s read back exactly."""
    for name in ("crux_history_github_desktop_2023.json",
                 "crux_record_github_marketplace_desktop_4g.json",
                 "crux_record_github_origin_phone.json"):
        path = real_data / name
        result = ingest_file(store, path)
        record = json.loads(path.read_text())["record"]
        stored = store.execute("SELECT metric, p75 FROM crux WHERE ingest_id = ? "
                               "ORDER BY first_date", [result.ingest_id]).fetchall()
        for metric, key in (("LCP", "largest_contentful_paint"),
                            ("CLS", "cumulative_layout_shift")):
            got = [p for m, p in stored if m == metric]
            source = record["metrics"][key]
            expected = (source["percentilesTimeseries"]["p75s"] if "percentilesTimeseries"
                        in source else [source["percentiles"]["p75"]])
            assert got == [float(v) for v in expected if v is not None]
    assert store.execute("SELECT count(*) FROM crux").fetchall() == [(150 + 6 + 6,)]
    comparison = crux_comparison(store)
    assert len(comparison) == 162 and comparison["our_page_views"].eq(0).all()


def test_lighthouse_reports(demo: DemoManifest, demo_con) -> None:
    """Every demo Lighthouse report is loaded with its score and lab LCP."""
    reports = [f for f in demo.files if "lighthouse" in f]
    stored = demo_con.execute("SELECT count(*), min(performance), max(performance) "
                              "FROM lighthouse").fetchall()[0]
    assert stored[0] == len(reports) and 50 <= stored[1] <= stored[2] <= 99
    first = json.loads(Path(sorted(reports)[0]).read_text())
    lcp = demo_con.execute("SELECT lcp FROM lighthouse WHERE url = ? AND fetch_time = ?",
                           [first["finalDisplayedUrl"], datetime.fromisoformat(first["fetchTime"])]
                           ).fetchall()[0][0]
    assert lcp == pytest.approx(first["audits"]["largest-contentful-paint"]["numericValue"])


def lighthouse_report(page: str, when: datetime, lcp: float = 2300.0) -> dict[str, object]:
    """A minimal Lighthouse report (lhr) of one mobile run of ``page``."""
    return {
        "lighthouseVersion": "12.2.0", "fetchTime": when.isoformat(),
        "requestedUrl": f"https://mysetlist.example{page}",
        "finalDisplayedUrl": f"https://mysetlist.example{page}",
        "configSettings": {"formFactor": "mobile"},
        "categories": {"performance": {"score": 0.91}},
        "audits": {"largest-contentful-paint": {"numericValue": lcp},
                   "first-contentful-paint": {"numericValue": 1200.0},
                   "cumulative-layout-shift": {"numericValue": 0.02},
                   "total-blocking-time": {"numericValue": 150.0},
                   "interactive": {"numericValue": 3100.0},
                   "speed-index": {"numericValue": 2000.0}},
    }


def test_pagespeed_insights_response_is_accepted(store, tmp_path) -> None:
    """A PageSpeed Insights v5 response (field data first, the report under
    lighthouseResult past the first 4 KiB) is told apart as Lighthouse and loaded."""
    field = {"metrics": {f"METRIC_{i}": {"percentile": i, "distributions": [
        {"min": 0, "max": 1000, "proportion": 0.5}] * 20} for i in range(10)}}
    response = {"captchaResult": "CAPTCHA_NOT_NEEDED", "kind": "pagespeedonline#result",
                "id": "https://mysetlist.example/", "loadingExperience": field,
                "originLoadingExperience": field,
                "lighthouseResult": lighthouse_report("/", T0, lcp=2412.5)}
    path = tmp_path / "psi.json"
    path.write_text(json.dumps(response, indent=2))
    assert path.read_text()[:4096].count("lighthouseResult") == 0  # detected by kind text
    assert ingest_file(store, path).kind == "lighthouse"
    assert store.execute("SELECT url, performance, lcp FROM lighthouse").fetchall() == [
        ("https://mysetlist.example/", 91.0, 2412.5)]


def test_last_report_counts_wherever_it_falls(store, write_log) -> None:
    """A CLS id first reported at 12:50 (0.05) and last at 13:10 (0.3) is one page view of
    the window holding 12:50, with 0.3; the next hour holds nothing of it."""
    at = T0 + timedelta(minutes=50)
    lines = [beacon("CLS", 0.05, "a", timestamp=at.isoformat()),
             beacon("CLS", 0.3, "a", timestamp=(at + timedelta(minutes=20)).isoformat())]
    ingest_file(store, write_log("v.jsonl", lines))
    first = vitals_samples(store, T0, T0 + timedelta(hours=1))
    assert first[["metric_id", "value"]].values.tolist() == [["a", 0.3]]
    assert first["ts"].tolist() == [at]
    assert vitals_samples(store, T0 + timedelta(hours=1), T0 + timedelta(hours=2)).empty


def test_vitals_weeks_cut_in_the_configured_zone(store, write_log) -> None:
    """Sunday 22 Nov 2026 20:00 UTC is Monday 05:00 in Tokyo: with timezone Asia/Tokyo the
    page view is in ISO week 2026-W48, not W47."""
    sunday = datetime(2026, 11, 22, 20, tzinfo=UTC)
    ingest_file(store, write_log("v.jsonl", [beacon("LCP", 1800, "a",
                                                    timestamp=sunday.isoformat())]))
    tokyo = load_config().model_copy(update={"timezone": "Asia/Tokyo"})
    summary = web_vitals_summary(store, tokyo, sunday - timedelta(days=1),
                                 sunday + timedelta(days=1), period="week")
    assert summary["week"].tolist() == ["2026-W48"]
    utc = web_vitals_summary(store, load_config(), sunday - timedelta(days=1),
                             sunday + timedelta(days=1), period="week")
    assert utc["week"].tolist() == ["2026-W47"]


def test_route_admitted_later_applies_to_earlier_page_rows(store, tmp_path, write_log) -> None:
    """Three Lighthouse runs and a beacon of /about land under (other) (4, under
    min_requests 5); four more beacons admit it: the earlier runs and beacon move to /about,
    and (other) keeps only a page never admitted."""
    for day in range(3):
        path = tmp_path / f"lh{day}.json"
        path.write_text(json.dumps(lighthouse_report("/about", T0 + timedelta(days=day))))
        ingest_file(store, path)
    ingest_file(store, write_log("once.jsonl", [beacon("LCP", 900, "x", path="/about"),
                                                beacon("LCP", 900, "y", path="/rare")]))
    assert store.execute("SELECT DISTINCT route FROM lighthouse").fetchall() == [("(other)",)]
    ingest_file(store, write_log("more.jsonl", [beacon("LCP", 1000, f"b{i}", path="/about")
                                                for i in range(4)]))
    assert store.execute("SELECT route, count(*) FROM lighthouse GROUP BY route"
                         ).fetchall() == [("/about", 3)]
    assert store.execute("SELECT route, count(*) FROM vitals GROUP BY route ORDER BY route"
                         ).fetchall() == [("(other)", 1), ("/about", 5)]
    assert store.execute("SELECT url FROM vitals WHERE route = '(other)'").fetchall() == [
        ("https://mysetlist.example/rare",)]


def test_crux_compared_like_with_like(store, real_data: Path, write_log) -> None:
    """The real 4G record of github.com/marketplace (desktop) is compared with our desktop
    page views of that URL's route only, and flagged as not like for like (beacons carry no
    connection type); the origin record (phones) with every page's phone views."""
    for name in ("crux_record_github_marketplace_desktop_4g.json",
                 "crux_record_github_origin_phone.json"):
        ingest_file(store, real_data / name)
    assert store.execute("SELECT DISTINCT key_type, connection_type FROM crux ORDER BY 1"
                         ).fetchall() == [("origin", None), ("url", "4G")]
    when = datetime(2023, 10, 1, 12, tzinfo=UTC).isoformat()
    phone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"
    lines = [beacon("LCP", 1000 + i, f"m{i}", path="/marketplace", timestamp=when)
             for i in range(6)]
    lines += [beacon("LCP", 3000, f"h{i}", path="/", timestamp=when) for i in range(6)]
    lines += [beacon("LCP", 2000, f"p{i}", path=f"/p{i % 2}", timestamp=when, userAgent=phone)
              for i in range(6)]
    ingest_file(store, write_log("v.jsonl", lines))
    frame = crux_comparison(store, minimum=1, config=load_config())
    assert list(frame.columns) == [
        "key_type", "key", "route", "form_factor", "connection_type", "like_for_like", "metric",
        "first_date", "last_date", "crux_p75", "our_page_views", "our_p75", "our_p75_low",
        "our_p75_high", "within_our_interval"]
    comparison = frame.set_index(["key_type", "metric"])
    url = comparison.loc[("url", "LCP")]
    assert url["route"] == "/marketplace" and url["our_page_views"] == 6
    assert url["our_p75"] == 1004 and not url["like_for_like"]
    assert url["connection_type"] == "4G"
    origin = comparison.loc[("origin", "LCP")]
    assert origin["our_page_views"] == 6 and origin["our_p75"] == 2000
    assert origin["like_for_like"]
