"""Adding request files to the lake: the sources and validation of ``ingest``, rows written as
Parquet per batch into Hive partitions by UTC day, committed all at once."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from mysetlist_slo.config import Config, load_config
from mysetlist_slo.errors import IngestError
from mysetlist_slo.lake._crash import crash_point
from mysetlist_slo.lake.layout import (
    LAKE_SCHEMA,
    REJECTS,
    REJECTS_SCHEMA,
    REQUESTS,
    LakeEntry,
    Manifest,
    open_lake,
)
from mysetlist_slo.sources import ExportOptions, Reject, detect_source
from mysetlist_slo.sources._lines import ContentDigest, prefix_sha256
from mysetlist_slo.store.ingest import (
    INGEST_MEMORY_LIMIT,
    BadRecordLimit,
    check_unchanged,
    file_digest,
    file_identity,
    typed_read_errors,
)

# The validated columns a lake row keeps: every canonical column (ingest keeps fewer).
_KEPT = ("line, ts, method, target, status, duration_us, upstream_us, bytes, client, "
         "user_agent, region, cache_status")

# The good records of the batch in ``checked``, in the lake's columns, with their UTC day.
_GOOD_ROWS = """
SELECT ts, method, target, status, duration_us, upstream_us, bytes, client, user_agent,
       region, cache_status, $sha AS source_sha256, line,
       strftime(timezone('UTC', ts), '%Y-%m-%d') AS date
