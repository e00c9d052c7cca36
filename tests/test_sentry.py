"""Sentry: events, stats_v2 and sessions read from fixtures written from Sentry's API docs, and
the application error-rate SLI, routes and releases checked against pandas over the same files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mysetlist_slo import IngestError, ingest_file, load_config
from mysetlist_slo.slo.app_errors import (
    AppErrors,
    application_error_sli,
    application_errors,
    application_errors_by_route,
    rate_regression_p_value,
    release_health,
)
from mysetlist_slo.sources import detect_source

FIXTURES = Path(__file__).parent / "fixtures" / "sentry"
START = datetime(2026, 11, 9, tzinfo=UTC)
END = datetime(2026, 11, 16, tzinfo=UTC)
# Request paths per route of the request export the tests write (the events' transactions).
PATHS = {"/artist/[slug]": "/artist/radiohead", "/api/shows/[id]": "/api/shows/4711",
         "/show/[id]": "/show/42", "/": "/"}


def events_frame() -> pd.DataFrame:
    """Read events.json with pandas alone: one row per event, the fields as Sentry names them."""
    frame = pd.DataFrame(json.loads((FIXTURES / "events.json").read_text())["data"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def app_errors_frame() -> pd.DataFrame:
    """The fixture's application errors (unhandled or error/fatal level), read by hand."""
    frame = events_frame()
    keep = (frame["handled"] == "no") | frame["level"].isin(["error", "fatal"])
    frame = frame[keep].copy()
    frame["route"] = frame["transaction"].str.replace("GET ", "", regex=False)
    frame["minute"] = frame["timestamp"].dt.floor("min")
    return frame


@pytest.fixture(name="requests_file")
def fixture_requests_file(tmp_path: Path) -> Path:
    """A request export (JSON Lines): every minute of 09:00-18:00 on each day of the week, a
    seeded number of requests per route, about 1 % of them 5xx."""
    rng = np.random.default_rng(13)
    lines = []
    for day in range(7):
        for minute in range(9 * 60, 18 * 60):
            at = START + timedelta(days=day, minutes=minute)
            for path in PATHS.values():
                for second in sorted(rng.integers(0, 60, int(rng.integers(0, 6)))):
                    status = 500 if rng.random() < 0.01 else 200
                    lines.append(json.dumps({
                        "timestamp": (at + timedelta(seconds=int(second))).isoformat(),
                        "path": path, "status": status, "duration_ms": 20}))
    path = tmp_path / "requests.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def requests_frame(path: Path) -> pd.DataFrame:
    """The request export read with pandas: minute, route and status of each request."""
    frame = pd.read_json(path, lines=True)
    frame["minute"] = pd.to_datetime(frame["timestamp"], utc=True).dt.floor("min")
    frame["route"] = frame["path"].map({v: k for k, v in PATHS.items()})
    return frame


@pytest.fixture(name="sentry_store")
def fixture_sentry_store(store: duckdb.DuckDBPyConnection,
                         requests_file: Path) -> duckdb.DuckDBPyConnection:
    """A store holding the request export and the three Sentry fixtures."""
    ingest_file(store, requests_file)
    for name in ("events.json", "stats_v2.json", "sessions.json"):
        ingest_file(store, FIXTURES / name)
    return store


def test_fixtures_are_told_apart_by_content() -> None:
    """Each fixture is recognised as its Sentry kind from its content alone."""
    kinds = {name: detect_source(FIXTURES / name).kind
             for name in ("events.json", "stats_v2.json", "sessions.json")}
    assert kinds == {"events.json": "sentry-events", "stats_v2.json": "sentry-stats",
                     "sessions.json": "sentry-sessions"}


def test_events_stored_as_sentry_wrote_them(store: duckdb.DuckDBPyConnection) -> None:
    """Every event lands once with its time, level, release, transaction, issue and handled
    flag (Discover's yes/no) as in the file; loading it again stores nothing more."""
    result = ingest_file(store, FIXTURES / "events.json")
    expected = events_frame()
    assert result.kind == "sentry-events" and result.loaded == len(expected) == 14
    stored = store.execute("SELECT event_id, ts, level, release, transaction, issue, handled, "
                           "project FROM sentry_events ORDER BY ts, event_id").df()
    expected = expected.sort_values(["timestamp", "id"], ignore_index=True)
    assert stored["event_id"].tolist() == expected["id"].tolist()
    assert (stored["ts"].dt.tz_convert("UTC") == expected["timestamp"]).all()
    assert stored["level"].tolist() == expected["level"].tolist()
    assert stored["transaction"].tolist() == expected["transaction"].tolist()
    assert stored["issue"].tolist() == expected["issue"].tolist()
    assert stored["handled"].tolist() == (expected["handled"] == "yes").tolist()
    assert set(stored["project"]) == {"mysetlist"}
    assert ingest_file(store, FIXTURES / "events.json").skipped


