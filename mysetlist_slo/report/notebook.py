"""Display helpers for the report notebooks: figures that also work offline, escaped tables.

Notebooks call these to show library results; nothing here computes a number.
"""

from __future__ import annotations

import html
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import StoreNotFoundError
from mysetlist_slo.report import formatting
from mysetlist_slo.report.figures import compact_figure
from mysetlist_slo.report.overview import Headline, change, overview_headline
from mysetlist_slo.report.weekly import WeeklySummary, weekly_summary
from mysetlist_slo.resilience.section import ScalabilityRecovery
from mysetlist_slo.slo.deploys import DeployImpact, deploy_events, deploy_impact
from mysetlist_slo.store.database import open_store


class OfflineFigure:
    """A plotly figure that JupyterLab renders natively and exported HTML renders offline.

    The HTML form does not carry plotly.js: the report's HTML export embeds it once.
    """

    def __init__(self, figure: go.Figure) -> None:
        self.figure = figure

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        # Through plotly's own JSON encoder (it knows numpy arrays and datetimes), compacted.
        document = compact_figure(self.figure)
        return {
            "application/vnd.plotly.v1+json": document,
            "text/html": pio.to_html(document, full_html=False, include_plotlyjs=False,
                                     include_mathjax=False, validate=False),
            "text/plain": f"<plotly figure: {self.figure.layout.title.text or 'untitled'}>",
        }


class _Html:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text


def show(figure: go.Figure) -> OfflineFigure:
    """Return ``figure`` wrapped for display in JupyterLab and in offline HTML."""
    return OfflineFigure(figure)


def table(frame: pd.DataFrame, units: dict[str, str] | None = None,
          labels: dict[str, str] | None = None, top: int | None = None,
          more: str = "rows", **options: Any) -> _Html:
    """Return ``frame`` as an escaped HTML table through the shared formatter
    (``formatting.table``); without ``units``, each column's unit follows its dtype."""
    units = units or {column: _unit_of(frame[column]) for column in frame.columns}
    styled = formatting.table(frame, units, labels, top=top, more=more, **options)
    return _Html(styled.to_html())


def _unit_of(column: pd.Series) -> str:
    """Return the formatter unit a column's dtype implies (counts for integers)."""
    if pd.api.types.is_bool_dtype(column):
        return "bool"
    if pd.api.types.is_integer_dtype(column):
        return "count"
    if pd.api.types.is_float_dtype(column):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "time"
    if pd.api.types.is_timedelta64_dtype(column):
        return "duration"
    return "text"


def note(text: str) -> _Html:
    """Return one line of text, escaped; used for a section whose data is missing."""
    return _Html(f"<p><em>{html.escape(text)}</em></p>")


def paragraph(text: str) -> _Html:
    """Return a paragraph of text, escaped."""
    return _Html(f"<p>{html.escape(text)}</p>")


ENV_DB = "MYSETLIST_SLO_DB"
ENV_CONFIG = "MYSETLIST_SLO_CONFIG"
DEFAULT_DB_NAME = Path("data") / "metrics.duckdb"


def project_root(start: Path | None = None) -> Path | None:
    """Return the nearest folder at or above ``start`` (default: the working directory) that
    holds a ``pyproject.toml`` or ``.git``: the project a notebook was opened in; None if none."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return None


def find_store(db: str | Path | None = None) -> Path:
    """Return the absolute path of the store a notebook reads, by one rule: the ``db``
    parameter if given, else ``$MYSETLIST_SLO_DB``, else ``data/metrics.duckdb`` in the project
    root found from the working directory (so JupyterLab in ``notebooks/`` finds the store the
    CLI wrote from the repository root). Raises StoreNotFoundError naming the path tried and
    the command that creates the store."""
    if db:
        path, how = Path(db), "the db parameter"
    elif os.environ.get(ENV_DB):
        path, how = Path(os.environ[ENV_DB]), f"${ENV_DB}"
    else:
        root = project_root()
        path = (root or Path.cwd()) / DEFAULT_DB_NAME
        how = f"the project root {root}" if root else "the working directory (no project root)"
    path = path.expanduser().resolve()
    if not path.is_file():
        raise StoreNotFoundError(path, how)
    return path


def find_config(config: str | Path | None = None) -> str | None:
    """Return the configuration file a notebook reads: the ``config`` parameter if given,
    else ``$MYSETLIST_SLO_CONFIG``, else None (the shipped defaults)."""
    chosen = config or os.environ.get(ENV_CONFIG)
    return str(Path(chosen).expanduser().resolve()) if chosen else None


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

    @cached_property
    def deploy_impact(self) -> DeployImpact:
        """Return the week's deploys and what each did (computed once per notebook)."""
        return deploy_impact(self.con, self.config, self.start, self.end)

    @cached_property
    def deploys(self) -> pd.DataFrame:
        """Return the deploys to mark on the figures: the five weeks before the week's end (a
        30-day burn-down's span and more), with the week's verdicts."""
        frame = deploy_events(self.con, self.config, self.end - timedelta(days=35), self.end)
        verdicts = self.deploy_impact.deploys[["deployed_at", "verdict"]]
        return frame.merge(verdicts, on="deployed_at", how="left")


