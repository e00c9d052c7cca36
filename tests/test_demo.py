"""The demo data set: deterministic, in real formats, with the incidents it promises."""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_END, timed_line

from mysetlist_slo import DemoManifest, generate_demo, ingest_file, latency_percentiles, open_store
from mysetlist_slo.cli import main


def digest(files: list[str]) -> list[str]:
    """Return a digest per file; a folder (a Next.js build) digests its files in order."""
    def one(path: Path) -> str:
        if path.is_dir():
            parts = sorted(p for p in path.rglob("*") if p.is_file())
            return hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return [one(Path(f)) for f in files]


def test_same_seed_same_bytes(demo: DemoManifest, tmp_path: Path) -> None:
    """Generating again with the same seed and end writes byte-identical files."""
    again = generate_demo(tmp_path, end=DEMO_END, weeks=2, mean_rps=0.1)
    assert digest(again.files) == digest(demo.files)
    other = generate_demo(tmp_path / "other", end=DEMO_END, weeks=2, mean_rps=0.1, seed=1)
    assert digest(other.files) != digest(demo.files)


def test_logrotate_layout(demo: DemoManifest) -> None:
    """One file per day: access.log, access.log.1, then gzip-compressed older ones."""
    names = [Path(f).name for f in demo.files]
    assert names[:3] == ["access.log", "access.log.1", "access.log.2.gz"]
    assert len([n for n in names if n.startswith("access.log")]) == 14
    assert {"probes.csv", "vitals.jsonl"} <= set(names)
    lighthouse = [f for f in demo.files if "/lighthouse/" in f]
    assert len(lighthouse) == 2 * 3  # Lighthouse: 3 pages a week
    assert Path(demo.files[2]).read_bytes()[:2] == b"\x1f\x8b"


def test_every_line_loads(demo: DemoManifest, demo_store_path: Path) -> None:
    """The demo goes through the real ingest path with no rejects."""
    con = open_store(demo_store_path, read_only=True)
    loaded, rejected = con.execute("SELECT sum(loaded), sum(rejected) FROM ingests "
                                   "WHERE kind = 'nginx'").fetchall()[0]
    con.close()
    assert (loaded, rejected) == (demo.requests, 0)


def test_outage_is_seven_minutes_of_502(demo: DemoManifest, demo_store_path: Path) -> None:
    """Every minute of the planted outage, and no other, is all 502 for app routes."""
    outage = demo.event("outage")
    assert outage.end - outage.start == timedelta(minutes=7)
    con = open_store(demo_store_path, read_only=True)
    rows = con.execute("""
        SELECT minute, sum(requests) FILTER (WHERE status = 502) AS failed,
               sum(requests) FILTER (WHERE route NOT IN ('/_next/static/[...path]')
                                     AND route NOT LIKE '/%.php' ) AS app
        FROM request_counts WHERE minute >= ? AND minute < ?
        GROUP BY 1 ORDER BY 1""", [outage.start - timedelta(hours=1),
                                    outage.end + timedelta(hours=1)]).fetchall()
    con.close()
    failing = [m for m, failed, _ in rows if failed]
    assert failing and min(failing) >= outage.start and max(failing) < outage.end
    assert len(failing) >= 6  # at 0.1 req/s a minute of the outage may have no request


def test_deploy_spike_fails_api_requests(demo: DemoManifest, demo_store_path: Path) -> None:
    """During the deploy spike about 8 % of /api/* requests fail; around it almost none do."""
    spike = demo.event("deploy_error_spike")
    con = open_store(demo_store_path, read_only=True)
    query = """SELECT coalesce(sum(requests) FILTER (WHERE status = 500), 0) / sum(requests)
               FROM request_counts WHERE route LIKE '/api/%' AND minute >= ? AND minute < ?"""
    during = con.execute(query, [spike.start, spike.end]).fetchall()[0][0]
    before = con.execute(query, [spike.start - timedelta(days=3), spike.start]).fetchall()[0][0]
    con.close()
    assert 0.02 < during < 0.2
    assert before < 0.002


def test_latency_regression_on_one_route(demo: DemoManifest, demo_store_path: Path) -> None:
    """/show/[id]'s median is about 2.2x higher after the regression; other routes unchanged."""
    regression = demo.event("latency_regression")
    con = open_store(demo_store_path, read_only=True)

    def median(route: str, start, end) -> float:
        frame = latency_percentiles(con, start, end, (0.5,), routes=[route])
        return float(frame["latency_ms"].iloc[0])

    week = timedelta(days=6)
    show = (median("/show/[id]", regression.start, regression.end)
            / median("/show/[id]", regression.start - week, regression.start))
    artist = (median("/artist/[slug]", regression.start, regression.end)
              / median("/artist/[slug]", regression.start - week, regression.start))
    con.close()
    assert 1.9 < show < 2.5
    assert 0.9 < artist < 1.1


