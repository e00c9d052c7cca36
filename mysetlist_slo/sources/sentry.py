"""Sentry's API answers turned into rows with located rejects: error events (the Discover
``events`` endpoint), the ``stats_v2`` outcome series (accepted, filtered, rate-limited) and
release-health ``sessions`` per release.

Shapes, as Sentry's API reference documents them (tests/fixtures/sentry/README.md names the
pages):

- events: ``{"data": [{"id", "timestamp", "level", "release", "environment", "transaction",
  "issue", "handled", ...}], "meta": {...}}`` (a bare list of such objects, or one object a
  line, is read too). ``handled`` may be given as Discover's ``error.handled`` (``[1]``,
  ``[0]``, ``[true]``) or as yes/no/true/false/1/0; absent or null is "unknown".
- stats_v2 and sessions: ``{"start", "end", "intervals": [ISO times], "groups": [{"by": {...},
  "totals": {...}, "series": {field: [one value per interval]}}]}``. stats_v2 groups are by
  ``outcome`` (and ``reason``, ``category``), its field ``sum(quantity)``; sessions groups are
  by ``release`` (and ``session.status``), its fields ``sum(session)``,
  ``count_unique(user)``, ``crash_free_rate(session)``, ``crash_free_rate(user)``.

A JSON document has no line per record: a reject names the line where its record starts (the
n-th ``"id"`` key for events, the n-th ``"by"`` key for groups) and the field by its path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import INT64_MAX, finite_number, load_json, parse_iso
from mysetlist_slo.sources._lines import (
    BadField,
    Record,
    at_path,
    checked_rows,
    json_records,
    text_lines,
)
from mysetlist_slo.sources.capacity import _read_text
from mysetlist_slo.sources.types import PythonChecked, Reject

# Sentry's event levels (sentry_sdk's LogLevel and the protocol's ``level``).
LEVELS = ("fatal", "error", "warning", "info", "debug")
# stats_v2's outcomes (relay's Outcome: what happened to each item sent).
OUTCOMES = ("accepted", "filtered", "rate_limited", "invalid", "abuse", "client_discard",
            "cardinality_limited")
SESSION_STATUSES = ("healthy", "errored", "crashed", "abnormal", "unhandled")
STATS_FIELDS = ("sum(quantity)", "sum(times_seen)")
SESSION_FIELDS = {"sum(session)": "sessions", "count_unique(user)": "users",
                  "crash_free_rate(session)": "crash_free_sessions",
                  "crash_free_rate(user)": "crash_free_users"}
MAX_TEXT = 1024  # release names, transactions and issue ids longer than this are no such thing

_TS = pa.timestamp("us", tz="UTC")
EVENT_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", _TS), ("event_id", pa.string()), ("level", pa.string()),
    ("release", pa.string()), ("environment", pa.string()), ("transaction", pa.string()),
    ("issue", pa.string()), ("handled", pa.bool_()), ("project", pa.string()),
])
STATS_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", _TS), ("ts_end", _TS), ("category", pa.string()),
    ("outcome", pa.string()), ("reason", pa.string()), ("quantity", pa.int64()),
])
SESSION_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", _TS), ("ts_end", _TS), ("release", pa.string()),
    ("status", pa.string()), ("sessions", pa.int64()), ("users", pa.int64()),
    ("crash_free_sessions", pa.float64()), ("crash_free_users", pa.float64()),
])
_NO_GROUPS = re.compile(r'"groups"\s*:\s*\[\s*\]')
_QUERY_KEY = re.compile(r'"query"\s*:\s*"')
_EVENT_ID = re.compile(r"^[0-9a-fA-F]{32}$|^[0-9a-fA-F-]{36}$")
_HANDLED = {"yes": True, "true": True, "1": True, "no": False, "false": False, "0": False}


def _text(record: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise BadField(name, "missing")
        return None
    if not isinstance(value, str):
        raise BadField(name, f"not text: {str(value)[:60]!r}")
    if len(value) > MAX_TEXT:
        raise BadField(name, f"longer than {MAX_TEXT} characters")
    return value


def answer_time(value: Any, name: str) -> datetime:
    """Return the UTC time of an ISO 8601 value of an answer; raise BadField naming ``name``."""
    if not isinstance(value, str) or not value.strip():
        raise BadField(name, "missing" if value in (None, "") else f"not a time: {value!r:.60}")
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise BadField(name, str(exc)) from None


def _handled(record: dict[str, Any]) -> bool | None:
    """Return whether the event's error was handled (None: not said)."""
    name = "handled" if "handled" in record else "error.handled"
    value = record.get(name)
    if isinstance(value, list):  # Discover's error.handled: one flag per exception
        if not value:
            return None
        # An event is unhandled when any of its exceptions was (Sentry's own rule).
        flags = [_flag(item, name) for item in value]
        return None if any(f is None for f in flags) else all(f for f in flags)
    return _flag(value, name)


