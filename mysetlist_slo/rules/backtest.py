"""Replaying a generated Prometheus rules file over the store: its alerts' own thresholds and
windows, read back from the file, so a report speaks of exactly the rules that are deployed."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import yaml

from mysetlist_slo.config import Config, StaticAlert, parse_duration
from mysetlist_slo.errors import ConfigError
from mysetlist_slo.rules.prometheus import BURN_ALERT, PLAN, SOURCE, error_budget
from mysetlist_slo.rules.promql import slo_length
from mysetlist_slo.slo.alerts import AlertBacktest, AlertRule, backtest_alerts

_NUMBER = r"[0-9]+(?:\.[0-9]+)?(?:e[-+]?[0-9]+)?"
_CONDITION = (r'\(slo:sli_error:ratio_rate(?P<{w}>\w+)\{{slo="(?P<{s}>[^"]+)"\}} / '
              rf"(?P<{{b}}>{_NUMBER}) >= (?P<{{r}}>{_NUMBER})\)")
_BURN = re.compile(_CONDITION.format(w="long", s="slo1", b="budget1", r="rate1") + " and "
                   + _CONDITION.format(w="short", s="slo2", b="budget2", r="rate2") + "$")
_STATIC_TAIL = re.compile(rf" (?P<op>[<>]) (?P<value>{_NUMBER})$")
_RANGE = re.compile(r"\[(\w+)\]")


@dataclass(frozen=True)
class DeployedRules:
    """The alerts of a rules file: burn-rate rules per SLO, and the plan's static alerts."""

    path: str
    burn_rate: dict[str, list[AlertRule]]
    static: list[StaticAlert]
    budgets: dict[str, set[float]]  # per SLO, the error budgets its thresholds were written for


def _duration(text: str, where: str, path: str) -> timedelta:
    try:
        return parse_duration(text)
    except ValueError:
        raise ConfigError(path, [f"{where}: unsupported range {text!r}"]) from None


def _burn_rule(rule: dict[str, Any], where: str,
               path: str) -> tuple[str, AlertRule, float]:
    match = _BURN.match(str(rule.get("expr", "")).strip())
    if not match or match["slo1"] != match["slo2"] or match["rate1"] != match["rate2"] \
            or match["budget1"] != match["budget2"]:
        raise ConfigError(path, [f"{where}.expr: not a burn-rate condition written by "
                                 "mysetlist-slo (long and short window, one rate)"])
    labels = rule.get("labels") or {}
    severity = labels.get("severity")
    if severity not in ("page", "ticket"):
        raise ConfigError(path, [f"{where}.labels.severity: page or ticket expected"])
    # Named from the expression as scaled_rules names rules, never from the annotation, so a
    # threshold edited in the file is reported as what it now is.
    rate = float(match["rate1"])
    for_ = rule.get("for")
    alert = AlertRule(
        name=f"{severity} {match['long']}/{match['short']} x{rate:g}", severity=severity,
        long_window=_duration(match["long"], f"{where}.expr", path),
        short_window=_duration(match["short"], f"{where}.expr", path),
        burn_rate=rate,
        for_duration=_duration(str(for_), f"{where}.for", path) if for_ else timedelta(0))
    return match["slo1"], alert, float(match["budget1"])


def _static_rule(rule: dict[str, Any], where: str, path: str) -> StaticAlert:
    expr = str(rule.get("expr", "")).strip()
    tail = _STATIC_TAIL.search(expr)
    ranges = set(_RANGE.findall(expr))
    labels = rule.get("labels") or {}
    if not tail or len(ranges) != 1:
        raise ConfigError(path, [f"{where}.expr: not a plan alert written by mysetlist-slo "
                                 "(one range, ending in a comparison with a number)"])
    try:
        return StaticAlert.model_validate({
            "name": str(rule["alert"]), "metric": labels.get("metric"), "op": tail["op"],
            "value": float(tail["value"]), "severity": str(labels.get("severity", "")),
            "window": ranges.pop()})
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(path, [f"{where}: {exc}"]) from None


