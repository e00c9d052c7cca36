"""Deploys against the SLOs: for each deploy, the error budget spent in the hours after it
against the hours before, and the change in error rate and latency with a test each.

The budget spent over a span is its burn rate times its length over the SLO window: a burn
rate of 4 for 2 hours spends 8 hours of a 30-day budget (SRE workbook, "Alerting on SLOs":
a burn rate of 1 spends the budget exactly over the window), i.e. 8 / 720 of it.

Tests, two-sided, each at ``deploys.alpha``:

- error rate (5xx share of requests): Fisher's exact test on the 2 x 2 table of bad and good
  requests after and before. Exact: two hours of traffic hold a handful of errors, where the
  normal approximation of the two-proportion z-test is unreliable.
- latency: the Mann-Whitney U test computed from the latency histograms (midranks per
  bucket, tie-corrected normal approximation with continuity correction, as
  ``scipy.stats.mannwhitneyu(method="asymptotic")`` on the expanded samples). Latency is
  skewed and heavy-tailed, so a rank test that assumes no distribution fits; the store keeps
  3-significant-digit buckets, not requests, so ranks are taken on those buckets (values
  within 1 % of each other tie). With thousands of requests a rank test finds shifts no user
  notices, so a latency regression must also move p95 up by ``min_latency_change``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from mysetlist_slo._numbers import p_value_text
from mysetlist_slo.config import Config, SloConfig
from mysetlist_slo.slo.budgets import allowed_share, slo_events
from mysetlist_slo.slo.latency import route_filter_sql
from mysetlist_slo.slo.sli import STORED_SLIS, window_length
from mysetlist_slo.store.rollups import sketch_value_ms_sql

# Rows of several sources naming the same commit (or version) this close together are one
# deploy: Vercel builds it, GitHub records it, Sentry releases it.
SAME_DEPLOY = timedelta(minutes=30)
# Which source's words to keep when several describe one deploy: our own log first.
_SOURCE_ORDER = {"log": 0, "github": 1, "vercel": 2, "sentry": 3}
NO_DEPLOYS = "No production deploy in the period."

# The deploys that went live: a GitHub deployment at its first success status (one whose
# statuses hold none never went live), a Vercel deployment only when READY.
_DEPLOYS = """
WITH statuses AS (
    SELECT deploy_id,
           min(ts) FILTER (WHERE state = 'success') AS live_at,
           count(*) AS statuses
    FROM deploys
    WHERE source = 'github-status'
    GROUP BY deploy_id
),
live AS (
    SELECT d.source, d.deploy_id, coalesce(s.live_at, d.ts) AS deployed_at, d.service,
           d.version, d.environment, d."commit", d.url
    FROM deploys AS d
    LEFT JOIN statuses AS s ON d.source = 'github' AND s.deploy_id = d.deploy_id
    WHERE d.source <> 'github-status'
      AND NOT (d.source = 'vercel' AND coalesce(d.state, 'READY') <> 'READY')
      AND NOT (d.source = 'github' AND coalesce(s.statuses, 0) > 0 AND s.live_at IS NULL)
)
SELECT DISTINCT *
FROM live
WHERE deployed_at >= $start AND deployed_at < $end
  AND (environment IS NULL OR list_contains($environments, environment))
ORDER BY deployed_at, source
"""

_REQUESTS = """
SELECT coalesce(sum(requests), 0) AS requests,
       coalesce(sum(requests) FILTER (WHERE status >= 500), 0) AS errors
