"""The proof that the backtest and the deployed rules agree: one synthetic request history is
fed to `promtool test rules` as input series and, as a request export through the real ingest
path, to the package's backtest of the generated rules file; the alerts must fire and resolve at
the same evaluation times in both."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from rules_helpers import (
    config_with,
    fixture_promtool,  # noqa: F401  (the promtool fixture)
)

from mysetlist_slo.config import Config
from mysetlist_slo.rules.backtest import backtest_rules, read_rules
from mysetlist_slo.rules.prometheus import prometheus_rules
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.ingest import ingest_file

START = datetime(2026, 11, 20, tzinfo=UTC)
MINUTES = 600  # ten hours, evaluated every minute
PER_MINUTE = 37  # a prime: no error count lands exactly on a threshold (no float ties)
FAST_MS, SLOW_MS = 80, 950
ROUTE_PATH, ROUTE = "/api/shows/42", "/api/shows/[id]"


def scenario() -> pd.DataFrame:
    """Per minute: requests, 5xx errors, answered requests slower than 200 ms. A stray error,
    a 20-minute outage at half errors, a 30-minute latency regression, then an hour of slow
    burn (an error every other minute), quiet in between."""
    minutes = np.arange(MINUTES)
    errors = np.zeros(MINUTES, dtype=int)
    errors[60] = 1
    errors[120:140] = 18
    errors[400:460:2] = 1
    slow = np.where((minutes >= 300) & (minutes < 330), PER_MINUTE - errors, 0)
    return pd.DataFrame({"total": PER_MINUTE, "errors": errors, "slow": slow})


def write_export(events: pd.DataFrame, path: Path) -> Path:
    """Write the scenario as a request export (JSON Lines), one record per request."""
    with path.open("w", encoding="utf-8") as out:
        for minute, row in events.iterrows():
            for i in range(int(row["total"])):
                at = START + timedelta(minutes=int(minute), seconds=i)
                status = 500 if i < row["errors"] else 200
                slow = row["errors"] <= i < row["errors"] + row["slow"]
                out.write(json.dumps({"timestamp": at.isoformat().replace("+00:00", "Z"),
                                      "path": ROUTE_PATH, "status": status,
                                      "duration_ms": SLOW_MS if slow else FAST_MS}) + "\n")
    return path


def input_series(events: pd.DataFrame, preset: str) -> list[dict[str, str]]:
    """Return promtool input series of the scenario as the preset's exporter would expose them:
    counters sampled every minute, the sample at t counting the requests before t."""
    ok = events["total"] - events["errors"]
    per_status = {
        "200": {"count": ok, "fast": ok - events["slow"],
                "sum": (ok - events["slow"]) * FAST_MS / 1000 + events["slow"] * SLOW_MS / 1000},
        "500": {"count": events["errors"], "fast": events["errors"],
                "sum": events["errors"] * FAST_MS / 1000},
    }
    if preset == "nginx-ingress":
        requests, histogram = "nginx_ingress_controller_requests", \
            "nginx_ingress_controller_request_duration_seconds"
        labels = 'status="{status}"'
    else:
        requests, histogram = None, "http_request_duration_seconds"
        labels = f'route="{ROUTE}", status_code="{{status}}"'

    def counter(values: pd.Series) -> str:
        cumulative = np.concatenate(([0.0], np.cumsum(values.to_numpy(dtype=float))))
        return " ".join(repr(round(float(v), 6)) for v in cumulative)

    series = []
    for status, parts in per_status.items():
        selector = labels.format(status=status)
        if requests:
            series.append({"series": f"{requests}{{{selector}}}",
                           "values": counter(parts["count"])})
        series += [
            {"series": f"{histogram}_count{{{selector}}}", "values": counter(parts["count"])},
            {"series": f"{histogram}_sum{{{selector}}}", "values": counter(parts["sum"])},
            {"series": f'{histogram}_bucket{{{selector}, le="0.2"}}',
             "values": counter(parts["fast"])},
        ]
    return series


def expected_alerts(firings: pd.DataFrame, rules_doc: dict, at: datetime) -> dict[str, list]:
    """Return, per alert name, the alerts the backtest says are firing at ``at``, with the
    labels and annotations the rules file gives them."""
    by_rule = {}
    for group in rules_doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                key = rule["annotations"].get("rule", rule["alert"])
                by_rule[(rule["labels"].get("slo"), key)] = rule
    out: dict[str, list] = {}
    for row in firings[(firings["start"] <= at) & (firings["end"] > at)].itertuples():
        rule = by_rule[(row.slo, row.rule)]
        out.setdefault(rule["alert"], []).append(
            {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]})
    return out


def backtest_firings(config: Config, rules_path: Path, export: Path,
                     db: Path) -> pd.DataFrame:
    """Return the firings of the rules file replayed over the export, loaded into a store."""
    con = open_store(db)
    try:
        ingest_file(con, export, config=config)
        results = backtest_rules(con, config, read_rules(rules_path), START,
                                 START + timedelta(minutes=MINUTES))
    finally:
        con.close()
    frames = []
    for slo, result in results.items():
        own = result.firings[result.firings["kind"] == "burn rate"].assign(slo=slo)
        frames.append(own)
    static = next(iter(results.values())).firings
    frames.append(static[static["kind"] == "static"].assign(slo=None))
    return pd.concat(frames, ignore_index=True)


def period_ratio_tests(events: pd.DataFrame) -> list[dict]:
    """Return promtool expression tests: at whole hours, the SLO-window error ratio (composed
    from hourly counts) is the bad share of every request so far, summed here with numpy,
    and the budget remaining follows from it."""
    tests = []
    for hours in (2, 5, MINUTES // 60):
        so_far = events.iloc[:hours * 60]
        ratio = float(so_far["errors"].sum() / so_far["total"].sum())
        for slo, period in (("availability", "30d"), ("error-rate", "28d")):
            selector = f'{{slo="{slo}"}}'
            tests += [
                {"eval_time": f"{hours}h", "exp_samples": [{"labels": selector, "value": 1}],
                 "expr": f"abs(slo:sli_error:ratio_rate{period}{selector} - {ratio!r}) "
                         "< bool 1e-12"},
                {"eval_time": f"{hours}h", "exp_samples": [{"labels": selector, "value": 1}],
                 "expr": f"abs(slo:period_error_budget_remaining:ratio{selector} - "
                         f"{1 - ratio / 0.001!r}) < bool 1e-9"}]
    return tests


CASES = {
    "nginx-ingress": "prometheus: {preset: nginx-ingress}",
    "node-http, for: 2m": """
