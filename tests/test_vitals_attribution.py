"""Web Vitals attribution: the attribution build's fields in, elements and phases out."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_END

from mysetlist_slo import IngestError, ingest_file, load_config
from mysetlist_slo.config import Config
from mysetlist_slo.demo import HERO_IMAGE, SEARCH_BOX
from mysetlist_slo.sources.vitals import MAX_SELECTOR, MAX_URL
from mysetlist_slo.vitals.attribution import vitals_attribution, vitals_attribution_findings

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vitals" / "beacons-attribution.jsonl"
T0 = datetime(2026, 11, 20, 12, tzinfo=UTC)
DAY = (T0 - timedelta(hours=12), T0 + timedelta(hours=12))
STORED = ("metric, metric_id, route, form_factor, attribution_target, attribution_url, "
          "interaction_type, load_state, largest_shift_time, largest_shift_value, "
          "time_to_first_byte, resource_load_delay, resource_load_duration, "
          "element_render_delay, input_delay, processing_duration, presentation_delay, "
          "waiting_duration, cache_duration, dns_duration, connection_duration, "
          "request_duration, source")


def beacon(name: str, value: float, id_: str, path: str = "/show/1",
           attribution: object = None, ts: datetime = T0, form_factor: str = "desktop") -> str:
    """Return one web-vitals beacon line, with ``attribution`` when given."""
    record: dict[str, object] = {
        "name": name, "value": value, "id": id_, "navigationType": "navigate",
        "url": f"https://mysetlist.example{path}", "formFactor": form_factor,
        "timestamp": ts.isoformat()}
    if attribution is not None:
        record["attribution"] = attribution
    return json.dumps(record)


def with_minimum(minimum: int) -> Config:
    """Return the shipped configuration with ``web_vitals.min_page_views`` set."""
    config = load_config()
    assert config.web_vitals is not None
    return config.model_copy(update={"web_vitals": config.web_vitals.model_copy(
        update={"min_page_views": minimum})})


def test_documented_shapes_stored_field_by_field(store) -> None:
    """Every attribution field of the example (web-vitals v3 to v5 names and a PostHog
    event) is stored in its column; the DOM entries the build attaches are not."""
    result = ingest_file(store, EXAMPLE)
    assert (result.loaded, result.rejected) == (7, 0)
    rows = store.execute(f"SELECT {STORED} FROM vitals ORDER BY line").fetchall()
    n = None
    search = "(other)"  # /search is no configured pattern: a route once seen often enough
    assert rows == [
        ("LCP", "v5-1732104000000-1001", "/artist/[slug]", "phone",
         "main > section.artist-hero > img",
         "https://mysetlist.example/_next/image?url=%2Fartists%2Fradiohead-hero.jpg&w=1920&q=75",
         n, n, n, n, 520.4, 2100.0, 730.3, 299.5, n, n, n, n, n, n, n, n, "web-vitals"),
        ("LCP", "v4-1732104000000-1002", "/show/[id]", "desktop", "main > h1.show-title", n,
         n, n, n, n, 400.0, 0.0, 0.0, 1500.0, n, n, n, n, n, n, n, n, "web-vitals"),
        ("LCP", "v3-1732104000000-1003", "/venue/[slug]", "desktop", "main > img.venue-photo",
         "https://mysetlist.example/venues/red-rocks.jpg", n, n, n, n, 300.0, 200.0, 1900.0,
         400.0, n, n, n, n, n, n, n, n, "web-vitals"),
        ("INP", "v5-1732104000000-1004", search, "phone", "header form.search > input#q", n,
         "keyboard", "complete", n, n, n, n, n, n, 52.1, 480.3, 107.6, n, n, n, n, n,
         "web-vitals"),
        ("CLS", "v5-1732104000000-1005", "/show/[id]", "desktop", "div.setlist-embed", n, n,
         "dom-content-loaded", 1830.2, 0.12, n, n, n, n, n, n, n, n, n, n, n, n,
         "web-vitals"),
        ("TTFB", "v5-1732104000000-1006", "/artist/[slug]", "phone", n, n, n, n, n, n, n, n,
         n, n, n, n, n, 12.0, 3.4, 25.0, 60.0, 420.0, "web-vitals"),
        ("INP", "v5-1732104000000-1007", search, "phone", "header form.search > input#q", n,
         "keyboard", "complete", n, n, n, n, n, n, 40.0, 410.0, 110.0, n, n, n, n, n,
         "posthog"),
    ]


def test_beacons_without_attribution_store_nulls(store, write_log) -> None:
    """A plain beacon loads as before, every attribution column NULL, and counts as not
    attributed: the analysis leaves it out."""
    ingest_file(store, write_log("v.jsonl", [beacon("LCP", 3000, "a")]))
    row = store.execute(f"SELECT {STORED} FROM vitals").fetchall()[0]
    assert row[:4] == ("LCP", "a", "/show/[id]", "desktop")
    assert set(row[4:-1]) == {None}
    assert vitals_attribution(store, load_config(), *DAY, "LCP").empty


@pytest.mark.parametrize(("attribution", "field", "problem"), [
    ("main > img", "attribution", "not an object"),
    ({"target": 42}, "attribution.target", "not text"),
    ({"element": ["img"]}, "attribution.element", "not text"),
    ({"target": "img", "resourceLoadDelay": -1}, "attribution.resourceLoadDelay", "outside"),
    ({"target": "img", "resourceLoadDelay": "12"}, "attribution.resourceLoadDelay",
     "not a number"),
    ({"target": "img", "elementRenderDelay": 20 * 60_000}, "attribution.elementRenderDelay",
     "outside"),
])
def test_malformed_attribution_is_a_located_reject(store, write_log, attribution: object,
                                                   field: str, problem: str) -> None:
    """A malformed attribution field refuses the record, naming file, line and field."""
    path = write_log("v.jsonl", [beacon("LCP", 1000, "ok"),
                                 beacon("LCP", 3000, "bad", attribution=attribution)])
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    assert f"{path}:2: {field}: " in str(caught.value)
    assert problem in str(caught.value)
    assert store.execute("SELECT count(*) FROM vitals").fetchall() == [(0,)]


def test_overlong_selector_and_url_are_cut(store, write_log) -> None:
    """A selector and an LCP URL from the page (a data: URL of 50 kB) are stored cut to
    their bounds, marked with an ellipsis; the record is kept."""
    selector, url = "div > " * 1_000, "data:image/png;base64," + "A" * 50_000
    ingest_file(store, write_log("v.jsonl", [beacon("LCP", 3000, "a", attribution={
        "target": selector, "url": url, "resourceLoadDelay": 10})]))
    target, stored_url = store.execute(
        "SELECT attribution_target, attribution_url FROM vitals").fetchall()[0]
    assert (len(target), len(stored_url)) == (MAX_SELECTOR, MAX_URL)
    assert target == selector[:MAX_SELECTOR - 1] + "…"
    assert stored_url == url[:MAX_URL - 1] + "…"


def test_the_last_report_carries_the_attribution(store, write_log) -> None:
    """INP reported twice under one id: the later report's value and target count."""
    ingest_file(store, write_log("v.jsonl", [
        beacon("INP", 120, "a", "/search", {"interactionTarget": "button.first"}),
        beacon("INP", 640, "a", "/search", {"interactionTarget": "input#q"},
               ts=T0 + timedelta(seconds=30))]))
    found = vitals_attribution(store, with_minimum(1), *DAY, "INP")
    assert found[["target", "page_views", "p75"]].values.tolist() == [["input#q", 1, 640.0]]


