"""Backups (RPO), recovery drills (RTO), regions, and the "Scalability and recovery" section."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mysetlist_slo import (
    DemoManifest,
    IngestError,
    ingest_file,
    load_config,
    render_markdown,
    scalability_recovery,
)
from mysetlist_slo.resilience import (
    backup_growth,
    backup_jobs,
    backup_rpo,
    drill_results,
    drills_due,
    region_availability,
    region_episodes,
    region_traffic,
    traffic_failovers,
)

AT = datetime(2026, 11, 23, tzinfo=UTC)


def demo_file(demo: DemoManifest, name: str) -> Path:
    return Path(next(f for f in demo.files if f.endswith(name)))


def cron_frame(path: Path) -> pd.DataFrame:
    """Read the demo's cron log independently: start time, bytes."""
    rows = [(pd.Timestamp(line.split()[0]), int(re.search(r"bytes=(\d+)", line)[1]))
            for line in path.read_text().splitlines()]
    return pd.DataFrame(rows, columns=["started", "bytes"])


def test_demo_missed_daily_backup(demo: DemoManifest, demo_con) -> None:
    """The planted missed pg_dump makes the database RPO 48 h, over the daily schedule's 30 h,
    ending at the next dump; the gap agrees with the cron log read by hand."""
    missed = demo.event("missed_backup")
    config = load_config()
    rpo = backup_rpo(demo_con, config, demo.end).set_index("kind")
    log = cron_frame(demo_file(demo, "backup-cron.log"))
    gaps = log["started"].diff()
    assert rpo.loc["database", "longest_gap"] == gaps.max() == timedelta(hours=48)
    assert rpo.loc["database", "longest_gap_end"] == missed.end == log["started"][gaps.idxmax()]
    assert not rpo.loc["database", "rpo_ok"] and rpo.loc["database", "status"] == "late"
    assert rpo.loc["database", "exposure"] == demo.end - log["started"].max()
    assert rpo.loc["system", "status"] == "ok" and rpo.loc["archive", "status"] == "ok"


def test_demo_shrinking_dump(demo: DemoManifest, demo_con) -> None:
    """Exactly the planted dump is flagged as shrinking, by the share the log's sizes give."""
    shrunk = demo.event("shrinking_backup")
    jobs = backup_jobs(demo_con, load_config(), demo.end)
    flagged = jobs[jobs["flag"].notna()]
    assert list(flagged["flag"]) == ["shrinking"]
    assert flagged["started"].iloc[0] == shrunk.start
    log = cron_frame(demo_file(demo, "backup-cron.log"))
    at = log.index[log["started"] == shrunk.start][0]
    assert flagged["change_share"].iloc[0] == pytest.approx(
        log["bytes"][at] / log["bytes"][at - 1] - 1)


def test_demo_slow_restore_and_overdue_failover(demo: DemoManifest, demo_con) -> None:
    """The 7-minute restore does not pass (target 5 min); the weekly failover drill is overdue
    by the time since its last run minus 7 days, as the drill file says."""
    slow = demo.event("slow_restore")
    config = load_config()
    results = drill_results(demo_con, config, demo.end)
    restore = results[results["started"] == slow.start].iloc[0]
    assert restore["time_to_recover"] == timedelta(minutes=7)
    assert not restore["passed"] and "over the 5.0 min target" in restore["reason"]
    records = [json.loads(line) for line in
               demo_file(demo, "drills.jsonl").read_text().splitlines()]
    last = max(datetime.fromisoformat(r["started"]) for r in records
               if r["drill"] == "application_failover")
    due = drills_due(demo_con, config, demo.end).set_index("drill")
    assert due.loc["application_failover", "overdue"]
    assert due.loc["application_failover", "overdue_by"] == demo.end - last - timedelta(days=7)
    assert due.loc["database_restore", "status"] == "last drill failed"
    assert due.loc["full_recovery", "status"] == "ok"


