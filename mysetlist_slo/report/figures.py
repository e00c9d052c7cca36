"""Plotly figures of SLO results: budget burn-down, burn rates against thresholds, incidents.

Figures take the DataFrames the analysis functions return; they compute nothing themselves.
Text from logs (route names) reaches them only as data, which plotly escapes when it renders.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

_SEVERITY_COLOURS = {"page": "#d62728", "critical": "#d62728", "ticket": "#ff7f0e",
                     "warning": "#ff7f0e"}


def burndown_figure(burndown: pd.DataFrame, title: str = "Error budget") -> go.Figure:
    """Return the budget remaining over the window (from ``budget_burndown``), with the
    exhaustion line at 0 %."""
    figure = go.Figure(go.Scatter(
        x=burndown["time"], y=100 * burndown["budget_remaining"], mode="lines",
        name="budget remaining", line={"shape": "hv"},
        hovertemplate="%{x}<br>%{y:.1f} % left<extra></extra>"))
    figure.add_hline(y=0, line={"dash": "dash", "color": "#d62728"},
                     annotation_text="budget spent")
    figure.update_layout(title=title, yaxis_title="budget remaining (%)", xaxis_title=None,
                         hovermode="x unified")
    return figure


def burn_rate_figure(series: pd.DataFrame, title: str = "Burn rate") -> go.Figure:
    """Return each window's burn rate over time (from ``burn_rate_series``) on a log scale,
    with each rule's threshold as a dotted line."""
    figure = go.Figure()
    for column in [c for c in series.columns if c.startswith("burn_")]:
        figure.add_trace(go.Scatter(x=series["minute"], y=series[column], mode="lines",
                                    name=column.removeprefix("burn_")))
    for rule, threshold in series.attrs.get("thresholds", {}).items():
        figure.add_hline(y=threshold, line={"dash": "dot", "width": 1},
                         annotation_text=rule, annotation_position="top left")
    figure.update_layout(title=title, yaxis_type="log", yaxis_title="burn rate (1 = on budget)",
                         xaxis_title=None)
    return figure


def incident_timeline_figure(firings: pd.DataFrame, incidents: pd.DataFrame,
                             title: str = "Incidents and alerts") -> go.Figure:
    """Return a timeline: incidents as shaded spans, each alert firing as a bar on its rule's
    row (from ``backtest_alerts(...).firings`` and the incidents it was judged against)."""
    figure = go.Figure()
    for row in incidents.itertuples():
        figure.add_vrect(x0=row.start, x1=row.end, fillcolor="#d62728", opacity=0.15,
                         line_width=0)
    for severity, group in firings.groupby("severity", sort=False):
        base = pd.to_datetime(group["start"])
        span_ms = (pd.to_datetime(group["end"]) - base).dt.total_seconds() * 1000
        figure.add_trace(go.Bar(
            base=base, x=span_ms, y=group["rule"], orientation="h", name=str(severity),
            marker_color=_SEVERITY_COLOURS.get(str(severity), "#1f77b4"),
            hovertemplate="%{y}<br>%{base} for %{x:,.0f} ms<extra></extra>"))
    figure.update_layout(title=title, xaxis_type="date", barmode="overlay",
                         yaxis_title=None, xaxis_title=None)
    return figure


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
                    title: str = "Request rate forecast") -> go.Figure:
    """Return the history and the forecast with its 80 % and 95 % bands."""
    figure = go.Figure(go.Scatter(x=history.index, y=history, mode="lines", name="history"))
    for level, opacity in (("95", 0.15), ("80", 0.3)):
        figure.add_trace(go.Scatter(
            x=list(forecast.index) + list(forecast.index)[::-1],
            y=list(forecast[f"hi{level}"]) + list(forecast[f"lo{level}"])[::-1],
            fill="toself", opacity=opacity, line={"width": 0}, name=f"{level} % interval"))
    figure.add_trace(go.Scatter(x=forecast.index, y=forecast["mean"], mode="lines",
                                name="forecast"))
    figure.update_layout(title=title, yaxis_title="requests / s", xaxis_title=None)
    return figure


def replay_figure(timeline: pd.DataFrame, max_replicas: int,
                  title: str = "HPA replay") -> go.Figure:
    """Return replicas over time (from ``replay_hpa``) beside the load, with maxReplicas."""
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
    return figure


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


def technical_figure(hourly: pd.DataFrame, title: str = "Technical") -> go.Figure:
    """Return one small chart per series (from ``technical_metrics``), sharing the time axis."""
    from plotly.subplots import make_subplots

    columns = list(hourly.columns)
    figure = make_subplots(rows=len(columns), cols=1, shared_xaxes=True,
                           subplot_titles=columns, vertical_spacing=0.04)
    for row, column in enumerate(columns, 1):
        figure.add_trace(go.Scatter(x=hourly.index, y=hourly[column], mode="lines",
                                    name=column, showlegend=False), row=row, col=1)
    figure.update_layout(title=title, height=220 * max(len(columns), 1))
    return figure