# --- oracle ----------------------------------------------------------------------------------

PAGES = {"/artist/a": "/artist/[slug]", "/artist/b": "/artist/[slug]", "/show/7": "/show/[id]"}
TARGETS = ["img.hero", "h1.title", "p.lead"]
MINIMUM = 60  # views for a p75: the smallest cells (/show/7, desktop, p.lead) fall short
LCP_PHASES = ["timeToFirstByte", "resourceLoadDelay", "resourceLoadDuration",
              "elementRenderDelay"]


def _raw_lcp_records(rng: np.random.Generator, n: int) -> list[dict[str, object]]:
    """Return LCP beacons as plain dicts: random pages, devices, elements and phases that
    add up to the value; some ids reported twice (an earlier, different report first)."""
    records = []
    for i in range(n):
        phases = rng.lognormal([6.0, 6.5, 6.2, 5.5], 0.6)
        page = str(rng.choice(list(PAGES)))
        record = {
            "name": "LCP", "value": round(float(phases.sum()), 1), "id": f"id-{i}",
            "url": f"https://mysetlist.example{page}",
            "formFactor": str(rng.choice(["phone", "desktop"], p=[0.6, 0.4])),
            "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
            "attribution": {"target": str(rng.choice(TARGETS, p=[0.5, 0.3, 0.2])),
                            **dict(zip(LCP_PHASES, (round(float(p), 1) for p in phases),
                                       strict=True))}}
        if rng.random() < 0.1:  # an earlier report of the same id, superseded
            early = json.loads(json.dumps(record))
            early["value"] = 50.0
            early["attribution"]["target"] = "div.placeholder"
            records.append(early)
        records.append(record)
    return records


