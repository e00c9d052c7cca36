"""One formatter for every number a report shows, bounded HTML tables, and text made safe.

Every report, table, summary and chat message formats through ``fmt`` with a unit from
``UNITS``, so a percentage, a latency or a count reads the same everywhere. Tables are pandas
``Styler`` objects: pandas is already a dependency, ``Styler`` escapes every cell and header for
HTML, draws budget bars with CSS (``Styler.bar``), and writes one small ``<style>`` per table.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from pandas.io.formats.style import Styler

from mysetlist_slo._numbers import signed, significant, whole

MISSING = "–"  # en dash: one mark for every missing value, explained in a note

# Status words people read, beside the machine names used in summary.json.
STATUS_WORDS = {"ok": "ok", "at_risk": "at risk", "breach": "breached", "no_data": "no data"}
# One colour per status and severity, used by tables and figures alike (colour-blind safe
# pairs from the Okabe-Ito palette; never the only signal: the word is always written too).
STATUS_COLOURS = {"ok": "#009E73", "at_risk": "#E69F00", "breach": "#D55E00",
                  "no_data": "#7f7f7f"}
# One colour per alert severity, distinct from each other (a page and a critical static alert
# are both urgent, but come from different rules and must be told apart in a legend).
SEVERITY_COLOURS = {"page": "#D55E00", "critical": "#CC79A7", "ticket": "#E69F00",
                    "warning": "#56B4E9"}

UNITS = ("pct", "pct3", "share", "share3", "ms", "duration", "count", "burn", "time", "pvalue",
         "number", "text", "bool", "bytes", "objective")


def is_missing(value: Any) -> bool:
    """Return True for None, NaN, NaT and pandas' NA."""
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # lists and other containers are values, not missing
        return False


def duration(seconds: float) -> str:
    """Return a duration as people say it: ``45 s``, ``7 min 6 s``, ``3 h 5 min``, ``2 d 4 h``."""
    total = round(seconds)
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def fmt(value: Any, unit: str = "number") -> str:
    """Return ``value`` as text with its unit and a sensible precision; ``MISSING`` when absent.

    Units: ``pct`` (a percent value, 1 decimal), ``pct3`` (3 decimals, for SLIs near 100 %),
    ``share``/``share3`` (a fraction shown as percent), ``ms`` (milliseconds, whole below 10 s,
    seconds above), ``duration`` (seconds, or a timedelta, as ``7 min 6 s``), ``count``
    (integer with separators), ``burn`` (a burn rate, ``0.44×``), ``time`` (UTC, to the minute),
    ``pvalue`` (``< 0.001`` or 3 decimals), ``number`` (3 significant digits), ``text``,
    ``bool`` (yes / no), ``bytes`` (KB / MB), ``objective`` (a percent as configured, every
    digit: ``99.45 %``). Raises ValueError for an unknown unit.
    """
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}; known: {', '.join(UNITS)}")
    if is_missing(value):
        return MISSING
    if unit == "text":
        return str(value)
    if unit == "bool":
        return "yes" if bool(value) else "no"
    if unit == "time":
        # A Styler may hand over its escaped cell (markupsafe.Markup, a str subclass), which
        # pandas before 2.2 refuses to parse: parse plain text.
        stamp = pd.Timestamp(str(value) if isinstance(value, str) else value)
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC")
        return stamp.strftime("%Y-%m-%d %H:%M") + " UTC"
    if unit == "duration":
        seconds = (value.total_seconds() if isinstance(value, timedelta | pd.Timedelta)
                   else float(value))
        return duration(seconds)
    number = float(value)
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    if unit == "objective":  # a target is exact: 99.45 % must not read as 99.5 %
        return f"{number:g} %"
    if unit in ("pct", "pct3", "share", "share3"):
        percent = 100 * number if unit.startswith("share") else number
        digits = 3 if unit.endswith("3") else 1
        return f"{signed(percent, f',.{digits}f')} %"
    if unit == "ms":
        return f"{number / 1000:,.2f} s" if abs(number) >= 10_000 else f"{number:,.0f} ms"
    if unit == "count":
        return whole(number)
    if unit == "burn":
        return f"{number:,.2f}×"
    if unit == "pvalue":
        return "< 0.001" if number < 0.001 else f"{number:.3f}"
    if unit == "bytes":
        for size, name in ((1e9, "GB"), (1e6, "MB"), (1e3, "KB")):
            if abs(number) >= size:
                return f"{number / size:,.1f} {name}"
        return f"{number:,.0f} B"
    return significant(number)


def budget_left_at(end: Any) -> str:
    """Return the label of a budget-left figure with the end of the windows it covers, e.g.
    ``budget left at 2026-11-23 00:00 UTC``: the weekly report reads windows ending at the
    week's end, ``status`` windows ending now, and the two figures differ by that much."""
    return f"budget left at {fmt(end, 'time')}"


def vital(value: Any, metric: str) -> str:
    """Return a Web Vitals value with its unit: CLS unitless to 2 decimals, the rest in ms."""
    if is_missing(value):
        return MISSING
    return f"{float(value):.2f}" if metric == "CLS" else fmt(value, "ms")


# --- tables -------------------------------------------------------------------------------