def test_drill_without_verification_does_not_pass(store, tmp_path) -> None:
    """A fast, successful restore whose data was not verified (false or absent) fails."""
    lines = [{"drill": "database_restore", "started": "2026-11-20T10:00:00Z",
              "recovered": "2026-11-20T10:02:00Z", "status": "success", "data_verified": v}
             for v in (True, False, None)]
    for i, line in enumerate(lines):
        line["started"] = line["started"].replace("10:00", f"1{i}:00")
        line["recovered"] = line["recovered"].replace("10:02", f"1{i}:02")
    (tmp_path / "drills.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert ingest_file(store, tmp_path / "drills.jsonl").kind == "drills"
    results = drill_results(store, load_config(), AT)
    assert list(results["passed"]) == [True, False, False]
    assert list(results["reason"][1:]) == ["data not verified"] * 2


def test_exposure_failed_and_empty(store, tmp_path) -> None:
    """Last good dump 31 h ago is exposure over the daily 30 h; a failed job and a 0-byte
    dump are flagged and do not count as backups."""
    good = AT - timedelta(hours=31)
    jobs = [{"job": "db", "kind": "database", "started": (good - timedelta(days=1)).isoformat(),
             "finished": (good - timedelta(days=1, minutes=-3)).isoformat(), "status": "success",
             "bytes": 1000, "destination": "/b/1.sql"},
            {"job": "db", "kind": "database", "started": good.isoformat(),
             "finished": (good + timedelta(minutes=3)).isoformat(), "status": "success",
             "bytes": 1010, "destination": "/b/2.sql"},
            {"job": "db", "kind": "database", "started": (good + timedelta(days=1)).isoformat(),
             "finished": None, "status": "failed", "bytes": None, "destination": "/b/3.sql"},
            {"job": "db", "kind": "database", "started": (good + timedelta(hours=30)).isoformat(),
             "finished": (good + timedelta(hours=30, minutes=1)).isoformat(),
             "status": "success", "bytes": 0, "destination": "/b/4.sql"}]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
    assert ingest_file(store, tmp_path / "jobs.jsonl").kind == "backups"
    rpo = backup_rpo(store, load_config(), AT).set_index("kind")
    assert rpo.loc["database", "exposure"] == timedelta(hours=31)
    assert not rpo.loc["database", "exposure_ok"]
    assert "last good backup 31 h ago" in rpo.loc["database", "detail"]
    assert (rpo.loc["database", "failed"], rpo.loc["database", "empty"]) == (1, 1)
    assert rpo.loc["system", "status"] == "no data"


def test_bad_backup_lines_are_located(store, tmp_path) -> None:
    """A job of an unknown kind and a cron line with an unknown command are refused naming
    line and field; nothing is stored."""
    (tmp_path / "jobs.jsonl").write_text(
        '{"job": "a", "kind": "database", "started": "2026-11-20T02:00:00Z", '
        '"finished": "2026-11-20T02:03:00Z", "status": "success", "bytes": 5}\n'
        '{"job": "b", "kind": "tape", "started": "2026-11-20T02:00:00Z", "status": "ok"}\n'
        '{"job": "c", "kind": "system", "started": "2026-11-20T02:00:00", "status": "ok"}\n')
    with pytest.raises(IngestError) as caught:
        ingest_file(store, tmp_path / "jobs.jsonl")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "kind"), (3, "started")]
    (tmp_path / "cron.log").write_text(
        "2026-11-20T02:00:00Z 2026-11-20T02:03:00Z exit=0 bytes=9 pg_dump db > /b/x.sql\n"
        "2026-11-20T03:00:00Z 2026-11-20T03:01:00Z exit=0 rm -rf /backups\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, tmp_path / "cron.log")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "command")]
    assert store.execute("SELECT count(*) FROM backups").fetchall() == [(0,)]


def test_cron_exit_lines(store, tmp_path) -> None:
    """The plan's three cron commands become database, system and archive jobs; a non-zero
    exit is a failed job."""
    (tmp_path / "cron.log").write_text(
        "2026-11-20T02:00:00Z 2026-11-20T02:03:00Z exit=0 bytes=900 "
        "pg_dump $DATABASE_URL > /backups/backup_20261120.sql\n"
        "2026-11-22T03:00:00Z 2026-11-22T03:40:00Z exit=2 "
        "tar -czf /backups/system_backup_20261122.tar.gz /app /etc\n"
        "2026-11-22T04:00:00Z 2026-11-22T04:30:00Z exit=0 bytes=5000 "
        "aws s3 sync /backups s3://mysetlist-backups/\n")
    assert ingest_file(store, tmp_path / "cron.log").kind == "backup-cron"
    rows = store.execute("SELECT kind, status, destination FROM backups ORDER BY line").fetchall()
    assert rows == [("database", "success", "/backups/backup_20261120.sql"),
                    ("system", "failed", "/backups/system_backup_20261122.tar.gz"),
                    ("archive", "success", "s3://mysetlist-backups/")]


def test_growth_of_a_linear_series(store, tmp_path) -> None:
    """Dumps growing exactly 10 MB a day forecast 10 MB/day, and 90 days ahead the last size
    plus 90 days of growth; the storage is the sum of the 90 daily dumps to come."""
    start = AT - timedelta(days=20)
    jobs = [{"job": "db", "kind": "database", "started": (start + timedelta(days=d)).isoformat(),
             "finished": (start + timedelta(days=d, minutes=2)).isoformat(),
             "status": "success", "bytes": 1_000_000_000 + 10_000_000 * d} for d in range(20)]
    (tmp_path / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in jobs))
    ingest_file(store, tmp_path / "jobs.jsonl")
    growth = backup_growth(store, load_config(), AT).set_index("kind")
    assert growth.loc["database", "bytes_per_day"] == pytest.approx(10_000_000)
    at_now = 1_000_000_000 + 10_000_000 * 20
    assert growth.loc["database", "forecast_bytes"] == pytest.approx(at_now + 90 * 10_000_000)
    assert growth.loc["database", "storage_bytes"] == pytest.approx(
        sum(at_now + 10_000_000 * d for d in range(1, 91)))


