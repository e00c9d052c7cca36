"""Deploys: the deploy log and the Vercel, GitHub and Sentry responses into the ``deploys``
table, and each deploy's budget spend and error and latency changes, checked by hand and
against an oracle over the raw events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mysetlist_slo import DemoManifest, IngestError, ingest_file, load_config
from mysetlist_slo.config import parse_config
from mysetlist_slo.slo.deploys import (
    NO_DEPLOYS,
    budget_spent,
    deploy_events,
    deploy_impact,
    histogram_mann_whitney,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "deploys"
NOV = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(("name", "rows"), [
    ("deploys.jsonl", 3), ("deploys.csv", 2), ("vercel-deployments.json", 3),
    ("github-deployments.json", 3), ("github-deployment-statuses.json", 3),
    ("sentry-releases.json", 2)])
def test_each_example_is_told_and_loaded(store, name: str, rows: int) -> None:
    """Every example file is told to be deploys from its content and lands whole."""
    result = ingest_file(store, EXAMPLES / name)
    assert (result.kind, result.loaded, result.rejected) == ("deploys", rows, 0)
    assert store.execute("SELECT count(*) FROM deploys").fetchone() == (rows,)


def test_examples_give_the_deploys_that_went_live(store) -> None:
    """Across all sources, two production deploys went live: v2.13.8 and v2.14.0, each at the
    time our own log gives; the failed v2.13.9 (Vercel ERROR, GitHub failure), the preview and
    the staging deploy are not among them; sources naming one commit are one deploy."""
    for path in [*sorted(EXAMPLES.glob("*.json*")), EXAMPLES / "deploys.csv"]:
        ingest_file(store, path)
    deploys = deploy_events(store, load_config(), *NOV)
    assert deploys["version"].tolist() == ["v2.13.8", "v2.14.0"]
    assert deploys["deployed_at"].tolist() == [pd.Timestamp("2026-11-20T14:31:40Z"),
                                               pd.Timestamp("2026-11-24T10:02:05Z")]
    assert deploys["sources"].tolist() == ["github, log, sentry", "github, log, sentry, vercel"]
    assert deploys["commit"].iloc[1] == "9f2c4e1d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"


def test_github_deployment_dated_by_its_success_status(store) -> None:
    """Alone, GitHub's responses date v2.14.0 at its success status (10:02:05, not its
    creation at 10:00) and drop v2.13.9, whose only status is a failure."""
    for name in ("github-deployments.json", "github-deployment-statuses.json"):
        ingest_file(store, EXAMPLES / name)
    deploys = deploy_events(store, load_config(), *NOV)
    assert dict(zip(deploys["version"], deploys["deployed_at"], strict=True)) == {
        "v2.13.8": pd.Timestamp("2026-11-20T14:30:00Z"),  # no status loaded: its creation
        "v2.14.0": pd.Timestamp("2026-11-24T10:02:05Z")}


def test_bad_records_are_located(tmp_path: Path, store) -> None:
    """Bad deploy records are refused naming line and field (a JSON response's record by its
    number and path); with a limit they are kept as rejects and the good ones load."""
    log = tmp_path / "deploys.jsonl"
    log.write_text("\n".join([
        json.dumps({"timestamp": "2026-11-24T10:00:00Z", "service": "web", "version": "v1"}),
        json.dumps({"timestamp": "2026-11-24T10:00:00", "service": "web", "version": "v2"}),
        json.dumps({"timestamp": "2026-11-24T11:00:00Z", "service": "web"}),
    ]) + "\n")
    with pytest.raises(IngestError) as refused:
        ingest_file(store, log)
    assert "2: timestamp: no time zone offset" in str(refused.value)
    assert "3: version: missing" in str(refused.value)
    assert store.execute("SELECT count(*) FROM deploys").fetchone() == (0,)
    vercel = json.loads((EXAMPLES / "vercel-deployments.json").read_text())
    vercel["deployments"][1]["created"] = "yesterday"
    vercel["deployments"][1].pop("ready")
    bad = tmp_path / "vercel.json"
    bad.write_text(json.dumps(vercel))
    result = ingest_file(store, bad, max_bad_rows=1)
    assert (result.loaded, result.rejected) == (2, 1)
    assert store.execute("SELECT line, field FROM rejects").fetchall() == [
        (2, "deployments[1].created")]
    statuses = json.loads((EXAMPLES / "github-deployment-statuses.json").read_text())
    statuses[0]["state"] = "<script>"
    bad_status = tmp_path / "statuses.json"
    bad_status.write_text(json.dumps(statuses))
    with pytest.raises(IngestError, match=r"1: \[0\]\.state: not one of error"):
        ingest_file(store, bad_status)


def test_budget_spent_hand_worked() -> None:
    """By hand: 8 bad of 2,000 in 2 h against 99.9 % over 30 days is a burn rate of 4, so
    4 x 2 / 720 = 1/90 of the budget (8 hours of it); 1 bad of 2,000 is 1/720 (1 hour)."""
    span, window = timedelta(hours=2), timedelta(days=30)
    assert budget_spent(1992, 2000, 99.9, span, window) == Fraction(1, 90)
    assert budget_spent(1999, 2000, 99.9, span, window) == Fraction(1, 720)
    assert budget_spent(0, 0, 99.9, span, window) is None
    # 28 days against 99 %: 3 bad of 100 is a burn of 3; 3 x 2 / 672 = 1/112.
    assert budget_spent(97, 100, 99.0, span, timedelta(days=28)) == Fraction(1, 112)


def _requests(start: datetime, minutes: int, per_minute: int, bad: int,
              latency_ms: int) -> list[str]:
    """Return JSONL request records: ``per_minute`` a minute from ``start`` for ``minutes``,
    the first ``bad`` of them answered 500."""
    rows = []
    for i in range(minutes * per_minute):
        when = start + timedelta(minutes=i // per_minute, seconds=i % per_minute)
        rows.append(json.dumps({"timestamp": when.isoformat().replace("+00:00", "Z"),
                                "path": "/api/shows/1", "status": 500 if i < bad else 200,
                                "duration_ms": latency_ms}))
    return rows


def _deploy_log(path: Path, *deploys: tuple[str, datetime]) -> Path:
    path.write_text("".join(json.dumps({
        "timestamp": when.isoformat().replace("+00:00", "Z"), "service": "mysetlist-web",
        "version": version, "environment": "production"}) + "\n" for version, when in deploys))
    return path


AVAILABILITY = parse_config("""
slos: [{name: availability, sli: availability, objective: 99.9, window: 30d}]
deploys: {hours: 2h, alpha: 0.01}
""")


def test_hand_worked_deploy(tmp_path: Path, store) -> None:
    """A deploy at 12:00 with 2,000 requests in the 2 h before (1 a 500) and 2,000 after (8 of
    them 500s): 1 h and 8 h of the 30-day budget, burn rates 0.5 and 4; the line says so. Its
    p-value is Fisher's on that table; the burn test makes it a regression."""
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)
    events = tmp_path / "requests.jsonl"
    events.write_text("\n".join(_requests(at - timedelta(hours=2), 120, 2000 // 120 + 1, 1, 50)
                                [:2000] + _requests(at, 120, 2000 // 120 + 1, 8, 50)[:2000])
                      + "\n")
    ingest_file(store, events)
    ingest_file(store, _deploy_log(tmp_path / "deploys.jsonl", ("v2.14.0", at)))
    impact = deploy_impact(store, AVAILABILITY, *NOV)
    budget = impact.budgets.iloc[0]
    assert (budget["events_before"], budget["bad_before"]) == (2000, 1)
    assert (budget["events_after"], budget["bad_after"]) == (2000, 8)
    assert budget["burn_rate_before"] == pytest.approx(0.5)
    assert budget["burn_rate_after"] == pytest.approx(4)
    assert budget["budget_hours_before"] == pytest.approx(1)
    assert budget["budget_hours_after"] == pytest.approx(8)
    assert budget["budget_spent_after"] == pytest.approx(1 / 90)
    # P(X >= 8) for X ~ Binomial(2000, 0.001): by hand from the pmf.
    tail = 1 - sum(stats.binom.pmf(k, 2000, 0.001) for k in range(8))
    assert budget["burn_p_value"] == pytest.approx(tail, rel=1e-6) and tail < 0.01
    deploy = impact.deploys.iloc[0]
    assert deploy["verdict"] == "regressed" and deploy["burning"] == "availability"
    assert deploy["error_p_value"] == pytest.approx(
        stats.fisher_exact([[8, 1992], [1, 1999]])[1])
    assert impact.lines[0].startswith(
        "v2.14.0 (Tue 12:00 UTC) burned 8 h of the 30-day availability budget in 2 h "
        "(1 h in the 2 h before); error rate 0.4 % vs 0.05 % before, p = 0.039")


def test_no_deploys_is_one_line(store) -> None:
    """Without deploys the impact says so in one line and its status is no data."""
    impact = deploy_impact(store, load_config(), *NOV)
    assert impact.lines == [NO_DEPLOYS] and impact.status == "no data"
    assert impact.to_dict()["deploys"] == []


def test_histogram_mann_whitney_matches_scipy_on_expanded_samples() -> None:
    """From bucket counts, U and p equal scipy's asymptotic Mann-Whitney U test (tie-corrected,
    with continuity correction) on the samples the histograms stand for."""
    rng = np.random.default_rng(7)
    for _ in range(20):
        buckets = np.sort(rng.choice(np.arange(1, 400) * 1000, 40, replace=False))
        before = pd.Series(rng.poisson(rng.uniform(1, 30), len(buckets)), index=buckets)
        after = pd.Series(rng.poisson(rng.uniform(1, 30), len(buckets)), index=buckets)
        after.index = after.index + rng.choice([0, 1000], len(buckets))  # partly other buckets
        after = after.groupby(level=0).sum()
        u, p = histogram_mann_whitney(before, after)
        expected = stats.mannwhitneyu(np.repeat(after.index, after.to_numpy()),
                                      np.repeat(before.index, before.to_numpy()),
                                      method="asymptotic")
        assert u == pytest.approx(expected.statistic, rel=1e-12)
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    assert np.isnan(histogram_mann_whitney(pd.Series(dtype=float), before)[1])


ORACLE_CONFIG = parse_config("""
slos:
  - {name: availability, sli: availability, objective: 99.5, window: 30d}
  - {name: api-latency, sli: latency, routes: ["/api/*"], threshold_ms: 200, objective: 99.0,
     window: 28d}
deploys: {hours: 90m, alpha: 0.05, min_requests: 10}
""")


def test_deploy_impact_against_an_oracle(tmp_path: Path, store) -> None:
    """Random traffic (errors and latency shifting over time) and deploys at random seconds:
    every count, error rate, Fisher p, p95, Mann-Whitney p and budget spent equals brute
    force over the raw events in pandas and scipy."""
    rng = np.random.default_rng(2026)
    start = datetime(2026, 11, 24, 6, tzinfo=UTC)
    n = 6000
    seconds = np.sort(rng.integers(0, 12 * 3600, n))
    error_share = np.where(seconds > 7 * 3600, 0.03, 0.004)
    events = pd.DataFrame({
        "ts": pd.to_datetime(start) + pd.to_timedelta(seconds, unit="s"),
        "route": rng.choice(["/api/shows/1", "/show/2"], n),
        "status": np.where(rng.random(n) < error_share, 503, 200),
        # whole milliseconds below 1,000: three significant digits, their own buckets
        "ms": np.clip(rng.lognormal(np.log(np.where(seconds > 4 * 3600, 150, 120)), 0.5, n)
                      .astype(int), 1, 999)})
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps({
        "timestamp": ts.isoformat().replace("+00:00", "Z"), "path": route,
        "status": int(status), "duration_ms": int(ms)}) + "\n"
        for ts, route, status, ms in events.itertuples(index=False)))
    ingest_file(store, path)
    moments = sorted(start + timedelta(seconds=int(s)) for s in
                     rng.integers(2 * 3600, 10 * 3600, 4))
    ingest_file(store, _deploy_log(tmp_path / "deploys.jsonl",
                                   *[(f"v{i}", m) for i, m in enumerate(moments)]))
    impact = deploy_impact(store, ORACLE_CONFIG, *NOV)
    span = pd.Timedelta(minutes=90)
    for deploy in impact.deploys.itertuples():
        at = pd.Timestamp(deploy.deployed_at).floor("min")
        before = events[(events["ts"] >= at - span) & (events["ts"] < at)]
        after = events[(events["ts"] >= at) & (events["ts"] < at + span)]
        assert (deploy.requests_before, deploy.requests_after) == (len(before), len(after))
        bad_b, bad_a = int((before["status"] >= 500).sum()), int((after["status"] >= 500).sum())
        assert (deploy.errors_before, deploy.errors_after) == (bad_b, bad_a)
        assert deploy.error_p_value == pytest.approx(stats.fisher_exact(
            [[bad_a, len(after) - bad_a], [bad_b, len(before) - bad_b]])[1])
        # Latency from the 5-minute sketches: slots wholly inside each span, each value read
        # as its DDSketch bucket (1 % accuracy), worked here from the definition.
        slot = events["ts"].dt.floor("5min")
        answered = events["status"] < 500
        ok_b = events[answered & (slot >= at - span) & (slot + pd.Timedelta(minutes=5) <= at)]
        ok_a = events[answered & (slot >= at) & (slot + pd.Timedelta(minutes=5) <= at + span)]
        gamma = 101 / 99
        sketched_b, sketched_a = (
            2 * gamma ** np.ceil(np.log(frame["ms"] * 1000) / np.log(gamma)) / (gamma + 1) / 1000
            for frame in (ok_b, ok_a))
        for got, exact, sketched in ((deploy.p95_before_ms, ok_b["ms"], sketched_b),
                                     (deploy.p95_after_ms, ok_a["ms"], sketched_a)):
            assert got == pytest.approx(np.percentile(sketched, 95, method="inverted_cdf"))
            assert got == pytest.approx(np.percentile(exact, 95, method="inverted_cdf"),
                                        rel=0.01)
        assert deploy.latency_p_value == pytest.approx(stats.mannwhitneyu(
            sketched_a, sketched_b, method="asymptotic").pvalue, rel=1e-9)
        budgets = impact.budgets[impact.budgets["version"] == deploy.version].set_index("slo")
        for name, window in (("before", before), ("after", after)):
            availability_bad = int((window["status"] >= 500).sum())
            spent = availability_bad / len(window) / 0.005 * 1.5 / (30 * 24)
            assert budgets.loc["availability", f"budget_spent_{name}"] == pytest.approx(spent)
            api = window[window["route"].str.startswith("/api/") & (window["status"] < 500)]
            slow = int((api["ms"] >= 200).sum())
            assert budgets.loc["api-latency", f"events_{name}"] == len(api)
            assert budgets.loc["api-latency", f"budget_hours_{name}"] == pytest.approx(
                slow / len(api) / 0.01 * 1.5)


def test_demo_flags_its_bad_release(demo: DemoManifest, demo_con) -> None:
    """Of the demo's last-week production deploys (the preview and the failed build left out),
    only v2.14.0 — the one that starts the error spike — is a regression, for burning the
    availability and error-rate budgets; its line leads the list."""
    config = load_config()
    end = demo.end
    impact = deploy_impact(demo_con, config, end - timedelta(days=7), end)
    assert impact.deploys["version"].tolist() == ["v2.13.1", "v2.13.2", "v2.14.0", "v2.14.1",
                                                  "v2.14.2"]
    assert set(impact.deploys["sources"]) == {"log, vercel"}
    flagged = impact.deploys[impact.deploys["verdict"] == "regressed"]
    assert flagged["version"].tolist() == ["v2.14.0"]
    assert flagged["deployed_at"].iloc[0] == demo.event("bad_release").start
    assert "availability" in flagged["burning"].iloc[0]
    assert impact.status == "regressed" and impact.lines[0].startswith("v2.14.0 ")
    assert "regressed: burning availability, error-rate" in impact.lines[0]


def test_every_time_series_figure_marks_the_deploys() -> None:
    """Each time-series figure draws one dotted line per deploy inside its span (none outside),
    labelled with the escaped version, the regressed one in the breach colour."""
    from mysetlist_slo.report.figures import (
        burn_rate_figure,
        burndown_figure,
        forecast_figure,
        incident_timeline_figure,
        replay_figure,
        technical_figure,
    )
    from mysetlist_slo.report.formatting import STATUS_COLOURS

    t0 = datetime(2026, 11, 20, tzinfo=UTC)
    times = pd.date_range(t0, periods=48, freq="h")
    deploys = pd.DataFrame({
        "deployed_at": [t0 + timedelta(hours=5), t0 + timedelta(hours=30),
                        t0 + timedelta(days=9)],  # the last one is outside every figure
        "version": ["v1", "<b>v2</b>", "v3"], "verdict": ["ok", "regressed", "ok"]})
    series = pd.DataFrame({"minute": times, "burn_1h": 1.0})
    series.attrs["thresholds"] = {}
    firings = pd.DataFrame({"rule": ["page"], "severity": ["page"], "start": [times[0]],
                            "end": [times[-1]]})
    figures = [
        burndown_figure(pd.DataFrame({"time": times, "budget_remaining": 0.5}), deploys=deploys),
        burn_rate_figure(series, deploys=deploys),
        incident_timeline_figure(firings, pd.DataFrame(columns=["start", "end"]),
                                 deploys=deploys),
        forecast_figure(pd.Series(1.0, index=times), pd.DataFrame(
            {k: 1.0 for k in ("mean", "lo80", "hi80", "lo95", "hi95")},
            index=times + timedelta(days=2)), deploys=deploys),
        replay_figure(pd.DataFrame({"time": times, "replicas": 2, "load_rps": 1.0}), 10,
                      deploys=deploys),
        technical_figure(pd.DataFrame({"cpu": 1.0, "memory": 2.0}, index=times),
                         deploys=deploys),
    ]
    for figure in figures:
        markers = [s for s in figure.layout.shapes if s.yref == "paper" and s.x0 == s.x1]
        assert [pd.Timestamp(s.x0) for s in markers] == [
            pd.Timestamp("2026-11-20T05:00"), pd.Timestamp("2026-11-21T06:00")], figure
        assert [s.line.color for s in markers] == ["#7f7f7f", STATUS_COLOURS["breach"]]
        labels = [a.text for a in figure.layout.annotations if a.yref == "paper"
                  and a.textangle == -30]
        assert labels == ["v1", "&lt;b&gt;v2&lt;/b&gt;"]
    unmarked = burndown_figure(pd.DataFrame({"time": times, "budget_remaining": 0.5}))
    assert len(unmarked.layout.shapes) == 1  # the zero line only


def test_weekly_summary_and_digest_carry_the_bad_release(demo: DemoManifest, demo_con,
                                                         store) -> None:
    """The demo week's summary.json holds ``deploys`` (valid against the schema): five
    deploys, v2.14.0 regressed and listed first with its budget hours, and the digest names
    it in one line; a store without deploys says so in one line."""
    from mysetlist_slo.report.formatting import markdown_text
    from mysetlist_slo.report.summaries import (
        deploys_document,
        summary_document,
        summary_markdown,
        validate,
    )
    from mysetlist_slo.report.weekly import weekly_summary

    config = load_config()
    document = summary_document("weekly", demo_con, config,
                                weekly_summary(demo_con, config, "2026-W47"))
    validate(document)
    deploys = document["deploys"]
    assert (deploys["status"], deploys["total"], deploys["regressed"]) == ("at_risk", 5, 1)
    first = deploys["deploys"][0]
    assert (first["version"], first["verdict"], first["deployed_at"]) == (
        "v2.14.0", "regressed", demo.event("bad_release").start.strftime("%Y-%m-%dT%H:%M:%SZ"))
    assert first["budget_spent_after_h"] > 4 * first["budget_spent_before_h"]
    digest = summary_markdown(document).splitlines()
    assert [line for line in digest if line.startswith("- deploy")] == [
        "- deploy " + markdown_text(first["text"])]
    assert "regressed: burning availability" in first["text"]
    empty = deploys_document(deploy_impact(store, config, *NOV))
    assert empty == {"status": "no_data", "hours": 2.0, "total": 0, "regressed": 0,
                     "deploys": []}
    document["deploys"] = empty
    validate(document)
    assert "- deploys: none in production this week" in summary_markdown(document)


def test_cli_ingest_kind_deploys(tmp_path: Path) -> None:
    """``mysetlist-slo ingest --kind deploys`` loads a GitHub response and reports its rows."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "mysetlist_slo", "--db", str(tmp_path / "m.duckdb"), "ingest",
         "--kind", "deploys", "--json", str(EXAMPLES / "github-deployments.json")],
        capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[0])
    assert (result["kind"], result["loaded"], result["rejected"]) == ("deploys", 3, 0)
