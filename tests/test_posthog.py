"""PostHog product events: exports in (JSON Lines, CSV), persons, DAU/WAU/MAU, concurrent users
and requests per user out, checked by hand and against brute force over the raw events."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest
import servers

from mysetlist_slo import IngestError, ingest_file, open_store
from mysetlist_slo.capacity.users import (
    active_user_count,
    active_users,
    concurrent_users,
    person_map,
    user_behaviour,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "posthog"
ROWS = "SELECT ts, uuid, event, distinct_id, session_id, url, device_type, linked_id " \
       "FROM posthog_events ORDER BY ts"


def _rows(con: duckdb.DuckDBPyConnection) -> list[tuple[object, ...]]:
    return con.execute(ROWS).fetchall()


@pytest.mark.parametrize("name", ["events.jsonl", "events.csv", "events-flattened.csv"])
def test_export_shapes_load_alike(store: duckdb.DuckDBPyConnection, name: str) -> None:
    """Each documented export shape is told from its content and loads the same nine events."""
    result = ingest_file(store, EXAMPLES / name)
    assert (result.kind, result.loaded, result.rejected) == ("posthog", 9, 0)
    rows = _rows(store)
    assert rows[0] == (datetime(2026, 11, 9, 10, tzinfo=UTC),
                       "0193a1b2-0000-7000-8000-000000000001", "$pageview", "anon-1", "s1",
                       "https://mysetlist.example/artist/radiohead", "Desktop", None)
    identify = next(r for r in rows if r[2] == "$identify")
    alias = next(r for r in rows if r[2] == "$create_alias")
    assert (identify[3], identify[7]) == ("user-a", "anon-1")
    assert (alias[3], alias[7]) == ("user-b", "anon-3")


def test_csv_and_jsonl_identical(tmp_path: Path) -> None:
    """The three shapes store exactly the same rows."""
    seen = []
    for name in ("events.jsonl", "events.csv", "events-flattened.csv"):
        con = open_store(tmp_path / f"{name}.duckdb")
        ingest_file(con, EXAMPLES / name)
        seen.append(_rows(con))
        con.close()
    assert seen[0] == seen[1] == seen[2]


def test_hand_worked_example(store: duckdb.DuckDBPyConnection) -> None:
    """The fixture's README numbers: 3 persons of 5 ids, 2 + 2 daily, concurrency 2, 1, 2."""
    ingest_file(store, EXAMPLES / "events.jsonl")
    persons = dict(person_map(store).itertuples(index=False))
    assert persons == {"anon-1": "anon-1", "user-a": "anon-1", "anon-3": "anon-3",
                       "user-b": "anon-3"}
    start, end = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    daily = active_users(store, start, end)
    assert daily.to_dict("records") == [
        {"day": date(2026, 11, 9), "dau": 2, "wau": 2, "mau": 2},
        {"day": date(2026, 11, 10), "dau": 2, "wau": 3, "mau": 3}]
    assert active_user_count(store, start, end) == 3
    windows = concurrent_users(store, start, end)
    assert [(w.strftime("%d %H:%M"), n) for w, n in windows.itertuples(index=False)] == [
        ("09 10:00", 2), ("09 10:05", 1), ("10 09:00", 2)]


def test_no_posthog_data_is_not_zero(store: duckdb.DuckDBPyConnection) -> None:
    """Without PostHog events active users are None (not measured), never 0."""
    start, end = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 16, tzinfo=UTC)
    assert active_user_count(store, start, end) is None
    assert active_users(store, start, end).empty
    assert concurrent_users(store, start, end).empty
    assert user_behaviour(store, start, end) is None


