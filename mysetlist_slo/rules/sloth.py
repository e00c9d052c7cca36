"""Sloth ``prometheus/v1`` specs of the configured SLOs, with the alert windows as Sloth's
``AlertWindows`` documents carrying the same windows and budget shares as the backtest.

Sloth takes one SLO period per run, so the SLOs are grouped by the length of their window; a
Sloth rule spends ``errorBudgetPercent`` of the period's budget over its long window, which is
exactly how ``scaled_rules`` keeps a rule's share when the window changes (13.44 over 28 d is
the 2 % that 14.4 is over 30 d).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from mysetlist_slo.config import Config, SloConfig
from mysetlist_slo.errors import ConfigError
from mysetlist_slo.rules.prometheus import slo_rules
from mysetlist_slo.rules.promql import prom_duration, sli_queries, slo_length
from mysetlist_slo.slo.alerts import AlertRule

SPEC_VERSION = "prometheus/v1"


def alert_name(slo: SloConfig) -> str:
    """Return the Sloth alert name of an SLO: its name in CamelCase + ``ErrorBudgetBurn``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[-_.]", slo.name) if p) \
        + "ErrorBudgetBurn"


def _windows(rules: list[AlertRule], period: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"sloPeriod": period}
    for severity in ("page", "ticket"):
        own = sorted((r for r in rules if r.severity == severity), key=lambda r: r.long_window)
        if len(own) != 2:
            raise ConfigError("<configuration>", [
                f"alerts.burn_rate: Sloth needs exactly two {severity} rules (quick and slow), "
                f"not {len(own)}"])
        spec[severity] = {speed: {"errorBudgetPercent": round(100 * r.budget_share, 9),
                                  "shortWindow": prom_duration(r.short_window),
                                  "longWindow": prom_duration(r.long_window)}
                          for speed, r in zip(("quick", "slow"), own, strict=True)}
    return {"apiVersion": "sloth.slok.dev/v1", "kind": "AlertWindows", "spec": spec}


def _slo_spec(slo: SloConfig, config: Config) -> dict[str, Any] | None:
    queries = sli_queries(slo, config)
    if isinstance(queries, str):
        return None
    annotations = {key: template.replace("{slo}", slo.name) for key, template in (
        ("runbook_url", config.prometheus.runbook_url),
        ("dashboard_url", config.prometheus.dashboard_url)) if template}
    alerting: dict[str, Any] = {"name": alert_name(slo), "labels": {"slo": slo.name}}
    if annotations:
        alerting["annotations"] = annotations
    alerting["page_alert"] = {"labels": {"severity": "page"}}
    alerting["ticket_alert"] = {"labels": {"severity": "ticket"}}
    spec: dict[str, Any] = {"name": slo.name, "objective": slo.objective}
    if slo.description:
        spec["description"] = slo.description
    spec["sli"] = {"events": {
        # No good series at all (everything failing) counts as zero good, as in our rules.
        "error_query": f"({queries.total}) - (({queries.good}) or vector(0))",
        "total_query": queries.total}}
    spec["alerting"] = alerting
    return spec


def sloth_files(config: Config, service: str = "mysetlist") -> dict[str, str]:
    """Return Sloth's input files for ``config``, path -> text: per SLO period (``30d``...)
    a spec ``sloth-<period>.yaml`` of the SLOs with that window length that map to Prometheus
    series, and ``alert-windows/<period>.yaml`` with the burn-rate rules' windows and shares.

    Raises ConfigError when the burn-rate rules are not two page and two ticket rules, the
    shape Sloth's alert windows have.
    """
    by_period: dict[str, list[SloConfig]] = {}
    for slo in config.slos:
        by_period.setdefault(prom_duration(slo_length(slo)), []).append(slo)
    files = {}
    for period, slos in by_period.items():
        specs = [s for s in (_slo_spec(slo, config) for slo in slos) if s is not None]
        if not specs:
            continue
        command = (f"# sloth generate -i sloth-{period}.yaml --default-slo-period {period} "
                   f"--slo-period-windows-path alert-windows -o rules-{period}.yaml\n")
        files[f"sloth-{period}.yaml"] = command + yaml.safe_dump(
            {"version": SPEC_VERSION, "service": service,
             "labels": {"generator": "mysetlist-slo"}, "slos": specs},
            sort_keys=False, allow_unicode=True, width=1 << 16)
        windows = _windows(slo_rules(slos[0], config), period)
        files[f"alert-windows/{period}.yaml"] = yaml.safe_dump(windows, sort_keys=False)
    return files
