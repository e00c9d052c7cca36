"""Plotly figures of SLO results: budget burn-down, burn rates against thresholds, incidents.

Figures take the DataFrames the analysis functions return; they compute nothing themselves.
Text from logs (route names) reaches them only as data, which plotly escapes when it renders.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mysetlist_slo.report.formatting import SEVERITY_COLOURS, STATUS_COLOURS

# A week of per-minute points is 10,080 per line: more than a chart can show, and megabytes of
# HTML. Lines are drawn from at most this many points (each the maximum of its bucket, so a
# spike is never smoothed away).
MAX_POINTS = 1500


def thin(frame: pd.DataFrame, time: str, columns: list[str],
         max_points: int = MAX_POINTS) -> pd.DataFrame:
    """Return ``frame`` with at most ``max_points`` rows: consecutive rows grouped into equal
    buckets, each keeping its first time and the maximum of ``columns`` (so peaks survive)."""
    if len(frame) <= max_points:
        return frame
    size = math.ceil(len(frame) / max_points)
    bucket = np.arange(len(frame)) // size
    grouped = frame.groupby(bucket)
    out = grouped[columns].max()
    out.insert(0, time, grouped[time].first())
    return out.reset_index(drop=True)


# ISO 8601 date-times as plotly's JSON encoder writes them (a Series: naive UTC with
# microseconds; a DatetimeIndex: with its offset).
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")


def compact_figure(figure: go.Figure) -> dict[str, Any]:
    """Return ``figure`` as plotly JSON (a dict) that draws the same and weighs less.

    - A trace whose x is evenly spaced date-times (burn rates, burn-down, metrics: every
      point a fixed step after the one before) gets ``x0`` and ``dx`` (in ms, as plotly.js
      takes a date axis's step) instead of one 28-character time per point.
    - The template keeps its layout and only the trace defaults of the trace types drawn:
      plotly's default carries those of 24 types, 4 KB in every figure.
    """
    document: dict[str, Any] = json.loads(figure.to_json())
    for trace in document.get("data", []):
        x = trace.get("x")
        if (isinstance(x, list) and len(x) >= 3 and all(isinstance(v, str) for v in x)
                and all(_ISO_TIME.match(v) for v in x)):
            # One offset for all (plotly.js reads x0 as it read each x); else left as it is.
            if len({_ISO_TIME.match(v)[2] for v in x}) > 1:  # type: ignore[index]
                continue
            times = pd.to_datetime(pd.Series(x), utc=True).to_numpy(dtype="datetime64[us]")
            steps = np.diff(times).astype("int64")
            if steps[0] > 0 and (steps == steps[0]).all() and steps[0] % 1000 == 0:
                del trace["x"]
                trace["x0"], trace["dx"] = x[0], int(steps[0]) // 1000
    template = document.get("layout", {}).get("template")
    if isinstance(template, dict) and isinstance(template.get("data"), dict):
        drawn = {trace.get("type", "scatter") for trace in document.get("data", [])}
        template["data"] = {kind: value for kind, value in template["data"].items()
                            if kind in drawn}
    return document


# More deploys than this in one figure are drawn without their labels but the regressed ones.
MAX_DEPLOY_LABELS = 12


def add_deploy_markers(figure: go.Figure, deploys: pd.DataFrame | None, start: Any = None,
                       end: Any = None) -> go.Figure:
    """Return ``figure`` with a vertical dotted line at each deploy in [start, end] (from
    ``deploy_events`` or ``DeployImpact.deploys``), labelled with its version at the top;
    regressed deploys (column ``verdict``) in the breach colour. Deploys outside the span are
    left out, so markers never widen the time axis; ``None`` or no deploys: unchanged."""
    if deploys is None or deploys.empty:
        return figure
    when = pd.to_datetime(deploys["deployed_at"], utc=True)
    inside = when.notna()
    if start is not None:
        inside &= when >= _utc(start)
    if end is not None:
        inside &= when <= _utc(end)
    shown = deploys[inside]
    # Drawn at the UTC wall-clock time, as plotly draws the data's UTC times.
    when = when[inside].dt.tz_localize(None)
    regressed = (shown["verdict"] == "regressed" if "verdict" in shown
                 else pd.Series(False, index=shown.index))
    for (index, row), at in zip(shown.iterrows(), when, strict=True):
        colour = STATUS_COLOURS["breach"] if regressed[index] else "#7f7f7f"
        # A line from the bottom to the top of the plot, whatever the y axis (log or not).
        figure.add_shape(type="line", x0=at, x1=at, xref="x", y0=0, y1=1, yref="paper",
                         line={"dash": "dot", "width": 1, "color": colour})
        if len(shown) <= MAX_DEPLOY_LABELS or regressed[index]:
            # Versions come from deploy records: escaped, as plotly renders a little HTML.
            label = html.escape(str(row.get("version") or row.get("commit") or "deploy")[:24])
            figure.add_annotation(x=at, xref="x", y=1, yref="paper", yanchor="bottom",
                                  text=label, showarrow=False, textangle=-30,
                                  font={"size": 9, "color": colour})
    return figure


def _utc(value: Any) -> pd.Timestamp:
    """Return ``value`` as an aware UTC timestamp (naive times are taken as UTC)."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _span(values: Any) -> tuple[Any, Any]:
    """Return the first and last of a time column (None, None when empty)."""
    times = pd.to_datetime(pd.Series(values), utc=True)
    return (times.min(), times.max()) if len(times) else (None, None)


def _rounded(values: pd.Series, digits: int = 4) -> list[float | None]:
    """Return ``values`` rounded to ``digits`` significant digits (smaller figure data)."""
    return [None if pd.isna(v) else float(f"{v:.{digits}g}") for v in values]


def burndown_figure(burndown: pd.DataFrame, title: str = "Error budget",
                    deploys: pd.DataFrame | None = None) -> go.Figure:
    """Return the budget remaining over the window (from ``budget_burndown``), with the
    exhaustion line at 0 % and a marker at each deploy (see ``add_deploy_markers``)."""
    remaining = 100 * burndown["budget_remaining"]
    colour = STATUS_COLOURS["breach"] if len(remaining) and remaining.iloc[-1] < 0 \
        else STATUS_COLOURS["ok"]
    figure = go.Figure(go.Scatter(
        x=burndown["time"], y=_rounded(remaining), mode="lines",
        name="budget remaining", line={"shape": "hv", "color": colour},
        hovertemplate="%{x}<br>%{y:.1f} % left<extra></extra>"))
    figure.add_hline(y=0, line={"dash": "dash", "color": STATUS_COLOURS["breach"]},
                     annotation_text="budget spent", annotation_position="bottom left")
    figure.update_layout(title=title, yaxis_title="budget left (% of the window's budget)",
                         xaxis_title="time (UTC)", hovermode="x unified", height=320,
                         margin={"t": 50, "b": 40})
    return add_deploy_markers(figure, deploys, *_span(burndown["time"]))


def burn_rate_figure(series: pd.DataFrame, title: str = "Burn rate",
                     deploys: pd.DataFrame | None = None) -> go.Figure:
    """Return each window's burn rate over time (from ``burn_rate_series``) on a log scale,
    with each rule's threshold as a dotted line in its severity's colour, labelled at its
    height, and a marker at each deploy; the axis spans the data and the thresholds."""
    columns = [c for c in series.columns if c.startswith("burn_")]
    shown = thin(series, "minute", columns)
    figure = go.Figure()
    for column in columns:
        figure.add_trace(go.Scatter(x=shown["minute"], y=_rounded(shown[column]), mode="lines",
                                    name=f"over {column.removeprefix('burn_')}",
                                    line={"width": 1}))
    thresholds: dict[str, float] = series.attrs.get("thresholds", {})
    for rule, threshold in thresholds.items():
        colour = SEVERITY_COLOURS.get(rule.split()[0], "#7f7f7f")
        figure.add_hline(y=threshold, line={"dash": "dot", "width": 1, "color": colour})
        # add_hline's own annotation is placed at 10**y on a log axis (plotly.py #3556), so
        # the label is added by hand: annotations on a log axis take log10 of the value.
        figure.add_annotation(x=1, xref="paper", xanchor="right", y=math.log10(threshold),
                              yref="y", yanchor="bottom", text=rule, showarrow=False,
                              font={"size": 10, "color": colour})
    values = series[columns].to_numpy(dtype=float).ravel() if columns else np.array([])
    positive = values[np.isfinite(values) & (values > 0)]
    bounds = [*positive.tolist(), *thresholds.values()] if len(positive) else \
        [*thresholds.values(), 1.0]
    low, high = max(min(bounds), 1e-3), max(bounds)
    figure.update_layout(title=title, yaxis_type="log",
                         yaxis_range=[math.log10(low) - 0.2, math.log10(high) + 0.3],
                         yaxis_title="burn rate (1 = spends the budget in the window)",
                         xaxis_title="time (UTC)", height=380, margin={"t": 50, "b": 40})
    return add_deploy_markers(figure, deploys, *_span(series["minute"]))


def incident_timeline_figure(firings: pd.DataFrame, incidents: pd.DataFrame,
                             title: str = "Incidents and alerts",
                             deploys: pd.DataFrame | None = None,
                             start: Any = None, end: Any = None) -> go.Figure:
    """Return a timeline: incidents as shaded spans, each alert firing as a bar on its rule's
    row (from ``backtest_alerts(...).firings`` and the incidents it was judged against), and
    a marker at each deploy in [start, end] (default: the span of firings and incidents)."""
    figure = go.Figure()
    for row in incidents.itertuples():
        figure.add_vrect(x0=row.start, x1=row.end, fillcolor=STATUS_COLOURS["breach"],
                         opacity=0.15, line_width=0)
    for severity, group in firings.groupby("severity", sort=False):
        base = pd.to_datetime(group["start"])
        span_ms = (pd.to_datetime(group["end"]) - base).dt.total_seconds() * 1000
        figure.add_trace(go.Bar(
            base=base, x=span_ms, y=group["rule"], orientation="h", name=str(severity),
            marker_color=SEVERITY_COLOURS.get(str(severity), "#7f7f7f"),
            hovertemplate="%{y}<br>%{base} for %{x:,.0f} ms<extra></extra>"))
    figure.update_layout(title=title, xaxis_type="date", barmode="overlay",
                         yaxis_title=None, xaxis_title="time (UTC)", legend_title="severity",
                         height=300, margin={"t": 50, "b": 40})
    if start is None or end is None:
        start, end = _span([*firings.get("start", []), *firings.get("end", []),
                            *incidents.get("start", []), *incidents.get("end", [])])
    return add_deploy_markers(figure, deploys, start, end)


_RATING_COLOURS = {"good": "#0cce6b", "needs_improvement": "#ffa400", "poor": "#ff4e42"}


def vitals_trend_figure(weekly: pd.DataFrame, metric: str, budget: float | None = None,
                        title: str | None = None) -> go.Figure:
    """Return p75 per ISO week with its 95 % interval as a band, one line per route and form
    factor (from ``web_vitals_summary(..., period='week')``), with the budget line."""
    figure = go.Figure()
    rows = weekly[(weekly["metric"] == metric) & (weekly["status"] == "ok")]
    for (route, factor), group in rows.groupby(["route", "form_factor"], sort=True):
        name = f"{route} ({factor})"
        figure.add_trace(go.Scatter(
            x=list(group["week"]) + list(group["week"])[::-1],
            y=list(group["p75_high"]) + list(group["p75_low"])[::-1], fill="toself",
            opacity=0.2, line={"width": 0}, showlegend=False, hoverinfo="skip",
            legendgroup=name))
        figure.add_trace(go.Scatter(x=group["week"], y=group["p75"], mode="lines+markers",
                                    name=name, legendgroup=name))
    if budget is not None:
        figure.add_hline(y=budget, line={"dash": "dash", "color": "#d62728"},
                         annotation_text=f"budget {budget:g}")
    figure.update_layout(title=title or f"{metric} p75 per week (95 % interval)",
                         yaxis_title=metric, xaxis_title=None)
    return figure


def vitals_ratings_figure(summary: pd.DataFrame, metric: str) -> go.Figure:
    """Return stacked good / needs-improvement / poor shares per route and form factor."""
    rows = summary[summary["metric"] == metric]
    labels = rows["route"] + " (" + rows["form_factor"] + ")"
    figure = go.Figure([go.Bar(x=100 * rows[share], y=labels, orientation="h",
                               name=share.replace("_", " "), marker_color=colour)
                        for share, colour in _RATING_COLOURS.items()])
    figure.update_layout(barmode="stack", title=f"{metric}: share of page views by rating",
                         xaxis_title="% of page views", yaxis_title=None)
    return figure


def vitals_histogram_figure(values: pd.Series, metric: str,
                            thresholds: tuple[float, float]) -> go.Figure:
    """Return the distribution of one metric's samples with its two thresholds drawn."""
    figure = go.Figure(go.Histogram(x=values, nbinsx=80, name=metric))
    for threshold, label in zip(thresholds, ("good", "poor"), strict=True):
        figure.add_vline(x=threshold, line={"dash": "dash"}, annotation_text=f"{label} "
                         f"{'up to' if label == 'good' else 'above'} {threshold:g}")
    figure.update_layout(title=f"{metric} distribution", xaxis_title=metric,
                         yaxis_title="page views")
    return figure


def forecast_figure(history: pd.Series, forecast: pd.DataFrame,
                    title: str = "Request rate forecast",
                    deploys: pd.DataFrame | None = None) -> go.Figure:
    """Return the history and the forecast with its 80 % and 95 % bands, and a marker at
    each deploy during the history."""
    history = thin(history.rename("value").rename_axis("time").reset_index(), "time",
                   ["value"]).set_index("time")["value"]
    figure = go.Figure(go.Scatter(x=history.index, y=_rounded(history), mode="lines",
                                  name="history"))
    for level, opacity in (("95", 0.15), ("80", 0.3)):
        figure.add_trace(go.Scatter(
            x=list(forecast.index) + list(forecast.index)[::-1],
            y=list(forecast[f"hi{level}"]) + list(forecast[f"lo{level}"])[::-1],
            fill="toself", opacity=opacity, line={"width": 0}, name=f"{level} % interval"))
    figure.add_trace(go.Scatter(x=forecast.index, y=forecast["mean"], mode="lines",
                                name="forecast"))
    figure.update_layout(title=title, yaxis_title="requests / s", xaxis_title=None)
    return add_deploy_markers(figure, deploys, *_span(history.index))


def replay_figure(timeline: pd.DataFrame, max_replicas: int,
                  title: str = "HPA replay", deploys: pd.DataFrame | None = None) -> go.Figure:
    """Return replicas over time (from ``replay_hpa``) beside the load, with maxReplicas and
    a marker at each deploy."""
    timeline = thin(timeline, "time", ["replicas", "load_rps"])
    figure = go.Figure([
        go.Scatter(x=timeline["time"], y=timeline["replicas"], name="replicas",
                   line={"shape": "hv"}),
        go.Scatter(x=timeline["time"], y=timeline["load_rps"], name="load (req/s)",
                   yaxis="y2", opacity=0.5),
    ])
    figure.add_hline(y=max_replicas, line={"dash": "dash", "color": "#d62728"},
                     annotation_text="maxReplicas")
    figure.update_layout(title=title, yaxis_title="replicas",
                         yaxis2={"title": "req/s", "overlaying": "y", "side": "right"})
    return add_deploy_markers(figure, deploys, *_span(timeline["time"]))


def pool_wait_figure(sizes: pd.DataFrame, limit: float, configured: int,
                     title: str = "P(wait) by server pool size") -> go.Figure:
    """Return P(wait for a connection) per pool size (columns ``servers``, ``p_wait``), the
    limit and the configured default_pool_size."""
    figure = go.Figure(go.Scatter(x=sizes["servers"], y=100 * sizes["p_wait"],
                                  mode="lines+markers", name="P(wait)"))
    figure.add_hline(y=100 * limit, line={"dash": "dash"}, annotation_text="limit")
    figure.add_vline(x=configured, line={"dash": "dot"}, annotation_text="default_pool_size")
    figure.update_layout(title=title, xaxis_title="server connections",
                         yaxis_title="P(wait) %")
    return figure


def technical_figure(hourly: pd.DataFrame, title: str = "Technical",
                     deploys: pd.DataFrame | None = None) -> go.Figure:
    """Return one small chart per series (from ``technical_metrics``), sharing the time axis,
    with a marker at each deploy across all of them."""
    from plotly.subplots import make_subplots

    columns = list(hourly.columns)
    figure = make_subplots(rows=len(columns), cols=1, shared_xaxes=True,
                           subplot_titles=columns, vertical_spacing=0.04)
    for row, column in enumerate(columns, 1):
        figure.add_trace(go.Scatter(x=hourly.index, y=hourly[column], mode="lines",
                                    name=column, showlegend=False), row=row, col=1)
    figure.update_layout(title=title, height=220 * max(len(columns), 1))
    return add_deploy_markers(figure, deploys, *_span(hourly.index))