FROM checked
WHERE bad_field IS NULL
ORDER BY line
"""


@dataclass(frozen=True)
class LakeAddResult:
    """What happened to one file added to the lake."""

    file: str
    kind: str
    rows: int
    rejected: int
    skipped: bool
    seconds: float
    parquet: list[str]  # lake-relative paths written (empty when skipped)
    message: str = ""


class _PartitionWriters:
    """One open Parquet writer per UTC day of a file, each writing a row group per batch, so
    a file of any size is written with one batch in memory."""

    def __init__(self, staged: Path, sha: str) -> None:
        self.staged, self.sha = staged, sha
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rejects: pq.ParquetWriter | None = None

    def relative(self, date: str) -> str:
        return f"{REQUESTS}/date={date}/{self.sha}.parquet"

    def write_rows(self, rows: pa.Table) -> None:
        dates = rows.column("date")
        for date in pc.unique(dates).to_pylist():
            part = rows.filter(pc.equal(dates, date)).drop_columns(["date"]).cast(LAKE_SCHEMA)
            if date not in self.writers:
                path = self.staged / self.relative(date)
                path.parent.mkdir(parents=True, exist_ok=True)
                self.writers[date] = pq.ParquetWriter(path, LAKE_SCHEMA, compression="zstd")
            self.writers[date].write_table(part)

    def write_rejects(self, rejects: list[Reject]) -> None:
        if self.rejects is None:
            path = self.staged / f"{REJECTS}/{self.sha}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            self.rejects = pq.ParquetWriter(path, REJECTS_SCHEMA, compression="zstd")
        self.rejects.write_table(pa.table({
            "line": [r.line for r in rejects], "field": [r.field for r in rejects],
            "problem": [r.problem for r in rejects], "raw": [r.raw for r in rejects]},
            schema=REJECTS_SCHEMA))

    def close(self) -> None:
        for writer in [*self.writers.values(), *([self.rejects] if self.rejects else [])]:
            writer.close()


def _grown_from(manifest: Manifest, path: Path, digest: ContentDigest,
                kind: str) -> LakeEntry | None:
    """Return the entry whose content this file starts with (the same log, grown since it was
    added), or None: its lines are in the lake already. Raises IngestError when that entry
    ended mid-line, as its last line would then be counted twice."""
    for entry in sorted(manifest.entries, key=lambda e: -(e.content_bytes or 0)):
        if (entry.kind != kind or entry.first_line_sha256 != digest.first_line_sha256
                or entry.content_bytes is None or entry.content_bytes >= digest.size):
            continue
        if prefix_sha256(path, entry.content_bytes)[0] != entry.sha256:
            continue
        if not entry.ends_with_newline:
            raise IngestError(str(path), f"starts with the content of {entry.file} (added "
                              f"{entry.added}), whose last line had no newline yet: reading on "
                              "would count that line twice; add the log once it is rotated")
        return entry
    return None


def _connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{INGEST_MEMORY_LIMIT}'")
    con.execute("SET enable_progress_bar = false")
    return con


def add_to_lake(lake: str | Path, path: str | Path, *, kind: str | None = None,
                config: Config | None = None, max_bad_rows: int | float = 0,
                log_format: str | None = None,
                options: ExportOptions | None = None) -> LakeAddResult:
    """Add one request file (nginx log, JSONL/CSV/Parquet export) to the lake at ``lake``
    (created when missing or empty) and return what happened.

    Validation and the ``max_bad_rows`` limit are those of ``ingest_file``; rejects within the
    limit are kept in ``_rejects/<sha256>.parquet``. The file lands whole or not at all;
    content already in the lake is a no-op (``skipped``). Raises IngestError for a file that
    cannot be added (naming file, line and field of the first problems), LakeError when the
    lake cannot be opened.
    """
    started = time.perf_counter()
    path = Path(path)
    config = config or load_config()  # the config is read and checked as ingest does
    before = file_identity(path)  # before hashing: a file replaced from here on is noticed
    digest = file_digest(path)
    sha = digest.sha256
    with open_lake(lake, create=True) as writer:
        known = writer.manifest.find(sha)
        if known is not None:
            return LakeAddResult(str(path), known.kind, 0, 0, True,
                                 time.perf_counter() - started, [],
                                 f"already in the lake from {known.file} (added {known.added}); "
                                 "nothing to do")
        source = detect_source(path, kind, log_format, options)
        if source.record != "requests":
            raise IngestError(str(path), f"is a {source.kind} file; the lake holds request rows "
                              "only (load it with `mysetlist-slo ingest`)")
        resumable = getattr(source, "resumable", False)
        earlier = _grown_from(writer.manifest, path, digest, source.kind) if resumable else None
        if earlier is not None:
            source.start = (earlier.content_bytes, earlier.content_lines)  # type: ignore[attr-defined]
        if resumable:  # the content hashed only: lines written since are the next add's
            source.stop = digest.size  # type: ignore[attr-defined]
        limit = BadRecordLimit(path, source, max_bad_rows, digest.lines)
        rows, first, last = 0, None, None
        con = _connect()
        try:
            with writer.staging() as staged:
                parts = _PartitionWriters(staged, sha)
                try:
                    with typed_read_errors(path, source.kind):
                        for batch in source.batches(path):
                            checked = limit.check(con, batch, _KEPT)
                            if checked.rejects:
                                parts.write_rejects(checked.rejects)
                            if checked.good:
                                parts.write_rows(con.sql(_GOOD_ROWS, params={"sha": sha})
                                                 .to_arrow_table())
                                rows += checked.good
                                first = min(checked.span[0], first or checked.span[0])
                                last = max(checked.span[1], last or checked.span[1])
                                crash_point("lake-staged")
                except IngestError:
                    check_unchanged(path, before)
                    raise
                finally:
                    parts.close()
                check_unchanged(path, before)
                limit.verdict(rows, may_be_empty=earlier is not None)
                entry = LakeEntry(
                    sha256=sha, file=str(path), kind=source.kind, bytes=path.stat().st_size,
                    rows=rows, rejects=limit.rejected,
                    parquet=sorted(parts.relative(date) for date in parts.writers),
                    rejects_file=f"{REJECTS}/{sha}.parquet" if parts.rejects else None,
                    first_ts=first.isoformat() if first else None,
                    last_ts=last.isoformat() if last else None,
                    added=datetime.now(UTC).isoformat(timespec="seconds"),
                    seconds=round(time.perf_counter() - started, 3),
                    content_bytes=digest.size, content_lines=digest.lines,
                    first_line_sha256=digest.first_line_sha256,
                    ends_with_newline=digest.ends_with_newline,
                    continues=earlier.sha256 if earlier else None)
                writer.commit(staged, entry)
        except IngestError as exc:
            exc.kind = source.kind
            raise
        finally:
            con.close()
    notes = [f"{limit.rejected} bad records kept in {entry.rejects_file}"] if limit.rejected else []
    if earlier is not None:
        notes.append(f"the first {earlier.content_lines:,} lines were added before (from "
                     f"{earlier.file}): read on from line {(earlier.content_lines or 0) + 1:,}")
    message = "; ".join(notes)
    return LakeAddResult(str(path), source.kind, rows, limit.rejected, False,
                         time.perf_counter() - started, entry.parquet, message)
