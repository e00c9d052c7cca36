"""Figures draw exactly the numbers the analysis returned."""

from __future__ import annotations

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
    assert [trace.name for trace in figure.data] == ["5m", "1h"]
    assert list(figure.data[0].y) == [1.0, 20.0]
    assert [shape.y0 for shape in figure.layout.shapes] == [14.4]


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
