"""Alerts: the burn-rate pages catch the demo's incidents; the plan's static alerts are noisy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from conftest import DEMO_END

from mysetlist_slo import DemoManifest, ingest_file, load_config
from mysetlist_slo.config import StaticAlert, parse_config
from mysetlist_slo.slo.alerts import backtest_alerts, budget_incidents, static_alerts
from mysetlist_slo.slo.attribution import budget_attribution

START = DEMO_END - timedelta(days=14)


def test_outage_paged_within_minutes(demo: DemoManifest, demo_con) -> None:
    """The 7-minute outage is caught by the 1 h / 5 min page within 3 minutes of its start,
    and by a page, not only by a ticket."""
    config = load_config()
    slo = config.slos[0]
    outage = demo.event("outage")
    incidents = pd.DataFrame([{"start": outage.start, "end": outage.end}])
    result = backtest_alerts(demo_con, slo, config, START, DEMO_END, incidents)
    detection = result.detection.set_index("rule")
    page = detection.loc["page 1h/5m x14.4"]
    assert page["time_to_detect"] <= timedelta(minutes=3)
    ticket = detection.loc["ticket 1d/2h x3"]
    assert pd.isna(ticket["time_to_detect"]) or ticket["time_to_detect"] > page["time_to_detect"]
    # The page resets within minutes of the end: its 5-minute short window lets go quickly.
    assert page["time_to_reset"] <= timedelta(minutes=6)


def test_incidents_found_in_the_sli(demo: DemoManifest, demo_con) -> None:
    """The outage and the deploy spike show up as incidents in the availability SLI itself."""
    slo = load_config().slos[0]
    found = budget_incidents(demo_con, slo, START, DEMO_END)
    outage, spike = demo.event("outage"), demo.event("deploy_error_spike")
    overlaps = [any(row.start < e.end and row.end > e.start for row in found.itertuples())
                for e in (outage, spike)]
    assert overlaps == [True, True]
    assert len(found) <= 4  # baseline errors one at a time are not incidents


def test_burn_rate_rules_are_quieter_than_static_ones(demo_con) -> None:
    """Over two weeks the burn-rate pages never fire outside incidents; the plan's error-rate
    alert does, on single errors at low traffic."""
    config = load_config()
    summary = backtest_alerts(demo_con, config.slos[0], config, START, DEMO_END).summary
    by_rule = summary.set_index("rule")
    assert by_rule.loc["page 1h/5m x14.4", "noisy_firings"] == 0
    assert by_rule.loc["high_error_rate", "noisy_firings"] > 0


def test_static_alert_hand_worked(store, write_log) -> None:
    """One minute at 2 % errors fires 'error rate > 1 %' over 5 minutes for exactly the
    minutes whose window holds it; the minute it leaves the window, it stops."""
    t0 = DEMO_END - timedelta(hours=1)
    rows = []
    for m in range(10):
        for i in range(100):
            status = 500 if m == 3 and i < 2 else 200
            rows.append({"timestamp": (t0 + timedelta(minutes=m)).isoformat(), "path": "/",
                         "status": status})
    ingest_file(store, write_log("r.jsonl", [json.dumps(r) for r in rows]))
    rule = StaticAlert(name="e", metric="error_rate", op=">", value=0.001, severity="x",
                       window="5m")
    firings = static_alerts(store, [rule], t0, t0 + timedelta(minutes=10))
    # 2 errors in a 5-minute window of 500 requests is 0.4 % > 0.1 %: windows ending at
    # minutes 3..7 hold minute 3, so it fires at the end of minute 3 until the end of minute 7.
    assert firings[["start", "end"]].values.tolist() == [
        [t0 + timedelta(minutes=4), t0 + timedelta(minutes=9)]]


def test_attribution_hand_worked(store, write_log) -> None:
    """Bad events are split by route, status and hour with their shares."""
    t = DEMO_END - timedelta(hours=2)
    rows = ([("/show/1", 500, t)] * 3 + [("/artist/x", 503, t + timedelta(hours=1))]
            + [("/show/2", 200, t)] * 50)
    ingest_file(store, write_log("r.jsonl", [json.dumps(
        {"timestamp": ts.isoformat(), "path": p, "status": s}) for p, s, ts in rows]))
    slo = parse_config("slos: [{name: a, sli: availability, objective: 99}]").slos[0]
    routes = budget_attribution(store, slo, t, DEMO_END, by="route")
    assert routes.values.tolist() == [["/show/[id]", 3, 0.75], ["/artist/[slug]", 1, 0.25]]
    statuses = budget_attribution(store, slo, t, DEMO_END, by="status")
    assert statuses["status"].tolist() == ["500", "503"]
    hours = budget_attribution(store, slo, t, DEMO_END, by="hour")
    later = t + timedelta(hours=1)
    assert hours["hour"].tolist() == [f"{t:%Y-%m-%d %H}:00", f"{later:%Y-%m-%d %H}:00"]


def _one_bad_minute(path, day, bad: int):  # type: ignore[no-untyped-def]
    """Write 6 hours from ``day`` at exactly 100 requests a minute, of which the first ``bad``
    of the minute at 03:00 fail (503); return the path."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    times, statuses = [], []
    for minute in range(360):
        for i in range(100):
            times.append(day + timedelta(minutes=minute, seconds=i * 0.6))
            statuses.append(503 if minute == 180 and i < bad else 200)
    pq.write_table(pa.table({"timestamp": pa.array(times, pa.timestamp("us", tz="UTC")),
                             "path": ["/"] * len(times), "status": statuses}), path)
    return path


@pytest.mark.parametrize(("window", "day", "found"), [
    ("7d", "2026-11-10", True),     # 7 x 1,440 min x 100 x 0.1 % = 1,008 allowed; 1 % = 10.08
    ("28d", "2026-11-10", True),    # 4,032 allowed, 1 % = 40.32 <= 42
    ("30d", "2026-11-10", False),   # 4,320 allowed, 1 % = 43.2 > 42
    ("month", "2027-02-10", True),  # February 2027: 28 days, as 28d
    ("month", "2026-11-10", False),  # November: 30 days, as 30d
    ("week", "2026-11-10", True),   # an ISO week: 7 days
])
def test_incident_share_is_of_the_window_in_force(store, tmp_path, window: str, day: str,
                                                  found: bool) -> None:
    """At 100 requests a minute and 99.9 %, one minute with 42 failures (burn 420) is an
    incident when it spent 1 % of the budget of the SLO's own window: 42 >= 40.32 of a 28-day
    window (or a 28-day February), but 42 < 43.2 of a 30-day one (or November)."""
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    ingest_file(store, _one_bad_minute(tmp_path / "r.parquet", start, 42))
    slo = parse_config(f"slos: [{{name: s, sli: availability, objective: 99.9, "
                       f"window: {window}}}]").slos[0]
    incidents = budget_incidents(store, slo, start, start + timedelta(hours=6))
    expected = [(start + timedelta(hours=3), start + timedelta(hours=3, minutes=1), 42)]
    assert [tuple(r) for r in incidents.itertuples(index=False)] == (expected if found else [])