@pytest.mark.parametrize(("line", "field"), [
    ({"event": "$pageview", "timestamp": "2026-11-09T10:00:00Z"}, "distinct_id"),
    ({"event": "$pageview", "distinct_id": "a", "timestamp": "2026-11-09 10:00:00"},
     "timestamp"),
    ({"event": "$pageview", "distinct_id": {"x": 1}, "timestamp": "2026-11-09T10:00:00Z"},
     "distinct_id"),
    ({"event": "$pageview", "distinct_id": "a", "timestamp": "2026-11-09T10:00:00Z",
      "properties": [1]}, "properties"),
    ({"event": "$pageview", "distinct_id": "a", "timestamp": "2026-11-09T10:00:00Z",
      "properties": {"$session_id": 1.5}}, "properties.$session_id"),
    ({"event": "$identify", "distinct_id": "a", "timestamp": "2026-11-09T10:00:00Z",
      "properties": {"$anon_distinct_id": ["b"]}}, "properties.$anon_distinct_id"),
])
def test_bad_event_is_located_reject(store: duckdb.DuckDBPyConnection, write_log,  # type: ignore[no-untyped-def]
                                     line: dict[str, object], field: str) -> None:
    """A bad event refuses the file (strict) naming file, line and field; nothing is stored."""
    good = {"event": "$pageview", "distinct_id": "z", "timestamp": "2026-11-09T09:00:00Z"}
    path = write_log("ph.jsonl", [json.dumps(good), json.dumps(line)])
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, kind="posthog")
    assert f"{path}:2: {field}:" in str(caught.value)
    assert store.execute("SELECT count(*) FROM posthog_events").fetchall() == [(0,)]


def test_csv_missing_column_is_an_error(store: duckdb.DuckDBPyConnection, write_log) -> None:  # type: ignore[no-untyped-def]
    """A CSV named as PostHog without a distinct_id column is one error naming the column."""
    path = write_log("ph.csv", ["event,timestamp", "$pageview,2026-11-09T10:00:00Z"])
    with pytest.raises(IngestError, match="missing column distinct_id"):
        ingest_file(store, path, kind="posthog")


def test_web_vitals_events_still_go_to_vitals(store: duckdb.DuckDBPyConnection,
                                              write_log) -> None:  # type: ignore[no-untyped-def]
    """A file opening with a $web_vitals event is still read as Web Vitals, not product events."""
    event = {"event": "$web_vitals", "uuid": "u1", "distinct_id": "a",
             "timestamp": "2026-11-10T10:00:00Z",
             "properties": {"$current_url": "https://x.example/", "$web_vitals_LCP_value": 1200}}
    assert ingest_file(store, write_log("wv.jsonl", [json.dumps(event)])).kind == "vitals"


# --- brute force over random events -------------------------------------------------------


def _random_events(rng: np.random.Generator, start: datetime, days: int) -> pd.DataFrame:
    """Random events: 60 persons, some with two ids linked by $identify or $create_alias
    (chains too), sessions of 0-40 minutes, some events without a session id."""
    rows = []
    span = days * 86400
    for person in range(60):
        ids = [f"p{person}-{k}" for k in range(int(rng.integers(1, 4)))]
        for k in range(1, len(ids)):  # chain: id k joins id k-1
            kind = "$identify" if rng.random() < 0.5 else "$create_alias"
            rows.append({"event": kind, "distinct_id": ids[k], "link": ids[k - 1],
                         "ts": start + timedelta(seconds=int(rng.integers(0, span))),
                         "session": None})
        for session in range(int(rng.integers(0, 6))):
            begin = int(rng.integers(0, span))
            length = int(rng.integers(0, 2400))
            sid = None if rng.random() < 0.15 else f"s{person}-{session}"
            for t in sorted({begin, begin + length, *rng.integers(begin, begin + length + 1, 2)}):
                rows.append({"event": "$pageview", "distinct_id": str(rng.choice(ids)),
                             "link": None, "ts": start + timedelta(seconds=int(t)),
                             "session": sid})
    return pd.DataFrame(rows)


def _write_events(path: Path, events: pd.DataFrame) -> Path:
    with open(path, "w") as handle:
        for i, e in enumerate(events.itertuples()):
            properties: dict[str, object] = {}
            if isinstance(e.session, str):
                properties["$session_id"] = e.session
            if e.event == "$identify":
                properties["$anon_distinct_id"] = e.link
            elif e.event == "$create_alias":
                properties["alias"] = e.link
            handle.write(json.dumps({"uuid": f"u{i}", "event": e.event,
                                     "distinct_id": e.distinct_id,
                                     "timestamp": e.ts.isoformat(),
                                     "properties": properties}) + "\n")
    return path


