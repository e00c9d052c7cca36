"""Load tests: k6 summaries and point streams, Locust CSV files, and the verdict per run."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_END

from mysetlist_slo import IngestError, ingest_file, load_config
from mysetlist_slo.capacity.autoscaling import PodModel
from mysetlist_slo.capacity.loadtests import (
    load_test_capacity,
    load_test_endpoints,
    load_test_runs,
    production_pod_model,
)
from mysetlist_slo.config import parse_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "loadtests"
T0 = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def small_targets(rps: float, users: int) -> str:
    """Return a config whose capacity targets are small enough for a test run to reach."""
    return (f"capacity: {{target_rps: {rps}, concurrent_users: {users}, think_time_s: 1, "
            "forecast_horizon_days: 30, headroom: 0.2}\n")


def test_k6_summaries_both_shapes(store) -> None:
    """--summary-export and handleSummary JSON load as k6-summary; the verdicts follow the
    targets: 30 req/s never reached the target load, 1,050 req/s with API p95 171 ms and
    0.05 % errors passed."""
    for name in ("k6-smoke.summary.json", "k6-peak.handle-summary.json"):
        assert ingest_file(store, EXAMPLES / name).kind == "k6-summary"
    runs = load_test_runs(store, load_config()).set_index("run")
    smoke, peak = runs.loc["k6-smoke"], runs.loc["k6-peak"]
    assert smoke["status"] == "target load not reached"
    assert smoke["sustained_rps"] == pytest.approx(1800 / 60)
    assert (smoke["users"], smoke["failures"]) == (50, 0)
    assert peak["status"] == "passed" and peak["users"] == 10_000
    assert peak["sustained_rps"] == pytest.approx(630_000 / 600)
    # http_req_failed's "passes" are the failed requests (k6 counts the true values).
    assert peak["error_rate"] == pytest.approx(100 * 315 / 630_000)
    assert peak["api_p95_ms"] == 171.2 and peak["p95_ms"] == 182.4
    endpoints = load_test_endpoints(store, load_config()).set_index(["run", "endpoint"])
    assert endpoints.loc[("k6-peak", "/show/[id]"), "p95_ms"] == 240.1
    assert not endpoints.loc[("k6-peak", "/show/[id]"), "is_api"]
    assert "(expected_response:true)" not in {e for _, e in endpoints.index}


def write_k6_points(path: Path, rng: np.random.Generator, slow_at_peak: float = 1.0
                    ) -> pd.DataFrame:
    """Write a k6 --out json stream: 10 req/s for 150 s with 40 req/s from second 40 to 99,
    over three endpoints, 2 % of /api/votes failing, durations times ``slow_at_peak`` during
    the 40 req/s; return the requests written."""
    lines = [json.dumps({"type": "Metric", "data": {"type": "trend", "contains": "time",
                         "thresholds": ["p(95)<200"], "submetrics": None},
                         "metric": "http_req_duration"})]
    written = []
    endpoints = ["/api/shows/[id]", "/api/votes/[id]", "/show/[id]"]
    for second in range(150):
        rate = 40 if 40 <= second < 100 else 10
        lines.append(json.dumps({"type": "Point", "metric": "vus", "data": {
            "time": (T0 + timedelta(seconds=second)).isoformat(), "value": rate // 2,
            "tags": None}}))
        for k in range(rate):
            when = T0 + timedelta(seconds=second, microseconds=int(1e6 * k / rate))
            endpoint = endpoints[int(rng.integers(0, 3))]
            ms = float(rng.lognormal(np.log(60 if endpoint != "/show/[id]" else 150), 0.5))
            ms *= slow_at_peak if rate == 40 else 1.0
            failed = endpoint == "/api/votes/[id]" and rng.random() < 0.02
            tags = {"name": endpoint, "method": "GET", "status": "500" if failed else "200",
                    "expected_response": "false" if failed else "true", "scenario": "default",
                    "url": f"https://mysetlist.example{endpoint.replace('[id]', '7')}"}
            stamp = when.isoformat().replace("+00:00", "Z")
            for metric, value in (("http_reqs", 1), ("http_req_duration", ms),
                                  ("http_req_failed", int(failed)),
                                  ("http_req_waiting", ms * 0.9)):
                lines.append(json.dumps({"type": "Point", "metric": metric, "data": {
                    "time": stamp, "value": value, "tags": tags}}))
            written.append((when, endpoint, ms, failed))
    path.write_text("\n".join(lines) + "\n")
    return pd.DataFrame(written, columns=["ts", "endpoint", "ms", "failed"])


def test_k6_point_stream_against_numpy(store, tmp_path) -> None:
    """From a point stream: per-endpoint p95 equals numpy's (linear interpolation, as k6),
    the sustained rate is the best 60 s window found by brute force (40 req/s), and errors
    and users are counted from the points."""
    truth = write_k6_points(tmp_path / "ramp.json", np.random.default_rng(7))
    result = ingest_file(store, tmp_path / "ramp.json")
    assert result.kind == "k6-points" and result.rejected == 0
    config = parse_config(small_targets(35, 20))
    runs = load_test_runs(store, config).set_index("run")
    run = runs.loc["ramp"]
    per_second = truth.groupby(truth["ts"].dt.floor("s")).size()
    best = max(per_second.iloc[i:i + 60].sum() / 60 for i in range(len(per_second) - 59))
    assert best == 40 and run["sustained_rps"] == pytest.approx(best)
    assert run["requests"] == len(truth) and run["failures"] == int(truth["failed"].sum())
    assert run["users"] == 20 and run["load_reached"]
    endpoints = load_test_endpoints(store, config).set_index(["run", "endpoint"])
    for endpoint, group in truth.groupby("endpoint"):
        assert endpoints.loc[("ramp", endpoint), "p95_ms"] == pytest.approx(
            np.percentile(group["ms"], 95), rel=1e-12)
    api = truth[truth["endpoint"].str.startswith("/api/")]
    assert run["api_p95_ms"] == pytest.approx(max(
        np.percentile(g["ms"], 95) for _, g in api.groupby("endpoint")), rel=1e-12)
    expected = "failed" if 100 * truth["failed"].mean() >= 0.1 else "passed"
    assert run["status"] == expected == "failed"  # 2 % of a third of requests fail


def test_k6_judged_at_the_load_reached(store, tmp_path) -> None:
    """Latency and errors are judged in the best 60 s window (the 40 req/s plateau), equal to
    numpy's over that window's requests and not the whole run's; a plateau p95 over 200 ms
    fails the run."""
    truth = write_k6_points(tmp_path / "plateau.json", np.random.default_rng(11),
                            slow_at_peak=2.0)
    ingest_file(store, tmp_path / "plateau.json")
    run = load_test_runs(store, parse_config(small_targets(35, 20))).set_index("run").loc[
        "plateau"]
    window_start = T0 + timedelta(seconds=40)
    assert (run["load_window_start"], run["load_window_end"]) == (
        window_start, window_start + timedelta(seconds=60))
    inside = truth[(truth["ts"] >= window_start)
                   & (truth["ts"] < window_start + timedelta(seconds=60))]
    api = inside[inside["endpoint"].str.startswith("/api/")]
    assert run["p95_at_load_ms"] == pytest.approx(max(
        np.percentile(g["ms"], 95) for _, g in api.groupby("endpoint")), rel=1e-12)
    assert run["error_rate_at_load"] == pytest.approx(100 * inside["failed"].mean())
    assert run["p95_at_load_ms"] > run["api_p95_ms"]  # the whole run's, quieter minutes in
    assert run["p95_at_load_ms"] > 200
    assert not run["latency_ok"] and run["status"] == "failed"


def test_k6_bad_points_are_located(store, tmp_path) -> None:
    """A point without a zone or with a negative value is refused naming line and field."""
    good = {"type": "Point", "metric": "http_req_duration",
            "data": {"time": "2026-11-20T14:00:00Z", "value": 12.5, "tags": {"name": "/a"}}}
    no_zone = {**good, "data": {**good["data"], "time": "2026-11-20T14:00:01"}}
    negative = {**good, "data": {**good["data"], "value": -3}}
    path = tmp_path / "bad.json"
    path.write_text("\n".join(json.dumps(x) for x in (good, no_zone, negative)) + "\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    problems = [(p.line, p.field) for p in caught.value.problems]
    assert problems == [(2, "data.time"), (3, "data.value")]
    assert store.execute("SELECT count(*) FROM load_points").fetchall() == [(0,)]


def test_k6_summary_bad_metric_names_line(store, tmp_path) -> None:
    """A summary whose http_reqs count is not a number is refused naming its line and key."""
    text = (EXAMPLES / "k6-smoke.summary.json").read_text().replace(
        '"http_reqs": {"count": 1800', '"http_reqs": {"count": "lots"')
    path = tmp_path / "broken.summary.json"
    path.write_text(text)
    with pytest.raises(IngestError, match=r"line \d+: http_reqs.count: not a number"):
        ingest_file(store, path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if '"http_reqs"' in t)
    with pytest.raises(IngestError, match=f"line {line}:"):
        ingest_file(store, path)


class _Handler(BaseHTTPRequestHandler):
    """A tiny app: /api/shows/1 fast, /show/1 takes 100 ms, /api/fail answers 500."""

    seen: ClassVar[list[tuple[str, int, float]]] = []  # path, status, when answered
    lock = threading.Lock()

    def do_GET(self) -> None:
        status = 500 if self.path == "/api/fail" else 200
        if self.path == "/show/1":
            time.sleep(0.1)
        body = b"ok"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.lock:
            self.seen.append((self.path, status, time.time()))

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


LOCUSTFILE = """
from locust import HttpUser, constant, task

