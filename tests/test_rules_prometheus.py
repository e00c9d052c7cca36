"""Generated Prometheus rules: promtool accepts them, their numbers are the backtest's, and a
rules file read back replays exactly its own alerts."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from conftest import DEMO_END
from rules_helpers import (
    alerts_of,
    check_rules,
    config_with,
    fixture_promtool,  # noqa: F401  (the promtool fixture)
)

from mysetlist_slo.cli import main
from mysetlist_slo.config import load_config
from mysetlist_slo.errors import ConfigError
from mysetlist_slo.rules.backtest import backtest_rules, read_rules
from mysetlist_slo.rules.prometheus import prometheus_rules
from mysetlist_slo.slo.alerts import backtest_alerts


def test_promtool_accepts_the_default_rules(promtool: str, tmp_path: Path) -> None:
    """The rules from the shipped config pass `promtool check rules` (37 rules: 2 SLOs x 17,
    3 plan alerts)."""
    path = tmp_path / "rules.yaml"
    path.write_text(prometheus_rules(load_config()).to_yaml(), "utf-8")
    assert "SUCCESS: 37 rules found" in check_rules(promtool, path)


def test_promtool_accepts_every_mapping(promtool: str, tmp_path: Path) -> None:
    """Node preset with routes, explicit queries, `for:`, annotations and quote-laden route
    globs all give rules promtool accepts; every SLO is generated, none skipped."""
    config = config_with('''
prometheus:
  preset: node-http
  selector: 'job="web", namespace=~"prod|canary"'
  runbook_url: https://runbooks.example.com/slo/{slo}
  dashboard_url: https://grafana.example.com/d/mysetlist-slo?var-slo={slo}
  slis:
    uptime-probes:
      good: sum(rate(probe_success_total{job="blackbox"}[{{.window}}]))
      total: sum(rate(probe_total{job="blackbox"}[{{.window}}]))
    db-query-time:
      good: sum(rate(pg_query_duration_seconds_bucket{le="0.1"}[{{.window}}]))
      total: sum(rate(pg_query_duration_seconds_count[{{.window}}]))
alerts:
  burn_rate:
    - {severity: page, long_window: 1h, short_window: 5m, burn_rate: 14.4, for: 2m}
    - {severity: ticket, long_window: 3d, short_window: 6h, burn_rate: 1}
''')
    slos = [s.model_copy(update={"routes": ['/api/"quoted"\\[x]/*', "/_next/*"]})
            if s.name == "api-latency" else s for s in config.slos]
    rule_set = prometheus_rules(config.model_copy(update={"slos": slos}))
    assert rule_set.skipped == {}
    path = tmp_path / "rules.yaml"
    path.write_text(rule_set.to_yaml(), "utf-8")
    check_rules(promtool, path)
    alerts = alerts_of(rule_set.document)
    page = next(a for a in alerts if a["labels"]["slo"] == "availability"
                and a["labels"]["severity"] == "page")
    assert page["for"] == "2m"
    assert page["annotations"]["runbook_url"] == "https://runbooks.example.com/slo/availability"
    latency = next(r for g in rule_set.document["groups"] for r in g["rules"]
                   if r.get("record") == "slo:sli_error:ratio_rate5m"
                   and r["labels"]["slo"] == "api-latency")
    assert 'le="0.2"' in latency["expr"] and 'status_code!~"5.."' in latency["expr"]
    assert 'route=~"/api/\\"quoted\\"\\\\\\\\\\\\[x\\\\]/.*|/_next/.*"' in latency["expr"]


def test_thresholds_follow_the_slo_window() -> None:
    """Alert thresholds are the workbook's 30-day rates scaled by window/30 d (hand-worked:
    28 d pages at 14.4 x 28/30 = 13.44 and 6 x 28/30 = 5.6; 30 d keeps 14.4 and 6)."""
    document = prometheus_rules(load_config()).document
    thresholds = {(a["labels"]["slo"], a["labels"]["long_window"]):
                  float(a["expr"].split(">= ")[1].split(")")[0]) for a in alerts_of(document)
                  if "slo" in a["labels"]}
    assert thresholds == pytest.approx({
        ("availability", "1h"): 14.4, ("availability", "6h"): 6.0,
        ("availability", "1d"): 3.0, ("availability", "3d"): 1.0,
        ("error-rate", "1h"): 13.44, ("error-rate", "6h"): 5.6,
        ("error-rate", "1d"): 2.8, ("error-rate", "3d"): 28 / 30}, rel=1e-11)


def test_plan_alerts_are_generated_and_labelled() -> None:
    """The plan's three static alerts are in the file, marked as the plan's, with its
    thresholds and windows."""
    alerts = {a["alert"]: a for a in alerts_of(prometheus_rules(load_config()).document)}
    assert alerts["high_error_rate"]["labels"]["origin"] == "deployment-plan"
    assert alerts["high_error_rate"]["expr"].endswith("[5m])) > 0.01")
    assert alerts["slow_response_time"]["expr"].endswith("* 1000 > 500")
    assert "[1h]" in alerts["low_availability"]["expr"]
    assert alerts["low_availability"]["expr"].endswith(" < 0.999")


@pytest.mark.parametrize(("extra", "key"), [
    ("prometheus: {selector: 'job=web'}", "prometheus.selector"),
    ("prometheus: {preset: datadog}", "prometheus.preset"),
    ("prometheus: {route_label: 'route name'}", "prometheus.route_label"),
    ("prometheus: {slis: {nope: {good: 'sum(x[{{.window}}])', total: 'sum(y[{{.window}}])'}}}",
     "prometheus.slis: no SLO named 'nope'"),
    ("prometheus: {slis: {availability: {good: 'sum(rate(x[5m]))', total: 'y[{{.window}}]'}}}",
     "prometheus.slis.availability.good"),
    ("alerts: {burn_rate: [{severity: page, long_window: 1h, short_window: 5m, burn_rate: 2, "
     "for: soon}]}", "alerts.burn_rate[0].for"),
])
def test_bad_rule_settings_name_the_key(extra: str, key: str) -> None:
    """A wrong prometheus/alert setting is a ConfigError naming the key."""
    with pytest.raises(ConfigError) as raised:
        config_with(extra)
    assert key in str(raised.value)


def test_read_back_gives_the_generated_numbers(tmp_path: Path) -> None:
    """Reading a generated file back yields each SLO's windows, rates and `for`, and the
    plan's alerts, as written."""
    config = config_with("alerts: {burn_rate: [{severity: page, long_window: 1h, "
                         "short_window: 5m, burn_rate: 14.4, for: 3m}]}")
    path = tmp_path / "rules.yaml"
    path.write_text(prometheus_rules(config).to_yaml(), "utf-8")
    deployed = read_rules(path)
    assert set(deployed.burn_rate) == {"availability", "error-rate"}
    (rule,) = deployed.burn_rate["error-rate"]
    assert (rule.long_window, rule.short_window, rule.for_duration) == (
        timedelta(hours=1), timedelta(minutes=5), timedelta(minutes=3))
    assert rule.burn_rate == pytest.approx(13.44, rel=1e-11)
    assert deployed.static == list(config.alerts.static)