def _persons_brute(events: pd.DataFrame) -> dict[str, str]:
    """Persons by repeated relabelling until nothing changes (no union-find, no scipy)."""
    label = {i: i for i in set(events["distinct_id"]) | set(events["link"].dropna())}
    links = events.dropna(subset=["link"])[["distinct_id", "link"]].to_numpy()
    changed = True
    while changed:
        changed = False
        for a, b in links:
            low = min(label[a], label[b])
            for node in (a, b):
                if label[node] != low:
                    label[node], changed = low, True
    # propagate labels to a fixed point: every id takes the smallest label of its component
    return label


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_oracle_active_users(store: duckdb.DuckDBPyConnection, tmp_path: Path,
                             seed: int) -> None:
    """DAU/WAU/MAU per day in a zone with a DST change equal brute force over the raw events."""
    rng = np.random.default_rng(seed)
    tz = "America/New_York"  # DST ends on 1 November 2026
    start = pd.Timestamp("2026-10-20", tz=tz).tz_convert(UTC).to_pydatetime()
    end = pd.Timestamp("2026-11-10", tz=tz).tz_convert(UTC).to_pydatetime()
    events = _random_events(rng, start - timedelta(days=31), 52)
    ingest_file(store, _write_events(tmp_path / "events.jsonl", events))
    persons = _persons_brute(events)
    events["person"] = events["distinct_id"].map(persons)
    events["day"] = pd.to_datetime(events["ts"], utc=True).dt.tz_convert(tz).dt.date
    got = active_users(store, start, end, tz)
    expected = []
    for day in pd.date_range("2026-10-20", "2026-11-09", freq="D").date:
        def count(days: int, day: date = day) -> int:
            chosen = events[(events["day"] > day - timedelta(days=days)) & (events["day"] <= day)]
            return len(set(chosen["person"]))
        expected.append({"day": day, "dau": count(1), "wau": count(7), "mau": count(30)})
    assert got.to_dict("records") == expected
    in_range = events[(events["ts"] >= start) & (events["ts"] < end)]
    assert active_user_count(store, start, end) == len(set(in_range["person"]))
    assert len(set(in_range["person"])) < in_range["distinct_id"].nunique()  # merges mattered


@pytest.mark.parametrize("seed", [4, 5])
def test_oracle_concurrency_and_rate(store: duckdb.DuckDBPyConnection, tmp_path: Path,
                                     seed: int) -> None:
    """Concurrent users per 5-minute window and requests per user equal brute force: each
    session's span [first, last event] checked against every window, requests counted raw."""
    rng = np.random.default_rng(seed)
    start = datetime(2026, 11, 9, 0, 2, 30, tzinfo=UTC)  # not on a window: first is dropped
    end = datetime(2026, 11, 10, tzinfo=UTC)
    events = _random_events(rng, start - timedelta(hours=2), 1)
    ingest_file(store, _write_events(tmp_path / "events.jsonl", events))
    request_times = start + pd.to_timedelta(rng.integers(0, 86000, 3000), unit="s")
    with open(tmp_path / "requests.jsonl", "w") as handle:
        for t in request_times:
            handle.write(json.dumps({"timestamp": t.isoformat(), "path": "/", "status": 200})
                         + "\n")
    ingest_file(store, tmp_path / "requests.jsonl")

    key = events["session"].fillna("distinct_id:" + events["distinct_id"])
    spans = events[events["ts"] < end].assign(key=key).groupby("key")["ts"].agg(["min", "max"])
    expected = {}
    window = pd.Timestamp(start).floor("5min") + pd.Timedelta(minutes=5)
    while window < pd.Timestamp(end):
        close = window + pd.Timedelta(minutes=5)
        n = int(((spans["min"] < close) & (spans["max"] >= window)).sum())
        if n:
            expected[window] = n
        window = close
    got = concurrent_users(store, start, end)
    assert dict(zip(got["window_start"], got["concurrent_users"], strict=True)) == expected

    requests = pd.Series(1, index=pd.DatetimeIndex(request_times)).resample(
        "5min", origin="epoch").sum()
    rates = [requests[w] / (n * 300) for w, n in expected.items()
             if w in requests.index and requests[w] > 0]
    behaviour = user_behaviour(store, start, end)
    assert behaviour is not None
    assert behaviour.windows == len(rates)
    assert behaviour.rps_per_user == pytest.approx(float(np.median(rates)), rel=1e-12)


