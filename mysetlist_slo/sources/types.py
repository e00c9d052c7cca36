"""What every request source yields: canonical rows and the rejects found beside them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo.sources.requests_schema import CANONICAL_COLUMNS, CANONICAL_SCHEMA


@dataclass
class Reject:
    """One input record that could not be used: where, which field, why, and its raw bytes."""

    line: int
    field: str
    problem: str
    raw: bytes


@dataclass
class RequestBatch:
    """Consecutive records of one file: canonical rows, rejects, and how far the file was read."""

    rows: pa.Table
    rejects: list[Reject]
    position: int


def split_checked(checked: pa.Table, raw: pa.Table,
                  describe: Callable[[str], str]) -> tuple[pa.Table, list[Reject]]:
    """Split a validated table into canonical rows and rejects (with the raw record of each).

    ``raw`` has columns ``line`` and ``text`` (the record as read); ``describe`` turns a staged
    column name into the name the user knows (the nginx variable, the export's column).
    """
    bad_mask = pc.is_valid(checked.column("bad_field"))
    rows = checked.filter(pc.invert(bad_mask)).select(CANONICAL_COLUMNS).cast(CANONICAL_SCHEMA)
    bad = checked.filter(bad_mask).select(["line", "bad_field", "problem"])
    if bad.num_rows == 0:
        return rows, []
    texts = raw.filter(pc.is_in(raw.column("line"), bad.column("line")))
    by_line = dict(zip(texts.column("line").to_pylist(), texts.column("text").to_pylist(),
                       strict=True))
    rejects = []
    for line, field, problem in zip(*(bad.column(c).to_pylist() for c in bad.column_names),
                                    strict=True):
        text = by_line.get(line)
        raw_bytes = text.encode("utf-8") if isinstance(text, str) else (text or b"")
        rejects.append(Reject(line, describe(field), problem, raw_bytes))
    return rows, rejects
