"""A real Prometheus (loopback port, temporary storage) loads the generated rules, scrapes a
test exporter serving a scripted error burst, and the page alert becomes firing in its API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from rules_helpers import config_with

from mysetlist_slo.rules.prometheus import prometheus_rules

RATE = 100.0  # requests per second the exporter reports
BURST_AFTER = 8.0  # seconds of clean traffic before half the requests fail


class Exporter(ThreadingHTTPServer):
    """Serves ingress-nginx style request counters: clean traffic, then an error burst."""

    started = time.monotonic()

    def counters(self) -> tuple[float, float]:
        """Return (answered, 5xx) requests so far."""
        elapsed = time.monotonic() - self.started
        burst = max(0.0, elapsed - BURST_AFTER)
        return RATE * elapsed - RATE / 2 * burst, RATE / 2 * burst


class _Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # http.server calls it by this name
        ok, errors = self.server.counters()  # type: ignore[attr-defined]
        body = ("# TYPE nginx_ingress_controller_requests counter\n"
                f'nginx_ingress_controller_requests{{status="200"}} {ok:.3f}\n'
                f'nginx_ingress_controller_requests{{status="500"}} {errors:.3f}\n').encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output quiet."""


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="exporter")
def fixture_exporter() -> Iterator[Exporter]:
    """The scripted exporter, on a loopback port, for the length of one test."""
    server = Exporter(("127.0.0.1", 0), _Metrics)
    server.started = time.monotonic()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def api(port: int, path: str) -> dict:
    """Return the JSON of a Prometheus HTTP API call."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return json.loads(response.read())


def test_prometheus_pages_on_an_error_burst(exporter: Exporter, tmp_path: Path) -> None:
    """Prometheus loads the generated rules (2-second groups) without error and, once the
    exporter serves half errors, the availability page alert (1h/5m) is firing through its
    API; before the burst it was not."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: install the Debian package `prometheus`")
    rules = tmp_path / "rules.yaml"
    rules.write_text(prometheus_rules(config_with("prometheus: {interval: 2s}")).to_yaml(),
                     "utf-8")
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "2s"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "exporter", "static_configs": [
            {"targets": [f"127.0.0.1:{exporter.server_address[1]}"]}]}]}), "utf-8")
    process = subprocess.Popen(
        [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"))
    try:
        firing_before_burst = False
        page = None
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and page is None:
            time.sleep(1)
            try:
                alerts = api(port, "/api/v1/alerts")["data"]["alerts"]
            except OSError:
                continue  # still starting
            pages = [a for a in alerts if a["labels"].get("slo") == "availability"
                     and a["labels"].get("severity") == "page"
                     and a["labels"].get("long_window") == "1h" and a["state"] == "firing"]
            if time.monotonic() - exporter.started < BURST_AFTER:
                firing_before_burst |= bool(pages)
            page = pages[0] if pages else None
        groups = api(port, "/api/v1/rules")["data"]["groups"]
        assert {g["name"] for g in groups} == {"slo-availability", "slo-error-rate",
                                                "deployment-plan"}
        assert all(r["health"] == "ok" for g in groups for r in g["rules"]), groups
        assert page is not None, (tmp_path / "prometheus.log").read_text()[-3000:]
        assert not firing_before_burst
        assert float(page["value"]) >= 14.4  # the burn rate, here about 500
    finally:
        process.terminate()
        process.wait(timeout=30)
