"""Display helpers for the report notebooks: figures that also work offline, escaped tables.

Notebooks call these to show library results; nothing here computes a number.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.report.weekly import WeeklySummary, weekly_summary
from mysetlist_slo.store.database import open_store


class OfflineFigure:
    """A plotly figure that JupyterLab renders natively and exported HTML renders offline.

    The HTML form does not carry plotly.js; ``setup()`` puts it into the notebook once.
    """

    def __init__(self, figure: go.Figure) -> None:
        self.figure = figure

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            # Through plotly's own JSON encoder: it knows numpy arrays and datetimes.
            "application/vnd.plotly.v1+json": json.loads(self.figure.to_json()),
            "text/html": self.figure.to_html(full_html=False, include_plotlyjs=False,
                                             include_mathjax=False),
            "text/plain": f"<plotly figure: {self.figure.layout.title.text or 'untitled'}>",
        }


class _Html:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


def setup() -> _Html:
    """Return the cell output that embeds plotly.js once, so exported reports need no CDN."""
    return _Html(f'<script type="text/javascript">{get_plotlyjs()}</script>')


def show(figure: go.Figure) -> OfflineFigure:
    """Return ``figure`` wrapped for display in JupyterLab and in offline HTML."""
    return OfflineFigure(figure)


def table(frame: pd.DataFrame, percent: tuple[str, ...] = (), digits: int = 2) -> _Html:
    """Return ``frame`` as an HTML table with every value escaped (routes come from logs)."""
    shown = frame.copy()
    for column in percent:
        if column in shown:
            shown[column] = shown[column].map(
                lambda v: "-" if pd.isna(v) else f"{100 * float(v):.{digits}f} %")
    return _Html(shown.to_html(index=False, escape=True, na_rep="-",
                               float_format=lambda v: f"{v:,.{digits}f}"))


def note(text: str) -> _Html:
    """Return one line of text, escaped; used for a section whose data is missing."""
    return _Html(f"<p><em>{html.escape(text)}</em></p>")


def paragraph(text: str) -> _Html:
    """Return a paragraph of text, escaped."""
    return _Html(f"<p>{html.escape(text)}</p>")


@dataclass
class WeeklyContext:
    """What the weekly notebook works on: the store, the configuration and the week."""

    con: duckdb.DuckDBPyConnection
    config: Config
    summary: WeeklySummary

    @property
    def start(self) -> datetime:
        """Return the start of the week (UTC)."""
        return self.summary.start

    @property
    def end(self) -> datetime:
        """Return the end of the week (UTC)."""
        return self.summary.end


def open_weekly(db: str, config: str = "", week: str = "", timezone: str = "") -> WeeklyContext:
    """Return the context of a weekly report from the notebook's parameters (empty: default)."""
    settings = load_config(config or None)
    if timezone:
        settings = settings.with_timezone(timezone)
    con = open_store(db, read_only=True)
    return WeeklyContext(con, settings, weekly_summary(con, settings, week or None))


def headline(summary: WeeklySummary) -> _Html:
    """Return the executive summary's headline numbers as an escaped HTML table."""
    def pct(value: float | None) -> str:
        return "no data" if value is None else f"{value:.3f} %"

    rows = [
        ("Availability (non-5xx share)", pct(summary.availability)),
        ("Error rate (5xx share)", pct(summary.error_rate)),
        ("API p95 latency", "no data" if summary.p95_api_latency_ms is None
         else f"{summary.p95_api_latency_ms:.0f} ms"),
        ("Requests", f"{summary.requests:,}"),
        ("Active users", "not measured (no user data is loaded)"),
        ("Minutes with data", f"{summary.minutes_with_data:,} of {summary.week_minutes:,}"),
    ]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)
    return _Html(f"<table>{cells}</table>")
