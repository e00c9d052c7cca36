"""The shared formatter, bounded tables, Markdown escaping, SLO statuses and summary schema."""

from __future__ import annotations

import copy
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema
import markdown_it
import pandas as pd
import pytest

from mysetlist_slo.errors import StoreNotFoundError
from mysetlist_slo.report import notebook as nb
from mysetlist_slo.report.formatting import MISSING, fmt, markdown_text, strip_controls, table
from mysetlist_slo.report.overview import (
    change,
    headline_count,
    overall_status,
    overview_headline,
    slo_status,
)
from mysetlist_slo.report.summaries import SummaryError, schema, summary_markdown, validate

EVIL_ROUTE = "/[click](javascript:alert(1))|<img src=x onerror=alert(2)>"


@pytest.mark.parametrize(("value", "unit", "text"), [
    (99.96763, "pct3", "99.968 %"),
    (67.6345, "pct", "67.6 %"),
    (0.6763, "share", "67.6 %"),
    (-49.2553, "pct", "−49.3 %"),
    (99.45, "objective", "99.45 %"),  # a target shows every digit: not 99.5 %
    (99.0, "objective", "99 %"),
    (794057, "count", "794,057"),
    (31013.0, "count", "31,013"),
    (113.0, "ms", "113 ms"),
    (12_345.0, "ms", "12.35 s"),
    (426.0, "duration", "7 min 6 s"),
    (pd.Timedelta(minutes=14), "duration", "14 min"),
    (3.3e-91, "pvalue", "< 0.001"),
    (0.0123, "pvalue", "0.012"),
    (0.4361, "burn", "0.44×"),
    (True, "bool", "yes"),
    (None, "pct", MISSING),
    (float("nan"), "count", MISSING),
    (pd.NaT, "time", MISSING),
    (datetime(2026, 11, 18, 19, 23, 2, tzinfo=UTC), "time", "2026-11-18 19:23 UTC"),
    (0.0412, "number", "0.0412"),
])
def test_every_unit_reads_as_written(value: object, unit: str, text: str) -> None:
    """Each unit prints with its symbol and the precision chosen for it (hand-worked)."""
    assert fmt(value, unit) == text


def test_table_is_bounded_escaped_and_says_how_many_more() -> None:
    """top=10 of 90 rows shows 10 rows, says "and 80 more", and escapes routes and headers."""
    frame = pd.DataFrame({"route": [f"/r{i}<b>" for i in range(90)],
                          "requests": range(90, 0, -1)})
    html = table(frame, {"route": "text", "requests": "count"}, top=10, more="routes").to_html()
    assert len(re.findall(r"<tr>", html.split("<tbody>")[1])) == 10
    assert "and 80 more routes" in html
    assert "<b>" not in html and "/r0&lt;b&gt;" in html


def test_markdown_escaping_leaves_nothing_active() -> None:
    """An attacker's route renders as its own literal text: no link, image, HTML or table."""
    digest = f"- {markdown_text(EVIL_ROUTE)}\n"
    rendered = markdown_it.MarkdownIt("commonmark").enable("table").render(digest)
    assert "<a " not in rendered and "<img" not in rendered and "<table" not in rendered
    assert "javascript:alert(1)" in rendered  # shown as text, not dropped
    text = re.sub(r"<[^>]+>", "", rendered).strip()
    assert text.replace("&lt;", "<").replace("&gt;", ">") == EVIL_ROUTE


@pytest.mark.parametrize(("text", "expected"), [
    ("92.3 % hits", "92.3 % hits"),   # a decimal point is no list marker: left as it is
    ("1. first", "1\\. first"),       # an ordered-list marker at the start: escaped
    ("7) x", "7\\) x"),
    ("10.", "10\\."),                 # a marker ending the line
    ("1234567890. x", "1234567890. x"),  # ten digits are no marker (CommonMark: 1-9)
])
def test_markdown_escapes_list_markers_only(text: str, expected: str) -> None:
    """Digits and a dot are escaped only where CommonMark would start a list with them, and
    the rendered text is the input either way."""
    assert markdown_text(text) == expected
    rendered = markdown_it.MarkdownIt("commonmark").render(markdown_text(text))
    assert rendered == f"<p>{text}</p>\n"


def test_control_characters_are_stripped() -> None:
    """C0 (but tab and newline), ESC, C1 and bidi overrides are removed, other text kept."""
    text = "a\x00b\x1b[31mc\x85d\u202ee\u2066f\tg\nh"
    assert strip_controls(text) == "ab[31mcdef\tg\nh"
    assert markdown_text("x\u202ey\x07") == "xy"