def test_demo_regions(demo: DemoManifest, demo_con) -> None:
    """Per region, availability is the share of good checks of its locations (pandas over the
    probes file), and the planted 7-minute outage is an episode over the 5-minute target."""
    config = load_config()
    start = demo.end - timedelta(days=7)
    probes = pd.read_csv(demo_file(demo, "probes.csv"), parse_dates=["timestamp"])
    probes = probes[probes["timestamp"] >= pd.Timestamp(start)]
    probes["region"] = probes["location"].map(config.regions.probe_locations)
    regions = region_availability(demo_con, config, start, demo.end).set_index("region")
    for region, group in probes.groupby("region"):
        assert regions.loc[region, "availability"] == pytest.approx(100 * group["ok"].mean())
        assert regions.loc[region, "checks"] == len(group)
    outage = demo.event("outage")
    episodes = region_episodes(demo_con, config, start, demo.end)
    planted = episodes[(episodes["start"] >= outage.start - timedelta(minutes=1))
                       & (episodes["start"] < outage.end)]
    assert set(planted["region"]) == set(config.regions.probe_locations.values())
    for row in planted.itertuples():
        assert timedelta(minutes=6) <= row.time_to_recover <= timedelta(minutes=8)
        assert not row.within_target
    # A few checks a minute: one failed check already takes a 5-minute window below 99.9 %.
    assert regions["below_threshold"].all()
    # Counted in words that agree with the count ("1 episode", "4 episodes").
    for region, row in regions.iterrows():
        count = int((episodes["region"] == region).sum())
        assert f" {count} episode{'' if count == 1 else 's'} below " in row["detail"]


def test_section_without_data(store) -> None:
    """An empty store gives one 'no data' line per part, and the status says so."""
    section = scalability_recovery(store, load_config(), AT - timedelta(days=7), AT)
    assert section.status == "no data"
    for lines in section.parts.values():
        assert len(lines) == 1 and lines[0].status == "no data" and lines[0].ok is None
    text = render_markdown(section)
    assert "no load test on record" in text and "no backup records" in text
    assert "- — no data — no backup records" in text  # no topic repeating the part's name
    assert json.loads(json.dumps(section.to_dict()))["status"] == "no data"


def test_section_on_demo(demo: DemoManifest, demo_con) -> None:
    """On the demo the section needs attention: the k6 run did not reach the target load, the
    database backup is late, the failover drill overdue."""
    section = scalability_recovery(demo_con, load_config(), demo.end - timedelta(days=7),
                                   demo.end)
    assert section.status == "attention"
    assert section.load_test[0].status == "target load not reached"
    # The line says what the run reached; the status stands beside it, once.
    assert section.load_test[0].text.startswith("420 req/s sustained of 1,000")
    assert render_markdown(section).count("target load not reached") == 1
    statuses = {line.topic: line.status for line in section.backups + section.drills}
    assert statuses["database"] == "late"
    assert statuses["application_failover"] == "overdue"
    summary = section.to_dict()
    assert summary["backups"][0]["topic"] == "database"
    # A line's text stands beside its topic: it does not name the backup, drill or region
    # again ("database_restore: overdue — database_restore (monthly): ...").
    lines = section.backups + section.drills + section.regions
    assert {"database", "application_failover"} <= {line.topic for line in lines}
    for line in lines:
        subject = line.topic.removesuffix(" (probes)").removesuffix(" (requests)")
        assert subject not in line.text, line