class Visitor(HttpUser):
    wait_time = constant(0.1)

    @task(3)
    def api(self):
        self.client.get("/api/shows/1")

    @task(2)
    def page(self):
        self.client.get("/show/1")

    @task(1)
    def broken(self):
        self.client.get("/api/fail")
"""


@pytest.fixture(name="locust_run", scope="module")
def fixture_locust_run(tmp_path_factory: pytest.TempPathFactory
                       ) -> tuple[Path, list[tuple[str, int, float]]]:
    """Run Locust itself for 6 s with 10 users against a local server; return the --csv prefix
    and what the server answered."""
    folder = tmp_path_factory.mktemp("locust")
    (folder / "locustfile.py").write_text(LOCUSTFILE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(folder / "locustfile.py"), "--headless",
             "-u", "10", "-r", "10", "-t", "6s", "--host",
             f"http://127.0.0.1:{server.server_address[1]}", "--csv", str(folder / "run1"),
             "--only-summary"],
            check=False, capture_output=True, timeout=60, cwd=folder)
    finally:
        server.shutdown()
        server.server_close()
    return folder / "run1", list(_Handler.seen)


@pytest.mark.slow
def test_locust_csv_against_the_server(store, locust_run) -> None:
    """Locust's three CSV files load; requests per endpoint match what the server answered
    (as they stood when Locust wrote its files), every /api/fail is a
    failure, error rate and users come out of the files as pandas reads them, and a run with
    1 in 6 requests failing does not pass."""
    prefix, seen = locust_run
    for suffix, kind in (("_stats.csv", "locust-stats"),
                         ("_stats_history.csv", "locust-history"),
                         ("_failures.csv", "locust-failures")):
        assert ingest_file(store, f"{prefix}{suffix}").kind == kind
    stats = pd.read_csv(f"{prefix}_stats.csv")
    history = pd.read_csv(f"{prefix}_stats_history.csv")
    config = parse_config(small_targets(10, 10))
    endpoints = load_test_endpoints(store, config).set_index(["run", "endpoint"])
    # Locust writes its CSV files with the stats as they stand at its last history line (its
    # Timestamp cut to the second): every request the server answered before that second
    # counts, but for the users' requests still in flight, and none answered a second after.
    written = float(history["Timestamp"].max())
    for path in ("/api/shows/1", "/show/1", "/api/fail"):
        counted = endpoints.loc[("run1", path), "requests"]
        before = sum(1 for p, _, when in seen if p == path and when < written)
        by_then = sum(1 for p, _, when in seen if p == path and when < written + 1)
        assert before - 10 <= counted <= by_then
    assert endpoints.loc[("run1", "/api/fail"), "error_rate"] == 100
    assert endpoints.loc[("run1", "/api/shows/1"), "failures"] == 0
    # A 100 ms handler cannot answer its median request faster than 100 ms; the fast one does.
    assert endpoints.loc[("run1", "/show/1"), "p50_ms"] >= 100
    assert endpoints.loc[("run1", "/api/shows/1"), "p50_ms"] < 100
    run = load_test_runs(store, config).set_index("run").loc["run1"]
    rows = stats[stats["Name"] != "Aggregated"]
    assert run["requests"] == rows["Request Count"].sum()
    assert run["error_rate"] == pytest.approx(
        100 * rows["Failure Count"].sum() / rows["Request Count"].sum())
    aggregated = history[history["Name"] == "Aggregated"]
    assert run["users"] == aggregated["User Count"].max() == 10
    # Six seconds is shorter than the 1-minute sustain window: the mean of Locust's rates.
    assert run["sustained_rps"] == pytest.approx(aggregated["Requests/s"].mean())
    assert "shorter than 60 s" in run["throughput_basis"]
    assert run["status"] == "failed" and not run["errors_ok"]
    # At the load reached: the highest p95 Locust reported, its counters' growth in the window.
    assert run["p95_at_load_ms"] == pd.to_numeric(aggregated["95%"], errors="coerce").max()
    grown = aggregated[["Total Request Count", "Total Failure Count"]].agg(["min", "max"])
    assert run["error_rate_at_load"] == pytest.approx(
        100 * (grown.loc["max", "Total Failure Count"] - grown.loc["min", "Total Failure Count"])
        / (grown.loc["max", "Total Request Count"] - grown.loc["min", "Total Request Count"]))
    failures = store.execute("SELECT endpoint, occurrences FROM load_failures").fetchall()
    assert [(e, n) for e, n in failures] == [
        ("/api/fail", endpoints.loc[("run1", "/api/fail"), "failures"])]


def test_locust_bad_row_names_line_and_column(store, tmp_path) -> None:
    """A Locust stats line with more failures than requests is refused naming its column."""
    path = tmp_path / "bad_stats.csv"
    path.write_text("Type,Name,Request Count,Failure Count,Median Response Time,"
                    "Average Response Time,Min Response Time,Max Response Time,"
                    "Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,"
                    "99%,99.9%,99.99%,100%\n"
                    "GET,/a,10,11,5,5,1,9,2,1.0,1.1,5,5,5,5,6,7,8,9,9,9,9\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "Failure Count")]


LOCUST_HISTORY_HEADER = ("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,"
                         "90%,95%,98%,99%,99.9%,99.99%,100%,Total Request Count,"
                         "Total Failure Count,Total Median Response Time,"
                         "Total Average Response Time,Total Min Response Time,"
                         "Total Max Response Time,Total Average Content Size")


def write_stepped_run(folder: Path) -> None:
    """Write a Locust history stepping 50, 100, 150, 200 req/s a minute each, and Prometheus
    CPU and replicas scraped every 15 s: 2 pods, 0.1 idle cores each plus 0.002 cores per
    request/s, from the mean rate over each scrape interval."""
    start = int(T0.timestamp())
    rates = [50 + 50 * (second // 60) for second in range(240)]
    lines, total = [LOCUST_HISTORY_HEADER], 0
    for second, rate in enumerate(rates):
        total += rate
        lines.append(f"{start + second},400,,Aggregated,{rate},0,40,45,50,55,60,70,80,90,100,"
                     f"110,120,{total},0,40,45,5,130,100")
    (folder / "stepped_stats_history.csv").write_text("\n".join(lines) + "\n")
    scrapes = range(start + 15, start + 240, 15)
    cores = [[t, f"{2 * 0.1 + 0.002 * np.mean(rates[t - start - 14:t - start + 1]):.9f}"]
             for t in scrapes]
    replicas = [[t, "2"] for t in scrapes]
    (folder / "cpu.json").write_text(json.dumps({"status": "success", "data": {
        "resultType": "matrix", "result": [
            {"metric": {"__name__": "mysetlist_cpu_cores"}, "values": cores},
            {"metric": {"__name__": "mysetlist_replicas"}, "values": replicas}]}}))


# The CPU series is exactly linear, so the robust fit's scale is zero: statsmodels says so.
@pytest.mark.filterwarnings("ignore::statsmodels.tools.sm_exceptions.ConvergenceWarning")
def test_capacity_measured_under_load(store, tmp_path) -> None:
    """CPU rising 0.002 cores per req/s per pod over 0.1 idle gives (0.7 - 0.1) / 0.002 = 300
    req/s per pod at the HPA's 70 % target; beside a production fit of 200 req/s per pod that is
    50 % more, over the 25 % allowed."""
    write_stepped_run(tmp_path)
    for name in ("stepped_stats_history.csv", "cpu.json"):
        ingest_file(store, tmp_path / name)
    production = PodModel(idle_cores=0.1, cores_per_rps=0.003, cpu_request=1.0, cpu_limit=2.0)
    assert production.capacity_rps(0.7) == pytest.approx(200)
    result = load_test_capacity(store, load_config(), "stepped", production)
    assert result.points == 15
    assert result.measured_rps_per_pod == pytest.approx(300, rel=1e-6)
    assert result.difference == pytest.approx(0.5, rel=1e-6) and result.disagree
    assert "disagree by more than 25 %" in result.detail
    missing = load_test_capacity(store, load_config(), "no-such-run")
    assert missing.measured_rps_per_pod is None and "fewer than 3 CPU samples" in missing.detail


def test_production_pod_model_recovers_the_demo(demo_con) -> None:
    """Fitted from the demo's Prometheus series, production per-pod capacity at 70 % CPU is the
    demo's own (0.7 - 0.05 idle) / 0.6 cores per req/s, within 5 %."""
    model = production_pod_model(demo_con, DEMO_END - timedelta(days=14), DEMO_END)
    assert model is not None
    assert model.capacity_rps(0.7) == pytest.approx((0.7 - 0.05) / 0.6, rel=0.05)