@pytest.mark.parametrize(("status", "remaining", "burn", "expected"), [
    ("ok", 0.68, 0.15, "ok"),                   # comfortably within budget
    ("ok", 0.20, 0.15, "at_risk"),              # under a quarter of the budget left
    ("ok", 0.68, 1.5, "at_risk"),               # spending faster than the budget allows
    ("breach", -0.49, 1.49, "breach"),          # budget_exhausted
    ("no data", None, None, "no_data"),         # no_events
    ("not enough events", None, None, "no_data"),  # not_enough_events: never counted as good
    ("source not loaded", None, None, "no_data"),
])
def test_slo_status_scenarios(status: str, remaining: float | None, burn: float | None,
                              expected: str) -> None:
    """Each scenario maps to one machine status; no data never reads as ok."""
    assert slo_status(status, remaining, burn) == expected


def test_headline_count_and_overall_status() -> None:
    """The count names breaches first, then at risk and without data; any no-data SLO keeps
    the overall status from ok."""
    statuses = ["ok", "ok", "breach", "no_data", "ok"]
    assert headline_count(statuses) == "1 of 5 SLOs breached, 1 without data"
    assert overall_status(statuses) == "breach"
    assert overall_status(["ok", "no_data"]) == "no_data"
    assert headline_count(["ok", "at_risk"]) == "1 of 2 SLOs ok, 1 at risk"
    assert overall_status(["ok"]) == "ok" and overall_status([]) == "no_data"


def test_week_over_week_change_text() -> None:
    """Percentages change in percentage points, counts in percent, missing stays missing."""
    assert change(99.912, 99.987, "pp") == "−0.075 pp"
    assert change(193_164, 186_875, "relative") == "+3.4 %"
    assert change(113.0, 113.0, "ms") == "±0 ms"
    assert change(None, 5, "count") is None


def _weekly_document() -> dict[str, object]:
    """A minimal valid weekly summary, written by hand."""
    return {
        "schema_version": 2, "report": "weekly", "title": "T",
        "period": {"label": "2026-W47", "start": "2026-11-16T00:00:00Z",
                   "end": "2026-11-23T00:00:00Z", "timezone": "UTC"},
        "generated_at": "2026-11-26T06:52:52Z", "status": "no_data",
        "headline": "0 of 1 SLO ok, 1 without data",
        "traffic": {"requests": 0, "errors_5xx": 0, "errors_4xx": 0, "availability_pct": None,
                    "error_rate_pct": None, "p95_api_latency_ms": None, "active_users": None,
                    "minutes_with_data": 0, "period_minutes": 10080},
        "previous_period": {"label": "2026-W46", "requests": 0, "availability_pct": None,
                            "error_rate_pct": None, "p95_api_latency_ms": None,
                            "active_users": None, "web_vitals_passing": None,
                            "web_vitals_assessed": None},
        "slos": [{"name": EVIL_ROUTE, "sli": "availability", "status": "no_data",
                  "objective_pct": 99.9, "window": "30d", "sli_period_pct": None,
                  "sli_window_pct": None, "events_period": 0, "events_window": 0,
                  "budget_spent_period_pct": None, "budget_remaining_pct": None,
                  "burn_rate_1h": None, "burn_rate_24h": None, "data_coverage_pct": 0.0,
                  "note": "no events in the window"}],
        "outages": [], "incidents": [], "alerts": [], "ingest_rejects": 0,
        "web_vitals": {"passing": None, "assessed": None, "failing": [], "failing_total": 0},
        "vitals_regressions": [], "vitals_regressions_total": 0,
        "scalability_recovery": {"status": "at_risk", "parts": [
            {"part": "Backups (RPO)", "items": [
                {"topic": EVIL_ROUTE, "status": "at_risk", "finding": "late",
                 "text": "last good backup 31 h ago"}]}]},
        "verdict": "No data.",
    }


def test_schema_accepts_a_valid_summary_and_refuses_drift() -> None:
    """The shipped schema is a valid 2020-12 schema; it accepts the hand-written summary and
    refuses a unitless name, a machine status outside the four, and a non-UTC timestamp."""
    jsonschema.Draft202012Validator.check_schema(schema())
    document = _weekly_document()
    validate(document)
    for path, value in ((("traffic", "availability"), 99.9), (("status",), "breached"),
                        (("generated_at",), "2026-11-26T06:52:52+01:00")):
        broken = copy.deepcopy(document)
        target = broken
        for key in path[:-1]:
            target = target[key]  # type: ignore[index]
        target[path[-1]] = value  # type: ignore[index]
        with pytest.raises(SummaryError):
            validate(broken)