def test_lcp_attribution_against_a_pandas_oracle(store, tmp_path: Path) -> None:
    """Page views, views affected and poor, p75 and each phase's p75 (nearest rank), the
    dominant phase, shares and the ranking equal a plain pandas computation over the raw
    records (last report per id)."""
    records = _raw_lcp_records(np.random.default_rng(18), 1_500)
    path = tmp_path / "lcp.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    ingest_file(store, path)
    found = vitals_attribution(store, with_minimum(MINIMUM), *DAY, "LCP")

    raw = pd.DataFrame([{
        "id": r["id"], "route": PAGES[str(r["url"]).removeprefix("https://mysetlist.example")],
        "form_factor": r["formFactor"], "value": r["value"],
        "target": r["attribution"]["target"],  # type: ignore[index]
        **{p: r["attribution"][p] for p in LCP_PHASES}}  # type: ignore[index]
        for r in records]).drop_duplicates("id", keep="last")

    def p75(values: pd.Series) -> float:
        return float(np.percentile(values.to_numpy(), 75, method="inverted_cdf"))

    expected = []
    for (route, factor, target), group in raw.groupby(["route", "form_factor", "target"]):
        cell = raw[(raw["route"] == route) & (raw["form_factor"] == factor)]
        phase_p75 = {p: p75(group[p]) if len(group) >= MINIMUM else np.nan for p in LCP_PHASES}
        expected.append({
            "route": route, "form_factor": factor, "target": target,
            "page_views": len(group), "share": len(group) / len(cell),
            "page_views_affected": int((group["value"] > 2500).sum()),
            "poor": int((group["value"] > 4000).sum()),
            "p75": p75(group["value"]) if len(group) >= MINIMUM else np.nan,
            "time_to_first_byte": phase_p75["timeToFirstByte"],
            "resource_load_delay": phase_p75["resourceLoadDelay"],
            "resource_load_duration": phase_p75["resourceLoadDuration"],
            "element_render_delay": phase_p75["elementRenderDelay"],
            "dominant_phase": None if len(group) < MINIMUM else
            ["time_to_first_byte", "resource_load_delay", "resource_load_duration",
             "element_render_delay"][int(np.argmax(list(phase_p75.values())))],
        })
    oracle = pd.DataFrame(expected).sort_values(
        ["page_views_affected", "page_views", "route", "form_factor", "target"],
        ascending=[False, False, True, True, True], ignore_index=True)
    assert "div.placeholder" not in set(found["target"])
    assert (found["status"] == "not enough data").any()  # some cells are under the minimum
    pd.testing.assert_frame_equal(found[oracle.columns], oracle, check_dtype=False)


def test_inp_and_cls_hand_worked(store, write_log) -> None:
    """A hand-worked case: four INP views on the search box (three poor) and one elsewhere;
    CLS sources ranked by views over 0.1, detail the median shift time."""
    search = {"interactionTarget": "input#q", "interactionType": "keyboard",
              "loadState": "complete"}
    lines = [beacon("INP", v, f"i{k}", "/search", {**search, "inputDelay": 10,
                                                   "processingDuration": v - 60,
                                                   "presentationDelay": 50})
             for k, v in enumerate([150, 600, 700, 800])]
    lines.append(beacon("INP", 300, "j", "/search", {"interactionTarget": "a.result",
                                                     "interactionType": "pointer",
                                                     "inputDelay": 200,
                                                     "processingDuration": 50,
                                                     "presentationDelay": 50}))
    lines += [beacon("CLS", v, f"c{k}", "/show/1", {"largestShiftTarget": t,
                                                    "largestShiftTime": s})
              for k, (v, t, s) in enumerate([(0.3, "div.ad", 1000), (0.2, "div.ad", 3000),
                                             (0.05, "img.poster", 500),
                                             (0.15, "img.poster", 800),
                                             (0.0, None, None)])]
    lines[-1] = beacon("CLS", 0.0, "c4", "/show/1", {"loadState": "complete"})  # no shift
    ingest_file(store, write_log("v.jsonl", lines))
    inp = vitals_attribution(store, with_minimum(1), *DAY, "INP")
    # Nearest rank: p75 of 4 values is the 3rd smallest; of each phase likewise.
    assert inp[["target", "detail", "page_views", "page_views_affected", "poor", "p75",
                "input_delay", "processing_duration", "presentation_delay",
                "dominant_phase", "share"]].values.tolist() == [
        ["input#q", "keyboard", 4, 3, 3, 700.0, 10.0, 640.0, 50.0, "processing_duration",
         0.8],
        ["a.result", "pointer", 1, 1, 0, 300.0, 200.0, 50.0, 50.0, "input_delay", 0.2]]
    cls = vitals_attribution(store, with_minimum(1), *DAY, "CLS")
    assert cls[["target", "detail", "page_views", "page_views_affected", "poor",
                "p75"]].head(2).values.tolist() == [
        ["div.ad", 2000.0, 2, 2, 1, 0.3], ["img.poster", 650.0, 2, 1, 0, 0.15]]
    last = cls.iloc[2]
    assert (last["target"], last["page_views"], last["page_views_affected"]) == (
        "(no element)", 1, 0)
    assert pd.isna(last["detail"])