def table(frame: pd.DataFrame, units: Mapping[str, str], labels: Mapping[str, str] | None = None,
          top: int | None = None, more: str = "rows", bars: Mapping[str, str] | None = None,
          status: str | None = None) -> Styler:
    """Return ``frame`` as a Styler: the ``units`` columns (in that order) formatted by ``fmt``,
    headers renamed by ``labels``, every cell and header HTML-escaped.

    ``top`` keeps the first N rows (sort by impact first) and captions "and N more <more>";
    ``bars`` draws a 0–100 % bar in the given columns (values in percent); ``status`` names a
    column of machine statuses (``ok``/``at_risk``/``breach``/``no_data``) shown as coloured
    words. Raises KeyError when a ``units`` column is not in ``frame``.
    """
    shown = frame[list(units)].copy()
    hidden = 0
    if top is not None and len(shown) > top:
        hidden = len(shown) - top
        shown = shown.head(top)
    for column in (bars or {}):
        # Styler.bar cannot subtract from None: a column with no value at all (no data) must
        # be float NaN, which it leaves without a bar.
        shown[column] = pd.to_numeric(shown[column], errors="coerce").astype(float)
    statuses = shown[status].tolist() if status else []
    labels = dict(labels or {})
    styler = shown.style.hide(axis="index")
    formats: dict[str, Callable[[Any], str]] = {
        column: functools.partial(_cell, unit=unit) for column, unit in units.items()}
    if status:
        formats[status] = _status_word
    styler = styler.format(formats, escape="html", na_rep=MISSING)
    styler = styler.format_index(lambda c: labels.get(c, c.replace("_", " ")), axis="columns",
                                 escape="html")
    numeric = [c for c, u in units.items() if u not in ("text", "time", "bool")]
    styler = styler.set_properties(subset=numeric, **{"text-align": "right",
                                                      "font-variant-numeric": "tabular-nums"})
    texts = [c for c in units if c not in numeric]
    styler = styler.set_properties(subset=texts, **{"text-align": "left"})
    styler = styler.set_table_styles([{"selector": "th", "props": "text-align: left;"}],
                                     overwrite=False)
    for column in (bars or {}):
        # The bar fills the left half of the cell, the right-aligned number the other half:
        # a bar under the digits made them hard to read.
        styler = styler.bar(subset=[column], vmin=0, vmax=100, color=bars[column],  # type: ignore[index]
                            height=60, width=50, props="width: 9em;")
    if status:
        colours = [f"color: white; background-color: {STATUS_COLOURS.get(s, '#7f7f7f')}; "
                   "font-weight: bold; text-align: center" for s in statuses]
        styler = styler.apply(lambda _: colours, subset=[status], axis=0)
    if hidden:
        styler = styler.set_caption(f"and {hidden:,} more {more} (the full table is in the "
                                    "executed notebook)")
        styler = styler.set_table_styles([{"selector": "caption",
                                           "props": "caption-side: bottom; text-align: left;"
                                                    " font-style: italic;"}], overwrite=False)
    return styler


def _cell(value: Any, unit: str) -> str:
    return fmt(value, unit)


def _status_word(status: Any) -> str:
    return STATUS_WORDS.get(str(status), str(status))


# --- safe text ----------------------------------------------------------------------------

# C0 controls but tab and newline, DEL, C1 controls, and the bidi embeddings, overrides and
# isolates that can make text read differently from what it is (CVE-2021-42574).
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Characters that make markup anywhere in a line (emphasis, code, links and images need "[",
# tables "|", strikethrough "~", raw HTML "<", entities "&"), backslash-escaped: CommonMark
# reads any escaped ASCII punctuation as itself, and converters (apprise's Markdown to Slack
# mrkdwn) translate the escapes to each medium's own.
_MARKDOWN_INLINE = re.compile(r"([\\`*_\[\]|~<>&])")
# Characters that make markup only at the start of a line (headings, lists, quotes).
_MARKDOWN_LEADING = re.compile(r"^(\s*)([#+\-=])")
# An ordered-list marker is 1-9 digits and "." or ")" followed by a space or the end
# (CommonMark 5.2): "92.3 %" is no marker and keeps its dot as it is.
_MARKDOWN_ORDERED = re.compile(r"^(\s*\d{1,9})([.)])(?=\s|$)")


def strip_controls(text: str) -> str:
    """Return ``text`` without control characters (C0 but tab and newline, C1, bidi controls)."""
    return _CONTROLS.sub("", unicodedata.normalize("NFC", text))


def markdown_text(text: Any) -> str:
    """Return ``text`` inert in Markdown: controls stripped, every markup character (``<``, ``>``
    and ``&`` included) backslash-escaped, newlines as spaces (one line, one table cell)."""
    clean = strip_controls(str(text)).replace("\r", " ").replace("\n", " ").replace("\t", " ")
    clean = _MARKDOWN_INLINE.sub(r"\\\1", clean)
    clean = _MARKDOWN_ORDERED.sub(r"\1\\\2", clean)
    return _MARKDOWN_LEADING.sub(r"\1\\\2", clean)


def plain_text(text: Any) -> str:
    """Return ``text`` as one line of plain text: controls stripped, newlines and tabs as
    spaces (markup characters kept as they are: for a terminal or a log, not for Markdown)."""
    return re.sub(r"[\r\n\t]", " ", strip_controls(str(text)))


def iso(value: datetime | pd.Timestamp | None) -> str | None:
    """Return a timestamp as ISO 8601 in UTC with a ``Z`` and whole seconds (None stays None)."""
    if is_missing(value):
        return None
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
