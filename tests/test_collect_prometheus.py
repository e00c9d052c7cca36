"""Live Prometheus collector: a real Prometheus scraping a tiny exporter the test serves (and
itself), and a fake HTTP server for the point limit, retries, timeouts, failures mid-run and
credentials."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import servers
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families

from mysetlist_slo.cli import main
from mysetlist_slo.collect import PrometheusQuery, collect_prometheus
from mysetlist_slo.collect.prometheus import MAX_POINTS, PrometheusClient, auth_from, chunks
from mysetlist_slo.errors import CollectError
from mysetlist_slo.store.database import open_store

QUEUES = {"a": 3.0, "b": 7.5}  # what the test exporter exposes, constant


@pytest.fixture(name="prometheus", scope="module")
def fixture_prometheus() -> Iterator[servers.Prometheus]:
    """Prometheus scraping itself and a prometheus_client exporter every second, with at least
    6 s of samples."""
    import shutil
    import tempfile

    registry = CollectorRegistry()
    gauge = Gauge("shop_queue_depth", "Orders waiting per queue", ["queue"], registry=registry)
    for queue, depth in QUEUES.items():
        gauge.labels(queue=queue).set(depth)
    exporter_port = servers.free_port()
    exporter, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    server = servers.Prometheus(Path(tempfile.mkdtemp(prefix="mysetlist-prom-")),
                                servers.free_port(), [f"127.0.0.1:{exporter_port}"])
    try:
        server.start()
        deadline = time.monotonic() + 60
        while True:
            answer = httpx.get(f"{server.url}/api/v1/query",
                               params={"query": "count_over_time(shop_queue_depth[1m])"}).json()
            counts = [float(r["value"][1]) for r in answer["data"]["result"]]
            if len(counts) == 2 and min(counts) >= 6:
                break
            assert time.monotonic() < deadline, "Prometheus did not scrape the exporter"
            time.sleep(0.5)
        yield server
    finally:
        server.stop()
        exporter.shutdown()
        thread.join(5)
        shutil.rmtree(server.directory, ignore_errors=True)


def _stored(db: Path, name: str) -> list[tuple[datetime, dict[str, str], float]]:
    with open_store(db, read_only=True) as con:
        rows = con.execute("SELECT ts, labels, value FROM metrics WHERE name = ? ORDER BY ts",
                           [name]).fetchall()
    return [(ts, json.loads(labels), value) for ts, labels, value in rows]


def test_collected_series_equal_what_the_exporter_exposed(prometheus: servers.Prometheus,
                                                          tmp_path: Path) -> None:
    """Every stored sample of the exporter's gauge has the exposed labels and value, on the
    1 s step grid; Prometheus's own build info matches its /metrics."""
    db = tmp_path / "m.duckdb"
    end = datetime.now(UTC)
    results = collect_prometheus(
        db, prometheus.url, [PrometheusQuery("queue", "shop_queue_depth"),
                             PrometheusQuery("build", "prometheus_build_info")],
        since=timedelta(seconds=30), end=end, step_s=1)
    assert len(results) == 2
    samples = _stored(db, "queue")
    assert {s[1]["queue"] for s in samples} == set(QUEUES)
    assert all(value == QUEUES[labels["queue"]] for _, labels, value in samples)
    assert all(labels["job"] == "exporter0" for _, labels, _ in samples)
    assert all(ts.timestamp() == int(ts.timestamp()) for ts, _, _ in samples)
    assert len(samples) >= 2 * 3
    exposed = httpx.get(f"{prometheus.url}/metrics").text
    build = next(s for f in text_string_to_metric_families(exposed) for s in f.samples
                 if s.name == "prometheus_build_info")
    collected = _stored(db, "build")
    assert collected
    assert all(labels.items() >= build.labels.items() and value == build.value
               for _, labels, value in collected)


def test_next_run_resumes_and_stores_nothing_twice(prometheus: servers.Prometheus,
                                                   tmp_path: Path) -> None:
    """A second run starts one step after the first one's end: no (series, time) is stored
    twice, and a run with nothing new stores nothing."""
    db = tmp_path / "m.duckdb"
    query = [PrometheusQuery("queue", "shop_queue_depth")]
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=3)
    collect_prometheus(db, prometheus.url, query, since=timedelta(seconds=20), end=end,
                       step_s=1)
    again = collect_prometheus(db, prometheus.url, query, since=timedelta(seconds=20),
                               end=end, step_s=1)
    later = collect_prometheus(db, prometheus.url, query, since=timedelta(seconds=20),
                               end=end + timedelta(seconds=2), step_s=1)
    assert again == []
    assert len(later) == 1
    samples = _stored(db, "queue")
    keys = [(ts, labels["queue"]) for ts, labels, _ in samples]
    assert len(keys) == len(set(keys))
    assert max(ts for ts, _ in keys) == end + timedelta(seconds=2)


