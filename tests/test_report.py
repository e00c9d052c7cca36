"""The weekly report: papermill run, offline HTML, summary.json checked against the raw logs."""

from __future__ import annotations

import gzip
import http.server
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import jsonschema
import nbformat
import numpy as np
import pytest
from conftest import DEMO_END, timed_line

from mysetlist_slo import DemoManifest, generate_demo, ingest_file, open_store
from mysetlist_slo.errors import SloError
from mysetlist_slo.report.runner import ReportError, run_report

WEEK = "2026-W47"  # the demo's last full week
WEEK_START = DEMO_END - timedelta(days=7)


@pytest.fixture(name="weekly", scope="module")
def fixture_weekly(demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """The weekly report of the small demo store, run once for this module."""
    out = tmp_path_factory.mktemp("reports")
    return run_report("weekly", week=WEEK, db=demo_store_path, out=out, progress=False)


def raw_requests(demo: DemoManifest) -> list[tuple[datetime, int, str, float]]:
    """Return (time, status, path, seconds) of every demo log line, read without the package."""
    rows = []
    for file in demo.files:
        if "access.log" not in file:
            continue
        opener = gzip.open if file.endswith(".gz") else open
        with opener(file, "rt", encoding="utf-8") as handle:
            for line in handle:
                head, request, tail = line.split('"')[0], line.split('"')[1], line.split('"')[2]
                when = datetime.strptime(head.split("[")[1].split("]")[0],
                                         "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
                # ... $request_time $upstream_response_time $upstream_cache_status
                seconds = float(line.rsplit(" ", 3)[1])
                rows.append((when, int(tail.split()[0]), request.split()[1], seconds))
    return rows


def test_outputs_exist_and_notebook_ran_clean(weekly) -> None:
    """The run leaves the executed notebook (no error output), HTML, JSON and Markdown."""
    assert weekly.folder.name == WEEK and weekly.folder.parent.name == "weekly"
    for path in (weekly.notebook, weekly.html, weekly.summary_json, weekly.summary_md):
        assert path.is_file() and path.stat().st_size > 0
    executed = nbformat.read(weekly.notebook, as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []


def test_summary_matches_the_raw_logs(weekly, demo: DemoManifest) -> None:
    """Requests, 5xx, availability and API p95 in summary.json equal a count of the log text."""
    summary = json.loads(weekly.summary_json.read_text())
    assert summary["schema_version"] == 2 and summary["period"]["label"] == WEEK
    traffic = summary["traffic"]
    week = [r for r in raw_requests(demo) if WEEK_START <= r[0] < DEMO_END]
    errors = sum(1 for r in week if r[1] >= 500)
    assert (traffic["requests"], traffic["errors_5xx"]) == (len(week), errors)
    assert traffic["availability_pct"] == pytest.approx(100 * (1 - errors / len(week)),
                                                        abs=5e-5)
    api = np.array([r[3] * 1000 for r in week if r[2].startswith("/api/")])
    exact = np.percentile(api, 95, method="inverted_cdf")
    assert abs(traffic["p95_api_latency_ms"] - exact) / exact < 0.01
    # The demo's 7-minute outage: recovered over the 5-minute target, in whole seconds.
    assert [o["within_target"] for o in summary["outages"]] == [False]
    assert 5 * 60 < summary["outages"][0]["time_to_recover_s"] < 10 * 60


def test_markdown_digest(weekly) -> None:
    """summary.md leads with the title and week, then the status in words, then one line per
    SLO (a list, not a table: chat clients render lists)."""
    text = weekly.summary_md.read_text()
    assert text.startswith(f"**MySetlist weekly SLO report {WEEK}**")
    status = weekly.document["status"]
    assert text.splitlines()[2].startswith("**" + {"ok": "OK", "at_risk": "AT RISK",
                                                     "breach": "BREACHED",
                                                     "no_data": "NO DATA"}[status])
    assert sum(line.startswith("- ") for line in text.splitlines()) >= len(
        weekly.document["slos"])


def test_html_is_self_contained(weekly) -> None:
    """No script, style or image is fetched from anywhere: the report opens offline."""
    html = weekly.html.read_text()
    external = re.findall(r'<(?:script|link|img|iframe)[^>]+(?:src|href)="(?!data:)[^"]+"', html)
    assert external == []
    assert html.count("Plotly.newPlot") >= 5  # the figures, drawn by the embedded plotly.js
    assert html.count("DecompressionStream") == 1  # plotly.js once
    assert "nb.open_weekly(" not in html and "backtest_alerts(ctx.con" not in html  # no code


def test_failed_run_keeps_the_partial_notebook(demo_store_path: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that fails says which cell and why, and keeps the executed notebook."""
    failing = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"}})
    failing.cells = [nbformat.v4.new_code_cell('db = ""\nweek = ""', metadata={
                         "tags": ["parameters"]}),
                     nbformat.v4.new_code_cell("raise LookupError('no rows for ' + week)")]
    nbformat.write(failing, tmp_path / "failing.ipynb")
    monkeypatch.setattr("mysetlist_slo.report.runner.notebook_path",
                        lambda name: tmp_path / "failing.ipynb")
    with pytest.raises(ReportError) as caught:
        run_report("weekly", week=WEEK, db=demo_store_path, out=tmp_path, progress=False)
    assert "failed in cell 3" in str(caught.value)  # after the cell papermill injects
    assert f"LookupError: no rows for {WEEK}" in str(caught.value)
    assert caught.value.notebook.is_file()


def test_a_hung_cell_stops_the_run(demo_store_path: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell that runs past the cell timeout stops the run with a ReportError saying so (an
    unattended run never hangs) and keeps the executed notebook."""
    hanging = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"}})
    hanging.cells = [nbformat.v4.new_code_cell('db = ""\nweek = ""', metadata={
                         "tags": ["parameters"]}),
                     nbformat.v4.new_code_cell("import time\ntime.sleep(600)")]
    nbformat.write(hanging, tmp_path / "hanging.ipynb")
    monkeypatch.setattr("mysetlist_slo.report.runner.notebook_path",
                        lambda name: tmp_path / "hanging.ipynb")
    started = time.monotonic()
    with pytest.raises(ReportError) as caught:
        run_report("weekly", week=WEEK, db=demo_store_path, out=tmp_path, progress=False,
                   cell_timeout=3)
    assert "took longer than 3 s" in str(caught.value)
    assert time.monotonic() - started < 300  # stopped, not slept out
    assert caught.value.notebook.is_file()


def test_missing_store_fails_before_a_kernel_starts(tmp_path: Path) -> None:
    """A report on a store that does not exist names its absolute path and the command that
    creates it, and writes nothing."""
    with pytest.raises(SloError) as caught:
        run_report("weekly", week=WEEK, db=tmp_path / "missing.duckdb", out=tmp_path / "out",
                   progress=False)
    assert str(caught.value).startswith(f"{tmp_path / 'missing.duckdb'}: no such store;")
    assert "mysetlist-slo ingest" in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_terminal_digest_is_the_markdown_digest_as_plain_text(weekly) -> None:
    """What `report` prints is summary.md without its markup: the same lines once the
    Markdown escapes and bold markers are taken out, routes as they are (/show/[id])."""
    from mysetlist_slo.report.summaries import summary_text

    text = summary_text(weekly.document)
    markdown = weekly.summary_md.read_text()
    assert "\\" in markdown and "\\" not in text and "**" not in text
    assert text == re.sub(r"\\(.)", r"\1", markdown).replace("**", "")
    assert text.splitlines()[0] == f"MySetlist weekly SLO report {WEEK}"
    assert "[id]" in text or "[slug]" in text


def test_plain_text_is_one_inert_line() -> None:
    """Text from logs shown in plain text keeps its characters but loses what a terminal
    would obey (ESC, a bidi override) and its line breaks."""
    from mysetlist_slo.report.formatting import plain_text

    assert plain_text("/a\nb\x1b[2J\u202e*[x]*") == "/a b[2J*[x]*"


def test_route_names_are_escaped(demo: DemoManifest, tmp_path: Path) -> None:
    """A request for /<script>alert(1)</script> shows up escaped, never as markup."""
    db = tmp_path / "x.duckdb"
    con = open_store(db)
    for file in demo.files:
        ingest_file(con, file)
    evil = "/<script>alert(1)</script>"
    when = (WEEK_START + timedelta(days=2)).strftime("%d/%b/%Y:%H:%M:%S +0000")
    log = tmp_path / "evil.log"
    log.write_text("".join(timed_line(time=when, path=evil, status=500) + "\n"
                           for _ in range(150)))
    ingest_file(con, log)
    con.close()
    outputs = run_report("weekly", week=WEEK, db=db, out=tmp_path / "reports", progress=False)
    html = outputs.html.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
    assert "<script>alert(1)" not in outputs.summary_md.read_text()


def _chromium() -> str:
    """Return the path of Debian's chromium, installing the package when missing (as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium and no apt-get to install it")
    for command in (["apt-get", "update", "-qq"],
                    ["apt-get", "install", "-y", "-qq", "chromium"]):
        subprocess.run(command, check=True, capture_output=True,
                       env={"DEBIAN_FRONTEND": "noninteractive",
                            "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"})
    return shutil.which("chromium") or pytest.fail("chromium did not install")


def _browser_flags(browser: str, profile: Path) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}",
            # Networking off: every host resolves nowhere and any proxy hop fails.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=socks5://127.0.0.1:9",
            "--virtual-time-budget=15000", "--enable-logging=stderr", "--v=0"]


def _open_page(browser: str, page: Path, tmp_path: Path) -> tuple[str, str, set[str]]:
    """Load ``page``; return (DOM after scripts ran, browser log, URLs the page requested)."""
    netlog = tmp_path / f"{page.stem}.net.json"
    run = subprocess.run([*_browser_flags(browser, tmp_path / "profile"),
                          f"--log-net-log={netlog}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    log = json.loads(netlog.read_text())
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    # The browser's own housekeeping has no origin; the page's requests have one (file://).
    starts = [e.get("params", {}) for e in log["events"] if e["type"] == start_job]
    requested = {p["url"] for p in starts if "url" in p
                 and p.get("initiator") != "not an origin" and not p["url"].startswith("file:")}
    return run.stdout, run.stderr, requested


@pytest.mark.slow
def test_report_renders_in_headless_chromium(weekly, tmp_path: Path) -> None:
    """Opened in Chromium with networking disabled: every figure renders, no JavaScript error,
    no network request; a screenshot of the first screen is saved beside the report."""
    browser = _chromium()
    control = tmp_path / "control.html"
    control.write_text('<img src="https://cdn.example.org/x.png"><script>nosuch();</script>')
    _, control_log, control_requests = _open_page(browser, control, tmp_path)
    assert control_requests == {"https://cdn.example.org/x.png"}  # the checks can see both
    assert "Uncaught" in control_log

    dom, log, requested = _open_page(browser, weekly.html, tmp_path)
    figures = dom.count('class="plotly-graph-div')
    assert figures >= 5
    assert dom.count('class="main-svg"') >= figures  # each one drawn by plotly.js
    assert [line for line in log.splitlines() if "Uncaught" in line] == []
    assert requested == set()
    screenshot = weekly.folder / "first_screen.png"
    subprocess.run([*_browser_flags(browser, tmp_path / "profile"), "--window-size=1280,900",
                    f"--screenshot={screenshot}", weekly.html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert screenshot.stat().st_size > 10_000


def test_jupyterlab_renders_plotly_figures() -> None:
    """JupyterLab from the set-up has plotly's renderer enabled: figures need no extra step."""
    jupyter = shutil.which("jupyter", path=str(Path(sys.executable).parent)) or "jupyter"
    listed = subprocess.run([jupyter, "labextension", "list"], capture_output=True,
                            text=True, check=True)
    extensions = listed.stdout + listed.stderr
    assert re.search(r"jupyterlab-plotly v\S+ .*enabled.*OK", extensions), extensions


@pytest.mark.parametrize("name", ["explore", "web_vitals", "capacity_plan"])
def test_other_notebooks_run(name: str, demo_store_path: Path, tmp_path: Path) -> None:
    """Every shipped notebook runs top to bottom with papermill against the demo store."""
    import papermill

    from mysetlist_slo.report.runner import notebook_path

    output = tmp_path / f"{name}.ipynb"
    papermill.execute_notebook(str(notebook_path(name)), str(output),
                               parameters={"db": str(demo_store_path)}, progress_bar=False,
                               kernel_name="python3", cwd=str(tmp_path))
    executed = nbformat.read(output, as_version=4)
    assert all(c.get("execution_count") for c in executed.cells if c.cell_type == "code")


def test_notebooks_are_committed_clean() -> None:
    """Notebooks in the repository carry no outputs and a cell tagged 'parameters'."""
    from mysetlist_slo.report.runner import NOTEBOOKS

    for path in NOTEBOOKS.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), path
        assert any("parameters" in c.metadata.get("tags", []) for c in code), path


# --- the three reports: their own summaries, first screens, delivery, nbval ------------------

TOP_N = 10  # the notebooks' default top_n
PROBE = Path(__file__).with_name("first_screen_probe.js")
FIRST_SCREEN = (1400, 900)


@pytest.fixture(name="reports", scope="module")
def fixture_reports(weekly, demo_store_path: Path, tmp_path_factory: pytest.TempPathFactory):
    """All three reports of the small demo store's week, run once for this module."""
    out = tmp_path_factory.mktemp("more-reports")
    return {"weekly": weekly,
            **{kind: run_report(kind, week=WEEK, db=demo_store_path, out=out, progress=False)
               for kind in ("capacity", "vitals")}}


def test_each_report_writes_its_own_valid_summary(reports) -> None:
    """Every summary.json validates against the shipped JSON Schema and names its report;
    the three Markdown digests differ (each report carries its own)."""
    from mysetlist_slo.report.summaries import schema

    validator = jsonschema.Draft202012Validator(schema())
    digests = set()
    for kind, outputs in reports.items():
        document = json.loads(outputs.summary_json.read_text())
        assert list(validator.iter_errors(document)) == []
        assert document["report"] == kind and document["period"]["label"] == WEEK
        assert document["status"] in ("ok", "at_risk", "breach", "no_data")
        digests.add(outputs.summary_md.read_text())
    assert len(digests) == 3
    capacity = json.loads(reports["capacity"].summary_json.read_text())
    assert "replicas needed at the peak" in reports["capacity"].summary_md.read_text()
    hpa = capacity["hpa"]  # the 10,000-user scenario is far above the demo's traffic
    assert hpa["replicas_needed_at_concurrent_users"] > hpa["replicas_needed_at_peak"]
    assert hpa["max_is_enough_at_concurrent_users"] is (
        hpa["replicas_needed_at_concurrent_users"] <= hpa["max_replicas"])
    vitals = json.loads(reports["vitals"].summary_json.read_text())
    assert {m["metric"] for m in vitals["metrics"]} >= {"LCP", "INP", "CLS"}


def test_weekly_slo_statuses_match_the_budgets(weekly, demo_store_path: Path) -> None:
    """Each SLO's machine status follows its budget: breach exactly when less than nothing is
    left, and the overall status is the worst of them."""
    document = weekly.document
    for slo in document["slos"]:
        left = slo["budget_remaining_pct"]
        assert (slo["status"] == "breach") == (left is not None and left < 0), slo
        assert (slo["status"] == "no_data") == (left is None), slo
    order = ["breach", "at_risk", "no_data", "ok"]
    worst = min((s["status"] for s in document["slos"]), key=order.index)
    assert document["status"] == worst


def test_report_sizes(reports) -> None:
    """report.html stays under 2.5 MB for the demo week (plotly.js once, figures thinned and
    compacted, CSS that can match nothing left out), and the executed notebook keeps figures
    as plotly JSON only (no HTML copy)."""
    for outputs in reports.values():
        assert outputs.html.stat().st_size < 2_500_000, outputs.html
        executed = nbformat.read(outputs.notebook, as_version=4)
        figures = [o for c in executed.cells for o in c.get("outputs", [])
                   if "application/vnd.plotly.v1+json" in o.get("data", {})]
        assert all("text/html" not in o["data"] for o in figures)
        assert outputs.notebook.stat().st_size < 3_000_000


def _probe(browser: str, report: Path, tmp_path: Path) -> dict:
    """Open a copy of ``report`` with the probe script at 1400 x 900; return what it measured."""
    copy = tmp_path / f"{report.parent.parent.name}-probed.html"
    copy.write_text(report.read_text().replace(
        "</body>", f"<script>{PROBE.read_text()}</script></body>"))
    run = subprocess.run([*_browser_flags(browser, tmp_path / "profile"),
                          f"--window-size={FIRST_SCREEN[0]},{FIRST_SCREEN[1]}", "--dump-dom",
                          copy.as_uri()], capture_output=True, text=True, timeout=180)
    found = re.search(r'<pre id="msl-probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    import html as html_module

    return json.loads(html_module.unescape(found.group(1)))


def _numbers(values: list | None) -> list[float]:
    return [float(v) for v in values or [] if isinstance(v, int | float)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["weekly", "capacity", "vitals"])
def test_first_screen_in_chromium(kind: str, reports, tmp_path: Path) -> None:
    """At 1400 x 900 the status (and, in the weekly report, every SLO's status row) is in the
    first screen; no table shows more than top-N rows; every figure is drawn and no axis
    range runs orders of magnitude past its data. Screenshots are kept beside the report."""
    browser = _chromium()
    outputs = reports[kind]
    seen = _probe(browser, outputs.html, tmp_path)
    assert seen["banners"] and seen["banners"][0]["bottom"] <= FIRST_SCREEN[1]
    if kind == "weekly":
        # A composite's row is named as `status` names it.
        names = [slo["name"] + (" (composite)" if slo["sli"] == "composite" else "")
                 for slo in outputs.document["slos"]]
        assert len(seen["rows"]) == len(names)
        for name, row in zip(names, seen["rows"], strict=True):
            assert row["text"].split("\t")[0].strip() == name
            assert row["bottom"] <= FIRST_SCREEN[1], row
    assert max(seen["tables"]) <= TOP_N
    assert seen["figures"] and all(f["drawn"] for f in seen["figures"])
    for figure in seen["figures"]:
        for name, axis in figure["axes"].items():
            if not name.startswith("yaxis") or not isinstance(axis["range"][0], int | float):
                continue
            suffix = name.removeprefix("yaxis")
            values = [v for trace in figure["data"] if trace["type"] == "scatter"
                      and trace["yaxis"] == "y" + suffix for v in _numbers(trace["y"])
                      if axis["type"] != "log" or v > 0]
            if not values:
                continue
            low, high = axis["range"]
            if axis["type"] == "log":  # at most two decades beyond the data
                span = np.log10(max(values)) - np.log10(min(values))
                assert high - low <= span + 2, (figure["title"], axis, min(values), max(values))
            else:
                scale = max(max(values) - min(values), abs(max(values)), 1e-9)
                assert high - low <= 20 * scale, (figure["title"], axis)
    first = outputs.folder / "first_screen.png"
    subprocess.run([*_browser_flags(browser, tmp_path / "profile"),
                    f"--window-size={FIRST_SCREEN[0]},{FIRST_SCREEN[1]}",
                    f"--screenshot={first}", outputs.html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    full = outputs.folder / "full_page.png"
    subprocess.run([*_browser_flags(browser, tmp_path / "profile"),
                    f"--window-size={FIRST_SCREEN[0]},{min(seen['height'], 16_000)}",
                    f"--screenshot={full}", outputs.html.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert first.stat().st_size > 10_000 and full.stat().st_size > first.stat().st_size
    artifacts = os.environ.get("MYSETLIST_SCREENSHOTS")  # CI keeps them as artifacts
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for shot in (first, full):
            shutil.copy(shot, Path(artifacts) / f"{kind}-{shot.name}")


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A Slack-compatible incoming webhook: records each POST and answers 200 ``ok``."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.received.append((self.path, self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture(name="webhook")
def fixture_webhook():
    """A local HTTP server recording what it received; yields (base URL, received list)."""
    _Recorder.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Recorder.received
    server.shutdown()
    server.server_close()


def test_slack_gets_mrkdwn_with_the_report_link(weekly, webhook,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Through apprise's real Slack plugin (only its fixed hooks.slack.com base pointed at the
    local server), Slack receives mrkdwn: *bold*, no Markdown table, no **, and the report
    link in Slack's <url|text> form."""
    from apprise.plugins.slack import NotifySlack

    from mysetlist_slo.report.delivery import deliver

    base, received = webhook
    monkeypatch.setattr(NotifySlack, "webhook_url", f"{base}/services")
    results = deliver(weekly.document, ["slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"],
                      report_url="https://reports.example.org/weekly/2026-W47/report.html")
    assert [r.delivered for r in results] == [True]
    assert "TIiajkdnlazkcOXrIdevi7" not in results[0].target  # the token is not printed
    path, body = received[0]
    assert path == "/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7"
    payload = json.loads(body)
    text = payload["attachments"][0]["text"] if "attachments" in payload else payload["text"]
    assert text.startswith(f"*MySetlist weekly SLO report {WEEK}*")
    assert "**" not in text and "|---" not in text
    assert ("<https://reports.example.org/weekly/2026-W47/report.html|Open the report>"
            in text)
    for slo in weekly.document["slos"]:
        assert f"- {slo['name']}:" in text or f"• {slo['name']}:" in text


def test_failed_delivery_exits_non_zero_after_writing(demo_store_path: Path, webhook,
                                                      tmp_path: Path, capsys) -> None:
    """One good and one unreachable target: the report is written, the good one receives it,
    the bad one is named in one error line, and the command exits 1."""
    from mysetlist_slo.cli import main

    base, received = webhook
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    code = main(["report", "weekly", "--week", WEEK, "--db", str(demo_store_path),
                 "--out", str(tmp_path), "--notify", base.replace("http", "json", 1) + "/hook",
                 "--notify", f"json://127.0.0.1:{dead_port}/hook"])
    assert code == 1
    assert (tmp_path / "weekly" / WEEK / "report.html").is_file()
    assert len(received) == 1 and json.loads(received[0][1])["title"].endswith(WEEK)
    errors = [line for line in capsys.readouterr().err.splitlines()
              if line.startswith("error: not delivered")]
    assert len(errors) == 1 and str(dead_port) in errors[0]


@pytest.mark.slow
def test_notebooks_run_under_nbval_from_the_notebooks_folder(tmp_path: Path) -> None:
    """`pytest --nbval-lax` in notebooks/ (where JupyterLab starts kernels) runs every notebook
    with its default parameters (the last full week before today) against a small demo that
    ends this Monday; the store is found through $MYSETLIST_SLO_DB."""
    today = datetime.now(UTC).date()
    monday = today - timedelta(days=today.weekday())
    demo = generate_demo(tmp_path / "demo", end=datetime(monday.year, monday.month, monday.day,
                                                          tzinfo=UTC), weeks=2, mean_rps=0.1)
    store = tmp_path / "metrics.duckdb"
    con = open_store(store)
    for file in demo.files:
        ingest_file(con, file)
    con.close()
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"  # the folder people open
    env = {**os.environ, "MYSETLIST_SLO_DB": str(store)}
    run = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "-q",
                          "-p", "no:cacheprovider", "."], cwd=notebooks, env=env,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:]
    cells = sum(c.cell_type == "code" for path in notebooks.glob("*.ipynb")
                for c in nbformat.read(path, as_version=4).cells)  # nbval: one item per cell
    assert re.search(rf"\b{cells} passed\b", run.stdout), run.stdout[-2000:]


def test_weekly_report_carries_the_error_budget_policy(weekly) -> None:
    """The demo's budget state freezes releases for api-latency: summary.json carries the
    policy state with its action, evidence and history, the composite shows as a status row
    and with its members' spend, and the digest says what the policy asks."""
    policy = weekly.document["error_budget_policy"]
    states = {s["name"]: s for s in policy["slos"]}
    latency = states["api-latency"]
    assert (latency["state"], latency["status"], latency["since"]) == ("freeze", "at_risk",
                                                                       WEEK)
    assert latency["budget_remaining_pct"] < policy["freeze_below_pct"]
    assert latency["history"][-1] == {"week": WEEK, "state": "freeze",
                                      "budget_remaining_pct": latency["budget_remaining_pct"]}
    rows = {s["name"]: s for s in weekly.document["slos"]}
    assert rows["api-experience"]["sli"] == "composite"
    [composite] = policy["composites"]
    assert composite["budget_remaining_pct"] == rows["api-experience"]["budget_remaining_pct"]
    spent = sum(m["budget_spent_pct"] for m in composite["members"])
    assert spent == pytest.approx(100 - composite["budget_remaining_pct"], abs=0.05)
    digest = weekly.summary_md.read_text()
    assert "- policy: api-latency: release freeze since 2026-W47" in digest
    assert "api-experience: api-latency spent" in digest
    assert "Error-budget policy" in weekly.html.read_text()