def test_read_back_refuses_foreign_and_mismatched_rules(tmp_path: Path) -> None:
    """A hand-written alert, or rules written for another objective, are ConfigErrors naming
    the file and the rule or SLO."""
    path = tmp_path / "rules.yaml"
    document = prometheus_rules(load_config()).document
    document["groups"][0]["rules"].append({"alert": "Mine", "expr": "up == 0"})
    path.write_text(yaml.safe_dump(document), "utf-8")
    with pytest.raises(ConfigError, match=r"(?s)rules.yaml.*\(Mine\): not generated"):
        read_rules(path)
    path.write_text(prometheus_rules(load_config()).to_yaml(), "utf-8")
    stricter = config_with("slos: [{name: availability, sli: availability, objective: 99.5},"
                           " {name: error-rate, sli: error_rate, objective: 99.9}]")
    con = duckdb.connect()
    with pytest.raises(ConfigError, match=r"'availability': rules written for an error budget "
                                          r"of 0\.001"):
        backtest_rules(con, stricter, read_rules(path), DEMO_END - timedelta(days=1), DEMO_END)


def test_replaying_the_file_matches_the_backtest(demo_con: duckdb.DuckDBPyConnection,
                                                 tmp_path: Path) -> None:
    """Over the demo's two weeks, replaying the generated file fires exactly when the
    configured backtest does (the 30-day SLO: same rules, same numbers)."""
    config = load_config()
    path = tmp_path / "rules.yaml"
    path.write_text(prometheus_rules(config).to_yaml(), "utf-8")
    start = DEMO_END - timedelta(weeks=2)
    replayed = backtest_rules(demo_con, config, read_rules(path), start, DEMO_END)
    slo = next(s for s in config.slos if s.name == "availability")
    direct = backtest_alerts(demo_con, slo, config, start, DEMO_END)
    pd.testing.assert_frame_equal(replayed["availability"].firings, direct.firings)
    assert replayed["availability"].summary["firings"].sum() > 0  # the demo's outage pages


def test_cli_writes_and_replays_rules(demo_store_path: Path, tmp_path: Path, capsys) -> None:
    """`rules prometheus --out` writes the file; `rules backtest --rules` replays it and says
    how often it would have paged and how many incidents it caught."""
    out = tmp_path / "rules.yaml"
    assert main(["rules", "prometheus", "--out", str(out)]) == 0
    assert read_rules(out).burn_rate
    assert main(["rules", "backtest", "--rules", str(out), "--db", str(demo_store_path),
                 "--weeks", "2", "--end", DEMO_END.isoformat()]) == 0
    printed = capsys.readouterr().out
    assert f"These are the rules in {out} for availability; over the 2 weeks" in printed
    assert "would have paged" in printed and "incident(s)" in printed
    assert main(["rules", "backtest", "--rules", str(out), "--db", str(demo_store_path),
                 "--weeks", "2", "--end", DEMO_END.isoformat(), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert set(summary) == {"availability", "error-rate"}
    assert {row["rule"] for row in summary["error-rate"]} >= {"page 1h/5m x13.44",
                                                              "high_error_rate"}


def test_replay_follows_edits_to_the_file(demo_con: duckdb.DuckDBPyConnection,
                                          tmp_path: Path) -> None:
    """A page threshold raised by hand in the file is what the replay uses: the rule, now named
    by its new rate, never fires over the demo, while the configured one pages on its outage."""
    config = load_config()
    text = prometheus_rules(config).to_yaml()
    assert text.count(">= 14.4)") == 2  # availability's 1h/5m page, both windows
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace(">= 14.4)", ">= 1000)"), "utf-8")
    start = DEMO_END - timedelta(weeks=2)
    summary = backtest_rules(demo_con, config, read_rules(path), start,
                             DEMO_END)["availability"].summary.set_index("rule")
    assert summary.loc["page 1h/5m x1000", "firings"] == 0
    slo = next(s for s in config.slos if s.name == "availability")
    direct = backtest_alerts(demo_con, slo, config, start, DEMO_END).summary.set_index("rule")
    assert direct.loc["page 1h/5m x14.4", "firings"] > 0