def test_daily_cycle_and_growth(demo: DemoManifest, demo_store_path: Path) -> None:
    """Evening traffic is well above the early-morning low, and the second week is busier."""
    con = open_store(demo_store_path, read_only=True)
    by_hour = dict(con.execute("""
        SELECT hour(minute AT TIME ZONE 'America/New_York'), sum(requests)
        FROM request_counts GROUP BY 1""").fetchall())
    weeks = [r[0] for r in con.execute("""
        SELECT sum(requests) FROM request_counts
        GROUP BY minute < ? ORDER BY 1""", [DEMO_END - timedelta(days=7)]).fetchall()]
    con.close()
    assert by_hour[20] > 3 * by_hour[4]
    assert np.diff(sorted(weeks))[0] > 0


def test_demo_command_writes_and_loads(tmp_path: Path, capsys) -> None:
    """`mysetlist-slo demo` writes the logs and loads them; status then reports on them."""
    db = tmp_path / "m.duckdb"
    code = main(["demo", "--out", str(tmp_path / "demo"), "--db", str(db), "--weeks", "1",
                 "--rate", "0.02", "--end", DEMO_END.isoformat()])
    assert code == 0
    assert main(["status", "--db", str(db), "--at", DEMO_END.isoformat()]) == 0
    out = capsys.readouterr().out
    for kind in ("nginx", "probes", "vitals", "lighthouse", "prometheus", "pgbouncer-stats"):
        assert kind in out
    assert "availability" in out




def test_a_later_demo_replaces_the_earlier_one(tmp_path: Path, capsys) -> None:
    """Run next week (a demo a day later here), the demo's requests for the days both cover are
    other draws: the store then holds exactly the requests of the logs now in the folder
    (parsed by a regex in pandas), not both demos; a log loaded from elsewhere stays, and the
    same demo run again withdraws and loads nothing."""
    import duckdb

    db, out = tmp_path / "m.duckdb", tmp_path / "demo"
    own = tmp_path / "own.log"  # the user's own log, not the demo's
    own.write_text(timed_line() + "\n")
    assert main(["ingest", str(own), "--db", str(db)]) == 0
    args = ["demo", "--out", str(out), "--db", str(db), "--weeks", "1", "--rate", "0.02"]
    assert main([*args, "--end", (DEMO_END - timedelta(days=1)).isoformat()]) == 0
    capsys.readouterr()
    assert main([*args, "--end", DEMO_END.isoformat()]) == 0
    said = capsys.readouterr().err
    logs = sorted(str(p) for p in out.rglob("access.log*"))
    expected = len(_raw_log(logs)) + 1  # and the one request of own.log
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT sum(requests) FROM request_counts").fetchone()[0] == expected
    assert "loads of an earlier demo" in said
    assert main([*args, "--end", DEMO_END.isoformat()]) == 0
    assert "loads of an earlier demo" not in capsys.readouterr().err
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT sum(requests) FROM request_counts").fetchone()[0] == expected


_LINE = re.compile(r'\[(?P<when>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d+) '
                   r'\d+ "[^"]*" "[^"]*" (?P<seconds>\S+) \S+ (?P<cache>\S+)$')


def _raw_log(files: list[str]) -> pd.DataFrame:
    """Return every request of the demo's nginx logs, parsed by a regex in plain pandas."""
    lines: list[str] = []
    for name in files:
        if Path(name).name.startswith("access.log"):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(name, "rt", encoding="utf-8") as handle:
                lines += handle.read().splitlines()
    frame = pd.Series(lines).str.extract(_LINE)
    assert frame.notna().all().all()
    frame["ts"] = pd.to_datetime(frame["when"], format="%d/%b/%Y:%H:%M:%S %z", utc=True)
    frame["status"] = frame["status"].astype(int)
    frame["ms"] = frame["seconds"].astype(float) * 1000
    return frame