def test_markdown_digest_of_a_no_data_week_is_inert() -> None:
    """An SLO named like an attack is escaped in the digest, and the status says no data."""
    text = summary_markdown(_weekly_document())
    assert text.splitlines()[2] == "**NO DATA: 0 of 1 SLO ok, 1 without data**"
    assert "- Backups (RPO): " in text and text.rstrip().endswith(": late")
    # The budget left is of the windows ending at the week's end, and the digest says so.
    assert "SLOs over their windows ending 2026-11-23 00:00 UTC (the period's end):" in text
    rendered = markdown_it.MarkdownIt("commonmark").render(text)
    assert "<a " not in rendered and "<img" not in rendered


def test_store_lookup_rule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parameter first, then $MYSETLIST_SLO_DB, then data/metrics.duckdb in the project root
    found from the working directory (JupyterLab runs kernels in notebooks/)."""
    root = tmp_path / "project"
    (root / "notebooks").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    store = root / "data" / "metrics.duckdb"
    store.write_bytes(b"")
    other = tmp_path / "other.duckdb"
    other.write_bytes(b"")
    monkeypatch.chdir(root / "notebooks")
    monkeypatch.delenv("MYSETLIST_SLO_DB", raising=False)
    assert nb.find_store() == store.resolve()
    monkeypatch.setenv("MYSETLIST_SLO_DB", str(other))
    assert nb.find_store() == other.resolve()
    assert nb.find_store(str(store)) == store.resolve()
    monkeypatch.delenv("MYSETLIST_SLO_DB")
    store.unlink()
    with pytest.raises(StoreNotFoundError) as caught:
        nb.find_store()
    assert str(store.resolve()) in str(caught.value)
    assert "mysetlist-slo demo" in str(caught.value)


def test_period_end_is_exclusive_in_the_header() -> None:
    """The header names Monday to Sunday for an ISO week whose end is the next Monday."""
    start = datetime(2026, 11, 16, tzinfo=UTC)
    document = _weekly_document()
    document["period"] = {"label": "2026-W47", "start": "2026-11-16T00:00:00Z",
                          "end": (start + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                          "timezone": "UTC"}
    assert "Mon 16 Nov – Sun 22 Nov 2026" in nb.header(document)._repr_html_()


def test_capacity_summary_without_a_plan_is_no_data() -> None:
    """Too little history for a forecast gives a valid capacity summary with status no_data,
    the reason as its headline and every number missing, never a made-up zero."""
    from mysetlist_slo.config import load_config
    from mysetlist_slo.report.summaries import capacity_document

    start = datetime(2026, 11, 16, tzinfo=UTC)
    document = capacity_document(None, load_config(), "2026-W47", start,
                                 start + timedelta(days=7), why_none="Too little history")
    validate(document)
    assert document["status"] == "no_data" and document["headline"] == "Too little history"
    assert document["hpa"]["replicas_needed_at_peak"] is None
    assert "NO DATA: Too little history" in summary_markdown(document)


def test_crux_rows_only_for_the_period() -> None:
    """Of the CrUX collection periods loaded, only the latest one overlapping the week is
    shown; none overlapping shows none."""
    from datetime import date

    crux = pd.DataFrame({
        "first_date": [date(2026, 9, 1), date(2026, 10, 20), date(2026, 10, 27)],
        "last_date": [date(2026, 9, 28), date(2026, 11, 16), date(2026, 11, 23)],
        "metric": ["LCP", "LCP", "LCP"]})
    start = datetime(2026, 11, 16, tzinfo=UTC)
    shown = nb.crux_for_period(crux, start, start + timedelta(days=7))
    assert shown["last_date"].tolist() == [date(2026, 11, 23)]
    later = datetime(2027, 1, 4, tzinfo=UTC)
    assert nb.crux_for_period(crux, later, later + timedelta(days=7)).empty


def test_weekly_summary_carries_the_scalability_and_recovery_findings(demo, demo_con) -> None:
    """The weekly summary.json of the demo's last week holds the section, valid against the
    schema: the planted missed backup and the overdue failover drill are at risk, and the
    Markdown digest lists each finding (and nothing judged ok)."""
    from mysetlist_slo import load_config
    from mysetlist_slo.report.summaries import summary_document
    from mysetlist_slo.report.weekly import weekly_summary

    config = load_config()
    summary = weekly_summary(demo_con, config, "2026-W47")
    document = summary_document("weekly", demo_con, config, summary)
    validate(document)
    section = document["scalability_recovery"]
    items = {item["topic"]: item for part in section["parts"] for item in part["items"]}
    assert section["status"] == "at_risk"
    at_risk = {topic for topic, item in items.items() if item["status"] == "at_risk"}
    assert any("database" in topic for topic in at_risk), items  # the missed daily dump
    assert any("failover" in topic for topic in at_risk), items  # drilled 12 days ago
    digest = summary_markdown(document)
    for topic in at_risk:
        assert markdown_text(topic) in digest
    assert all(markdown_text(t) + ":" not in digest for t, i in items.items()
               if i["status"] == "ok")


def _name_words(part: str) -> set[str]:
    """Return the words of a part's name, lower case, without its parenthesised note, "and"
    or a plural s: "Recovery drills (RTO)" -> {"recovery", "drill"}."""
    bare = re.sub(r"\(.*?\)", "", part).lower()
    return {word.removesuffix("s") for word in re.findall(r"[a-z]+", bare) if word != "and"}


def test_digest_lines_name_their_part_once(demo, demo_con) -> None:
    """No line of the demo week's digest repeats its part's name: after "Part: " comes the
    item ("Load test: k6-…", "Backups (RPO): database"), never the part's noun again ("Load
    test: load test k6-…", "Backups (RPO): backup database", "Application errors (Sentry):
    Application error rate"); nor does a recovery item's topic in summary.json."""
    from mysetlist_slo import load_config
    from mysetlist_slo.report.summaries import summary_document, summary_text
    from mysetlist_slo.report.weekly import weekly_summary

    config = load_config()
    document = summary_document("weekly", demo_con, config,
                                weekly_summary(demo_con, config, "2026-W47"))
    recovery = document["scalability_recovery"]["parts"]
    parts = ({part["part"] for part in recovery} | {"Application errors (Sentry)", "Sentry"}
             | {line["part"] for line in document["web_delivery"]["lines"]})
    checked = []
    for line in summary_text(document).splitlines():
        for part in parts:
            if line.startswith(f"- {part}: "):
                first = line.removeprefix(f"- {part}: ").split()[0].lower()
                assert first.removesuffix("s") not in _name_words(part), line
                checked.append(part)
    # The demo's findings: load test, backups, drills, regions, Sentry, CDN, bundle, Lighthouse.
    assert len(set(checked)) >= 7, checked
    for part in recovery:
        for item in part["items"]:
            words = item["topic"].lower().split()
            assert not words or words[0].removesuffix("s") not in _name_words(part["part"]), (
                part["part"], item["topic"])