def open_settings(config: str = "", timezone: str = "") -> Config:
    """Return the configuration found by ``find_config``, with ``timezone`` if given."""
    settings = load_config(find_config(config))
    if timezone:
        settings = settings.with_timezone(timezone)
    return settings


def open_weekly(db: str = "", config: str = "", week: str = "",
                timezone: str = "") -> WeeklyContext:
    """Return the context of a weekly report from the notebook's parameters (empty: found by
    ``find_store`` and ``find_config``). Raises StoreNotFoundError when there is no store."""
    settings = open_settings(config, timezone)
    con = open_store(find_store(db), read_only=True)
    return WeeklyContext(con, settings, weekly_summary(con, settings, week or None))


def first_screen(title: str, summary: WeeklySummary, overview: pd.DataFrame,
                 now: Headline, before: Headline, previous_label: str) -> _Html:
    """Return the report's first screen: the title with the period, the overall status in
    colour and words with the headline count, one status row per SLO, and the headline
    numbers with their change from the week before."""
    overall, count = overview_headline(overview)
    last_day = summary.end - timedelta(days=1)
    period = (f"{summary.start:%a %d %b} – {last_day:%a %d %b %Y}, cut in {summary.timezone}"
              " (times in UTC)")
    banner = _banner(overall, count)
    rows = (status_table(overview, summary.end) if len(overview)
            else "<p>No SLO is configured.</p>")
    tiles = [
        ("Availability", formatting.fmt(now.availability, "pct3"),
         change(now.availability, before.availability, "pp")),
        ("Error rate (5xx)", formatting.fmt(now.error_rate, "pct3"),
         change(now.error_rate, before.error_rate, "pp")),
        ("API p95 latency", formatting.fmt(now.p95_api_latency_ms, "ms"),
         change(now.p95_api_latency_ms, before.p95_api_latency_ms, "ms")),
        ("Requests", formatting.fmt(now.requests, "count"),
         change(now.requests, before.requests, "relative")),
        ("Active users", formatting.fmt(now.active_users, "count"),
         change(now.active_users, before.active_users, "relative")),
        ("Web Vitals passing", formatting.MISSING if now.vitals_assessed is None
         else f"{now.vitals_passing} of {now.vitals_assessed}",
         change(now.vitals_passing, before.vitals_passing, "count")),
    ]
    cells = "".join(
        f'<div style="border:1px solid #ddd;border-radius:4px;padding:0.3em 0.7em;'
        f'min-width:9em"><div style="color:#555;font-size:0.85em">{html.escape(label)}</div>'
        f'<div style="font-size:1.3em;font-weight:600;font-variant-numeric:tabular-nums">'
        f'{html.escape(value)}</div><div style="color:#555;font-size:0.8em">'
        f'{html.escape(delta or formatting.MISSING)} vs {html.escape(previous_label)}</div></div>'
        for label, value, delta in tiles)
    notes = _missing_notes(overview, now)
    return _Html(
        f'<h1 style="margin-bottom:0.1em">{html.escape(title)} — {html.escape(summary.week)}'
        f'</h1><div style="color:#555">{html.escape(period)}</div>{banner}{rows}'
        f'<div style="display:flex;flex-wrap:wrap;gap:0.5em;margin-top:0.7em">{cells}</div>'
        f'<p style="color:#555;font-size:0.85em;margin-top:0.5em">{html.escape(notes)}</p>')


STATUS_UNITS = {"slo": "text", "status": "text", "objective": "objective", "sli_period": "pct3",
                "window": "text", "sli_window": "pct3", "budget_spent_period": "pct",
                "budget_remaining": "pct", "burn_rate_1h": "burn", "burn_rate_24h": "burn"}
STATUS_LABELS = {"slo": "SLO", "status": "status", "objective": "objective",
                 "sli_period": "SLI this week", "window": "window",
                 "sli_window": "SLI over window", "budget_spent_period": "budget spent this week",
                 "budget_remaining": "budget left", "burn_rate_1h": "burn 1 h",
                 "burn_rate_24h": "burn 24 h"}