prometheus: {preset: node-http}
alerts:
  burn_rate:
    - {severity: page, long_window: 1h, short_window: 5m, burn_rate: 14.4, for: 2m}
    - {severity: page, long_window: 6h, short_window: 30m, burn_rate: 6, for: 2m}
    - {severity: ticket, long_window: 1d, short_window: 2h, burn_rate: 3}
    - {severity: ticket, long_window: 3d, short_window: 6h, burn_rate: 1}
  static:
    - {name: high_error_rate, metric: error_rate, op: ">", value: 0.01, severity: critical}
    - {name: slow_response_time, metric: response_time_ms, op: ">", value: 500,
       severity: warning}
    - {name: low_availability, metric: uptime, op: "<", value: 0.999, severity: critical,
       window: 1h}
""",
}


@pytest.mark.parametrize("case", CASES)
def test_promtool_and_backtest_fire_at_the_same_times(case: str, promtool: str,
                                                      tmp_path: Path) -> None:
    """At every minute of the scenario, the alerts promtool evaluates from the generated rules
    are exactly those the backtest of the same file has firing (each rule fires and resolves
    in both at the same evaluation); the SLO-window ratio is the exact bad share so far."""
    config = config_with(CASES[case])
    rules_path = tmp_path / "rules.yaml"
    rule_set = prometheus_rules(config)
    rules_path.write_text(rule_set.to_yaml(), "utf-8")
    events = scenario()
    firings = backtest_firings(config, rules_path, write_export(events, tmp_path / "r.jsonl"),
                               tmp_path / "store.duckdb")
    # The scenario exercises what it should: pages fire and resolve, tickets and plan alerts
    # fire, so agreement below is not agreement on silence.
    assert {"page", "ticket", "critical", "warning"} <= set(firings["severity"])
    assert (firings["end"] < START + timedelta(minutes=MINUTES)).any()
    names = sorted({r["alert"] for g in rule_set.document["groups"] for r in g["rules"]
                    if "alert" in r})
    tests = []
    for minute in range(1, MINUTES):
        at = START + timedelta(minutes=minute)
        expected = expected_alerts(firings, rule_set.document, at)
        tests += [{"eval_time": f"{minute}m", "alertname": name,
                   "exp_alerts": expected.get(name, [])} for name in names]
    series = input_series(events, config.prometheus.preset)
    unit = {"rule_files": [rules_path.name], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": tests,
                       "promql_expr_test": period_ratio_tests(events)}]}
    test_path = tmp_path / "rules_test.yaml"
    test_path.write_text(yaml.safe_dump(unit, width=1 << 20), "utf-8")
    result = subprocess.run([promtool, "test", "rules", str(test_path)], capture_output=True,
                            text=True, check=False, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[:6000]