def test_a_metric_without_attribution_is_refused(store) -> None:
    """FCP has no attribution phases here: asking for it is a ValueError, not an empty table."""
    with pytest.raises(ValueError, match="no attribution for 'FCP'"):
        vitals_attribution(store, load_config(), *DAY, "FCP")


# --- demo ------------------------------------------------------------------------------------

def test_demo_hero_image_and_search_box_found(demo_con) -> None:
    """On the demo's last week the report finds the planted causes: the hero image is the
    top LCP element of /artist/[slug] (every device with enough views) with resource load
    delay its dominant phase, and the search box tops the INP targets behind poor INP."""
    start = DEMO_END - timedelta(days=7)
    config = load_config()
    lcp = vitals_attribution(demo_con, config, start, DEMO_END, "LCP")
    artist = lcp[(lcp["route"] == "/artist/[slug]") & (lcp["status"] == "ok")]
    assert len(artist) >= 2
    for _, rows in artist.groupby("form_factor"):
        top = rows.iloc[0]
        assert (top["target"], top["dominant_phase"]) == (HERO_IMAGE, "resource_load_delay")
    others = lcp[(lcp["route"] != "/artist/[slug]") & (lcp["status"] == "ok")]
    assert not (others["dominant_phase"] == "resource_load_delay").any()

    inp = vitals_attribution(demo_con, config, start, DEMO_END, "INP")
    by_poor = inp.sort_values("poor", ascending=False, kind="stable")
    assert (by_poor.iloc[0]["route"], by_poor.iloc[0]["target"]) == ("/search", SEARCH_BOX)
    assert by_poor.iloc[0]["poor"] > 2 * by_poor.iloc[1]["poor"]

    section = vitals_attribution_findings(demo_con, config, start, DEMO_END)
    assert any(f.target == HERO_IMAGE and f.dominant_phase == "resource_load_delay"
               for f in section.findings["LCP"])
    assert section.findings["INP"][0].target == SEARCH_BOX
    assert section.attributed["LCP"] == section.page_views["LCP"] > 0


def test_vitals_report_shows_the_planted_causes(demo_store_path: Path, tmp_path: Path) -> None:
    """The Web Vitals report of the demo's last week runs, its summary.json (valid) carries
    the attribution with the hero image and the search box, its digest names both, and its
    HTML shows them in the section's tables."""
    from mysetlist_slo.report.runner import run_report
    from mysetlist_slo.report.summaries import validate

    outputs = run_report("vitals", week="2026-W47", db=demo_store_path, out=tmp_path,
                         progress=False)
    document = json.loads(outputs.summary_json.read_text())
    validate(document)
    findings = document["attribution"]["findings"]
    assert any(f["metric"] == "LCP" and f["target"] == HERO_IMAGE
               and f["dominant_phase"] == "resource_load_delay" for f in findings)
    top_inp = next(f for f in findings if f["metric"] == "INP")
    assert (top_inp["target"], top_inp["dominant_phase"]) == (SEARCH_BOX, "processing_duration")
    digest = outputs.summary_md.read_text()
    assert "INP interaction target header form.search \\> input\\#q" not in digest  # no '#' escape
    assert "INP interaction target header form.search \\> input#q on /search" in digest
    page = outputs.html.read_text()
    assert "What makes them slow: attribution" in page
    assert "main &gt; section.artist-hero &gt; img" in page


