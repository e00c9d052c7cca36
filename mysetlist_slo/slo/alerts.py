"""Alerting on SLOs: multi-window burn-rate rules, the plan's static alerts, and their backtest.

The burn-rate rules follow the SRE workbook ("Alerting on SLOs", recommendation 6): an alert
fires when the burn rate over a long window *and* over a short window both reach the rule's
rate; the short window lets the alert reset soon after the problem ends. The workbook's table
is written for a 30-day SLO window; for another window length each rate is scaled so that the
rule still fires on the same share of the budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo._numbers import whole
from mysetlist_slo.config import (
    BurnRateRule,
    Config,
    ProbesConfig,
    SloConfig,
    StaticAlert,
    parse_duration,
)
from mysetlist_slo.slo.budgets import allowed_share, slo_events
from mysetlist_slo.slo.sli import MINUTE, dense_minutes, window_length

REFERENCE_WINDOW = timedelta(days=30)
INCIDENT_GAP = timedelta(minutes=5)  # runs of bad minutes this close are one incident
FIRING_COLUMNS = ["rule", "kind", "severity", "start", "end"]


@dataclass(frozen=True)
class AlertRule:
    """A burn-rate rule resolved for one SLO: windows and the (scaled) burn-rate threshold."""

    name: str
    severity: str
    long_window: timedelta
    short_window: timedelta
    burn_rate: float
    slo_window: timedelta = REFERENCE_WINDOW  # the length of the SLO window in force
    for_duration: timedelta = timedelta(0)  # Prometheus `for:`: how long before it fires

    @property
    def budget_share(self) -> float:
        """Return the share of the SLO window's budget spent when the long window fires."""
        return self.burn_rate * self.long_window / self.slo_window


def scaled_rules(rules: list[BurnRateRule], slo_window: timedelta) -> list[AlertRule]:
    """Return the rules for an SLO window of ``slo_window``.

    A rule fires after spending ``rate * long / window`` of the budget (14.4 over 1 h of 30 d
    is 2 %); keeping that share for another window means multiplying the rate by
    ``slo_window / 30 d`` (a 28-day window pages at 13.44).
    """
    factor = slo_window / REFERENCE_WINDOW
    # Names carry the rate the rule fires at for this window ("x13.44"), not the table's.
    return [AlertRule(f"{r.severity} {r.long_window}/{r.short_window} x{r.burn_rate * factor:g}",
                      r.severity, parse_duration(r.long_window), parse_duration(r.short_window),
                      r.burn_rate * factor, slo_window, r.for_delta) for r in rules]


def rolling_burn_rate(bad: np.ndarray, total: np.ndarray, objective_percent: float,
                      minutes: int) -> np.ndarray:
    """Return, for each minute, the burn rate over the ``minutes`` ending with it (NaN when
    that window had no events; the first minutes see a shorter window)."""
    cum_bad = np.concatenate(([0], np.cumsum(bad)))
    cum_total = np.concatenate(([0], np.cumsum(total)))
    upto = np.arange(1, len(bad) + 1)
    since = np.maximum(upto - minutes, 0)
    window_bad = cum_bad[upto] - cum_bad[since]
    window_total = cum_total[upto] - cum_total[since]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(window_total > 0, window_bad / window_total, np.nan)
    # The allowed share read exactly (1 - 0.99 in floats is 0.010000000000000009, which would put
    # a burn of exactly 1 just under a rule's threshold of 1).
    return ratio / float(allowed_share(objective_percent))


