"""Bounds every source applies to the values it reads, and JSON decoding that cannot crash.

A value outside these bounds is not a measurement (a typo, units mixed up, a fuzzer): the
record is a reject naming the bound, never a stored number or an overflow further on.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

# Times: Unix epoch to the end of 2100 (timestamps beyond are typos or mixed-up units).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2101, 1, 1, tzinfo=UTC)
TIME_BOUNDS = "between 1970 and 2100"
# Byte counts: a petabyte per response is far beyond anything served; the per-minute sums of
# the rollups stay within BIGINT as long as each request is below it.
MAX_BYTES = 10**15
INT64_MAX = 2**63 - 1
# Deeper JSON than this is no export we know; Python's decoder would hit its recursion limit.
MAX_JSON_DEPTH = 200


def in_time_bounds(when: datetime) -> datetime:
    """Return ``when`` (aware) in UTC; raise ValueError when it is outside 1970-2100."""
    when = when.astimezone(UTC)
    if not EARLIEST <= when < LATEST:
        raise ValueError(f"not a time {TIME_BOUNDS}: {when.isoformat()[:40]}")
    return when


def from_epoch(seconds: float) -> datetime:
    """Return the UTC time of a Unix time in seconds; raise ValueError outside 1970-2100."""
    if not math.isfinite(seconds) or not EARLIEST.timestamp() <= seconds < LATEST.timestamp():
        raise ValueError(f"not a Unix time {TIME_BOUNDS}: {seconds!r:.40}")
    return datetime.fromtimestamp(seconds, UTC)


def parse_iso(text: str) -> datetime:
    """Return the UTC time of ISO 8601 text with a zone; raise ValueError otherwise."""
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text[:60]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError(f"no time zone offset: {text[:60]!r}")
    try:
        return in_time_bounds(parsed)
    except OverflowError:  # a year-1 time with a positive offset falls before year 1 in UTC
        raise ValueError(f"not a time {TIME_BOUNDS}: {text[:60]!r}") from None


def finite_number(value: Any) -> float:
    """Return ``value`` as a float when it is a finite JSON number; raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"not a number: {str(value)[:60]!r}")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError(f"out of range: {str(value)[:60]}") from None
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _depth(text: str) -> int:
    """Return the deepest nesting of brackets in ``text`` (strings included: an upper bound)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def load_json(text: str) -> Any:
    """Return the decoded JSON value; raise ValueError (json.JSONDecodeError for bad syntax)
    for text that is not JSON or is nested deeper than MAX_JSON_DEPTH."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
