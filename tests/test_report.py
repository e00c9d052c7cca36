"""The weekly report: papermill run, offline HTML, summary.json checked against the raw logs."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import numpy as np
import pytest
from conftest import DEMO_END, timed_line

from mysetlist_slo import DemoManifest, ingest_file, open_store
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
                seconds = float(line.rsplit(" ", 2)[1])
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


def test_failed_run_keeps_the_partial_notebook(tmp_path: Path) -> None:
    """A run that fails says which cell and why, and keeps the executed notebook."""
    with pytest.raises(ReportError) as caught:
        run_report("weekly", week=WEEK, db=tmp_path / "missing.duckdb", out=tmp_path,
                   progress=False)
    assert "failed in cell" in str(caught.value) and "mysetlist-slo demo" in str(caught.value)
    assert caught.value.notebook.is_file()


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