def test_markdown_escapes_names_from_files(store, tmp_path) -> None:
    """A run named with Markdown and HTML markup is rendered inert."""
    text = (Path(__file__).resolve().parents[1] / "examples" / "loadtests" /
            "k6-smoke.summary.json").read_text()
    path = tmp_path / "<img src=x onerror=alert(1)>[x](javascript:y)*b*.json"
    path.write_text(text)
    ingest_file(store, path)
    rendered = render_markdown(scalability_recovery(store, load_config(), AT, AT))
    assert "<img" not in rendered
    assert not re.search(r"(?<!\\)\]\(", rendered)  # no link: every ] is escaped
    assert r"&lt;img src=x onerror=alert(1)&gt;\[x\](javascript:y)\*b\*" in rendered


def write_regional_export(path: Path) -> pd.DataFrame:
    """Write an hour of requests from two regions (30 a minute each): us-east-1 answers 503
    for minutes 20-22, then its traffic moves to eu-west-1 until minute 40. Return the rows."""
    rng = np.random.default_rng(3)
    start = AT - timedelta(hours=2)
    rows = []
    for minute in range(60):
        for region in ("us-east-1", "eu-west-1"):
            count = 30
            if 23 <= minute < 40:
                count = 0 if region == "us-east-1" else 60
            for k in range(count):
                when = start + timedelta(minutes=minute, seconds=60 * k / count)
                status = 503 if region == "us-east-1" and 20 <= minute < 23 else 200
                rows.append({"timestamp": when.isoformat(), "path": f"/api/shows/{k}",
                             "status": status, "region": region,
                             "duration_ms": round(float(rng.lognormal(np.log(80), 0.5)), 3)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    return frame


def test_region_traffic_against_pandas(store, tmp_path) -> None:
    """Requests naming their region give per-region counts, availability and a p95 within 1 %
    below numpy's nearest-rank p95 of the answered requests."""
    truth = write_regional_export(tmp_path / "regional.jsonl")
    ingest_file(store, tmp_path / "regional.jsonl")
    traffic = region_traffic(store, AT - timedelta(days=1), AT).set_index("region")
    for region, group in truth.groupby("region"):
        answered = group[group["status"] < 500]
        assert traffic.loc[region, "requests"] == len(group)
        assert traffic.loc[region, "errors_5xx"] == (group["status"] >= 500).sum()
        assert traffic.loc[region, "availability"] == pytest.approx(
            100 * len(answered) / len(group))
        exact = np.percentile(answered["duration_ms"], 95, method="inverted_cdf")
        assert 0.99 * exact <= traffic.loc[region, "p95_latency_ms"] <= exact


def test_failover_from_traffic_shift(store, tmp_path) -> None:
    """us-east-1 failing for 3 minutes then drained to eu-west-1 until minute 40 is one
    failover to eu-west-1 from minute 20 to 40; users saw 3 minutes of errors (within 5)."""
    write_regional_export(tmp_path / "regional.jsonl")
    ingest_file(store, tmp_path / "regional.jsonl")
    start = AT - timedelta(hours=2)
    failovers = traffic_failovers(store, load_config(), AT - timedelta(days=1), AT)
    assert len(failovers) == 1
    episode = failovers.iloc[0]
    assert episode["region"] == "us-east-1" and episode["shifted_to"] == "eu-west-1"
    assert episode["start"] == start + timedelta(minutes=20)
    assert episode["end"] == start + timedelta(minutes=40)
    assert episode["time_to_recover"] == timedelta(minutes=3) and episode["within_target"]
    assert episode["share_before"] == pytest.approx(0.5)


def test_region_fields_in_probes_and_nginx(store, tmp_path) -> None:
    """A probe's own region wins over the configured location mapping; nginx's $region lands
    in the regional counts."""
    (tmp_path / "probes.csv").write_text(
        "timestamp,target,location,ok,region\n"
        "2026-11-22T10:00:00Z,https://x/health,us-east,true,us-west-2\n"
        "2026-11-22T10:00:00Z,https://x/health,eu-west,false,\n")
    ingest_file(store, tmp_path / "probes.csv")
    regions = region_availability(store, load_config(), AT - timedelta(days=1), AT)
    assert dict(zip(regions["region"], regions["availability"], strict=True)) == {
        "eu-west-1": 0.0, "us-west-2": 100.0}
    log_format = ('$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                  '$request_time $region')
    (tmp_path / "access.log").write_text(
        '203.0.113.9 [22/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 0.010 eu-west-1\n'
        '203.0.113.9 [22/Nov/2026:10:00:01 +0000] "GET /a HTTP/1.1" 502 5 0.001 eu-west-1\n'
        '203.0.113.9 [22/Nov/2026:10:00:02 +0000] "GET /a HTTP/1.1" 200 5 0.020 -\n')
    ingest_file(store, tmp_path / "access.log", log_format=log_format)
    assert store.execute("SELECT region, status, requests FROM region_counts "
                         "ORDER BY status").fetchall() == [("eu-west-1", 200, 1),
                                                           ("eu-west-1", 502, 1)]


def test_section_regions_from_requests(store, tmp_path) -> None:
    """Requests naming their region give one line per region in the section: the failed-over
    region's availability is under 99.9 %, with its failover and recovery time."""
    write_regional_export(tmp_path / "regional.jsonl")
    ingest_file(store, tmp_path / "regional.jsonl")
    section = scalability_recovery(store, load_config(), AT - timedelta(days=1), AT)
    lines = {line.topic: line for line in section.regions}
    assert lines["us-east-1 (requests)"].status == "below threshold"
    assert "1 failover, slowest recovery 3.0 min" in lines["us-east-1 (requests)"].text
    assert lines["eu-west-1 (requests)"].status == "ok"


GOOD_JOB = ('{"job": "a", "kind": "database", "started": "2026-11-20T02:00:00Z", '
            '"finished": "2026-11-20T02:03:00Z", "status": "success", "bytes": 5}')


@pytest.mark.parametrize(("name", "second", "field"), [
    ("not_utf8", b'{"job": "b", "kind": "database", "status": "ok\xff"}', "(line)"),
    ("too_deep", b"[" * 5000 + b"]" * 5000, "(line)"),
    ("huge_bytes", GOOD_JOB.replace('"bytes": 5', '"bytes": 1e30').encode(), "bytes"),
    ("year_9999", GOOD_JOB.replace("2026-11-20T02:00", "9999-11-20T02:00").encode(), "started"),
    ("finished_first", GOOD_JOB.replace("02:03:00", "01:59:00").encode(), "finished"),
    ("unknown_status", GOOD_JOB.replace('"success"', '"running"').encode(), "status"),
    ("no_bytes", GOOD_JOB.replace(', "bytes": 5', "").encode(), "bytes"),
])
def test_bad_backup_records(store, tmp_path, name: str, second: bytes, field: str) -> None:
    """Each bad second record of a job log is refused naming line 2 and the field; nothing is
    stored, and no untyped exception escapes."""
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(GOOD_JOB.encode() + b"\n" + second + b"\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, kind="backups")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, field)]
    assert store.execute("SELECT count(*) FROM backups").fetchall() == [(0,)]


@pytest.mark.parametrize(("record", "field"), [
    ({"drill": "chaos_monkey"}, "drill"),
    ({"recovered": "2026-11-20T09:59:00Z"}, "recovered"),
    ({"data_verified": "yes"}, "data_verified"),
    ({"started": "2026-11-20 10:00:00"}, "started"),
])
def test_bad_drill_records(store, tmp_path, record: dict[str, object], field: str) -> None:
    """A drill of an unknown kind, recovered before it started, with a non-boolean
    verification or a time without a zone is refused naming the field."""
    good = {"drill": "database_restore", "started": "2026-11-20T10:00:00Z",
            "recovered": "2026-11-20T10:03:00Z", "status": "success", "data_verified": True}
    (tmp_path / "drills.jsonl").write_text(json.dumps(good) + "\n"
                                           + json.dumps({**good, **record}) + "\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, tmp_path / "drills.jsonl", kind="drills")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, field)]


@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_section_capacity_under_load(store, tmp_path) -> None:
    """A run with CPU samples adds its per-pod capacity line under the load test; with no
    production fit to compare with, it is reported alone."""
    from test_loadtests import write_stepped_run

    write_stepped_run(tmp_path)
    for name in ("stepped_stats_history.csv", "cpu.json"):
        ingest_file(store, tmp_path / name)
    section = scalability_recovery(store, load_config(), AT - timedelta(days=7), AT)
    topics = {line.topic: line for line in section.load_test}
    line = topics["capacity under load stepped"]
    assert line.status == "ok" and "300.0 req/s per pod at 70 % CPU" in line.text