def test_an_answer_without_events_is_a_quiet_period(store: duckdb.DuckDBPyConnection,
                                                     tmp_path: Path) -> None:
    """Discover's answer for a period without error events (``"data": []``, the fields named
    in ``meta`` only) is recognised as Sentry events and loaded as zero records, not read as
    JSON Lines and refused line by line; loading it again is a no-op."""
    document = json.loads((FIXTURES / "events.json").read_text())
    document["data"] = []
    quiet = tmp_path / "events.json"
    quiet.write_text(json.dumps(document, indent=1))
    assert detect_source(quiet).kind == "sentry-events"
    result = ingest_file(store, quiet)
    assert (result.kind, result.loaded, result.rejected, result.skipped) == (
        "sentry-events", 0, 0, False)
    assert ingest_file(store, quiet).skipped


def test_bad_event_is_a_located_reject(store: duckdb.DuckDBPyConnection,
                                       tmp_path: Path) -> None:
    """An event with an unknown level and one without a zone on its time are refused, each
    named by file, the line its record starts on, and its field path; nothing is stored."""
    document = json.loads((FIXTURES / "events.json").read_text())
    document["data"][1]["level"] = "<b>catastrophic</b>"
    document["data"][3]["timestamp"] = "2026-11-09T10:02:30"
    path = tmp_path / "bad-events.json"
    path.write_text(json.dumps(document, indent=2))
    text = path.read_text().splitlines()
    starts = [n for n, line in enumerate(text, 1) if line.strip().startswith('"id"')]
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, kind="sentry-events")
    problems = [(p.line, p.field) for p in caught.value.problems]
    assert problems == [(starts[1], "data[1].level"), (starts[3], "data[3].timestamp")]
    assert f"{path}:{starts[1]}: data[1].level" in str(caught.value)
    assert store.execute("SELECT count(*) FROM sentry_events").fetchone() == (0,)
    loaded = ingest_file(store, path, kind="sentry-events", max_bad_rows=2)
    assert (loaded.loaded, loaded.rejected) == (12, 2)


def test_stats_v2_outcomes(store: duckdb.DuckDBPyConnection) -> None:
    """stats_v2 lands one row per group and interval; quantities per outcome and category
    agree with the file's series summed in pandas (and with its own totals)."""
    ingest_file(store, FIXTURES / "stats_v2.json")
    document = json.loads((FIXTURES / "stats_v2.json").read_text())
    expected = {(g["by"]["category"], g["by"]["outcome"]): sum(g["series"]["sum(quantity)"])
                for g in document["groups"]}
    assert expected == {(g["by"]["category"], g["by"]["outcome"]): g["totals"]["sum(quantity)"]
                        for g in document["groups"]}
    stored = dict(((c, o), q) for c, o, q in store.execute(
        "SELECT category, outcome, sum(quantity) FROM sentry_stats GROUP BY ALL").fetchall())
    assert stored == expected
    ends = store.execute("SELECT max(ts_end) FROM sentry_stats").fetchone()
    assert ends is not None and ends[0] == END


def test_bad_stats_group_names_its_series_value(store: duckdb.DuckDBPyConnection,
                                                tmp_path: Path) -> None:
    """A negative count in a stats_v2 series is refused naming the group's line and the
    value's path; an unknown outcome likewise."""
    document = json.loads((FIXTURES / "stats_v2.json").read_text())
    document["groups"][1]["series"]["sum(quantity)"][2] = -37
    document["groups"][2]["by"]["outcome"] = "vanished"
    path = tmp_path / "stats.json"
    path.write_text(json.dumps(document, indent=2))
    by_lines = [n for n, line in enumerate(path.read_text().splitlines(), 1)
                if line.strip().startswith('"by"')]
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (by_lines[1], "groups[1].series.sum(quantity)[2]"), (by_lines[2], "groups[2].by.outcome")]


