"""Streaming readers of text exports (plain or gzip, exact line numbers): batches of lines
for the SQL-checked sources, records (JSON Lines, CSV) for the sources checked in Python."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import load_json
from mysetlist_slo.sources.types import Reject

GZIP_MAGIC = b"\x1f\x8b"
NEWLINE = ord("\n")
BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, which editors and spreadsheets put first
DEFAULT_BATCH_BYTES = 16 << 20
DEFAULT_MAX_LINE_BYTES = 64 << 10
MAX_BATCH_LINES = 1 << 18  # far more than 16 MiB of real log lines hold
_RAW_KEEP = 64 << 10  # a rejected line is kept in full up to this size, then cut


@dataclass
class LineReject:
    """A line refused before parsing (not UTF-8, too long, empty)."""

    line: int
    field: str
    problem: str
    raw: bytes


@dataclass
class LineBatch:
    """Consecutive lines of a file: the good ones as text, with their 1-based line numbers."""

    numbers: pa.Array  # int64
    text: pa.Array  # string, without the line terminator
    rejects: list[LineReject] = field(default_factory=list)
    position: int = 0  # bytes of the file (as stored on disk) consumed so far


def open_maybe_gzip(path: Path) -> tuple[BinaryIO, BinaryIO]:
    """Return (stream of content, underlying file); gzip is detected by content, not by name."""
    raw = open(path, "rb")  # noqa: SIM115 - the caller closes it
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb")), raw
    return raw, raw


@dataclass(frozen=True)
class ContentDigest:
    """What the registry keeps of a file's content (decompressed if it is gzip)."""

    sha256: str
    size: int
    lines: int
    first_line_sha256: str  # finds earlier loads of the same growing log
    ends_with_newline: bool
    complete_bytes: int  # bytes up to and including the last newline (the complete lines)
    carriage_returns: int = 0  # "\r" bytes: a reader that ends lines at them would miscount


class CorruptFileError(ValueError):
    """The file cannot be read to its end (a truncated or corrupt gzip stream)."""