# --- the collector against a local HTTP server answering as PostHog's Query API ------------

KEY = "phx_test_personal_key_0123456789"


class _QueryApi(servers.LocalHttp):
    """A PostHog Query API on a loopback port: POST /api/projects/2/query/ answers a HogQLQuery
    over the fixture's events, as query-response.json shows, honouring the bound {start} and
    {end}, the LIMIT and OFFSET; ``fail`` lists status codes to answer first."""

    def __init__(self) -> None:
        import re

        sample = json.loads((EXAMPLES / "query-response.json").read_text())
        self.columns = sample["columns"]
        self.events = [json.loads(line) for line in (EXAMPLES / "events.jsonl").open()]
        self.fail: list[int] = []
        self.bodies: list[dict[str, object]] = []
        api = self

        class Handler(servers.JsonHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.bodies.append(body)
                if self.path != "/api/projects/2/query/" or \
                        self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self.answer(401, {"type": "authentication_error",
                                             "detail": "Invalid personal API key."})
                if api.fail:
                    return self.answer(api.fail.pop(0), {"detail": "busy"})
                query = body["query"]
                limit, offset = map(int, re.search(r"LIMIT (\d+) OFFSET (\d+)",
                                                   query["query"]).groups())
                low = datetime.fromisoformat(query["values"]["start"] + "+00:00")
                high = datetime.fromisoformat(query["values"]["end"] + "+00:00")
                chosen = sorted((e for e in api.events
                                 if low <= datetime.fromisoformat(e["timestamp"]) < high),
                                key=lambda e: (e["timestamp"], e["uuid"]))
                page = chosen[offset:offset + limit]
                rows = [[e["uuid"], e["event"], e["distinct_id"], e["timestamp"],
                         e["properties"].get("$session_id"), e["properties"].get("$current_url"),
                         e["properties"].get("$device_type"),
                         e["properties"].get("$anon_distinct_id"), e["properties"].get("alias")]
                        for e in page]
                return self.answer(200, {"columns": api.columns, "results": rows,
                                         "hasMore": offset + limit < len(chosen),
                                         "limit": limit, "offset": offset})

        super().__init__(Handler)


@pytest.fixture(name="query_api")
def fixture_query_api(local_http: Callable[..., Any]) -> _QueryApi:
    """A local PostHog Query API serving the fixture's nine events (stopped after the test)."""
    api: _QueryApi = local_http(_QueryApi)
    return api


def test_collector_stores_what_the_export_holds(query_api: _QueryApi, tmp_path: Path) -> None:
    """Pages of 4 over two days store exactly the rows the JSON Lines export loads; a second run
    resumes after the last day and stores nothing again."""
    from mysetlist_slo.collect import collect_posthog

    db = tmp_path / "c.duckdb"
    start, end = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 11, tzinfo=UTC)
    results = collect_posthog(db, query_api.url, "2", KEY, start=start, end=end, page_size=4,
                              backoff_s=0.01)
    # day 1: 5 events (pages 4 + 1), day 2: 4 events (pages 4 + 0)
    assert [r.loaded for r in results] == [4, 1, 4, 0]
    con = open_store(db)
    collected = _rows(con)
    con.close()
    reference = open_store(tmp_path / "f.duckdb")
    ingest_file(reference, EXAMPLES / "events.jsonl")
    assert collected == _rows(reference)
    reference.close()
    asked = len(query_api.bodies)
    assert collect_posthog(db, query_api.url, "2", KEY, start=start, end=end, page_size=4) == []
    assert len(query_api.bodies) == asked
    query = query_api.bodies[0]["query"]
    assert query["kind"] == "HogQLQuery" and query["values"]["start"].startswith("2026-11-09")