FROM request_counts
WHERE minute >= ? AND minute < ? AND {routes}
"""

# Latency before and after a deploy from the 5-minute sketches (store/rollups.py): only the
# slots wholly inside the span, so the slot a deploy lands in, which holds requests of both
# sides, is in neither; each bucket stands for its value within 1 %.
_HISTOGRAM = f"""
SELECT {sketch_value_ms_sql("bucket")} * 1000 AS value_us, sum(count) AS n
FROM latency_sketch
WHERE slot >= ? AND slot + INTERVAL 5 MINUTE <= ? AND {{routes}}
GROUP BY bucket
ORDER BY bucket
"""


@dataclass(frozen=True)
class DeployImpact:
    """Deploys of [start, end) and what each did in ``hours`` after it against as long before.

    ``deploys``: one row per deploy (service, version, environment, commit, deployed_at,
    sources, requests and 5xx before and after, error rates and Fisher's p, p95 before and
    after and the Mann-Whitney p, the SLO whose budget it spent most with that spend, verdict
    ``regressed`` / ``ok`` / ``not enough requests`` and its line). ``budgets``: one row per
    deploy and SLO (events, bad events, burn rates, budget spent as a share of the window's
    budget and in hours of it, before and after).
    """

    start: datetime
    end: datetime
    hours: float
    deploys: pd.DataFrame
    budgets: pd.DataFrame

    @property
    def status(self) -> str:
        """Return ``no data`` without deploys, ``regressed`` when any deploy is, else ``ok``."""
        if self.deploys.empty:
            return "no data"
        return "regressed" if (self.deploys["verdict"] == "regressed").any() else "ok"

    @property
    def lines(self) -> list[str]:
        """Return one line per deploy (regressions first), or one line saying there was none."""
        if self.deploys.empty:
            return [NO_DEPLOYS]
        regressed = self.deploys["verdict"] == "regressed"
        return [*self.deploys.loc[regressed, "text"], *self.deploys.loc[~regressed, "text"]]

    def to_dict(self) -> dict[str, Any]:
        """Return the deploys as plain JSON-ready data (times as ISO 8601 text)."""
        rows = []
        for row in self.deploys.to_dict("records"):
            rows.append({key: (_iso(value) if isinstance(value, datetime | pd.Timestamp)
                               else _plain(value)) for key, value in row.items()})
        return {"start": _iso(self.start), "end": _iso(self.end), "hours": self.hours,
                "status": self.status, "deploys": rows}


def _iso(value: datetime | pd.Timestamp) -> str:
    return pd.Timestamp(value).tz_convert(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return None if value is pd.NA else value


def deploy_events(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                  end: datetime) -> pd.DataFrame:
    """Return the deploys that went live in [start, end) in the configured environments (or
    naming none), one row each: deployed_at, service, version, environment, commit, url and
    the sources that recorded it. Rows of several sources naming the same commit (or the same
    version) within 30 minutes are one deploy, at the earliest time."""
    frame = con.execute(_DEPLOYS, {"start": start, "end": end,
                                   "environments": list(config.deploys.environments)}).df()
    columns = ["deployed_at", "service", "version", "environment", "commit", "url", "sources"]
    merged: list[dict[str, Any]] = []
    for row in frame.to_dict("records"):
        row = {key: (None if value is None or (isinstance(value, float) and np.isnan(value))
                     else value) for key, value in row.items()}
        same = next((kept for kept in merged if _same_deploy(kept, row)), None)
        if same is None:
            merged.append({**{c: row.get(c) for c in columns}, "sources": [row["source"]],
                           "_rank": _SOURCE_ORDER.get(row["source"], 9)})
            continue
        rank = _SOURCE_ORDER.get(row["source"], 9)
        if rank < same["_rank"]:  # the time the most trusted source gives: our own log first
            same["deployed_at"] = row["deployed_at"]
        for name in ("service", "version", "environment", "commit", "url"):
            if same[name] is None or (rank < same["_rank"] and row[name] is not None):
                same[name] = row[name] if row[name] is not None else same[name]
        same["_rank"] = min(rank, same["_rank"])
        if row["source"] not in same["sources"]:
            same["sources"].append(row["source"])
    merged.sort(key=lambda m: pd.Timestamp(m["deployed_at"]))
    out = pd.DataFrame([{c: m[c] for c in columns} for m in merged], columns=columns)
    out["sources"] = out["sources"].map(lambda s: ", ".join(sorted(s)))
    if len(out):
        out["deployed_at"] = pd.to_datetime(out["deployed_at"], utc=True)
    return out.reset_index(drop=True)


def _same_deploy(kept: dict[str, Any], row: dict[str, Any]) -> bool:
    if abs(pd.Timestamp(row["deployed_at"]) - pd.Timestamp(kept["deployed_at"])) > SAME_DEPLOY:
        return False
    if kept["commit"] is not None and row["commit"] is not None:
        return bool(kept["commit"] == row["commit"])
    return (kept["version"] is not None and row["version"] is not None
            and _bare_version(kept["version"]) == _bare_version(row["version"]))


def _bare_version(version: str) -> str:
    """Return a version without a Sentry package prefix or a leading v: ``web@2.1`` -> 2.1."""
    return version.rsplit("@", 1)[-1].lower().removeprefix("v")


def histogram_mann_whitney(before: pd.Series, after: pd.Series) -> tuple[float, float]:
    """Return (U of ``after``, two-sided p) of the Mann-Whitney U test between two histograms
    (bucket value -> count), ties taken at their midranks; p is NaN when either is empty.

    The same as ``scipy.stats.mannwhitneyu(after, before, method="asymptotic")`` on the
    expanded samples (tie-corrected normal approximation with continuity correction), in
    time proportional to the buckets, not the requests. U above n_after x n_before / 2 means
    ``after`` tends to be larger.
    """
    counts = pd.concat([before.rename("before"), after.rename("after")], axis=1).fillna(0)
    counts = counts.sort_index()
    n_before, n_after = float(counts["before"].sum()), float(counts["after"].sum())
    if n_before == 0 or n_after == 0:
        return float("nan"), float("nan")
    tied = (counts["before"] + counts["after"]).to_numpy(dtype=float)
    below = np.cumsum(tied) - tied
    midrank = below + (tied + 1) / 2
    u_after = float((counts["after"].to_numpy(dtype=float) * midrank).sum()
                    - n_after * (n_after + 1) / 2)
    n = n_before + n_after
    mean = n_after * n_before / 2
    variance = n_after * n_before / 12 * ((n + 1) - (tied ** 3 - tied).sum() / (n * (n - 1)))
    if variance <= 0:  # every value in one bucket: no difference can be seen
        return u_after, 1.0
    z = (abs(u_after - mean) - 0.5) / np.sqrt(variance)
    return u_after, float(min(1.0, 2 * stats.norm.sf(max(z, 0.0))))


def _percentile(histogram: pd.Series, quantile: float) -> float | None:
    """Return the nearest-rank percentile of a histogram (bucket value µs -> count), in ms."""
    total = histogram.sum()
    if total == 0:
        return None
    cumulative = histogram.sort_index().cumsum()
    wanted = max(np.ceil(quantile * total), 1)
    return float(cumulative[cumulative >= wanted].index[0]) / 1000


def budget_spent(good: int, total: int, objective_percent: float, span: timedelta,
                 window: timedelta) -> Fraction | None:
    """Return the share of a window's error budget that ``span``'s events spend, exactly:
    burn rate (bad share / allowed share) x span / window; None without events.

    2 hours at 0.4 % errors against 99.9 % over 30 days: burn 4, 4 x 2 / 720 = 1/90 of the
    budget (8 hours of it).
    """
    if total == 0:
        return None
    burn = Fraction(total - good, total) / allowed_share(objective_percent)
    return burn * Fraction(span // timedelta(microseconds=1), window // timedelta(microseconds=1))


def _fmt_share(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "0 %" if value == 0 else f"{100 * value:.2g} %"


def _fmt_hours(hours: float) -> str:
    if hours >= 1:
        return f"{hours:.1f}".removesuffix(".0") + " h"
    return f"{hours * 60:.0f} min"


_UNITS = {"d": "day", "h": "hour", "w": "week", "m": "minute", "s": "second"}


def _window_words(window: str) -> str:
    """Return "30-day" for ``30d``, "monthly" for ``month``."""
    if window in ("week", "month"):
        return f"{window}ly"
    return f"{window[:-1]}-{_UNITS.get(window[-1], window[-1])}"


def deploy_impact(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                  end: datetime) -> DeployImpact:
    """Return the DeployImpact of the deploys that went live in [start, end).

    Each deploy's windows start at its minute (the store counts whole minutes; the deploy's
    own minute counts as after): [t - hours, t) and [t, t + hours). A deploy closer than
    ``hours`` to the next one shares its after-window with it (column ``overlaps_next``).
    Raises nothing for missing data: SLOs without events have no spend, deploys with fewer
    than ``deploys.min_requests`` requests in either window are ``not enough requests``.
    """
    settings = config.deploys
    span = settings.span
    hours = span / timedelta(hours=1)
    deploys = deploy_events(con, config, start, end)
    condition, values = route_filter_sql(settings.routes)
    rows, budget_rows = [], []
    for index, deploy in enumerate(deploys.to_dict("records")):
        at = pd.Timestamp(deploy["deployed_at"]).floor("min").to_pydatetime()
        before, after = (at - span, at), (at, at + span)
        spends = []
        for slo in config.slos:
            budget = _slo_spend(con, config, slo, before, after, span, settings.alpha)
            budget_rows.append({"service": deploy["service"], "version": deploy["version"],
                                "deployed_at": deploy["deployed_at"], **budget})
            if budget["budget_spent_after"] is not None:
                spends.append(budget)
        requests = [con.execute(_REQUESTS.format(routes=condition),
                                [a, b, *values]).fetchone() for a, b in (before, after)]
        (total_b, errors_b), (total_a, errors_a) = [(int(r[0]), int(r[1])) if r else (0, 0)
                                                    for r in requests]
        hist_b, hist_a = (_histogram(con, condition, values, a, b) for a, b in (before, after))
        row = _changes(settings, total_b, errors_b, total_a, errors_a, hist_b, hist_a)
        row = _judge_budgets(row, spends)
        worst = _worst(spends)
        row.update({
            "worst_slo": worst["slo"] if worst else None,
            "budget_spent_before": worst["budget_spent_before"] if worst else None,
            "budget_spent_after": worst["budget_spent_after"] if worst else None,
            "budget_hours_before": worst["budget_hours_before"] if worst else None,
            "budget_hours_after": worst["budget_hours_after"] if worst else None,
            "overlaps_next": bool(index + 1 < len(deploys) and
                                  deploys["deployed_at"].iloc[index + 1] - deploy["deployed_at"]
                                  < span),
        })
        row["text"] = _line(deploy, row, worst, hours)
        rows.append({**deploy, **row})
    frame = pd.DataFrame(rows, columns=[*deploys.columns, *_CHANGE_COLUMNS, "worst_slo",
                                        "budget_spent_before", "budget_spent_after",
                                        "budget_hours_before", "budget_hours_after",
                                        "overlaps_next", "text"])
    return DeployImpact(start, end, hours, frame,
                        pd.DataFrame(budget_rows, columns=["service", "version", "deployed_at",
                                                           *_BUDGET_COLUMNS]))


_BUDGET_COLUMNS = ["slo", "window", "events_before", "bad_before", "events_after", "bad_after",
                   "burn_rate_before", "burn_rate_after", "budget_spent_before",
                   "budget_spent_after", "budget_hours_before", "budget_hours_after",
                   "burn_p_value", "started_burning"]
_CHANGE_COLUMNS = ["requests_before", "requests_after", "errors_before", "errors_after",
                   "error_rate_before", "error_rate_after", "error_p_value", "p95_before_ms",
                   "p95_after_ms", "latency_p_value", "verdict", "reasons", "burning"]


def _slo_spend(con: duckdb.DuckDBPyConnection, config: Config, slo: SloConfig,
               before: tuple[datetime, datetime], after: tuple[datetime, datetime],
               span: timedelta, alpha: float) -> dict[str, Any]:
    """Return one SLO's events and budget spent in the windows before and after a deploy."""
    out: dict[str, Any] = {"slo": slo.name, "window": slo.window}
    window = window_length(slo, after[0], config.timezone_of(slo))
    allowed = allowed_share(slo.objective)
    for name, (a, b) in (("before", before), ("after", after)):
        if slo.sli in STORED_SLIS:
            events = slo_events(con, slo, a, b, config.probes)
            good, total = int(events["good"].sum()), int(events["total"].sum())
        else:
            good = total = 0
        spent = budget_spent(good, total, slo.objective, span, window)
        out[f"events_{name}"] = total
        out[f"bad_{name}"] = total - good
        out[f"burn_rate_{name}"] = (float(Fraction(total - good, total) / allowed)
                                    if total else None)
        out[f"budget_spent_{name}"] = None if spent is None else float(spent)
        out[f"budget_hours_{name}"] = (None if spent is None
                                       else float(spent) * window / timedelta(hours=1))
    # Did the deploy start burning the budget faster than the window can sustain? One-sided
    # exact binomial test of the bad events after it against the objective's allowed share
    # (a burn rate of 1), asked only of an SLO that was not over that rate before.
    out["burn_p_value"] = None
    out["started_burning"] = False
    if out["events_after"]:
        out["burn_p_value"] = float(stats.binomtest(
            out["bad_after"], out["events_after"], float(allowed), alternative="greater").pvalue)
        out["started_burning"] = bool(
            (out["burn_rate_before"] is None or out["burn_rate_before"] <= 1)
            and out["burn_rate_after"] > 1 and out["burn_p_value"] < alpha)
    return out