def status_table(overview: pd.DataFrame, end: datetime | None = None) -> str:
    """Return the SLO status rows (from ``overview.slo_overview``) as an HTML table: status in
    colour and words, budget left with a bar, headed with the windows' ``end`` when given."""
    labels = dict(STATUS_LABELS)
    if end is not None:  # the budget left of windows ending at the week's end, not now
        labels["budget_remaining"] = formatting.budget_left_at(end)
    if "sli_kind" in overview:  # a composite's row named as what it is, as `status` does
        overview = overview.assign(slo=[
            f"{name} (composite)" if kind == "composite" else name
            for name, kind in zip(overview["slo"], overview["sli_kind"], strict=True)])
    styled = formatting.table(overview, STATUS_UNITS, labels, status="status",
                              bars={"budget_remaining": "#b9e3d3"})
    return styled.set_table_attributes('class="msl-status"').to_html()


def _missing_notes(overview: pd.DataFrame, now: Headline) -> str:
    """Return the note that says why each "–" on the first screen is missing."""
    notes = [f"{row.slo}: {row.reason}" for row in overview.itertuples() if row.reason]
    if len(overview) and overview["burn_rate_1h"].isna().any():
        notes.append("burn 1 h: no events in the last hour of the period")
    if now.active_users is None:
        notes.append("active users: not measured (no PostHog events are loaded)")
    if now.vitals_assessed is None:
        notes.append("Web Vitals: no field data this week")
    burn = "burn rate 1× spends the window's budget exactly by its end"
    return f"{formatting.MISSING} no value — " + "; ".join(notes) + f". {burn}." if notes \
        else burn + "."


def status_word(status: str) -> str:
    """Return the word people read for a machine status (``at_risk`` -> ``at risk``)."""
    return formatting.STATUS_WORDS.get(status, status)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def items(lines: list[str]) -> _Html:
    """Return ``lines`` as an escaped bullet list, one item each."""
    return _Html("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")


