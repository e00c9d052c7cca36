"""A Grafana dashboard over the generated recording rules: per SLO, the SLI over its window,
the error budget remaining, and the burn rate over each alert window against the thresholds."""

from __future__ import annotations

import json
from typing import Any

from mysetlist_slo.config import Config, SloConfig
from mysetlist_slo.rules.prometheus import BUDGET_REMAINING, ERROR_RATIO, error_budget, slo_rules
from mysetlist_slo.rules.promql import prom_duration, promql_string, sli_queries, slo_length

DASHBOARD_UID = "mysetlist-slo"
SCHEMA_VERSION = 39  # Grafana 10.4/11 dashboards
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _target(ref: str, expr: str, legend: str) -> dict[str, Any]:
    return {"refId": ref, "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}


def _stat(title: str, target: dict[str, Any], x: int, y: int, steps: list[dict[str, Any]],
          description: str) -> dict[str, Any]:
    return {"type": "stat", "title": title, "description": description,
            "datasource": _DATASOURCE, "targets": [target],
            "gridPos": {"h": 6, "w": 6, "x": x, "y": y},
            "fieldConfig": {"defaults": {"unit": "percentunit", "decimals": 3,
                                         "thresholds": {"mode": "absolute", "steps": steps}},
                            "overrides": []},
            "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                          "values": False}, "colorMode": "value"}}


def _slo_panels(slo: SloConfig, config: Config, y: int, next_id: list[int]) -> list[dict]:
    name = promql_string(slo.name)
    period = prom_duration(slo_length(slo))
    budget = error_budget(slo)
    rules = slo_rules(slo, config)
    windows = sorted({w for r in rules for w in (r.long_window, r.short_window)})

    def ratio(window: str) -> str:
        return ERROR_RATIO.format(window=window) + "{slo=" + name + "}"

    sli = _stat(f"SLI over {period}", _target("A", f"1 - {ratio(period)}", slo.name), 0, y + 1,
                [{"color": "red", "value": None},
                 {"color": "green", "value": slo.objective / 100}],
                f"Good share over the {period} window (objective {slo.objective:g} %).")
    remaining = _stat(
        "Error budget remaining",
        _target("A", f"{BUDGET_REMAINING}{{slo={name}}}", slo.name), 6, y + 1,
        [{"color": "red", "value": None}, {"color": "orange", "value": 0},
         {"color": "green", "value": 0.25}],
        f"Share of the {period} error budget not yet spent.")
    thresholds = sorted({round(r.burn_rate, 9) for r in rules})
    burn = {
        "type": "timeseries", "title": "Burn rate per window",
        "description": "Bad share over each alert window divided by the allowed share; a rule "
                       "fires when its long and short windows both reach its threshold line.",
        "datasource": _DATASOURCE,
        "targets": [_target(chr(ord("A") + i), f"{ratio(prom_duration(w))} / {budget:g}",
                            prom_duration(w)) for i, w in enumerate(windows)],
        "gridPos": {"h": 6, "w": 12, "x": 12, "y": y + 1},
        "fieldConfig": {"defaults": {
            "unit": "x", "custom": {"thresholdsStyle": {"mode": "line"}},
            "thresholds": {"mode": "absolute", "steps": [{"color": "green", "value": None}] + [
                {"color": "red", "value": t} for t in thresholds]}}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}}}
    row = {"type": "row", "title": f"SLO {slo.name}: {slo.objective:g} % over {period}",
           "collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}, "panels": []}
    panels = [row, sli, remaining, burn]
    for panel in panels:
        panel["id"] = next_id[0]
        next_id[0] += 1
    return panels


def grafana_dashboard(config: Config, uid: str = DASHBOARD_UID,
                      title: str = "MySetlist SLOs") -> dict[str, Any]:
    """Return a Grafana dashboard (JSON model) over the recording rules of ``rules
    prometheus``: a row per SLO that maps to Prometheus series, with its SLI, budget remaining
    and burn rates against the alert thresholds; the Prometheus data source is a variable."""
    panels: list[dict[str, Any]] = []
    next_id = [1]
    for slo in config.slos:
        if isinstance(sli_queries(slo, config), str):
            continue
        panels += _slo_panels(slo, config, 7 * (len(panels) // 4), next_id)
    return {
        "uid": uid, "title": title, "tags": ["slo", "mysetlist-slo"], "editable": True,
        "schemaVersion": SCHEMA_VERSION, "version": 1, "timezone": "utc",
        "time": {"from": "now-7d", "to": "now"}, "refresh": "1m",
        "templating": {"list": [{"name": "datasource", "label": "Prometheus",
                                 "type": "datasource", "query": "prometheus",
                                 "current": {}, "hide": 0}]},
        "annotations": {"list": []},
        "panels": panels,
    }


def grafana_json(config: Config, uid: str = DASHBOARD_UID) -> str:
    """Return the dashboard of ``config`` as JSON text (see grafana_dashboard)."""
    return json.dumps(grafana_dashboard(config, uid), indent=2, ensure_ascii=False) + "\n"