def _histogram(con: duckdb.DuckDBPyConnection, condition: str, values: list[str],
               start: datetime, end: datetime) -> pd.Series:
    frame = con.execute(_HISTOGRAM.format(routes=condition), [start, end, *values]).df()
    return pd.Series(frame["n"].to_numpy(dtype=float), index=frame["value_us"].to_numpy())


def _changes(settings: Any, total_b: int, errors_b: int, total_a: int, errors_a: int,
             hist_b: pd.Series, hist_a: pd.Series) -> dict[str, Any]:
    """Return the error-rate and latency comparison of one deploy and its verdict."""
    row: dict[str, Any] = {"requests_before": total_b, "requests_after": total_a,
                           "errors_before": errors_b, "errors_after": errors_a,
                           "error_rate_before": errors_b / total_b if total_b else None,
                           "error_rate_after": errors_a / total_a if total_a else None,
                           "error_p_value": None, "p95_before_ms": _percentile(hist_b, 0.95),
                           "p95_after_ms": _percentile(hist_a, 0.95), "latency_p_value": None,
                           "reasons": ""}
    if min(total_b, total_a) < settings.min_requests:
        row["verdict"] = "not enough requests"
        return row
    _, p_errors = stats.fisher_exact([[errors_a, total_a - errors_a],
                                      [errors_b, total_b - errors_b]])
    row["error_p_value"] = float(p_errors)
    worse_errors = (row["error_rate_after"] > row["error_rate_before"]
                    and p_errors < settings.alpha)
    u_after, p_latency = histogram_mann_whitney(hist_b, hist_a)
    row["latency_p_value"] = None if np.isnan(p_latency) else p_latency
    slower = (row["p95_before_ms"] is not None and row["p95_after_ms"] is not None
              and u_after > hist_a.sum() * hist_b.sum() / 2 and p_latency < settings.alpha
              and row["p95_after_ms"] >= row["p95_before_ms"] * (1 + settings.min_latency_change))
    reasons = [*(["error rate up"] if worse_errors else []), *(["slower"] if slower else [])]
    row["reasons"] = ", ".join(reasons)
    row["verdict"] = "regressed" if reasons else "ok"
    return row