def _flag(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _HANDLED:
        return _HANDLED[value.strip().lower()]
    raise BadField(name, f"not yes/no, true/false or 1/0: {str(value)[:60]!r}")


def event_row(record: Any) -> dict[str, Any]:
    """Return the checked row of one Discover event; raise BadField naming its field."""
    if not isinstance(record, dict):
        raise BadField("(record)", "not a JSON object")
    event_id = _text(record, "id", required=True)
    assert event_id is not None
    if not _EVENT_ID.match(event_id):
        raise BadField("id", f"not a Sentry event id (32 hex digits): {event_id[:60]!r}")
    ts = answer_time(record.get("timestamp"), "timestamp")
    level = _text(record, "level", required=True)
    assert level is not None
    if level.lower() not in LEVELS:
        raise BadField("level", f"not one of {', '.join(LEVELS)}: {level[:60]!r}")
    issue = record.get("issue", record.get("issue.id"))
    if isinstance(issue, int) and not isinstance(issue, bool):
        issue = str(issue)
    project = record.get("project", record.get("project.name"))
    return {"ts": ts, "event_id": event_id.replace("-", "").lower(), "level": level.lower(),
            "release": _text(record, "release"), "environment": _text(record, "environment"),
            "transaction": _text(record, "transaction"),
            "issue": _text({"issue": issue}, "issue"), "handled": _handled(record),
            "project": _text({"project": project}, "project")}


def _key_lines(text: str, key: str) -> list[int]:
    """Return the line of every ``"key":`` in a JSON text, in order."""
    return [text.count("\n", 0, m.start()) + 1
            for m in re.finditer(rf'"{re.escape(key)}"\s*:', text)]


def _document(path: Path) -> tuple[str, Any]:
    """Return a JSON file's text and value; a file that is not JSON is an IngestError."""
    text = _read_text(path)
    try:
        return text, load_json(text)
    except json.JSONDecodeError as exc:
        raise IngestError(str(path), f"line {exc.lineno}: not JSON: {exc.msg}") from None
    except ValueError as exc:
        raise IngestError(str(path), f"line 1: not JSON: {exc}") from None


class SentryEventsSource(PythonChecked):
    """Sentry error events: a Discover ``events`` API answer, a list, or JSON Lines."""

    kind = "sentry-events"
    record = "sentry_events"
    schema = EVENT_SCHEMA
    # A Discover answer without events is a quiet period, not an empty file: it is loaded
    # (zero records) rather than refused.
    empty_is_an_answer = True

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per good event; a bad one is a reject naming its line and field."""
        text = _read_text(path)
        try:
            document = load_json(text)
        except ValueError:
            document = None
        if document is None and text.lstrip().startswith("{"):
            return checked_rows(json_records(text_lines(path)), event_row)
        if isinstance(document, dict) and "data" in document:
            records = document["data"]
        elif isinstance(document, list):
            records = document
        elif isinstance(document, dict) and "id" in document:
            records = [document]  # one event: JSON Lines of a single line
        else:
            raise IngestError(str(path), "line 1: data: missing; not a Sentry events answer")
        if not isinstance(records, list):
            raise IngestError(str(path), f"line {(_key_lines(text, 'data') or [1])[0]}: data: "
                              "not a list of events")
        return checked_rows(_numbered(text, "id", records), lambda item: at_path(
            f"data[{item[0]}]", event_row, item[1]))


def _numbered(text: str, key: str, records: list[Any]) -> Iterator[Record]:
    """Yield each record of a JSON answer as (index, record), on the line where its
    ``index``-th ``key`` stands in ``text`` (the records start there)."""
    lines = _key_lines(text, key)
    for index, record in enumerate(records):
        yield Record(lines[index] if index < len(lines) else 1, (index, record),
                     json.dumps(record)[:65536].encode("utf-8"))


def _series_value(value: Any, field: str, *, rate: bool) -> float | None:
    if value is None:
        return None  # Sentry's null: no data in that interval (a rate of no sessions)
    try:
        number = finite_number(value)
    except ValueError as exc:
        raise BadField(field, str(exc)) from None
    if number < 0 or (rate and number > 1):
        raise BadField(field, f"not {'a rate in [0, 1]' if rate else 'a count >= 0'}: {value}")
    if not rate and (number != int(number) or number > INT64_MAX):
        raise BadField(field, f"not a whole count: {value}")
    return number


def _intervals(path: Path, text: str, document: Any) -> tuple[list[datetime], datetime | None]:
    """Return the interval starts of a stats_v2 / sessions answer and its end."""
    if not isinstance(document, dict) or not isinstance(document.get("intervals"), list):
        raise IngestError(str(path), "line 1: intervals: missing; not a Sentry time series")
    line = (_key_lines(text, "intervals") or [1])[0]
    try:
        starts = [answer_time(value, f"intervals[{i}]")
                  for i, value in enumerate(document["intervals"])]
        end = None if document.get("end") is None else answer_time(document["end"], "end")
    except BadField as bad:
        raise IngestError(str(path), f"line {line}: {bad}") from None
    if starts != sorted(starts):
        raise IngestError(str(path), f"line {line}: intervals: not in time order")
    if not isinstance(document.get("groups"), list):
        raise IngestError(str(path), f"line {(_key_lines(text, 'groups') or [1])[0]}: groups: "
                          "missing; not a Sentry time series")
    return starts, end


def interval_ends(starts: list[datetime], end: datetime | None) -> list[datetime]:
    """Return where each interval ends: the next one's start; the last ends at the answer's
    ``end`` (or one step after its start when the answer gives no end)."""
    if not starts:
        return []
    step = starts[1] - starts[0] if len(starts) > 1 else None
    last = end if end is not None and end > starts[-1] else (
        starts[-1] + step if step is not None else starts[-1])
    return [*starts[1:], last]


class _SeriesSource(PythonChecked):
    """A Sentry time-series answer: one row per group and interval with a value."""

    # An answer without groups is a quiet period, not an empty file: it is loaded (zero
    # records) rather than refused.
    empty_is_an_answer = True

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per group and interval; a bad group is a reject naming its line
        and the field by its path (``groups[2].series.sum(quantity)[5]``)."""
        text, document = _document(path)
        starts, end = _intervals(path, text, document)
        return group_rows(self, text, document["groups"], starts, interval_ends(starts, end))

    def group(self, group: dict[str, Any], starts: list[datetime],
              ends: list[datetime]) -> list[dict[str, Any]]:
        raise NotImplementedError


def group_rows(source: _SeriesSource, text: str, groups: list[Any], starts: list[datetime],
               ends: list[datetime]) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Return the rows of every good group of a time-series answer, and the rejects."""
    def rows(group: Any) -> list[dict[str, Any]]:
        if not isinstance(group, dict) or not isinstance(group.get("by"), dict):
            raise BadField("by", "missing; not a group")
        series = group.get("series")
        if not isinstance(series, dict):
            raise BadField("series", "missing")
        for name, values in series.items():
            if not isinstance(values, list) or len(values) != len(starts):
                raise BadField(f"series.{name}", f"not a list of {len(starts)} values, "
                               "one per interval")
        return source.group(group, starts, ends)

    return checked_rows(_numbered(text, "by", groups),
                        lambda item: at_path(f"groups[{item[0]}]", rows, item[1]))


class SentryStatsSource(_SeriesSource):
    """Sentry's ``stats_v2`` answer: items per outcome (accepted, filtered, rate_limited ...)."""

    kind = "sentry-stats"
    record = "sentry_stats"
    schema = STATS_SCHEMA

    def group(self, group: dict[str, Any], starts: list[datetime],
              ends: list[datetime]) -> list[dict[str, Any]]:
        """Return the rows of one outcome group; raise BadField naming its field."""
        by = group["by"]
        outcome = _text(by, "outcome", required=True)
        assert outcome is not None
        if outcome not in OUTCOMES:
            raise BadField("by.outcome", f"not one of {', '.join(OUTCOMES)}: {outcome[:60]!r}")
        field = next((f for f in STATS_FIELDS if f in group["series"]), None)
        if field is None:
            raise BadField("series", f"no {' or '.join(STATS_FIELDS)}")
        category = _text(by, "category")
        reason = _text(by, "reason")
        rows = []
        for i, value in enumerate(group["series"][field]):
            quantity = _series_value(value, f"series.{field}[{i}]", rate=False)
            if quantity is not None:
                rows.append({"ts": starts[i], "ts_end": ends[i], "category": category,
                             "outcome": outcome, "reason": reason, "quantity": int(quantity)})
        return rows


class SentrySessionsSource(_SeriesSource):
    """Sentry's release-health ``sessions`` answer, grouped by release."""

    kind = "sentry-sessions"
    record = "sentry_sessions"
    schema = SESSION_SCHEMA

    def group(self, group: dict[str, Any], starts: list[datetime],
              ends: list[datetime]) -> list[dict[str, Any]]:
        """Return the rows of one release (and status) group; raise BadField naming its field."""
        by = group["by"]
        release = _text(by, "release", required=True)
        status = _text(by, "session.status")
        if status is not None and status not in SESSION_STATUSES:
            raise BadField("by.session.status",
                           f"not one of {', '.join(SESSION_STATUSES)}: {status[:60]!r}")
        known = [f for f in SESSION_FIELDS if f in group["series"]]
        if not known:
            raise BadField("series", f"none of {', '.join(SESSION_FIELDS)}")
        rows = []
        for i in range(len(starts)):
            values = {SESSION_FIELDS[f]: _series_value(
                group["series"][f][i], f"series.{f}[{i}]", rate=f.startswith("crash_free"))
                for f in known}
            if all(v is None for v in values.values()):
                continue
            row: dict[str, Any] = {"ts": starts[i], "ts_end": ends[i], "release": release,
                                   "status": status, "sessions": None, "users": None,
                                   "crash_free_sessions": None, "crash_free_users": None}
            for name, value in values.items():
                row[name] = (None if value is None else value if name.startswith("crash_free")
                             else int(value))
            rows.append(row)
        return rows


# Sentry answers a time series with its intervals before its groups: at 5-minute resolution
# over its 90-day limit that is 26,000 timestamps, about 700 KB.
SERIES_HEAD_BYTES = 4 << 20


def series_cut_short(head: str) -> bool:
    """Return True when ``head`` opens what may be a Sentry time series whose "groups" lie
    beyond it: read SERIES_HEAD_BYTES of the file and ask sniff_sentry again."""
    return (head.lstrip().startswith("{") and '"intervals"' in head
            and '"groups"' not in head)


def sniff_sentry(head: str, name: str = "(input)") -> str | None:
    """Return sentry-events, sentry-stats or sentry-sessions when the opening of a file
    (``head``) is one of Sentry's answers; raise IngestError naming the file ``name`` for a
    time series without groups that does not say which of the two it is."""
    opening = head.lstrip()[:4096]
    if not opening.startswith(("{", "[")):
        return None
    # A time series names its fields after its intervals (Sentry writes start, end,
    # intervals, groups): a week at 1 h is 4.5 KB of them, a week at 5 min 48 KB. The whole
    # head is searched.
    series = head.lstrip()
    if '"intervals"' in series and '"groups"' in series:
        if '"outcome"' in series or '"sum(quantity)"' in series:
            return "sentry-stats"
        if '"release"' in series and any(f'"{f}"' in series for f in SESSION_FIELDS):
            return "sentry-sessions"
    empty = _NO_GROUPS.search(head) if '"intervals"' in head else None
    if empty is not None:
        # A quiet period's answer names no field. Sentry's sessions answer echoes its search
        # ("query", "" when none; sentry/snuba/sessions_v2.py massage_sessions_result) and
        # stats_v2 deletes that key (sentry/snuba/outcomes.py massage_outcomes_result); the
        # API pages' examples and a trimmed export omit it, so its absence tells nothing.
        if _QUERY_KEY.search(head):
            return "sentry-sessions"
        line = head.count("\n", 0, empty.start()) + 1
        raise IngestError(name, f"line {line}: groups: empty; Sentry's stats_v2 and sessions "
                          "answers without groups look alike (a sessions answer's \"query\" "
                          "would tell): pass --kind sentry-stats or --kind sentry-sessions")
    if '"intervals"' in series and '"groups"' in series:
        return None
    if re.search(r'"id"\s*:\s*"[0-9a-fA-F]{32}"', opening) and '"level"' in opening and (
            '"timestamp"' in opening):
        return "sentry-events"
    # A Discover answer without events (a quiet week) names its fields in "meta" only.
    if (re.match(r'\{\s*"data"\s*:\s*\[\s*\]', opening) and '"meta"' in opening
            and '"level"' in opening and '"timestamp"' in opening):
        return "sentry-events"
    return None


SENTRY_KINDS = {source.kind: source for source in (SentryEventsSource, SentryStatsSource,
                                                   SentrySessionsSource)}