def bullets(text: str) -> _Html:
    """Return a paragraph of sentences as an escaped bullet list, one fact per line."""
    items = [s for s in _SENTENCE_END.split(text.strip()) if s]
    return _Html("<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in items) + "</ul>")


def bullet_lines(lines: list[str]) -> _Html:
    """Return the given lines as an escaped bullet list, one item each."""
    return _Html("<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in lines) + "</ul>")


_ASSESSMENT_ORDER = {"failed": 0, "passed": 1, "not enough data": 2}


def cwv_table(assessment: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the Core Web Vitals assessment rows (``WeeklySummary.web_vitals``) failing first,
    ratings as words."""
    frame = pd.DataFrame(assessment)
    if frame.empty:
        return frame
    frame = frame.assign(order=frame["assessment"].map(_ASSESSMENT_ORDER).fillna(3))
    frame = frame.sort_values(["order", "route", "form_factor"]).drop(columns="order")
    return frame.fillna(formatting.MISSING).replace({"needs-improvement": "needs improvement"})


def regressions_table(regressions: list[dict[str, Any]]) -> pd.DataFrame:
    """Return the significant regressions (``WeeklySummary.vitals_regressions``) with p75
    values in their metric's unit (ms, CLS unitless), most page views rated poor first."""
    frame = pd.DataFrame(regressions)
    if frame.empty:
        return frame
    frame = frame.sort_values("users_affected", ascending=False)
    frame["p75 before"] = [formatting.vital(v, m) for v, m in
                           zip(frame["p75_before"], frame["metric"], strict=True)]
    frame["p75"] = [formatting.vital(v, m) for v, m in
                    zip(frame["p75"], frame["metric"], strict=True)]
    return frame.reset_index(drop=True)


def p75_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Return ``web_vitals_summary`` rows for display: p75, interval and budget in the metric's
    unit, ordered by page views rated poor (the users a fix would help), most first."""
    if summary.empty:
        return summary
    frame = summary.assign(impact=summary["page_views"] * summary["poor"].fillna(0))
    frame = frame.sort_values("impact", ascending=False).reset_index(drop=True)
    metric = frame["metric"]
    frame["95 % interval"] = [
        formatting.MISSING if pd.isna(low) else f"{formatting.vital(low, m)} – "
        f"{formatting.vital(high, m)}"
        for low, high, m in zip(frame["p75_low"], frame["p75_high"], metric, strict=True)]
    frame["p75"] = [formatting.vital(v, m) for v, m in zip(frame["p75"], metric, strict=True)]
    frame["budget"] = [formatting.vital(v, m) for v, m in
                       zip(frame["budget"], metric, strict=True)]
    return frame


_ATTRIBUTION_LABELS = {
    "LCP": ("LCP element", "resource URL (most frequent)"),
    "INP": ("interaction target", "interaction type"),
    "CLS": ("largest shift source", "median shift time (ms)"),
}


def attribution_table(ranked: pd.DataFrame, metric: str, top: int | None = None) -> _Html:
    """Return ``vitals_attribution`` rows of ``metric`` (LCP, INP or CLS) as an escaped table:
    element, detail, page views, views over the good threshold and poor, p75 and each phase's
    p75 in the metric's unit, the dominant phase; the first ``top`` rows (ranked already)."""
    target, detail = _ATTRIBUTION_LABELS[metric]
    frame = ranked.copy()
    phases = [c for c in frame.columns
              if c.endswith(("_delay", "_duration", "time_to_first_byte"))]
    for column in ["p75", *phases]:
        frame[column] = [formatting.vital(v, metric) for v in frame[column]]
    frame["dominant_phase"] = frame["dominant_phase"].map(
        lambda p: p.replace("_", " ") if isinstance(p, str) else formatting.MISSING)
    if metric == "CLS":
        frame["detail"] = [formatting.fmt(v, "ms") for v in frame["detail"]]
    units = {"route": "text", "form_factor": "text", "target": "text", "detail": "text",
             "page_views": "count", "share": "share", "page_views_affected": "count",
             "poor": "count", "p75": "text", **dict.fromkeys(phases, "text"),
             "dominant_phase": "text"}
    if metric == "CLS":
        del units["dominant_phase"]  # a shift has no phases
    labels = {"form_factor": "device", "target": target, "detail": detail,
              "page_views": "page views", "share": "share of views",
              "page_views_affected": "views over good", "poor": "views poor",
              "dominant_phase": "dominant phase (p75)"}
    return table(frame, units, labels, top=top, more="elements")


def crux_for_period(crux: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the CrUX rows of the latest collection period that overlaps [start, end) only
    (``crux_comparison`` returns every period loaded)."""
    if crux.empty:
        return crux
    first = pd.to_datetime(crux["first_date"]).dt.date
    last = pd.to_datetime(crux["last_date"]).dt.date
    overlapping = crux[(last >= start.date()) & (first < end.date())]
    if overlapping.empty:
        return overlapping
    return overlapping[overlapping["last_date"] == overlapping["last_date"].max()]


def header(document: dict[str, Any]) -> _Html:
    """Return a report's opening lines from its summary document (``summaries``): the title
    with the period, and the overall status in colour and words with the headline."""
    period = document["period"]
    start = pd.Timestamp(period["start"])
    last_day = pd.Timestamp(period["end"]) - pd.Timedelta(days=1)
    status = document["status"]
    return _Html(
        f'<h1 style="margin-bottom:0.1em">{html.escape(document["title"])} — '
        f'{html.escape(period["label"])}</h1><div style="color:#555">'
        f'{start:%a %d %b} – {last_day:%a %d %b %Y}, cut in {html.escape(period["timezone"])}'
        f'</div>{_banner(status, document["headline"])}')


def _banner(status: str, text: str) -> str:
    """Return the status badge (colour and word) beside the headline, as HTML."""
    colour = formatting.STATUS_COLOURS[status]
    return (f'<div class="msl-banner" style="display:flex;align-items:center;gap:0.8em;'
            f'margin:0.4em 0 0.6em"><span style="background:{colour};color:white;'
            f'font-weight:bold;padding:0.25em 0.7em;border-radius:4px;'
            f'text-transform:uppercase">{html.escape(formatting.STATUS_WORDS[status])}</span>'
            f'<span style="font-size:1.25em;font-weight:600">{html.escape(text)}</span></div>')


def recovery_table(section: ScalabilityRecovery) -> pd.DataFrame:
    """Return the scalability and recovery section as rows: part, topic, machine status (for
    the coloured status column), the item's finding and its line."""
    return pd.DataFrame(
        [{"part": title, "topic": line.topic,
          "status": "no_data" if line.ok is None else ("ok" if line.ok else "at_risk"),
          "finding": line.status, "detail": line.text}
         for title, lines in section.parts.items() for line in lines],
        columns=["part", "topic", "status", "finding", "detail"])


def deploys_table(impact: DeployImpact) -> pd.DataFrame:
    """Return the week's deploys as rows for the report: when, version, verdict (machine
    status for the coloured column), budget hours after and before on the SLO it hurt most,
    error rates and p95 before and after with their p-values."""
    frame = impact.deploys
    status = frame["verdict"].map({"regressed": "at_risk", "ok": "ok"}).fillna("no_data")
    return pd.DataFrame({
        "deployed_at": frame["deployed_at"], "version": frame["version"], "status": status,
        "verdict": frame["verdict"], "slo": frame["worst_slo"],
        "budget_after_h": frame["budget_hours_after"],
        "budget_before_h": frame["budget_hours_before"],
        "errors_after": frame["error_rate_after"], "errors_before": frame["error_rate_before"],
        "error_p": frame["error_p_value"], "p95_after_ms": frame["p95_after_ms"],
        "p95_before_ms": frame["p95_before_ms"], "latency_p": frame["latency_p_value"]})
