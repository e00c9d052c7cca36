"""What every request source yields: input batches for the validation query, and rejects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

INPUT_TABLE = "batch_input"


@dataclass
class Reject:
    """One input record that could not be used: where, which field, why, and its raw bytes."""

    line: int
    field: str
    problem: str
    raw: bytes


@dataclass
class InputBatch:
    """Consecutive records of one file, ready for the source's validation query.

    ``query`` returns the canonical columns (see requests_schema) plus ``bad_field`` and
    ``problem``; it reads ``table`` (registered as ``batch_input``) or a table function bound
    through ``params``. ``rejects`` are records refused before SQL saw them (not UTF-8, too
    long). ``position`` is how far into the file (bytes on disk) the batch ends.
    """

    query: str
    table: pa.Table | None = None
    params: dict[str, object] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    position: int = 0


class RequestSource(Protocol):
    """Anything that reads a file into canonical request records."""

    @property
    def kind(self) -> str:
        """The kind recorded in the ingest registry (nginx, jsonl, csv, parquet, probes)."""
        ...

    @property
    def record(self) -> str:
        """What each record is: requests or probes."""
        ...

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield the file's records in batches."""
        ...

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return the rejects of a batch from its (line, staged field, problem) rows."""
        ...


def chunked(table: pa.Table, rows: int = 16_384) -> pa.Table:
    """Return ``table`` cut (without copying) into record batches of ``rows``.

    DuckDB scans a registered Arrow table one record batch per thread: one big batch would
    keep every core but one idle.
    """
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), table.schema)


def raw_lines(batch: InputBatch, lines: list[int]) -> dict[int, bytes]:
    """Return the raw text of the given lines of a text batch (columns ``line``, ``text``)."""
    assert batch.table is not None
    picked = batch.table.filter(pa.compute.is_in(batch.table.column("line"), pa.array(lines)))
    return {line: text.encode("utf-8") for line, text in zip(
        picked.column("line").to_pylist(), picked.column("text").to_pylist(), strict=True)}


# The SQL of a batch whose rows were checked in Python already: every row is good as it is.
PASSTHROUGH = "SELECT *, NULL::VARCHAR AS bad_field, NULL::VARCHAR AS problem FROM batch_input"


class PythonChecked:
    """A source checked in Python: subclasses return a file's rows and rejects from
    ``rows``; the file is one typed batch, passed through without SQL checks."""

    kind = ""
    record = ""
    schema: pa.Schema

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        raise NotImplementedError

    def batches(self, path: Path) -> Iterator[InputBatch]:
        """Yield the file's rows as one typed batch, with their rejects."""
        rows, rejects = self.rows(path)
        yield InputBatch(PASSTHROUGH, pa.Table.from_pylist(rows, self.schema), {}, rejects,
                         path.stat().st_size)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return no rejects: every check ran in Python already."""
        return []