def test_sli_against_pandas(sentry_store: duckdb.DuckDBPyConnection,
                            requests_file: Path) -> None:
    """The application error rate is the fixture's unhandled or error-level events in minutes
    with requests, over the week's requests; the 5xx rate and the dropped events (37
    rate-limited, 5 filtered errors, transactions left out) agree with pandas."""
    sli = application_error_sli(sentry_store, load_config(), START, END)
    requests = requests_frame(requests_file)
    errors = app_errors_frame()
    in_week = errors[(errors["timestamp"] >= START) & (errors["timestamp"] < END)]
    covered = in_week["minute"].isin(set(requests["minute"]))
    assert sli.requests == len(requests)
    assert sli.errors_5xx == int((requests["status"] >= 500).sum())
    assert sli.app_errors == int(covered.sum()) == 9
    assert sli.events_without_requests == int((~covered).sum()) == 1  # 18:30, no requests
    assert sli.app_error_rate == pytest.approx(covered.sum() / len(requests))
    assert (sli.rate_limited, sli.filtered) == (37, 5) and sli.lower_bound
    assert "lower bound" in sli.line() and "≥" in sli.line()


def test_routes_against_pandas(sentry_store: duckdb.DuckDBPyConnection,
                               requests_file: Path) -> None:
    """Per route, a transaction ('GET /api/shows/[id]', '/artist/[slug]') lands on the route
    its requests have; errors and requests per route agree with pandas."""
    frame = application_errors_by_route(sentry_store, load_config(), START, END)
    frame = frame.set_index("route")
    requests = requests_frame(requests_file)
    errors = app_errors_frame()
    errors = errors[(errors["timestamp"] < END) & errors["minute"].isin(set(requests["minute"]))]
    expected_errors = errors.groupby("route").size()
    expected_requests = requests.groupby("route").size()
    for route in PATHS:
        assert frame.loc[route, "requests"] == expected_requests[route]
        assert frame.loc[route, "app_errors"] == expected_errors.get(route, 0)
    assert frame.loc["/api/shows/[id]", "app_errors"] == 6
    assert frame.index[0] == "/api/shows/[id]"  # most errors first


def test_releases_against_pandas(sentry_store: duckdb.DuckDBPyConnection,
                                 requests_file: Path) -> None:
    """Each release's requests (its live time: first event, or first session interval's end
    if earlier, until the next release's), errors, error rate and crash-free shares agree
    with pandas; 2.14.0 is tested against 2.13.0 with the exact conditional Poisson test,
    computed here by hand."""
    frame = release_health(sentry_store, load_config(), START, END).set_index("release")
    requests = requests_frame(requests_file)
    errors = app_errors_frame()
    sessions = json.loads((FIXTURES / "sessions.json").read_text())
    ends = pd.to_datetime([*sessions["intervals"][1:], sessions["end"]], utc=True)
    first = {}
    for group in sessions["groups"]:
        live = [t for t, n in zip(ends, group["series"]["sum(session)"], strict=True) if n]
        release = group["by"]["release"]
        first[release] = min([*live, *errors.loc[errors["release"] == release, "timestamp"]])
    switch = first["mysetlist@2.14.0"]
    counts = {}
    for release, (lo, hi) in {"mysetlist@2.13.0": (first["mysetlist@2.13.0"], switch),
                              "mysetlist@2.14.0": (switch, pd.Timestamp(END))}.items():
        n = int(((requests["minute"] >= lo.floor("min")) & (requests["minute"] < hi)).sum())
        mine = errors[(errors["release"] == release) & (errors["timestamp"] >= lo)
                      & (errors["timestamp"] < hi)]
        counts[release] = (len(mine), n)
        assert frame.loc[release, "requests"] == n
        assert frame.loc[release, "app_errors"] == len(mine)
        assert frame.loc[release, "error_rate"] == pytest.approx(len(mine) / n)
        group = next(g for g in sessions["groups"] if g["by"]["release"] == release)
        s = np.array(group["series"]["sum(session)"], float)
        rate = np.array([np.nan if r is None else r
                         for r in group["series"]["crash_free_rate(session)"]])
        ok = ~np.isnan(rate)
        assert frame.loc[release, "crash_free_sessions"] == pytest.approx(
            (s[ok] * rate[ok]).sum() / s[ok].sum())
        assert frame.loc[release, "sessions"] == s.sum()
    assert first["mysetlist@2.14.0"] == pd.Timestamp("2026-11-11T12:00:05Z")  # an event
    (k_new, n_new), (k_old, n_old) = counts["mysetlist@2.14.0"], counts["mysetlist@2.13.0"]
    share = n_new / (n_new + n_old)
    total = k_new + k_old
    by_hand = sum(math.comb(total, k) * share**k * (1 - share) ** (total - k)
                  for k in range(k_new, total + 1))
    assert frame.loc["mysetlist@2.14.0", "p_value"] == pytest.approx(by_hand, rel=1e-9)
    assert frame.loc["mysetlist@2.14.0", "previous"] == "mysetlist@2.13.0"
    assert frame.loc["mysetlist@2.14.0", "crash_free_sessions"] == pytest.approx(
        (400 * .95 + 800 * .98 + 600 * .99 + 400 * .985 + 200 * .98) / 2400)


