"""The lake on disk: its layout, manifest, writer lock, and the commit that makes staged files
visible all at once (or, after a crash, never half).

```
DIR/_lake.json                                   manifest: every source file added
DIR/_lake.lock                                   held by the one writer
DIR/requests/date=YYYY-MM-DD/<sha256>.parquet    committed request rows (Hive partitions)
DIR/_rejects/<sha256>.parquet                    rejected records of a file (line, field, ...)
DIR/_staging/<id>/                               a write in progress (or a crashed one)
```

Names starting with ``_`` are hidden from Hive-style readers (Spark, DuckDB, pyarrow).
A write stages its files under ``_staging/<id>/``, then writes ``_staging/<id>/COMMIT`` (the
file moves and the manifest entry) by an atomic rename: that is the commit point. The files
are then renamed into place and the manifest rewritten (atomically). A crash before COMMIT
leaves staged junk that the next open deletes; a crash after it is rolled forward by the
next open. ``requests/`` therefore never holds a half-written or uncommitted file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.errors import LakeError
from mysetlist_slo.lake._crash import crash_point
from mysetlist_slo.sources.requests_schema import CANONICAL_SCHEMA

MANIFEST = "_lake.json"
LOCK = "_lake.lock"
STAGING = "_staging"
REQUESTS = "requests"
REJECTS = "_rejects"
COMMIT = "COMMIT"
FORMAT = 1

# The contract's columns, in order: the canonical request schema without ``line`` first, then
# where each row came from (content hash, line). The Hive ``date`` is not stored in the files.
LAKE_SCHEMA = pa.schema([
    *(column for column in CANONICAL_SCHEMA if column.name != "line"),
    ("source_sha256", pa.string()),
    ("line", pa.int64()),
])

REJECTS_SCHEMA = pa.schema([("line", pa.int64()), ("field", pa.string()),
                            ("problem", pa.string()), ("raw", pa.binary())])

_REMOTE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

_SHA = "[0-9a-f]{64}"
_TEXT = {"type": "string"}
_COUNT = {"type": "integer", "minimum": 0}
_MAYBE = {"type": ["string", "null"]}
# What a manifest may hold: the shape of LakeEntry, and file names only in the lake's own
# layout (a damaged or hand-edited manifest must not send readers outside the lake).
MANIFEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["format", "files"],
    "properties": {"files": {"type": "array", "items": {
        "type": "object",
        "additionalProperties": False,
        "required": ["sha256", "file", "kind", "bytes", "rows", "rejects", "parquet",
                     "rejects_file", "first_ts", "last_ts", "added"],
        "properties": {
            "sha256": {"type": "string", "pattern": f"^{_SHA}$"},
            "file": _TEXT, "kind": _TEXT, "bytes": _COUNT, "rows": _COUNT, "rejects": _COUNT,
            "parquet": {"type": "array", "items": {
                "type": "string",
                "pattern": rf"^{REQUESTS}/date=\d{{4}}-\d{{2}}-\d{{2}}/{_SHA}\.parquet$"}},
            "rejects_file": {"anyOf": [
                {"type": "null"},
                {"type": "string", "pattern": rf"^{REJECTS}/{_SHA}\.parquet$"}]},
            "first_ts": _MAYBE, "last_ts": _MAYBE, "added": _TEXT,
            "seconds": {"type": "number"},
            "content_bytes": {"type": ["integer", "null"]},
            "content_lines": {"type": ["integer", "null"]},
            "first_line_sha256": _MAYBE,
            "ends_with_newline": {"type": ["boolean", "null"]},
            "continues": _MAYBE,
        }}}},
}


@dataclass(frozen=True)
class LakeEntry:
    """One source file added to the lake, as the manifest records it."""

    sha256: str  # of the content, gzip read through (the store registry's hash)
    file: str  # the path it was added from
    kind: str
    bytes: int  # on disk
    rows: int
    rejects: int
    parquet: list[str]  # lake-relative paths of the Parquet files it produced
    rejects_file: str | None  # lake-relative path of its rejects, when it had any
    first_ts: str | None
    last_ts: str | None
    added: str  # ISO 8601, UTC
    seconds: float = 0.0
    # The content's shape, to find a log that has grown since it was added (as the store's
    # registry does), and the entry this one reads on from (its sha256), if any.
    content_bytes: int | None = None
    content_lines: int | None = None
    first_line_sha256: str | None = None
    ends_with_newline: bool | None = None
    continues: str | None = None


@dataclass
class Manifest:
    """What the lake holds: one entry per source file added, in the order they were added."""

    entries: list[LakeEntry] = field(default_factory=list)

    def find(self, sha256: str) -> LakeEntry | None:
        """Return the entry of the content ``sha256``, or None."""
        return next((entry for entry in self.entries if entry.sha256 == sha256), None)

    def files(self) -> list[str]:
        """Return every committed Parquet file, lake-relative, sorted."""
        return sorted(name for entry in self.entries for name in entry.parquet)


def check_local(lake: str | Path, what: str = "lake") -> Path:
    """Return ``lake`` as a local path; raise LakeError for an object-store URL (s3://, gs://),
    which neither the lake commands nor the rollup read or write (see README, "Parquet lake").
    ``what`` names it in the error: the lake, or a rollup output."""
    text = str(lake)
    if _REMOTE.match(text):
        raise LakeError(text, f"object-store {what}s are not supported; {what}s are local "
                        "folders (publish one by copying it: aws s3 sync / gsutil rsync, see "
                        "README 'Parquet lake')")
    return Path(text)


def fsync_path(path: Path) -> None:
    """Flush the file or folder ``path`` (a folder: the names in it) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomically(path: Path, document: object) -> None:
    """Replace ``path`` with ``document`` as JSON: written aside, flushed, renamed into place."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    fsync_path(path.parent)


def read_manifest(root: Path) -> Manifest:
    """Return the manifest of the lake at ``root``; raise LakeError when it is no lake or its
    manifest cannot be read."""
    path = root / MANIFEST
    if not path.is_file():
        raise LakeError(str(root), f"not a lake (no {MANIFEST}); create one with "
                        "`mysetlist-slo lake add FILE --lake DIR` on a new or empty folder")
    try:
        document = json.loads(path.read_text("utf-8"))
    except ValueError as exc:  # not UTF-8, not JSON
        raise LakeError(str(path), f"damaged manifest: {exc}") from None
    if isinstance(document, dict) and document.get("format", FORMAT) != FORMAT:
        raise LakeError(str(path), f"manifest format {document.get('format')!r} is not "
                        f"{FORMAT}; written by another version of mysetlist-slo")
    # Imported here: with the URI grammar Jupyter's jsonschema extras bring, importing
    # jsonschema takes 1.6 s, which every command importing the lake would pay.
    import jsonschema

    problem = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(MANIFEST_SCHEMA).iter_errors(document))
    if problem is not None:
        raise LakeError(str(path), f"damaged manifest: {problem.json_path}: "
                        f"{problem.message}")
    return Manifest([LakeEntry(**entry) for entry in document["files"]])


def _write_manifest(root: Path, manifest: Manifest) -> None:
    write_json_atomically(root / MANIFEST, {
        "format": FORMAT, "files": [asdict(entry) for entry in manifest.entries]})


def _roll_forward(root: Path, staged: Path) -> None:
    """Finish a committed write: move its files into place, add its entry to the manifest,
    delete its staging folder. Safe to repeat after a crash at any point of it."""
    record = json.loads((staged / COMMIT).read_text("utf-8"))
    for relative in record["moves"]:
        source, target = staged / relative, root / relative
        if source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            fsync_path(target.parent)
        crash_point("lake-moving")
    manifest = read_manifest(root)
    entry = LakeEntry(**record["entry"])
    if manifest.find(entry.sha256) is None:
        manifest.entries.append(entry)
        _write_manifest(root, manifest)
    shutil.rmtree(staged)


def _leftovers(root: Path) -> list[Path]:
    """Return the manifest's temporary files a killed write left (write_json_atomically)."""
    return list(root.glob(f".{MANIFEST}.*.tmp"))


def recover(root: Path) -> None:
    """Finish committed writes and delete uncommitted ones (the writer lock must be held)."""
    for temporary in _leftovers(root):
        temporary.unlink(missing_ok=True)
    staging = root / STAGING
    if not staging.is_dir():
        return
    for staged in sorted(staging.iterdir()):
        if (staged / COMMIT).is_file():
            _roll_forward(root, staged)
        else:
            shutil.rmtree(staged, ignore_errors=True)


@dataclass
class LakeWriter:
    """The lake opened for writing, under its lock."""

    root: Path
    manifest: Manifest

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """Yield a fresh staging folder; it is deleted on the way out unless committed."""
        staged = self.root / STAGING / uuid.uuid4().hex
        staged.mkdir(parents=True)
        try:
            yield staged
        finally:
            if staged.exists() and not (staged / COMMIT).exists():
                shutil.rmtree(staged, ignore_errors=True)

    def commit(self, staged: Path, entry: LakeEntry) -> None:
        """Make the staged files of ``entry`` part of the lake, all at once (see module doc)."""
        moves = [*entry.parquet, *([entry.rejects_file] if entry.rejects_file else [])]
        # On disk before the commit record is: after a power cut, a committed entry must not
        # name a file whose data was still in the page cache.
        for relative in moves:
            fsync_path(staged / relative)
        for folder in {(staged / relative).parent for relative in moves}:
            fsync_path(folder)
        write_json_atomically(staged / COMMIT, {"moves": moves, "entry": asdict(entry)})
        _roll_forward(self.root, staged)
        self.manifest = read_manifest(self.root)


# How long a writer waits for the lock: a reader holds it only to tidy up after a crashed
# write (milliseconds), a writer for a whole file.
WRITER_WAIT_S = 5.0


def _lock(root: Path, wait: float = 0.0) -> int:
    """Return the open lock file of the lake, locked; raise LakeError when another process
    still holds it after ``wait`` seconds."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise LakeError(str(root), "lake is busy (another `lake add` is writing it); "
                                "try again when it finishes") from None
            time.sleep(0.05)


@contextmanager
def open_lake(lake: str | Path, create: bool = False) -> Iterator[LakeWriter]:
    """Yield the lake at ``lake`` opened for writing, after recovering any crashed write.

    With ``create``, a missing or empty folder becomes a new lake. Raises LakeError for an
    object-store URL, a file, a folder that is not a lake, or a lake another writer holds.
    """
    root = check_local(lake)
    if root.exists() and not root.is_dir():
        raise LakeError(str(root), "is a file, not a lake folder")
    if not (root / MANIFEST).is_file():
        if not create:
            read_manifest(root)  # raises: not a lake
        # A first write killed before its manifest leaves the lock and perhaps a temporary.
        ours = {root / LOCK, *_leftovers(root)} if root.is_dir() else set()
        if root.is_dir() and any(path not in ours for path in root.iterdir()):
            raise LakeError(str(root), f"not a lake (no {MANIFEST}) and not empty; give a new "
                            "or empty folder, or an existing lake")
        root.mkdir(parents=True, exist_ok=True)
    fd = _lock(root, WRITER_WAIT_S)
    try:
        if not (root / MANIFEST).is_file():
            _write_manifest(root, Manifest())
        recover(root)
        yield LakeWriter(root, read_manifest(root))
    finally:
        os.close(fd)  # releases the lock


def lake_manifest(lake: str | Path) -> Manifest:
    """Return the lake's manifest, after finishing or deleting a crashed write when no other
    writer holds the lake. Raises LakeError when ``lake`` is not a lake."""
    root = check_local(lake)
    manifest = read_manifest(root)
    try:
        fd = _lock(root)
    except LakeError:
        return manifest  # a writer is at work: what it has not committed is not listed
    try:
        recover(root)
        return read_manifest(root)
    finally:
        os.close(fd)


def lake_files(lake: str | Path) -> list[str]:
    """Return the lake's committed Parquet files, sorted, each as ``lake`` joined with its
    lake-relative path (the same list as the glob ``DIR/requests/date=*/*.parquet``).

    A folder in the lake's layout without a manifest (written by another tool: Spark, pyarrow)
    is read as the files it holds. Raises LakeError when ``lake`` is neither.
    """
    root = check_local(lake)
    if not (root / MANIFEST).is_file() and (root / REQUESTS).is_dir():
        return sorted(os.path.join(str(lake), str(path.relative_to(root)))
                      for path in root.glob(f"{REQUESTS}/date=*/*.parquet"))
    return [os.path.join(str(lake), name) for name in lake_manifest(lake).files()]
