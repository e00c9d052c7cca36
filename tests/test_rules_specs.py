"""Sloth specs, OpenSLO documents and the Grafana dashboard generated from the configuration:
OpenSLO loads back into the same SLOs, Sloth's windows give the backtest's thresholds, and
every PromQL expression parses and reads a recording rule that `rules prometheus` writes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from rules_helpers import (
    alerts_of,
    check_rules,
    config_with,
    fixture_promtool,  # noqa: F401  (the promtool fixture)
)

from mysetlist_slo.cli import main
from mysetlist_slo.config import load_config, parse_config, parse_duration
from mysetlist_slo.errors import ConfigError
from mysetlist_slo.rules.grafana import grafana_dashboard
from mysetlist_slo.rules.openslo import openslo_documents, openslo_yaml
from mysetlist_slo.rules.prometheus import prometheus_rules
from mysetlist_slo.rules.sloth import sloth_files


def promql_parses(promtool: str, exprs: list[str], tmp_path: Path) -> None:
    """Fail unless promtool parses every expression (each wrapped as a recording rule)."""
    path = tmp_path / "parse-check.yaml"
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]
    path.write_text(yaml.safe_dump({"groups": [{"name": "parse", "rules": rules}]}), "utf-8")
    assert f"SUCCESS: {len(exprs)} rules found" in check_rules(promtool, path)


MIXED = """
timezone: Europe/Berlin
slos:
  - {name: availability, sli: availability, objective: 99.9, window: 30d,
     description: Non-5xx requests.}
  - {name: api-latency, sli: latency, routes: ["/api/*", "/show/[id]"], threshold_ms: 250,
     objective: 99.0, window: month, description: API under 250 ms.}
  - {name: weekly-uptime, sli: probe_uptime, objective: 99.5, window: week,
     budgeting: timeslices, timeslice_target: 95, timezone: America/New_York,
     description: Probe minutes.}
  - {name: probe-default-slices, sli: probe_uptime, objective: 99.9, window: 7d,
     budgeting: timeslices, description: Slices at the objective.}
  - {name: db, sli: db_query_time, threshold_ms: 100, objective: 99.0, window: 28d,
     description: Statements under 100 ms.}