def test_regression_line_names_the_rate_before(sentry_store: duckdb.DuckDBPyConnection,
                                               requests_file: Path) -> None:
    """A release whose predecessor is not live in the period (here the two days after the
    switch to 2.14.0) is still compared with that predecessor's own rate, not with "nan %":
    2.13.0's errors over its requests from the lookback's start (the period's length before
    it: 2026-11-10, 2.13.0 being live since the 9th) to the switch, counted with pandas; the
    p-value is written as prose writes it."""
    start = datetime(2026, 11, 12, tzinfo=UTC)
    section = application_errors(sentry_store, load_config(), start, start + timedelta(days=2))
    assert section.releases["release"].tolist() == ["mysetlist@2.14.0"]
    row = section.releases.iloc[0]
    lo, switch = pd.Timestamp("2026-11-10T00:00Z"), pd.Timestamp("2026-11-11T12:00:05Z")
    requests = requests_frame(requests_file)
    errors = app_errors_frame()
    n = int(((requests["minute"] >= lo) & (requests["minute"] < switch)).sum())
    k = int(((errors["release"] == "mysetlist@2.13.0") & (errors["timestamp"] >= lo)
             & (errors["timestamp"] < switch)).sum())
    assert row["previous"] == "mysetlist@2.13.0" and k > 0
    assert row["previous_error_rate"] == pytest.approx(k / n)
    flagged = AppErrors(section.sli, section.releases.assign(regression=True), section.routes)
    line = flagged.lines()[1]
    assert f"from {100 * k / n:.3f} % (mysetlist@2.13.0)" in line, line
    p = float(row["p_value"])
    assert line.endswith("p < 0.001." if p < 0.001 else f"p = {p:.3f}.")
    assert "nan" not in line


def test_rate_test_edge_cases() -> None:
    """No errors at all is p = 1; all errors in the new release with equal traffic is
    0.5 ** n; the same rate is no evidence (p > 0.4)."""
    assert rate_regression_p_value(0, 1000, 0, 1000) == 1.0
    assert rate_regression_p_value(10, 1000, 0, 1000) == pytest.approx(0.5 ** 10)
    assert rate_regression_p_value(10, 1000, 10, 1000) > 0.4


def test_overlapping_exports_count_once(sentry_store: duckdb.DuckDBPyConnection,
                                        tmp_path: Path) -> None:
    """An export overlapping one loaded before (the same events, a stats_v2 of the same days)
    changes no count: events are counted by id, intervals from the latest export."""
    before = application_error_sli(sentry_store, load_config(), START, END)
    document = json.loads((FIXTURES / "events.json").read_text())
    (tmp_path / "again.json").write_text(json.dumps(document["data"][:6]))
    stats = json.loads((FIXTURES / "stats_v2.json").read_text())
    stats["groups"] = stats["groups"][:2]
    (tmp_path / "stats-again.json").write_text(json.dumps(stats))
    assert ingest_file(sentry_store, tmp_path / "again.json").loaded == 6
    ingest_file(sentry_store, tmp_path / "stats-again.json")
    after = application_error_sli(sentry_store, load_config(), START, END)
    assert after == before