HOSTILE = '<img src=x onerror=alert(1)>*[click](http://evil.example)*'


def test_selectors_from_beacons_are_escaped_everywhere(store, write_log) -> None:
    """A selector and a route that carry markup reach the summary as data, the Markdown
    digest backslash-escaped and the HTML table entity-escaped: nothing executes or links."""
    from mysetlist_slo.report.notebook import attribution_table
    from mysetlist_slo.report.summaries import attribution_lines, validate, vitals_document

    ingest_file(store, write_log("v.jsonl", [
        beacon("INP", 700, f"i{k}", "/show/1", {"interactionTarget": HOSTILE,
                                                "interactionType": "pointer",
                                                "processingDuration": 600})
        for k in range(3)]))
    config = with_minimum(1)
    section = vitals_attribution_findings(store, config, *DAY)
    assert section.findings["INP"][0].target == HOSTILE
    document = vitals_document(pd.DataFrame(columns=["metric"]), pd.DataFrame(),
                               pd.DataFrame(), config, "2026-W47", *DAY, attribution=section)
    validate(document)
    (line,) = [x for x in attribution_lines(document["attribution"]) if "INP" in x]
    assert not re.search(r"(?<!\\)[<\[\]*]", line)  # every markup character escaped
    assert "\\<img src=x onerror=alert(1)\\>\\*\\[click\\](http://evil.example)\\*" in line
    html = attribution_table(vitals_attribution(store, config, *DAY, "INP"), "INP")._repr_html_()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_no_attribution_is_one_line(store, write_log) -> None:
    """Without attributed beacons the section says so in one line, in the digest too."""
    from mysetlist_slo.report.summaries import attribution_lines

    ingest_file(store, write_log("v.jsonl", [beacon("LCP", 3000, "a")]))
    section = vitals_attribution_findings(store, load_config(), *DAY)
    assert not section.has_data
    assert section.lines() == ["No beacon of the period carries the web-vitals attribution "
                               "build's fields."]
    assert len(attribution_lines(section.to_dict())) == 1


def test_weekly_digest_names_the_causes(demo_con) -> None:
    """The weekly summary.json of the demo's last week carries the attribution (valid
    against the schema) and its digest has one line naming the LCP element with its
    dominant phase and the search box behind poor INP."""
    from mysetlist_slo.report.summaries import summary_document, summary_markdown, validate
    from mysetlist_slo.report.weekly import weekly_summary

    config = load_config()
    document = summary_document("weekly", demo_con, config,
                                weekly_summary(demo_con, config, "2026-W47"))
    validate(document)
    assert document["vitals_attribution"]["attributed_page_views"]["INP"] > 0
    (line,) = [x for x in summary_markdown(document).splitlines() if "Web Vitals causes" in x]
    assert "poor INP header form.search \\> input#q on /search" in line
    assert ", mostly processing duration" in line
    assert line.count("mostly") == 2


def test_an_older_store_migrates_with_its_beacons_unattributed(db_path: Path,
                                                               write_log) -> None:
    """A store from before the attribution columns opens migrated: its beacons keep their
    values with no attribution, and attributed beacons load beside them."""
    from mysetlist_slo import open_store
    from mysetlist_slo.store.database import MIGRATIONS

    ours = next(i for i, step in enumerate(MIGRATIONS)
                if any("attribution_target" in statement for statement in step))
    con = open_store(db_path, migrations=MIGRATIONS[:ours])
    con.execute("INSERT INTO vitals (ingest_id, line, ts, metric, value, metric_id, url, route, "
                "form_factor, source) VALUES (nextval('ingest_id_seq'), 1, ?, 'LCP', 5000, 'old', "
                "'https://mysetlist.example/show/1', '/show/[id]', 'desktop', 'web-vitals')",
                [T0])
    con.close()
    con = open_store(db_path)
    try:
        ingest_file(con, write_log("v.jsonl", [beacon("LCP", 3000, "new", attribution={
            "target": "h1", "elementRenderDelay": 2500})]))
        found = vitals_attribution(con, with_minimum(1), *DAY, "LCP")
        assert found[["target", "page_views", "p75"]].values.tolist() == [["h1", 1, 3000.0]]
        assert con.execute("SELECT value, attribution_target FROM vitals WHERE metric_id = "
                           "'old'").fetchall() == [(5000.0, None)]
    finally:
        con.close()