def _judge_budgets(row: dict[str, Any], spends: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the deploy's row with the SLOs it started burning (``burning``) and its verdict
    made ``regressed`` when there is any (unless there were too few requests to judge)."""
    burning = [s["slo"] for s in spends if s["started_burning"]]
    row["burning"] = ", ".join(burning)
    if burning and row["verdict"] != "not enough requests":
        row["verdict"] = "regressed"
        row["reasons"] = ", ".join(filter(None, [row["reasons"], "burning " + row["burning"]]))
    return row


def _worst(spends: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the SLO the deploy hurt most: one it started burning, else the largest rise in
    spend, the largest spend after breaking ties."""
    if not spends:
        return None
    return max(spends, key=lambda s: (s["started_burning"],
                                      s["budget_spent_after"] - (s["budget_spent_before"] or 0),
                                      s["budget_spent_after"]))


def _line(deploy: dict[str, Any], row: dict[str, Any], worst: dict[str, Any] | None,
          hours: float) -> str:
    """Return the deploy's verdict line, e.g. "v2.14.0 burned 8 h of the 30-day availability
    budget in 2 h; error rate 0.4 % vs 0.05 % before, p < 0.001; p95 120 ms vs 118 ms"."""
    name = deploy["version"] or deploy["commit"] or "unnamed deploy"
    when = pd.Timestamp(deploy["deployed_at"]).strftime("%a %H:%M UTC")
    head = f"{name} ({when})"
    if worst is not None and worst["budget_hours_after"] is not None:
        head += (f" burned {_fmt_hours(worst['budget_hours_after'])} of the "
                 f"{_window_words(worst['window'])} {worst['slo']} budget in "
                 f"{_fmt_hours(hours)} ({_fmt_hours(worst['budget_hours_before'] or 0)} in the "
                 f"{_fmt_hours(hours)} before)")
    if row["verdict"] == "not enough requests":
        return (f"{head}; not enough requests to compare ({row['requests_before']:,} before, "
                f"{row['requests_after']:,} after)")
    text = (f"{head}; error rate {_fmt_share(row['error_rate_after'])} vs "
            f"{_fmt_share(row['error_rate_before'])} before, {p_value_text(row['error_p_value'])}")
    if row["p95_after_ms"] is not None and row["p95_before_ms"] is not None:
        text += (f"; p95 {row['p95_after_ms']:,.0f} ms vs {row['p95_before_ms']:,.0f} ms, "
                 f"{p_value_text(row['latency_p_value'])}")
    return text + (f"; regressed: {row['reasons']}" if row["verdict"] == "regressed" else "")