def _chunks(path: Path, limit: int | None = None) -> Iterator[bytes]:
    """Yield the content of ``path`` (up to ``limit`` bytes); corrupt gzip is an error."""
    stream, raw = open_maybe_gzip(path)
    left = limit
    try:
        while left is None or left > 0:
            chunk = stream.read(1 << 20 if left is None else min(1 << 20, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk
    except (EOFError, OSError, zlib.error) as exc:
        raise CorruptFileError(f"corrupt or truncated gzip data: {exc}") from None
    finally:
        stream.close()
        raw.close()


def content_digest(path: Path) -> ContentDigest:
    """Return the digest of the file's content.

    Hashing the content rather than the bytes on disk makes ``access.log.1`` and the
    ``access.log.2.gz`` that logrotate later makes of it the same file to the registry.
    """
    digest, first = hashlib.sha256(), hashlib.sha256()
    size = lines = complete = returns = 0
    first_done, last = False, b""
    for chunk in _chunks(path):
        digest.update(chunk)
        if not first_done:
            cut = chunk.find(b"\n")
            first.update(chunk if cut < 0 else chunk[:cut + 1])
            first_done = cut >= 0
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            complete = size + newline + 1
        size += len(chunk)
        # numpy's vectorised compare counts ten times faster than bytes.count, which took
        # half of the digest's time; "\r" is rare, and searched for before it is counted.
        lines += int(np.count_nonzero(np.frombuffer(chunk, np.uint8) == NEWLINE))
        if b"\r" in chunk:
            returns += chunk.count(b"\r")
        last = chunk[-1:]
    return ContentDigest(digest.hexdigest(), size, lines, first.hexdigest(), last == b"\n",
                         complete, returns)


def prefix_sha256(path: Path, size: int) -> tuple[str, int]:
    """Return the sha256 of the first ``size`` bytes of the file's content, and how many of
    those bytes are complete lines (up to and including the last newline among them)."""
    digest = hashlib.sha256()
    seen = complete = 0
    for chunk in _chunks(path, size):
        digest.update(chunk)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            complete = seen + newline + 1
        seen += len(chunk)
    return digest.hexdigest(), complete


def _split(complete: bytes, first_line: int,
           max_line_bytes: int) -> tuple[pa.Array, pa.Array, list[LineReject]]:
    """Split ``complete`` (whole lines, each ending in a newline) into numbered text lines."""
    buf = np.frombuffer(complete, dtype=np.uint8)
    ends = np.flatnonzero(buf == NEWLINE) + 1
    starts = np.concatenate(([0], ends[:-1])).astype(np.int64)
    numbers = np.arange(first_line, first_line + len(starts), dtype=np.int64)
    offsets = np.concatenate((starts, ends[-1:])).astype(np.int32)
    # Lines are contiguous in the chunk (each ends where the next starts, terminator included),
    # so one zero-copy binary array covers them all; terminators are trimmed after decoding.
    binary = pa.Array.from_buffers(
        pa.binary(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(complete)]
    )
    keep = np.ones(len(starts), dtype=bool)
    rejects: list[LineReject] = []
    lengths = ends - starts - 1
    for long_line in np.flatnonzero(lengths > max_line_bytes):
        keep[long_line] = False
        rejects.append(LineReject(
            int(numbers[long_line]), "line",
            f"longer than {max_line_bytes} bytes ({int(lengths[long_line])} bytes)",
            complete[starts[long_line]:starts[long_line] + _RAW_KEEP]))
    try:
        text = binary.cast(pa.string())
    except pa.ArrowInvalid:
        # Rare: find the lines that are not UTF-8, one by one, and set them aside.
        values = binary.to_pylist()
        for i, value in enumerate(values):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                if keep[i]:
                    rejects.append(LineReject(int(numbers[i]), "line",
                                              f"not valid UTF-8 (byte {exc.start + 1})",
                                              value.rstrip(b"\r\n")[:_RAW_KEEP]))
                values[i] = b""
                keep[i] = False
        text = pa.array(values, pa.binary()).cast(pa.string())
    kept = pa.array(numbers)
    if not keep.all():  # filtering copies every line: only when some are set aside
        mask = pa.array(keep)
        text, kept = pc.filter(text, mask), pc.filter(kept, mask)
    return kept, pc.utf8_rtrim(text, characters="\r\n"), rejects


def _take_lines(data: bytes, count: int) -> tuple[bytes, bytes, int]:
    """Split ``data`` (whole lines) after its first ``count`` lines; return the two parts and
    how many lines the first holds (counted once here: a scan of 16 MiB per batch)."""
    lines = data.count(b"\n")
    if lines <= count:
        return data, b"", lines
    cut = int(np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == NEWLINE)[count - 1]) + 1
    return data[:cut], data[cut:], count


def read_lines(path: Path, batch_bytes: int = DEFAULT_BATCH_BYTES,
               max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
               start: tuple[int, int] = (0, 0), stop: int | None = None) -> Iterator[LineBatch]:
    """Yield the lines of ``path`` in batches; bad lines come back as rejects, never dropped.

    ``start`` is (bytes, lines) of the content to skip (already loaded; numbering goes on from
    there); ``stop``, when given, is the content offset to read up to (a line boundary).
    Memory stays bounded by ``batch_bytes`` plus ``max_line_bytes``: a longer line is skipped
    to its end and reported with its first bytes, not held whole.
    """
    stream, raw = open_maybe_gzip(path)
    skip_bytes, line_no = start
    budget = None if stop is None else max(0, stop - skip_bytes)
    lead = b""  # the first bytes of the content, unless they are a byte-order mark
    if skip_bytes == 0:
        lead = stream.read(3 if budget is None else min(3, budget))
        if budget is not None:
            budget -= len(lead)
        lead = lead.removeprefix(BOM)
    while skip_bytes > 0:
        skipped = stream.read(min(skip_bytes, 1 << 20))
        if not skipped:
            break
        skip_bytes -= len(skipped)
    pending = b""  # complete lines read but not yet yielded
    carry = b""  # the start of a line whose end is not read yet
    skipping: LineReject | None = None  # a too-long line being skipped to its end
    skipped_len = 0
    at_eof = False
    try:
        while True:
            rejects: list[LineReject] = []
            # While a too-long line is being skipped, the lines before it go out first, so
            # that it takes its own number when it ends.
            if len(pending) < batch_bytes and (skipping is None or not pending):
                data = stream.read(batch_bytes if budget is None else min(batch_bytes, budget))
                if budget is not None:
                    budget -= len(data)
                at_eof = not data and not lead
                data, lead = lead + data, b""
                if skipping is not None:
                    newline = data.find(b"\n")
                    if newline < 0 and not at_eof:
                        skipped_len += len(data)
                        continue
                    end = newline if newline >= 0 else len(data)
                    skipped_len += end
                    skipping.problem = (f"longer than {max_line_bytes} bytes "
                                        f"({skipped_len} bytes)")
                    rejects.append(skipping)
                    skipping = None
                    line_no += 1
                    data = data[end + 1:]
                chunk = carry + data
                if at_eof:
                    complete, carry = chunk, b""
                    if complete and not complete.endswith(b"\n"):
                        complete += b"\n"
                else:
                    cut = chunk.rfind(b"\n") + 1
                    complete, carry = chunk[:cut], chunk[cut:]
                pending += complete
                if len(carry) > max_line_bytes:
                    # Numbered after the complete lines still pending.
                    skipping = LineReject(line_no + pending.count(b"\n") + 1, "line", "",
                                          carry[:_RAW_KEEP])
                    skipped_len, carry = len(carry), b""
            # At most MAX_BATCH_LINES lines per batch: a file of tiny junk lines is refused
            # after its first batch, not after parsing millions of them.
            complete, pending, count = _take_lines(pending, MAX_BATCH_LINES)
            numbers, text = pa.array([], pa.int64()), pa.array([], pa.string())
            if complete:
                numbers, text, bad = _split(complete, line_no + 1, max_line_bytes)
                rejects.extend(bad)
                line_no += count
            if len(numbers) or rejects:
                rejects.sort(key=lambda r: r.line)
                yield LineBatch(numbers, text, rejects, raw.tell())
            if at_eof and not pending:
                break
    finally:
        stream.close()
        raw.close()


# --- Records of the sources checked in Python (JSON Lines, line logs, CSV) -------------------

LINE_FIELD = "(line)"  # the field of a reject about the whole record, not one of its values


class BadField(Exception):
    """A value that cannot be used: the field as the file names it, and why."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


@dataclass(frozen=True)
class Record:
    """One record of a file: the line it starts on, its value (the line's bytes, a decoded
    JSON value, or a CSV record as {column: text}) and its raw bytes for a reject (a CSV
    record's fields joined by commas)."""

    line: int
    value: Any
    raw: bytes


def _corrupt(path: Path, exc: BaseException) -> IngestError:
    return IngestError(str(path), f"corrupt or truncated gzip data: {exc}")


def text_lines(path: Path) -> Iterator[Record]:
    """Yield every line of ``path`` (plain or gzip) that is not blank, numbered from 1, as
    bytes without its newline (a leading UTF-8 byte-order mark dropped); raise IngestError
    when a gzip stream is corrupt."""
    stream, raw = open_maybe_gzip(path)
    try:
        for number, line in enumerate(stream, 1):
            if number == 1:
                line = line.removeprefix(BOM)
            if line.strip():
                line = line.removesuffix(b"\n")
                yield Record(number, line, line[:_RAW_KEEP])
    except (EOFError, OSError, zlib.error) as exc:
        raise _corrupt(path, exc) from None
    finally:
        stream.close()
        raw.close()


def json_records(lines: Iterable[Record]) -> Iterator[Record | Reject]:
    """Yield each line of ``lines`` (from text_lines) as a Record holding its JSON object, or
    a Reject of the whole line when it is not UTF-8, not JSON, nested too deep or no object."""
    for line in lines:
        try:
            value = load_json(line.value.decode("utf-8"))
        except ValueError as exc:  # bad syntax, not UTF-8, nested too deep
            yield Reject(line.line, LINE_FIELD, f"not JSON: {str(exc)[:80]}", line.raw)
            continue
        if not isinstance(value, dict):
            yield Reject(line.line, LINE_FIELD, "not a JSON object", line.raw)
            continue
        yield Record(line.line, value, line.raw)


def _has_surrogates(text: str) -> bool:
    """Return True when ``text`` holds bytes that were not UTF-8 (kept as surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class CsvRecords:
    """The records of a CSV file (plain or gzip, streamed, a byte-order mark dropped):
    ``header`` once opened (``empty`` when the file has none), then a Record (value:
    {column: text}) or a Reject per record.

    Blank lines are no records. A record that is malformed (bad quoting, a field over the csv
    module's limit, a wrong number of fields, bytes that are not UTF-8) is a Reject of the
    line it starts on; the reader goes on with the next one. Use as a context manager.
    """

    def __init__(self, path: Path, rename: Callable[[str], str] = str,
                 field: str = LINE_FIELD) -> None:
        """Open ``path`` and read its header (names passed through ``rename``); raise
        IngestError when the header is not CSV or not UTF-8."""
        self.path, self.field = path, field
        self._stream, self._raw = open_maybe_gzip(path)
        # surrogateescape keeps undecodable bytes visible, so only their record is refused.
        self._text = io.TextIOWrapper(self._stream, encoding="utf-8-sig",
                                      errors="surrogateescape", newline="")
        self._reader = csv.reader(self._text)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            self.close()
            raise IngestError(str(path), f"line 1: not a CSV header: {exc}") from None
        except (EOFError, OSError, zlib.error) as exc:
            self.close()
            raise _corrupt(path, exc) from None
        self.empty = header is None  # no header line at all: an empty file
        if _has_surrogates(",".join(header or [])):
            self.close()
            raise IngestError(str(path), "line 1: the header is not valid UTF-8")
        self.header = [rename(name) for name in header or []]

    def require(self, columns: Iterable[str]) -> None:
        """Raise IngestError naming the ``columns`` the header lacks."""
        missing = [c for c in columns if c not in self.header]
        if missing:
            raise IngestError(str(self.path), f"line 1: missing column {', '.join(missing)}")

    @property
    def position(self) -> int:
        """Bytes of the file (as stored on disk) read so far."""
        return self._raw.tell()

    def __iter__(self) -> Iterator[Record | Reject]:
        """Yield a Record per good record and a Reject per malformed one, in file order."""
        reader, width = self._reader, len(self.header)
        line = reader.line_num + 1
        while True:
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Reject(line, self.field, f"not valid CSV: {exc}", b"")
                line = reader.line_num + 1
                continue
            except (EOFError, OSError, zlib.error) as exc:
                raise _corrupt(self.path, exc) from None
            # A record with quoted newlines spans lines: it is reported on the one it starts on.
            record_line, line = line, reader.line_num + 1
            if not values:
                continue
            joined = ",".join(values)
            raw = joined.encode("utf-8", errors="surrogateescape")
            if len(values) != width:
                yield Reject(record_line, self.field,
                             f"expected {width} fields, found {len(values)}", raw)
            elif _has_surrogates(joined):
                yield Reject(record_line, self.field, "not valid UTF-8", raw)
            else:
                yield Record(record_line, dict(zip(self.header, values, strict=True)), raw)

    def close(self) -> None:
        """Close the file."""
        self._text.close()
        self._raw.close()

    def __enter__(self) -> CsvRecords:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def at_path(prefix: str, make: Callable[[Any], Any], value: Any) -> Any:
    """Return ``make(value)``; a BadField it raises names its field under ``prefix`` (the
    record's path in its document, ``data[3]``: ``data[3].timestamp``)."""
    try:
        return make(value)
    except BadField as bad:
        raise BadField(f"{prefix}.{bad.field}", bad.problem) from None


RowMaker = Callable[[Any], "dict[str, Any] | list[dict[str, Any]] | None"]


def checked_rows(records: Iterable[Record | Reject],
                 make: RowMaker) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Return the rows ``make`` builds from each Record's value (a row, a list of rows, or
    None for a record that holds none), each with its ``line``, and the rejects: the Rejects
    given plus one per record for which ``make`` raised BadField."""
    rows: list[dict[str, Any]] = []
    rejects: list[Reject] = []
    for record in records:
        if isinstance(record, Reject):
            rejects.append(record)
            continue
        try:
            made = make(record.value)
        except BadField as bad:
            rejects.append(Reject(record.line, bad.field, bad.problem, record.raw))
            continue
        if made is None:
            continue
        rows += [{"line": record.line, **row}
                 for row in (made if isinstance(made, list) else [made])]
    return rows, rejects