def test_a_range_over_the_point_limit_is_chunked(prometheus: servers.Prometheus,
                                                 tmp_path: Path) -> None:
    """Four hours at 1 s (14,401 points) is refused by Prometheus in one request, and
    collected in two chunks of at most 11,000 points, each its own registry row."""
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(hours=4)
    client = PrometheusClient(prometheus.url)
    with pytest.raises(CollectError, match="11,000 points"):
        client.query_range("shop_queue_depth", start, end, 1)
    client.close()
    db = tmp_path / "m.duckdb"
    results = collect_prometheus(db, prometheus.url, [PrometheusQuery("q", "shop_queue_depth")],
                                 start=start, end=end, step_s=1)
    assert len(results) == 2
    spans = chunks(start, end, 1)
    assert [(high - low).total_seconds() + 1 for low, high in spans] == [11_000, 3_401]
    with open_store(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ingests").fetchall()[0][0] == 2


def test_chunks_cover_the_range_once() -> None:
    """Chunks are consecutive on the step grid, none over the limit, covering start to end."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    for seconds, step in ((0, 60), (59, 60), (60 * 10_999, 60), (86_400 * 30, 60), (7, 1)):
        spans = chunks(start, start + timedelta(seconds=seconds), step)
        points = [round((b - a).total_seconds() / step) + 1 for a, b in spans]
        assert max(points) <= MAX_POINTS
        assert sum(points) == seconds // step + 1
        assert all(b + timedelta(seconds=step) == c for (_, b), (c, _) in pairwise(spans))


class FakePrometheus(servers.LocalHttp):
    """A local HTTP server answering query_range like Prometheus (value = the timestamp), with
    a behaviour per request: "ok", an HTTP status to fail with, or "slow"."""

    def __init__(self, behaviours: list[str | int], token: str | None = None) -> None:
        self.behaviours = behaviours
        self.token = token
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(servers.JsonHandler):
            def do_GET(self) -> None:
                params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                fake.requests.append({"params": params, "auth": self.headers["Authorization"]})
                behaviour = (fake.behaviours[len(fake.requests) - 1]
                             if len(fake.requests) <= len(fake.behaviours) else "ok")
                if fake.token and self.headers["Authorization"] != f"Bearer {fake.token}":
                    behaviour = 401
                if behaviour == "slow":
                    time.sleep(2)
                    behaviour = "ok"
                if behaviour != "ok":
                    self.answer(int(behaviour), {"status": "error", "error": "unavailable"})
                    return
                start, end, step = (float(params[k]) for k in ("start", "end", "step"))
                count = math.floor((end - start) / step) + 1
                values = [[start + i * step, str(start + i * step)] for i in range(count)]
                self.answer(200, {"status": "success", "data": {"resultType": "matrix",
                            "result": [{"metric": {"__name__": "fake", "job": "f"},
                                        "values": values}]}})

        super().__init__(Handler)


@pytest.fixture(name="fake")
def fixture_fake(local_http: Callable[..., Any]) -> Callable[..., FakePrometheus]:
    """Start fake Prometheus servers with given behaviours (stopped after the test)."""
    return functools.partial(local_http, FakePrometheus)


START = datetime(2026, 11, 20, tzinfo=UTC)


def test_5xx_answers_are_retried_with_backoff(fake: Callable[..., FakePrometheus],
                                              tmp_path: Path) -> None:
    """Two 503s then an answer: the query succeeds on the third attempt and stores each point
    once, with the value the server sent for that time."""
    server = fake([503, 502, "ok"])
    db = tmp_path / "m.duckdb"
    results = collect_prometheus(db, server.url, [PrometheusQuery("f", "fake")], start=START,
                                 end=START + timedelta(minutes=10), step_s=60, backoff_s=0.01)
    assert len(server.requests) == 3
    assert results[0].loaded == 11
    assert all(ts.timestamp() == value for ts, _, value in _stored(db, "f"))


def test_slow_server_times_out(fake: Callable[..., FakePrometheus], tmp_path: Path) -> None:
    """A server slower than the timeout: each attempt gives up at the timeout, and after the
    retries the error says so; nothing is stored."""
    server = fake(["slow", "slow"])
    started = time.monotonic()
    with pytest.raises(CollectError, match="after 2 attempts: timed out"):
        collect_prometheus(tmp_path / "m.duckdb", server.url, [PrometheusQuery("f", "fake")],
                           start=START, end=START + timedelta(minutes=1), step_s=60,
                           timeout_s=0.3, retries=2, backoff_s=0.01)
    assert time.monotonic() - started < 1.9  # two 0.3 s attempts, not two 2 s answers
    with open_store(tmp_path / "m.duckdb", read_only=True) as con:
        assert con.execute("SELECT count(*) FROM metrics").fetchall()[0][0] == 0


def test_failure_mid_run_keeps_chunks_and_resumes(fake: Callable[..., FakePrometheus],
                                                  tmp_path: Path) -> None:
    """The server fails after the first chunk: that chunk stays stored, the error is clear, and
    the next run asks only for the rest, so every point is stored exactly once."""
    server = fake(["ok", 500, 500])
    db = tmp_path / "m.duckdb"
    query = [PrometheusQuery("f", "fake")]
    end = START + timedelta(minutes=25)
    with pytest.raises(CollectError, match="HTTP 500"):
        collect_prometheus(db, server.url, query, start=START, end=end, step_s=60,
                           max_points=10, retries=2, backoff_s=0.01)
    assert len(_stored(db, "f")) == 10
    collect_prometheus(db, server.url, query, start=START, end=end, step_s=60, max_points=10)
    resumed = float(server.requests[3]["params"]["start"])
    assert resumed == (START + timedelta(minutes=10)).timestamp()
    stamps = [ts for ts, _, _ in _stored(db, "f")]
    assert stamps == [START + timedelta(minutes=i) for i in range(26)]


def test_token_comes_from_the_environment_and_is_never_shown(
        fake: Callable[..., FakePrometheus], tmp_path: Path,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The bearer token is read from the environment and sent; a wrong one is a one-line error
    without it; a password in the URL is refused without echoing it; the registry holds none."""
    token = "tok-SECRET-123"  # noqa: S105 - a made-up token for a fake server
    server = fake([], token=token)
    db = tmp_path / "m.duckdb"
    monkeypatch.setenv("MYSETLIST_SLO_PROMETHEUS_TOKEN", token)
    assert main(["collect", "prometheus", "--db", str(db), "--url", server.url, "--query",
                 "f=fake", "--start", "2026-11-20T00:00Z", "--end", "2026-11-20T00:05Z"]) == 0
    assert server.requests[-1]["auth"] == f"Bearer {token}"
    monkeypatch.setenv("MYSETLIST_SLO_PROMETHEUS_TOKEN", "wrong-" + token)
    assert main(["collect", "prometheus", "--db", str(db), "--url", server.url, "--query",
                 "f=fake", "--start", "2026-11-20T00:00Z", "--end", "2026-11-20T00:10Z"]) == 1
    url = server.url.replace("http://", "http://user:pw-in-URL-9@")
    assert main(["collect", "prometheus", "--db", str(db), "--url", url, "--query", "f=fake"]) == 1
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err
    assert "pw-in-URL-9" not in captured.out + captured.err
    assert "HTTP 401" in captured.err
    with open_store(db, read_only=True) as con:
        everything = repr(con.execute("SELECT * FROM ingests").fetchall()) + repr(
            con.execute("SELECT * FROM collect_cursors").fetchall())
    assert token not in everything


def test_basic_auth_from_a_file(fake: Callable[..., FakePrometheus], tmp_path: Path) -> None:
    """Basic auth credentials come from a file (user:password), sent as an Authorization
    header; an empty file is a clear error."""
    secret = tmp_path / "prom-auth"
    secret.write_text("reader:s3cret\n")
    auth = auth_from(env={}, basic_auth_file=secret)
    server = fake([])
    collect_prometheus(tmp_path / "m.duckdb", server.url, [PrometheusQuery("f", "fake")],
                       start=START, end=START, step_s=60, auth=auth)
    assert server.requests[0]["auth"] == "Basic cmVhZGVyOnMzY3JldA=="  # base64 reader:s3cret
    (tmp_path / "empty").write_text("")
    with pytest.raises(CollectError, match="empty"):
        auth_from(env={}, basic_auth_file=tmp_path / "empty")


def test_without_queries_the_config_defaults_are_collected(
        fake: Callable[..., FakePrometheus], tmp_path: Path) -> None:
    """``collect prometheus`` with no --query asks for each of the config's default queries
    (the standard exporters') and stores them under their names."""
    from mysetlist_slo.config.model import DEFAULT_PROMETHEUS_QUERIES

    server = fake([])
    db = tmp_path / "m.duckdb"
    assert main(["collect", "prometheus", "--db", str(db), "--url", server.url, "--start",
                 "2026-11-20T00:00Z", "--end", "2026-11-20T00:02Z"]) == 0
    assert [r["params"]["query"] for r in server.requests] == list(
        DEFAULT_PROMETHEUS_QUERIES.values())
    with open_store(db, read_only=True) as con:
        names = {n for (n,) in con.execute("SELECT DISTINCT name FROM metrics").fetchall()}
    assert names == set(DEFAULT_PROMETHEUS_QUERIES)


def test_series_differing_only_by_name_stay_apart() -> None:
    """A query matching two metric names keeps ``__name__`` in the labels (else their samples
    would collide); a query of one metric leaves it out, as the file source does."""
    from mysetlist_slo.collect.prometheus import _rows

    two = [{"metric": {"__name__": n, "job": "j"}, "values": [[1, "1"], [2, "NaN"]]}
           for n in ("a", "b")]
    rows = _rows(PrometheusQuery("both", '{__name__=~"a|b"}'), two).to_pylist()
    assert sorted(json.loads(r["labels"])["__name__"] for r in rows) == ["a", "b"]
    assert len(rows) == 2  # the NaN points are not samples
    one = _rows(PrometheusQuery("a", "a"), two[:1]).to_pylist()
    assert [json.loads(r["labels"]) for r in one] == [{"job": "j"}]