def test_collector_key_never_shown(query_api: _QueryApi, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The key comes from the environment, is sent as a bearer token, and appears neither in
    the output, nor in an error, nor anywhere in the store; a wrong key is one error line."""
    from mysetlist_slo.cli import main

    db = tmp_path / "c.duckdb"
    monkeypatch.setenv("MYSETLIST_SLO_POSTHOG_API_KEY", KEY)
    code = main(["collect", "posthog", "--db", str(db), "--url", query_api.url, "--project",
                 "2", "--start", "2026-11-09T00:00:00Z", "--end", "2026-11-11T00:00:00Z"])
    out = capsys.readouterr()
    assert code == 0 and "9 events stored" in out.err
    monkeypatch.setenv("MYSETLIST_SLO_POSTHOG_API_KEY", "phx_wrong_" + KEY)
    code = main(["collect", "posthog", "--db", str(db), "--url", query_api.url, "--project",
                 "2", "--start", "2026-11-12T00:00:00Z", "--end", "2026-11-13T00:00:00Z"])
    failed = capsys.readouterr()
    assert code == 1 and "Invalid personal API key" in failed.err
    assert KEY not in out.out + out.err + failed.out + failed.err
    assert KEY.encode() not in db.read_bytes()


def test_collector_retries_then_fails_cleanly(query_api: _QueryApi, tmp_path: Path) -> None:
    """429 and 5xx answers are retried; past the retries a CollectError says so, nothing of the
    failed range is stored."""
    from mysetlist_slo.collect import collect_posthog
    from mysetlist_slo.errors import CollectError

    db = tmp_path / "c.duckdb"
    start, end = datetime(2026, 11, 9, tzinfo=UTC), datetime(2026, 11, 10, tzinfo=UTC)
    query_api.fail = [429, 503]
    results = collect_posthog(db, query_api.url, "2", KEY, start=start, end=end,
                              backoff_s=0.01)
    assert sum(r.loaded for r in results) == 5
    query_api.fail = [502] * 3
    with pytest.raises(CollectError, match="after 3 attempts: HTTP 502"):
        collect_posthog(tmp_path / "d.duckdb", query_api.url, "2", KEY, start=start, end=end,
                        retries=3, backoff_s=0.01)


# --- the demo's planted peak, the reports --------------------------------------------------


def _demo_events(demo) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    """The demo's PostHog events read with plain json and pandas (no package code)."""
    path = next(f for f in demo.files if f.endswith("posthog-events.jsonl"))
    records = [json.loads(line) for line in Path(path).read_text().splitlines()]
    return pd.DataFrame({
        "ts": pd.to_datetime([r["timestamp"] for r in records], utc=True),
        "event": [r["event"] for r in records],
        "distinct_id": [r["distinct_id"] for r in records],
        "session": [r["properties"].get("$session_id") for r in records],
        "link": [r["properties"].get("$anon_distinct_id") for r in records]})


def test_demo_peak_found(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """The weekly section finds the planted peak: about 6,000 concurrent users in the planted
    window, the same number brute force over the demo file counts, below the 10,000 target."""
    from mysetlist_slo import active_users_report, load_config

    planted = demo.event("concurrency_peak")
    end = demo.end
    start = end - timedelta(days=7)
    report = active_users_report(demo_con, load_config(), start, end)
    assert report.peak_window_start == planted.start
    assert 6_000 <= report.peak_concurrent_users < 6_100
    events = _demo_events(demo)
    events["session"] = events["session"].fillna("distinct_id:" + events["distinct_id"])
    spans = events[events["ts"] < end].groupby("session")["ts"].agg(["min", "max"])
    window = pd.Timestamp(planted.start)
    close = window + pd.Timedelta(minutes=5)
    assert report.peak_concurrent_users == int(((spans["min"] < close)
                                                & (spans["max"] >= window)).sum())
    assert report.status == "ok" and report.target_concurrent_users == 10_000
    assert any("Peak 6,0" in line and "of the plan's 10,000" in line for line in report.lines())


def test_demo_active_users_headline(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """The first screen's active users of each week equal brute force (persons merged by the
    demo's $identify events); the week with the peak has all 6,000 fans, about two thirds more
    than the week before (not forty-fold: the fans visit in ordinary weeks too)."""
    from mysetlist_slo import load_config
    from mysetlist_slo.report.overview import week_over_week

    end = demo.end
    start = end - timedelta(days=7)
    now, before = week_over_week(demo_con, load_config(), start, end)
    events = _demo_events(demo)
    persons = _persons_brute(events)
    events["person"] = events["distinct_id"].map(persons)
    for (low, high), got in (((start, end), now.active_users),
                             ((start - timedelta(days=7), start), before.active_users)):
        chosen = events[(events["ts"] >= low) & (events["ts"] < high)]
        assert got == chosen["person"].nunique()
    # Every fan comes to the peak, about 60 % of them in an ordinary week: up about 1/0.6.
    assert now.active_users >= 6_000
    assert 1.4 < now.active_users / before.active_users < 1.9


def test_weekly_summary_carries_active_users(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """summary.json validates with its active_users key; the digest has one line for it."""
    from mysetlist_slo import load_config
    from mysetlist_slo.report.summaries import summary_document, summary_markdown, validate
    from mysetlist_slo.report.weekly import weekly_summary

    config = load_config()
    summary = weekly_summary(demo_con, config, now=demo.end)
    document = summary_document("weekly", demo_con, config, summary)
    validate(document)
    users = document["active_users"]
    assert users["peak_concurrent_users"] >= 6_000
    assert users["active_users"] == document["traffic"]["active_users"]
    assert users["peak_window_start"] == demo.event("concurrency_peak").start.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    digest = summary_markdown(document)
    assert f"- active users: {users['active_users']:,} (" in digest
    assert "concurrent of the plan's 10,000" in digest


def test_reports_without_posthog_say_so_in_one_line(store: duckdb.DuckDBPyConnection) -> None:
    """Without PostHog data the section is one line, the summary says no_data, the digest one
    line, and the first screen's headline stays 'not measured'."""
    from mysetlist_slo import active_users_report, load_config
    from mysetlist_slo.report.overview import headline
    from mysetlist_slo.report.summaries import _users_line

    config = load_config()
    start, end = datetime(2026, 11, 16, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)
    report = active_users_report(store, config, start, end)
    assert report.status == "no_data" and len(report.lines()) == 1
    assert report.lines()[0].startswith("No PostHog events in the period")
    assert report.to_dict()["active_users"] is None
    assert _users_line(report.to_dict()) == "- active users: not measured (no PostHog events)"
    assert headline(store, config, start, end).active_users is None


def test_capacity_uses_measured_behaviour(demo, demo_con) -> None:  # type: ignore[no-untyped-def]
    """The capacity plan shows the users scenario at the measured rate beside the assumed one,
    and the measured rate is the brute-force median of requests / (users x 300 s)."""
    from mysetlist_slo import load_config
    from mysetlist_slo.capacity import capacity_plan
    from mysetlist_slo.report.summaries import capacity_document, validate

    config = load_config()
    plan = capacity_plan(demo_con, config, demo.end, history_days=14)
    assert plan.user_behaviour is not None and plan.measured_users_rps is not None
    assert plan.measured_users_rps == pytest.approx(10_000 * plan.user_behaviour.rps_per_user)
    assert "Measured (PostHog sessions x requests" in plan.verdict
    assert f"(assumed: {config.capacity.think_time_s:g} s)" in plan.verdict
    document = capacity_document(plan, config, "2026-W47", demo.end - timedelta(days=7),
                                 demo.end)
    validate(document)
    measured = document["user_behaviour"]
    assert measured["concurrent_users_rps_assumed"] == pytest.approx(
        10_000 / config.capacity.think_time_s, rel=1e-3)
    # brute force: requests per 5-minute window from the stored per-minute counts
    start = demo.end - timedelta(days=14)
    requests = demo_con.execute(
        "SELECT minute, sum(requests) FROM request_counts WHERE minute >= ? AND minute < ? "
        "GROUP BY minute", [start, demo.end]).df().set_index("minute").iloc[:, 0]
    per_window = requests.groupby(requests.index.floor("5min")).sum()
    windows = concurrent_users(demo_con, start, demo.end).set_index("window_start")
    both = windows.join(per_window.rename("requests"), how="inner")
    both = both[both["requests"] > 0]
    rates = both["requests"] / (both["concurrent_users"] * 300)
    assert plan.user_behaviour.rps_per_user == pytest.approx(float(rates.median()), rel=1e-12)