def test_prune_styles_drops_only_rules_that_can_match_nothing() -> None:
    """A JupyterLab rule whose classes the page lacks goes; one whose classes it has, a rule
    without application classes, a :not() of an absent class and a @media block with a
    matching rule stay; a @media block left empty goes."""
    from mysetlist_slo.report.runner import prune_styles

    css = (".jp-Absent .jp-Cell { color: red }\n"
           ".jp-Cell, .jp-Absent { margin: 1px }\n"
           "table td { padding: 2px }\n"
           ".jp-Cell:not(.jp-mod-absent) { border: 0 }\n"
           ".lm-Menu { display: none }\n"
           "@media print { .jp-Cell { color: black } .lm-Menu { x: y } }\n"
           "@media screen { .cm-editor { z-index: 1 } }\n")
    page = f'<style type="text/css">{css}</style><div class="jp-Cell other">x</div>'
    pruned = prune_styles(page)
    for kept in (".jp-Cell, .jp-Absent", "table td", ".jp-Cell:not(.jp-mod-absent)",
                 "@media print", "color: black", '<div class="jp-Cell other">x</div>'):
        assert kept in pruned, kept
    for dropped in (".jp-Absent .jp-Cell", "lm-Menu", "@media screen", "cm-editor"):
        assert dropped not in pruned, dropped


def test_headline_names_composites_apart() -> None:
    """Five SLOs and a breached composite read "3 of 5 SLOs ok ..." with the composite named
    after the count, never "of 6 SLOs"; the composite does not make the overall status."""
    table = pd.DataFrame({"slo": ["a", "b", "c", "d", "e", "journey"],
                          "sli_kind": ["availability"] * 5 + ["composite"],
                          "status": ["ok", "ok", "at_risk", "ok", "no_data", "breach"]})
    assert overview_headline(table) == (
        "at_risk", "3 of 5 SLOs ok, 1 at risk, 1 without data; composite journey breached")
    assert headline_count(["ok"], [("x", "no_data"), ("y", "ok")]) == (
        "1 of 1 SLO ok; composite x without data, composite y ok")