def _intervals(times: pd.DatetimeIndex, firing: np.ndarray) -> list[tuple[datetime, datetime]]:
    """Return [start, end) of each run of True in ``firing``; a minute fires at its end."""
    edges = np.diff(np.concatenate(([0], firing.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(times[s] + MINUTE, times[e - 1] + 2 * MINUTE) for s, e in zip(starts, ends,
                                                                            strict=True)]


def _dense_events(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
                  end: datetime, lead: timedelta,
                  probes: ProbesConfig | None = None) -> pd.DataFrame:
    """Return the SLO's events on every minute of [start - lead, end)."""
    return dense_minutes(slo_events(con, slo, start - lead, end, probes), start - lead, end)


def burn_rate_series(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                     start: datetime, end: datetime,
                     rules: list[AlertRule] | None = None) -> pd.DataFrame:
    """Return, per minute of [start, end), the burn rate over each window of the SLO's rules
    (``rules``, default the configured ones scaled for the SLO's window), one column per
    window (``burn_1h``, ``burn_5m``...), with the rules' thresholds in
    ``DataFrame.attrs['thresholds']`` for plotting."""
    rules = _rules(slo, config, end) if rules is None else rules
    windows = sorted({w for r in rules for w in (r.long_window, r.short_window)})
    lead = max(windows, default=timedelta(0))
    events = _dense_events(con, slo, start, end, lead, config.probes)
    bad = (events["total"] - events["good"]).to_numpy()
    out = pd.DataFrame({"minute": events["minute"]})
    for window in windows:
        name = _window_name(window)
        out[f"burn_{name}"] = rolling_burn_rate(bad, events["total"].to_numpy(), slo.objective,
                                                int(window / MINUTE))
    out = out[out["minute"] >= start].reset_index(drop=True)
    out.attrs["thresholds"] = {r.name: r.burn_rate for r in rules}
    return out


def _window_name(window: timedelta) -> str:
    minutes = int(window / MINUTE)
    for unit, size in (("d", 1440), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def _rules(slo: SloConfig, config: Config, at: datetime) -> list[AlertRule]:
    return scaled_rules(config.alerts.burn_rate, window_length(slo, at, config.timezone_of(slo)))


def burn_rate_alerts(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                     start: datetime, end: datetime,
                     rules: list[AlertRule] | None = None) -> pd.DataFrame:
    """Return every firing of the SLO's burn-rate rules (``rules``, default the configured ones
    scaled for the SLO's window) in [start, end): rule, kind, severity, start, end (when it
    stopped firing; the end of the period if still firing). A rule with a ``for`` duration
    fires that long after its condition starts to hold, as Prometheus does."""
    rules = _rules(slo, config, end) if rules is None else rules
    series = burn_rate_series(con, slo, config, start, end, rules)
    times = pd.DatetimeIndex(series["minute"])
    rows = []
    for rule in rules:
        long = series[f"burn_{_window_name(rule.long_window)}"].to_numpy()
        short = series[f"burn_{_window_name(rule.short_window)}"].to_numpy()
        firing = np.nan_to_num(long) >= rule.burn_rate
        firing &= np.nan_to_num(short) >= rule.burn_rate
        for fired, stopped in _intervals(times, firing):
            if fired + rule.for_duration < stopped:  # pending until `for` has passed
                rows.append((rule.name, "burn rate", rule.severity,
                             fired + rule.for_duration, min(stopped, end)))
    return pd.DataFrame(rows, columns=FIRING_COLUMNS)


_SERVICE_MINUTES = """
SELECT
    minute,
    sum(requests) AS total,
    coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors,
    sum(timed) AS timed,
    sum(duration_sum_us) AS duration_sum_us
FROM request_counts
WHERE minute >= ? AND minute < ?
GROUP BY minute
ORDER BY minute
"""


def static_alerts(con: duckdb.DuckDBPyConnection, rules: list[StaticAlert], start: datetime,
                  end: datetime) -> pd.DataFrame:
    """Return every firing of threshold alerts as the deployment plan wrote them, evaluated each
    minute over the rule's window: error rate (5xx share), mean response time, uptime (non-5xx
    share)."""
    lead = max((parse_duration(r.window) for r in rules), default=timedelta(0))
    frame = con.execute(_SERVICE_MINUTES, [start - lead, end]).df()
    index = pd.date_range(start - lead, end, freq="1min", inclusive="left", tz="UTC")
    dense = frame.set_index("minute").reindex(index, fill_value=0)
    rows = []
    for rule in rules:
        minutes = int(parse_duration(rule.window) / MINUTE)
        rolled = dense.rolling(minutes, min_periods=1).sum()
        with np.errstate(divide="ignore", invalid="ignore"):
            if rule.metric == "error_rate":
                value = rolled["errors"] / rolled["total"]
            elif rule.metric == "uptime":
                value = 1 - rolled["errors"] / rolled["total"]
            else:
                value = rolled["duration_sum_us"] / rolled["timed"] / 1000
        value = value.to_numpy(dtype=float)
        firing = np.where(np.isnan(value), False, value > rule.value if rule.op == ">"
                          else value < rule.value)
        firing[index < start] = False
        for fired, stopped in _intervals(index, firing):
            rows.append((rule.name, "static", rule.severity, fired, min(stopped, end)))
    return pd.DataFrame(rows, columns=FIRING_COLUMNS)


def budget_incidents(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
                     end: datetime, burn_rate: float = 10.0,
                     min_budget_share: float = 0.01, timezone: str = "UTC") -> pd.DataFrame:
    """Return the incidents in the SLO's own events: runs of minutes burning at ``burn_rate``
    or more (gaps under 5 minutes joined) that spent at least ``min_budget_share`` of the
    budget of the SLO window in force when each began (its rolling length, or the calendar
    period cut in ``timezone`` that holds it), at [start, end)'s mean traffic per minute.
    Columns: start, end, bad."""
    events = dense_minutes(slo_events(con, slo, start, end), start, end)
    bad = (events["total"] - events["good"]).to_numpy()
    total = events["total"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(total > 0, bad / total, 0) / float(allowed_share(slo.objective))
    # Allowed bad events per minute of window at this traffic: x the window's minutes.
    per_minute = float(allowed_share(slo.objective)) * total.mean()
    runs = _intervals(pd.DatetimeIndex(events["minute"]), rate >= burn_rate)
    merged: list[list[datetime]] = []
    for run_start, run_end in runs:
        # A run fires at the end of its minutes: it covers [run_start - 1 min, run_end - 1 min).
        if merged and run_start - MINUTE - merged[-1][1] < INCIDENT_GAP:
            merged[-1][1] = run_end - MINUTE
        else:
            merged.append([run_start - MINUTE, run_end - MINUTE])
    rows = []
    minutes = events.set_index("minute")
    for first, last in merged:
        spent = int((minutes.loc[first:last - MINUTE, "total"]
                     - minutes.loc[first:last - MINUTE, "good"]).sum())
        budget = per_minute * (window_length(slo, first, timezone) / MINUTE)
        if spent >= min_budget_share * budget:
            rows.append((first, last, spent))
    return pd.DataFrame(rows, columns=["start", "end", "bad"])


@dataclass(frozen=True)
class AlertBacktest:
    """Alert rules replayed over history against known incidents."""

    firings: pd.DataFrame  # rule, kind, severity, start, end, in_incident
    detection: pd.DataFrame  # one row per incident and rule
    summary: pd.DataFrame  # one row per rule


def backtest_alerts(con: duckdb.DuckDBPyConnection, slo: SloConfig, config: Config,
                    start: datetime, end: datetime,
                    incidents: pd.DataFrame | None = None,
                    rules: list[AlertRule] | None = None,
                    static: list[StaticAlert] | None = None) -> AlertBacktest:
    """Replay the SLO's burn-rate rules and the plan's static alerts over [start, end).

    ``rules`` and ``static`` replace the configured rules (scaled for the SLO's window) and
    static alerts, e.g. with those read back from a generated Prometheus rules file.

    ``incidents`` (columns start, end) default to ``budget_incidents``. A firing belongs to an
    incident when it overlaps it or the hour after it (long windows are slow to let go);
    any other firing is noise. Returns every firing, time to detect and to reset per incident
    and rule, and per rule: firings, noisy firings, incidents caught, median time to detect.
    """
    if incidents is None:
        incidents = budget_incidents(con, slo, start, end,
                                     timezone=config.timezone_of(slo))
    burn_rules = _rules(slo, config, end) if rules is None else rules
    static = config.alerts.static if static is None else static
    firings = pd.concat([burn_rate_alerts(con, slo, config, start, end, burn_rules),
                         static_alerts(con, static, start, end)],
                        ignore_index=True)
    reach = [(row.start, row.end + timedelta(hours=1)) for row in incidents.itertuples()]
    firings["in_incident"] = [any(s < r_end and e > r_start for r_start, r_end in reach)
                              for s, e in zip(firings["start"], firings["end"], strict=True)]
    rules = firings[["rule", "kind", "severity"]].drop_duplicates()
    all_rules = pd.concat([pd.DataFrame([(r.name, "burn rate", r.severity)
                                         for r in burn_rules],
                                        columns=["rule", "kind", "severity"]),
                           pd.DataFrame([(r.name, "static", r.severity)
                                         for r in static],
                                        columns=["rule", "kind", "severity"]), rules]
                          ).drop_duplicates("rule")
    detection = []
    for incident in incidents.itertuples():
        for rule in all_rules.itertuples():
            own = firings[(firings["rule"] == rule.rule) & (firings["end"] > incident.start)
                          & (firings["start"] < incident.end + timedelta(hours=1))]
            first = own.iloc[0] if len(own) else None
            detection.append({
                "incident_start": incident.start, "incident_end": incident.end,
                "rule": rule.rule, "kind": rule.kind, "severity": rule.severity,
                "detected_at": None if first is None else first["start"],
                "time_to_detect": None if first is None else first["start"] - incident.start,
                "reset_at": None if first is None else own["end"].max(),
                "time_to_reset": None if first is None else own["end"].max() - incident.end,
            })
    detected = pd.DataFrame(detection, columns=[
        "incident_start", "incident_end", "rule", "kind", "severity", "detected_at",
        "time_to_detect", "reset_at", "time_to_reset"])
    summary = []
    for rule in all_rules.itertuples():
        own = firings[firings["rule"] == rule.rule]
        caught = detected[(detected["rule"] == rule.rule) & detected["detected_at"].notna()]
        summary.append({
            "rule": rule.rule, "kind": rule.kind, "severity": rule.severity,
            "firings": len(own), "noisy_firings": int((~own["in_incident"]).sum()),
            "firing_minutes": int(((own["end"] - own["start"]) / MINUTE).sum()) if len(own) else 0,
            "incidents_caught": len(caught), "incidents": len(incidents),
            "median_time_to_detect": caught["time_to_detect"].median() if len(caught) else None,
        })
    return AlertBacktest(firings, detected, pd.DataFrame(summary))


def backtest_verdict(backtest: AlertBacktest) -> str:
    """Return a few sentences saying which rules caught the incidents, how fast, how noisily."""
    summary = backtest.summary
    if summary.empty:
        return "No alert rules to judge."
    incidents = int(summary["incidents"].max())
    lines = [f"{whole(incidents)} incident(s) in the period."]
    for row in summary.itertuples():
        caught = f"caught {whole(row.incidents_caught)} of {whole(incidents)}"
        speed = ("" if pd.isna(row.median_time_to_detect)
                 else f", median {_minutes(row.median_time_to_detect)} to detect")
        noise = (f"{whole(row.noisy_firings)} of {whole(row.firings)} firings outside incidents"
                 if row.firings else "never fired")
        lines.append(f"- {row.rule} ({row.kind}, {row.severity}): {caught}{speed}; {noise}.")
    return "\n".join(lines)


def _minutes(span: pd.Timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