def test_streamed_demo_plants_everything(tmp_path: Path, monkeypatch) -> None:
    """Above STREAM_ABOVE the logs are written a chunk at a time: the same seed gives the same
    bytes, every request loads, the logs hold the rate's requests per minute and, brute force
    over the raw lines, every planted incident (outage, spike, regression, API slowdown to
    about 15 % budget left, cache-miss storm), Sentry's bad release and PostHog's peak."""
    import mysetlist_slo.demo as demo_module

    monkeypatch.setattr(demo_module, "STREAM_ABOVE", 0)
    monkeypatch.setattr(demo_module, "_CHUNK_REQUESTS", 5_000)  # several chunks a day
    first = generate_demo(tmp_path / "a", end=DEMO_END, weeks=2, mean_rps=0.1)
    again = generate_demo(tmp_path / "b", end=DEMO_END, weeks=2, mean_rps=0.1)
    assert digest(first.files) == digest(again.files)
    names = [Path(f).name for f in first.files]
    assert names[:3] == ["access.log", "access.log.1", "access.log.2.gz"]
    assert len([n for n in names if n.startswith("access.log")]) == 14

    log = _raw_log(first.files)
    assert len(log) == first.requests
    assert abs(len(log) / (14 * 24 * 60) / (0.1 * 60) - 1) < 0.02  # requests per minute
    con = open_store(tmp_path / "s.duckdb")
    logs = [f for f in first.files if Path(f).name.startswith("access.log")]
    assert sum(ingest_file(con, f).loaded for f in logs) == first.requests
    con.close()

    def during(name: str) -> pd.Series:
        event = first.event(name)
        return (log["ts"] >= event.start) & (log["ts"] < event.end)

    static = log["path"].str.startswith("/_next/static/")
    app = ~static & ~log["status"].eq(404)
    api = log["path"].str.startswith("/api/")
    outage = log[log["status"] == 502]
    assert during("outage")[outage.index].all() and outage["ts"].dt.floor("min").nunique() >= 6
    assert (log.loc[during("outage") & app, "status"] == 502).all()
    spike = first.event("deploy_error_spike")
    before = (log["ts"] >= spike.start - timedelta(days=3)) & (log["ts"] < spike.start)
    assert 0.02 < (log.loc[during("deploy_error_spike") & api, "status"] == 500).mean() < 0.2
    assert (log.loc[before & api, "status"] == 500).mean() < 0.002
    show = log["path"].str.startswith("/show/")
    regression = first.event("latency_regression")
    after = log.loc[show & during("latency_regression"), "ms"].median()
    earlier = log.loc[show & (log["ts"] < regression.start), "ms"].median()
    assert 1.9 < after / earlier < 2.5
    # api-latency: 99 % of /api/* under 200 ms over 28 days (all of this demo's two weeks).
    left = 1 - (log.loc[api, "ms"] >= 200).mean() / 0.01
    assert abs(left - demo_module.SLOWDOWN_LEFT) < 0.05
    misses = log.loc[static, "cache"].eq("MISS")
    assert misses[during("cache_miss_storm")[static]].mean() > 0.7
    assert misses[~during("cache_miss_storm")[static]].mean() < 0.03

    sentry = pd.DataFrame(json.loads((tmp_path / "a/sentry/events.json").read_text())["data"])
    sentry["ts"] = pd.to_datetime(sentry["timestamp"], utc=True)
    bad = first.event("sentry_bad_release")
    name = bad.detail.split()[1]
    in_bad = (sentry["ts"] >= bad.start) & (sentry["ts"] < bad.end)
    mine = sentry[in_bad & sentry["transaction"].str.startswith("GET /api/")]
    assert set(mine["release"]) == {name}
    api_in_bad = (api & (log["ts"] >= bad.start) & (log["ts"] < bad.end)).sum()
    assert len(mine) / api_in_bad > 10 * 0.0004  # the bad release's error rate: twentyfold
    posthog = (tmp_path / "a/posthog-events.jsonl").read_text().splitlines()
    peak = {json.loads(line)["properties"]["$session_id"] for line in posthog
            if '"peak-' in line}
    assert len(peak) == demo_module.PEAK_SESSIONS
    assert (tmp_path / "a/vitals.jsonl").stat().st_size > 0


@pytest.mark.parametrize(("argv", "says"), [
    (["--rate", "-1"], "--rate"), (["--rate", "0"], "--rate"), (["--rate", "nan"], "--rate"),
    (["--rate", "inf"], "--rate"), (["--weeks", "0"], "--weeks"), (["--weeks", "-2"], "--weeks"),
])
def test_demo_refuses_rates_and_weeks_that_make_no_traffic(
        argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A rate that is not a positive number, or weeks below 1: a usage error naming the option
    (exit 2), no traceback, nothing written; the library raises ValueError."""
    with pytest.raises(SystemExit) as exited:
        main(["demo", "--out", str(tmp_path / "d"), "--no-ingest", *argv])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert says in error and "Traceback" not in error, error
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match=r"mean_rps|weeks"):
        generate_demo(tmp_path / "d", end=DEMO_END, weeks=0 if says == "--weeks" else 1,
                      mean_rps=float(argv[1]) if says == "--rate" else 0.3)
    assert not (tmp_path / "d").exists()


def test_an_end_within_a_minute_is_taken_to_that_minute(tmp_path: Path) -> None:
    """`demo --end 2026-11-23T00:00:30Z`: the demo ends at 00:00 (its minutes are whole), every
    request before it and after its start; it used to stop with a numpy traceback."""
    made = generate_demo(tmp_path / "d", end=DEMO_END + timedelta(seconds=30), weeks=1,
                         mean_rps=0.02)
    assert (made.start, made.end) == (DEMO_END - timedelta(weeks=1), DEMO_END)
    log = _raw_log(made.files)
    assert len(log) == made.requests
    assert log["ts"].min() >= made.start and log["ts"].max() < made.end