def read_rules(path: str | Path) -> DeployedRules:
    """Return the alerts of a Prometheus rules file written by ``prometheus_rules``, their
    windows, thresholds and ``for`` read from each rule's expression.

    Raises ConfigError naming the file and the rule when the file is not YAML, or holds an
    alert that was not generated here (it could not be replayed faithfully).
    """
    source = str(path)
    try:
        document = yaml.safe_load(Path(path).read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"cannot read: {exc}"]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"not valid YAML: {exc}"]) from exc
    if not isinstance(document, dict) or not isinstance(document.get("groups"), list):
        raise ConfigError(source, ["groups: a Prometheus rule file has a list of groups"])
    burn: dict[str, list[AlertRule]] = {}
    budgets: dict[str, set[float]] = {}
    static: list[StaticAlert] = []
    for g, group in enumerate(document["groups"]):
        for r, rule in enumerate((group or {}).get("rules") or []):
            if not isinstance(rule, dict) or "alert" not in rule:
                continue  # recording rules feed the alerts; the store computes its own ratios
            where = f"groups[{g}].rules[{r}] ({rule['alert']})"
            labels = rule.get("labels") or {}
            if rule["alert"] == BURN_ALERT and labels.get("source") == SOURCE:
                slo, alert, budget = _burn_rule(rule, where, source)
                burn.setdefault(slo, []).append(alert)
                budgets.setdefault(slo, set()).add(budget)
            elif labels.get("origin") == PLAN:
                static.append(_static_rule(rule, where, source))
            else:
                raise ConfigError(source, [f"{where}: not generated by mysetlist-slo; "
                                           "it cannot be replayed"])
    return DeployedRules(source, burn, static, budgets)


def backtest_rules(con: duckdb.DuckDBPyConnection, config: Config, rules: DeployedRules,
                   start: datetime, end: datetime) -> dict[str, AlertBacktest]:
    """Return, per SLO of the rules file, the backtest over [start, end) of exactly its
    alerts: the file's burn-rate rules and its plan alerts, against the SLO's incidents.

    Raises ConfigError when the file names an SLO the configuration lacks, or was generated
    for another objective (its thresholds would mean something else).
    """
    slos = {slo.name: slo for slo in config.slos}
    out = {}
    for name, alerts in rules.burn_rate.items():
        slo = slos.get(name)
        if slo is None:
            raise ConfigError(rules.path, [f"slo {name!r}: not in the configuration"])
        written = rules.budgets[name]
        if written != {error_budget(slo)}:
            raise ConfigError(rules.path, [
                f"slo {name!r}: rules written for an error budget of "
                f"{', '.join(map(str, sorted(written)))}, the configuration's objective "
                f"{slo.objective} % allows {error_budget(slo)}"])
        # The file's thresholds were scaled for this SLO's window (see slo_length).
        alerts = [replace(a, slo_window=slo_length(slo)) for a in alerts]
        out[name] = backtest_alerts(con, slo, config, start, end, rules=alerts,
                                    static=rules.static)
    return out


def deployed_verdict(rules: DeployedRules, slo: str, backtest: AlertBacktest, start: datetime,
                     end: datetime) -> str:
    """Return one sentence on the file's rules for ``slo`` over [start, end): how often they
    would have paged and how many of the incidents any of its burn-rate rules caught."""
    firings, detection = backtest.firings, backtest.detection
    burn = firings[firings["kind"] == "burn rate"]
    pages = int((burn["severity"] == "page").sum())
    incidents = int(backtest.summary["incidents"].max()) if len(backtest.summary) else 0
    caught = detection[(detection["kind"] == "burn rate") & detection["detected_at"].notna()]
    days = (end - start).total_seconds() / 86400
    span = f"{days / 7:g} weeks" if days % 7 == 0 else f"{days:g} days"
    return (f"These are the rules in {rules.path} for {slo}; over the {span} to "
            f"{end:%Y-%m-%d %H:%M} UTC they would have paged {pages} time(s) and caught "
            f"{caught['incident_start'].nunique()} of {incidents} incident(s).")
