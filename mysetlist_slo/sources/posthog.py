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

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.sources._checks import load_json, parse_iso
from mysetlist_slo.sources._lines import (
    BadField,
    CsvRecords,
    checked_rows,
    json_records,
    open_maybe_gzip,
    text_lines,
)
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

    @staticmethod
    def _jsonl(path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        return checked_rows(json_records(text_lines(path)),
                            lambda record: event_row(record, _properties(record.get("properties"))))

    @staticmethod
    def _csv(path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        with CsvRecords(path, rename=lambda name: name.removeprefix("*.")) as records:
            records.require(("event", "distinct_id", "timestamp"))
            return checked_rows(records, _csv_event)


def _csv_event(record: dict[str, str]) -> dict[str, Any]:
    """Return the row of one CSV event: its ``properties`` JSON text, with flattened
    ``properties.<name>`` columns filling in what it lacks."""
    properties = _properties(record.get("properties"))
    for name, value in record.items():
        if name.startswith("properties.") and value != "":
            properties.setdefault(name.removeprefix("properties."), value)
    return event_row(record, properties)


def looks_like_posthog(record: dict[str, Any] | set[str]) -> bool:
    """Return True when a first record (or a CSV header's names) is a PostHog event that is not
    a ``$web_vitals`` event (those are read by the Web Vitals source)."""
    keys = {str(k).removeprefix("*.") for k in record}
    if not {"event", "distinct_id", "timestamp"} <= keys:
        return False
    return not (isinstance(record, dict) and record.get("event") == "$web_vitals")