def test_no_sentry_data_is_one_line(store: duckdb.DuckDBPyConnection,
                                    requests_file: Path) -> None:
    """Without Sentry data the section says so in one line and its status is no_data."""
    ingest_file(store, requests_file)
    section = application_errors(store, load_config(), START, END)
    assert section.status == "no_data"
    assert section.lines() == ["No Sentry data for this period: application errors not measured."]
    assert section.releases.empty


def test_demo_bad_release_is_flagged(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """The demo's planted bad release is the week's one regression, its error count agrees
    with the demo's events.json read by pandas, and the digest line names it."""
    planted = demo.event("sentry_bad_release")
    bad = planted.detail.split()[1]
    week_start, week_end = demo.end - timedelta(days=7), demo.end
    section = application_errors(demo_con, load_config(), week_start, week_end)
    flagged = section.releases[section.releases["regression"].astype(bool)]
    assert flagged["release"].tolist() == [bad]
    row = flagged.iloc[0]
    # Live from its first event (the deploy's first 500s), until the fix's first sign of life.
    assert timedelta(0) <= row["live_from"] - pd.Timestamp(planted.start) < timedelta(minutes=5)
    assert timedelta(0) <= row["live_until"] - pd.Timestamp(planted.end) <= timedelta(days=1)
    events = pd.DataFrame(json.loads(Path(next(
        f for f in demo.files if f.endswith("sentry/events.json"))).read_text())["data"])
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True)
    mine = events[(events["release"] == bad) & (events["timestamp"] >= row["live_from"])
                  & (events["timestamp"] < row["live_until"])
                  & ((events["handled"] == "no") | events["level"].isin(["error", "fatal"]))]
    assert row["app_errors"] == len(mine)
    assert section.status == "at_risk"
    assert any(line.startswith(f"Release {bad} raised the error rate") for line in section.lines())
    assert section.sli.lower_bound  # the planted burst was rate-limited


