"""PostHog product events (the events table's export, JSON Lines or CSV) turned into rows of
``posthog_events`` with located rejects.

Each event has ``uuid``, ``event``, ``distinct_id``, ``timestamp`` and ``properties``, of which
``$session_id``, ``$current_url`` and ``$device_type`` are kept, and the link an identity event
makes between two distinct ids: ``$anon_distinct_id`` of an ``$identify`` (the anonymous id
the user had before logging in) or ``alias`` of a ``$create_alias``.

- JSON Lines: one event object a line, as PostHog's batch exports (S3, files) write them;
  ``properties`` is an object, or JSON text (the ClickHouse column as exported).
- CSV: the events table exported from PostHog: a ``properties`` column holding JSON text, or
  the properties flattened into ``properties.$session_id``-style columns as PostHog's CSV
  exporter writes nested objects; column names may carry the ``*.`` prefix of an export of
  the ``*`` column.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import load_json, parse_iso
from mysetlist_slo.sources._lines import open_maybe_gzip
from mysetlist_slo.sources.loadtests import BadField, _csv_records
from mysetlist_slo.sources.types import PythonChecked, Reject

POSTHOG_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("uuid", pa.string()),
    ("event", pa.string()), ("distinct_id", pa.string()), ("session_id", pa.string()),
    ("url", pa.string()), ("device_type", pa.string()), ("linked_id", pa.string()),
])
# Properties kept, and the identity events' property naming the other distinct id.
KEPT_PROPERTIES = {"$session_id": "session_id", "$current_url": "url",
                   "$device_type": "device_type"}
LINKS = {"$identify": "$anon_distinct_id", "$create_alias": "alias"}
# Longer text than this is no id, URL or event name PostHog writes (its own limit on
# distinct ids is 200 characters); it is a reject, not stored.
MAX_TEXT = 8192


def _text(value: Any, name: str, required: bool = False) -> str | None:
    """Return an id or name as text (PostHog ids may be JSON numbers); None when absent."""
    if value is None or value == "":
        if required:
            raise BadField(name, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadField(name, f"not text: {str(value)[:60]!r}")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise BadField(name, f"longer than {MAX_TEXT:,} characters")
    return text


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise BadField("timestamp", "missing")
    # ClickHouse's CSV writes "2026-11-10 10:00:00.123000+00:00"; ISO 8601 allows the space.
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise BadField("timestamp", str(exc)) from None


def event_row(record: dict[str, Any], properties: dict[str, Any]) -> dict[str, Any]:
    """Return the checked ``posthog_events`` row of one event (without its line); raise
    BadField naming the field that cannot be used."""
    event = _text(record.get("event"), "event", required=True)
    row: dict[str, Any] = {
        "ts": _timestamp(record.get("timestamp")), "uuid": _text(record.get("uuid"), "uuid"),
        "event": event,
        "distinct_id": _text(record.get("distinct_id"), "distinct_id", required=True)}
    for key, column in KEPT_PROPERTIES.items():
        row[column] = _text(properties.get(key), f"properties.{key}")
    link = LINKS.get(str(event))
    row["linked_id"] = None if link is None else _text(properties.get(link),
                                                       f"properties.{link}")
    return row


def _properties(value: Any) -> dict[str, Any]:
    """Return an event's properties: an object, JSON text of one, or nothing."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = load_json(value)
        except ValueError as exc:
            raise BadField("properties", f"not JSON: {str(exc)[:80]}") from None
    if not isinstance(value, dict):
        raise BadField("properties", "not an object")
    return value


class PostHogSource(PythonChecked):
    """PostHog events, JSON Lines or CSV (told by the first character of the content)."""

    kind = "posthog"
    record = "posthog_events"
    schema = POSTHOG_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per good event; a bad event is a reject naming its field."""
        stream, raw = open_maybe_gzip(path)
        try:
            head = stream.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
        finally:
            stream.close()
            raw.close()
        return self._jsonl(path) if head.startswith(b"{") else self._csv(path)

    def _jsonl(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        stream, raw = open_maybe_gzip(path)
        try:
            for number, line in enumerate(stream, 1):
                if not line.strip():
                    continue
                try:
                    record = load_json(line.decode("utf-8").removeprefix("\ufeff"))
                    if not isinstance(record, dict):
                        raise BadField("(line)", "not a JSON object")
                    properties = _properties(record.get("properties"))
                    rows.append({"line": number, **event_row(record, properties)})
                except BadField as bad:
                    rejects.append(Reject(number, bad.field, bad.problem, line[:65536]))
                except ValueError as exc:  # bad syntax, not UTF-8, nested too deep
                    rejects.append(Reject(number, "(line)", f"not JSON: {str(exc)[:80]}",
                                          line[:65536]))
        finally:
            stream.close()
            raw.close()
        return rows, rejects

    def _csv(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        rows: list[dict[str, Any]] = []
        rejects: list[Reject] = []
        header_checked = False
        for line, item in _csv_records(path, ()):
            if isinstance(item, Reject):
                rejects.append(item)
                continue
            record = {name.removeprefix("*."): value for name, value in item.items()}
            if not header_checked:
                missing = [c for c in ("event", "distinct_id", "timestamp") if c not in record]
                if missing:
                    raise IngestError(str(path), f"line 1: missing column {', '.join(missing)}")
                header_checked = True
            try:
                properties = _properties(record.get("properties"))
                for name, value in record.items():
                    if name.startswith("properties.") and value != "":
                        properties.setdefault(name.removeprefix("properties."), value)
                rows.append({"line": line, **event_row(record, properties)})
            except BadField as bad:
                rejects.append(Reject(line, bad.field, bad.problem,
                                      json.dumps(item)[:4096].encode("utf-8")))
        return rows, rejects


def looks_like_posthog(record: dict[str, Any] | set[str]) -> bool:
    """Return True when a first record (or a CSV header's names) is a PostHog event that is not
    a ``$web_vitals`` event (those are read by the Web Vitals source)."""
    keys = {str(k).removeprefix("*.") for k in record}
    if not {"event", "distinct_id", "timestamp"} <= keys:
        return False
    return not (isinstance(record, dict) and record.get("event") == "$web_vitals")