"""


@pytest.mark.parametrize("extra", ["{}", MIXED], ids=["shipped", "mixed"])
def test_openslo_documents_load_back_identically(extra: str, tmp_path: Path) -> None:
    """Written as OpenSLO and read back through load_config, every SLO is the same SLO (a
    calendar window's inherited time zone comes back written out, the one it had)."""
    config = config_with(extra)
    path = tmp_path / "slos.yaml"
    path.write_text(openslo_yaml(config), "utf-8")
    back = load_config(path)
    expected = [s.model_copy(update={"timezone": config.timezone_of(s)}) if s.is_calendar
                else s for s in config.slos]
    assert back.slos == expected
    kinds = [d["kind"] for d in yaml.safe_load_all(path.read_text("utf-8"))]
    assert kinds == ["Service"] + ["SLO"] * len(config.slos)


def test_openslo_refuses_names_that_are_no_dns_labels() -> None:
    """An SLO name OpenSLO cannot carry is a ConfigError naming the key, not a bad file."""
    config = config_with("slos: [{name: Api_Latency, sli: availability, objective: 99}]")
    with pytest.raises(ConfigError, match=r"slos\[0\].name: OpenSLO needs a DNS label"):
        openslo_documents(config)


def test_openslo_slo_must_name_a_declared_service() -> None:
    """With Service documents present, an SLO naming another service is refused by key."""
    documents = openslo_documents(load_config())
    documents[1]["spec"]["service"] = "elsewhere"
    with pytest.raises(ConfigError, match=r"documents\[1\].spec.service: no Service document"):
        parse_config(yaml.safe_dump_all(documents), "slos.yaml")


def test_sloth_windows_give_the_backtest_thresholds(promtool: str, tmp_path: Path) -> None:
    """Sloth's burn rate for each window (errorBudgetPercent/100 x period / long window, as its
    docs define it) equals the threshold of the matching generated Prometheus alert, and every
    event query parses once Sloth substitutes a window."""
    config = load_config()
    files = sloth_files(config)
    assert set(files) == {"sloth-30d.yaml", "sloth-28d.yaml", "alert-windows/30d.yaml",
                          "alert-windows/28d.yaml"}
    deployed = {(a["labels"]["slo"], a["labels"]["long_window"]):
                float(re.search(r">= ([0-9.e-]+)\)", a["expr"]).group(1))
                for a in alerts_of(prometheus_rules(config).document) if "slo" in a["labels"]}
    exprs = []
    for period in ("30d", "28d"):
        spec = yaml.safe_load(files[f"sloth-{period}.yaml"])
        windows = yaml.safe_load(files[f"alert-windows/{period}.yaml"])["spec"]
        assert spec["version"] == "prometheus/v1" and windows["sloPeriod"] == period
        for slo in spec["slos"]:
            for severity in ("page", "ticket"):
                for speed in ("quick", "slow"):
                    w = windows[severity][speed]
                    rate = (w["errorBudgetPercent"] / 100 * parse_duration(period)
                            / parse_duration(w["longWindow"]))
                    assert rate == pytest.approx(deployed[(slo["name"], w["longWindow"])],
                                                 rel=1e-9)
            exprs += [q.replace("{{.window}}", "5m") for q in slo["sli"]["events"].values()]
    assert len(exprs) == 4
    promql_parses(promtool, exprs, tmp_path)


def test_sloth_needs_two_rules_per_severity() -> None:
    """Sloth's alert windows hold two page and two ticket rules; other shapes are refused."""
    config = config_with("alerts: {burn_rate: [{severity: page, long_window: 1h, "
                         "short_window: 5m, burn_rate: 14.4}]}")
    with pytest.raises(ConfigError, match=r"alerts\.burn_rate: Sloth needs exactly two page"):
        sloth_files(config)


def test_grafana_dashboard_is_complete_and_parses(promtool: str, tmp_path: Path) -> None:
    """The dashboard has a uid, every panel but rows a data source and targets; every
    expression parses and reads only series the generated rules record; the burn-rate
    threshold lines are the alert thresholds."""
    config = load_config()
    dashboard = json.loads(json.dumps(grafana_dashboard(config)))
    assert dashboard["uid"] == "mysetlist-slo" and dashboard["title"]
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(panels) == 6  # availability and error-rate: SLI, budget, burn rates
    recorded = {(r["record"], r["labels"]["slo"]) for g in prometheus_rules(config).document[
        "groups"] for r in g["rules"] if "record" in r}
    exprs = []
    for panel in panels:
        assert panel["datasource"]["type"] == "prometheus" and panel["targets"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and isinstance(panel["id"], int)
        for target in panel["targets"]:
            assert target["refId"] and target["datasource"] == panel["datasource"]
            exprs.append(target["expr"])
            for name, slo in re.findall(r'([a-z_:0-9]+)\{slo="([^"]+)"\}', target["expr"]):
                assert (name, slo) in recorded, target["expr"]
    promql_parses(promtool, exprs, tmp_path)
    burn = next(p for p in panels if p["title"] == "Burn rate per window"
                and "error-rate" in p["targets"][0]["expr"])
    lines = [s["value"] for s in burn["fieldConfig"]["defaults"]["thresholds"]["steps"][1:]]
    assert lines == pytest.approx(sorted([28 / 30, 2.8, 5.6, 13.44]))


def test_cli_writes_every_kind(tmp_path: Path) -> None:
    """`rules sloth|openslo|grafana --out` write their files; the OpenSLO one loads back."""
    assert main(["rules", "sloth", "--out", str(tmp_path / "sloth")]) == 0
    assert (tmp_path / "sloth" / "alert-windows" / "28d.yaml").is_file()
    assert main(["rules", "openslo", "--out", str(tmp_path / "slos.yaml")]) == 0
    assert load_config(tmp_path / "slos.yaml").slos == load_config().slos
    assert main(["rules", "grafana", "--out", str(tmp_path / "d.json"), "--uid", "x1"]) == 0
    assert json.loads((tmp_path / "d.json").read_text("utf-8"))["uid"] == "x1"


@pytest.mark.parametrize("kind", ["prometheus", "sloth", "openslo", "grafana", "backtest"])
def test_rules_help_has_examples(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each `rules` command's --help shows examples that start with the program name."""
    with pytest.raises(SystemExit) as exited:
        main(["rules", kind, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"mysetlist-slo rules {kind}" in out
