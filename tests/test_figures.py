"""Figures draw exactly the numbers the analysis returned."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from mysetlist_slo.report.figures import burn_rate_figure, burndown_figure, incident_timeline_figure
from mysetlist_slo.slo.alerts import AlertBacktest, backtest_verdict

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def test_burndown_plots_percent_left() -> None:
    """The line is the remaining budget in percent, with a line at zero."""
    frame = pd.DataFrame({"time": [T0, T0 + timedelta(hours=1)], "total": [10, 20],
                          "bad": [0, 1], "budget_remaining": [1.0, 0.25]})
    figure = burndown_figure(frame)
    assert list(figure.data[0].y) == [100.0, 25.0]
    assert [shape.y0 for shape in figure.layout.shapes] == [0]


def test_burn_rates_with_thresholds() -> None:
    """One line per window and one dotted line per rule threshold."""
    series = pd.DataFrame({"minute": [T0, T0 + timedelta(minutes=1)],
                           "burn_5m": [1.0, 20.0], "burn_1h": [0.5, 2.0]})
    series.attrs["thresholds"] = {"page 1h/5m x14.4": 14.4}
    figure = burn_rate_figure(series)
    assert [trace.name for trace in figure.data] == ["over 5m", "over 1h"]
    assert list(figure.data[0].y) == [1.0, 20.0]
    assert [shape.y0 for shape in figure.layout.shapes] == [14.4]


def test_threshold_labels_sit_at_their_line_on_the_log_axis() -> None:
    """Each threshold label is at log10(threshold) (plotly's log-axis annotation units), and
    the axis spans the data and thresholds only: 0.5 to 20 here, not 10^14."""
    series = pd.DataFrame({"minute": [T0, T0 + timedelta(minutes=1)],
                           "burn_5m": [0.5, 20.0]})
    series.attrs["thresholds"] = {"page 1h/5m x14.4": 14.4, "ticket 3d/6h x1": 1.0}
    figure = burn_rate_figure(series)
    labels = {a.text: a.y for a in figure.layout.annotations}
    assert labels == {"page 1h/5m x14.4": np.log10(14.4), "ticket 3d/6h x1": 0.0}
    low, high = figure.layout.yaxis.range
    assert 10 ** low <= 0.5 and 20 <= 10 ** high <= 100


def test_long_series_are_thinned_keeping_peaks() -> None:
    """A week of minutes is drawn from at most 1,500 points and the single spike survives."""
    minutes = pd.date_range(T0, periods=10_080, freq="min")
    values = np.full(10_080, 0.2)
    values[7_777] = 55.0
    series = pd.DataFrame({"minute": minutes, "burn_1h": values})
    figure = burn_rate_figure(series)
    assert len(figure.data[0].y) <= 1500 and max(figure.data[0].y) == 55.0


def test_incident_timeline() -> None:
    """Each firing is a bar from its start for its duration; incidents are shaded."""
    firings = pd.DataFrame({"rule": ["page", "ticket"], "kind": ["burn rate"] * 2,
                            "severity": ["page", "ticket"],
                            "start": [T0, T0 + timedelta(minutes=2)],
                            "end": [T0 + timedelta(minutes=5), T0 + timedelta(hours=1)]})
    incidents = pd.DataFrame({"start": [T0], "end": [T0 + timedelta(minutes=7)]})
    figure = incident_timeline_figure(firings, incidents)
    assert [list(trace.x) for trace in figure.data] == [[300_000.0], [3_480_000.0]]
    assert len(figure.layout.shapes) == 1


def test_verdict_sentences() -> None:
    """The verdict states, per rule, what it caught, how fast and how noisily."""
    summary = pd.DataFrame([
        {"rule": "page", "kind": "burn rate", "severity": "page", "firings": 2,
         "noisy_firings": 0, "firing_minutes": 10, "incidents_caught": 2, "incidents": 2,
         "median_time_to_detect": pd.Timedelta(minutes=3)},
        {"rule": "static", "kind": "static", "severity": "critical", "firings": 0,
         "noisy_firings": 0, "firing_minutes": 0, "incidents_caught": 0, "incidents": 2,
         "median_time_to_detect": np.nan},
    ])
    text = backtest_verdict(AlertBacktest(pd.DataFrame(), pd.DataFrame(), summary))
    assert "page (burn rate, page): caught 2 of 2, median 3 min to detect; 0 of 2" in text
    assert "static (static, critical): caught 0 of 2; never fired." in text


def test_compact_figure_keeps_every_point_in_less_text() -> None:
    """Evenly spaced times become x0 + dx (ms) that rebuild exactly the original times; uneven
    times stay a list; the template keeps only the drawn trace types' defaults."""
    import plotly.graph_objects as go

    from mysetlist_slo.report.figures import compact_figure

    even = pd.date_range("2026-11-16", periods=1440, freq="7min", tz="UTC")
    uneven = even.delete(5)
    # A column (written as naive UTC), a gap, and an index (written with its offset).
    figure = go.Figure([go.Scatter(x=pd.Series(even), y=np.arange(1440.0)),
                        go.Scatter(x=pd.Series(uneven), y=np.arange(1439.0)),
                        go.Scatter(x=even, y=np.arange(1440.0))])
    document = compact_figure(figure)
    first, second, third = document["data"]
    assert "x" not in first and first["dx"] == 7 * 60 * 1000
    rebuilt = pd.Timestamp(first["x0"]) + pd.to_timedelta(np.arange(1440) * first["dx"],
                                                          unit="ms")
    assert (rebuilt == even.tz_localize(None)).all()
    assert len(second["x"]) == 1439 and "x0" not in second
    assert "x" not in third and pd.Timestamp(third["x0"]) == even[0]
    assert third["dx"] == first["dx"]
    assert set(document["layout"]["template"]["data"]) == {"scatter"}
    original = json.loads(figure.to_json())
    assert len(json.dumps(first)) < len(json.dumps(original["data"][0])) / 2
    assert len(json.dumps(document["layout"])) < len(json.dumps(original["layout"])) / 2