def test_hostile_load_test_files(store, tmp_path) -> None:
    """Deeply nested JSON, a Locust time past 2100 and a count beyond int64 are refused as
    located rejects or a typed IngestError, never an untyped exception."""
    deep = tmp_path / "deep.summary.json"
    deep.write_text('{"root_group": {}, "metrics": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(IngestError, match="nested deeper"):
        ingest_file(store, deep)
    stream = tmp_path / "deep.json"
    stream.write_text('{"type": "Point", "metric": "vus", "data": {"time": '
                      '"2026-11-20T14:00:00Z", "value": 1}}\n' + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, stream, kind="k6-points")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "(line)")]
    history = tmp_path / "late_stats_history.csv"
    history.write_text(LOCUST_HISTORY_HEADER + "\n"
                       "4200000000,1,,Aggregated,1,0,1,1,1,1,1,1,1,1,1,1,1,1,0,1,1,1,1,1\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, history)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "Timestamp")]
    stats = tmp_path / "huge_stats.csv"
    stats.write_text("Type,Name,Request Count,Failure Count,Requests/s\n"
                     "GET,/a,1e30,0,1\n")
    with pytest.raises(IngestError) as caught:
        ingest_file(store, stats)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "Request Count")]


def test_malformed_locust_csv_records_are_located(store, tmp_path) -> None:
    """A Locust failures file with a short record, bytes that are not UTF-8 and a quote left
    open refuses each bad record naming its line, never with a csv module exception."""
    path = tmp_path / "broken_failures.csv"
    path.write_bytes(b"Method,Name,Error,Occurrences\n"
                     b"GET,/a,boom,3\n"
                     b"GET,/b,3\n"
                     b"GET,/c,\xff\xfe,1\n"
                     b'GET,/d,"never closed,2\n')
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, max_bad_rows=1)
    assert [(p.line, p.field) for p in caught.value.problems] == [
        (3, "(line)"), (4, "(line)"), (5, "(line)")]
    assert "expected 4 fields, found 3" in str(caught.value)
    assert "not valid UTF-8" in str(caught.value)