def test_demo_summary_json_and_digest(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """The weekly summary.json of the demo's last week validates with its
    application_errors key, which flags the bad release; the digest names it, escaped."""
    from mysetlist_slo.report.formatting import markdown_text
    from mysetlist_slo.report.summaries import summary_document, summary_markdown, validate
    from mysetlist_slo.report.weekly import weekly_summary

    bad = demo.event("sentry_bad_release").detail.split()[1]
    config = load_config()
    summary = weekly_summary(demo_con, config, "2026-W47")
    document = summary_document("weekly", demo_con, config, summary)
    validate(document)
    section = document["application_errors"]
    assert section["status"] == "at_risk" and section["sli"]["lower_bound"]
    assert [r["release"] for r in section["releases"] if r["regression"]] == [bad]
    assert section["sli"]["app_errors"] > 0 and section["sli"]["requests"] == summary.requests
    assert markdown_text(f"Release {bad} raised the error rate") in summary_markdown(document)


def test_sessions_by_status(store: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """A sessions answer grouped by release and session.status gives crash-free sessions as
    1 - crashed / all sessions (here 1 - 6 / 400), and no user share (not additive)."""
    document = {"start": "2026-11-09T00:00:00Z", "end": "2026-11-11T00:00:00Z",
                "intervals": ["2026-11-09T00:00:00Z", "2026-11-10T00:00:00Z"],
                "groups": [{"by": {"release": "r1", "session.status": status},
                            "totals": {"sum(session)": sum(values)},
                            "series": {"sum(session)": values}}
                           for status, values in (("healthy", [150, 200]), ("errored", [20, 24]),
                                                  ("crashed", [2, 4]))],
                "query": ""}
    path = tmp_path / "sessions.json"
    path.write_text(json.dumps(document))
    assert ingest_file(store, path).kind == "sentry-sessions"
    frame = release_health(store, load_config(), START, END)
    assert frame["release"].tolist() == ["r1"]
    assert frame["sessions"].tolist() == [400]
    assert frame["crash_free_sessions"].iloc[0] == pytest.approx(1 - 6 / 400)
    assert pd.isna(frame["crash_free_users"].iloc[0])


def quiet_series(name: str, tmp_path: Path, *, query: bool) -> Path:
    """Write the fixture ``name`` as the answer of a quiet period: no groups (``"groups":
    []``), with or without the ``query`` echo that Sentry's sessions answers carry, keys in
    the order Sentry writes them (start, end, query, intervals, groups)."""
    fixture = json.loads((FIXTURES / name).read_text())
    document = {"start": fixture["start"], "end": fixture["end"],
                **({"query": ""} if query else {}),
                "intervals": fixture["intervals"], "groups": []}
    path = tmp_path / f"quiet-{name}"
    path.write_text(json.dumps(document, indent=2))
    return path


def test_an_empty_sessions_answer_is_a_quiet_period(store: duckdb.DuckDBPyConnection,
                                                    tmp_path: Path) -> None:
    """A sessions answer without groups is told by its ``query`` echo (stats_v2 answers have
    none) and loaded as zero sentry-sessions records; loading it again is a no-op."""
    quiet = quiet_series("sessions.json", tmp_path, query=True)
    assert detect_source(quiet).kind == "sentry-sessions"
    result = ingest_file(store, quiet)
    assert (result.kind, result.loaded, result.rejected, result.skipped) == (
        "sentry-sessions", 0, 0, False)
    assert ingest_file(store, quiet).skipped
    assert store.execute("SELECT count(*) FROM sentry_sessions").fetchone() == (0,)


def test_an_empty_series_that_cannot_be_told_names_both_kinds(
        store: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """An answer without groups and without ``query`` is stats_v2's shape and a trimmed
    sessions answer's alike: it is refused in one line naming --kind sentry-stats and
    --kind sentry-sessions, nothing stored; named with --kind it loads as zero records."""
    quiet = quiet_series("stats_v2.json", tmp_path, query=False)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, quiet)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{quiet}: ")
    assert "--kind sentry-stats" in message and "--kind sentry-sessions" in message
    assert store.execute("SELECT count(*) FROM ingests").fetchone() == (0,)
    for kind in ("sentry-stats", "sentry-sessions"):
        result = ingest_file(store, quiet, kind=kind)
        assert (result.kind, result.loaded, result.rejected) == (kind, 0, 0)
        store.execute("DELETE FROM ingests")  # the next kind loads the same content again


def test_empty_sentry_answers_through_the_cli(tmp_path: Path) -> None:
    """`mysetlist-slo ingest` loads a quiet sessions answer (exit 0) and refuses an untold
    one with exit 1 and one line naming both kinds; with --kind it loads (exit 0)."""
    db = str(tmp_path / "m.duckdb")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mysetlist_slo", "ingest", "--db", db,
                               *args], capture_output=True, text=True, check=False)

    sessions = cli(str(quiet_series("sessions.json", tmp_path, query=True)))
    assert sessions.returncode == 0, sessions.stderr
    assert "sentry-sessions" in sessions.stdout
    untold = quiet_series("stats_v2.json", tmp_path, query=False)
    refused = cli(str(untold))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith(f"error: {untold}: ")
    assert "--kind sentry-stats" in line and "--kind sentry-sessions" in line
    named = cli("--kind", "sentry-stats", str(untold))
    assert named.returncode == 0, named.stderr


@pytest.mark.parametrize("kind", ["sentry-stats", "sentry-sessions"])
@pytest.mark.parametrize(("steps", "minutes"), [(168, 60), (4032, 5)])
def test_a_long_series_is_told_by_content(store: duckdb.DuckDBPyConnection, tmp_path: Path,
                                          kind: str, steps: int, minutes: int) -> None:
    """An answer whose intervals come before "groups", keys in the order Sentry writes them
    -- a week at 1 h (about 4.5 KB of intervals) and two weeks at 5 min (about 109 KB, more
    than the 64 KiB a file's kind is first told from) -- is still told apart by content and
    loads one record per group and interval."""
    times = [datetime(2026, 11, 9, tzinfo=UTC) + timedelta(minutes=minutes * i)
             for i in range(steps)]
    stamps = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]
    if kind == "sentry-stats":
        by = {"outcome": "accepted", "category": "error"}
        field = "sum(quantity)"
    else:
        by = {"release": "r1", "session.status": "healthy"}
        field = "sum(session)"
    values = [i % 7 for i in range(steps)]
    end = (times[-1] + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {"start": stamps[0], "end": end, "intervals": stamps,
                "groups": [{"by": by, "totals": {field: sum(values)},
                            "series": {field: values}}]}
    path = tmp_path / "series.json"
    path.write_text(json.dumps(document))
    assert path.read_text().index('"groups"') > (4096 if minutes == 60 else 64 << 10)
    result = ingest_file(store, path)
    assert (result.kind, result.loaded) == (kind, steps)
