"""Looking after the store file: consistent copies (snapshots, backups), integrity checks, restores.

Raw logs rotate away, so the DuckDB file is the only history of past SLOs. A copy is taken
under a read-only connection: DuckDB's file lock then keeps every writer out, so the file (and
its write-ahead log, if a writer was killed before checkpointing) cannot change while it is
copied, and writers are held up only for the copy itself.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mysetlist_slo.errors import SloError, StoreBusyError
from mysetlist_slo.store.database import _connect, open_store, retry_while_busy

# DuckDB's file layout (storage version 64+): three 4 KiB headers, then fixed-size blocks, each
# starting with its checksum. Used only to name the block a checksum error points at.
_HEADER_BYTES = 3 * 4096
_DEFAULT_BLOCK_BYTES = 262_144  # DuckDB's default block size
_LOCATION = re.compile(r"(?:block at location|from location) (\d+)")


class StoreDamagedError(SloError):
    """Raised when a store file cannot be read whole: damaged blocks or a truncated file."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: store is damaged\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class TableCheck:
    """One table's result: rows read, or the error that stopped the read."""

    table: str
    rows: int | None
    error: str | None = None


@dataclass(frozen=True)
class StoreCheck:
    """What ``check_store`` found: every table read whole (``ok``), or what is damaged."""

    path: str
    file_bytes: int
    tables: list[TableCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every block was read and verified and nothing is missing."""
        return not self.problems

    @property
    def damaged_tables(self) -> list[str]:
        """Names of the tables that could not be read whole."""
        return [t.table for t in self.tables if t.error is not None]


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _copy_file(source: Path, dest: Path) -> None:
    """Copy ``source`` (and its write-ahead log) to ``dest``, flushed to disk."""
    shutil.copyfile(source, dest)
    if _wal(source).exists():
        shutil.copyfile(_wal(source), _wal(dest))
    with open(dest, "rb+") as handle:
        os.fsync(handle.fileno())


def _fold_wal(path: Path) -> None:
    """Make ``path`` a single self-contained file: replay and checkpoint its write-ahead log."""
    if _wal(path).exists():
        con = duckdb.connect(str(path))
        try:
            con.execute("CHECKPOINT")
        finally:
            con.close()


def copy_store(db: str | Path, dest: str | Path, wait: float = 0.0) -> Path:
    """Copy the store ``db`` to ``dest`` as one consistent, self-contained file; return ``dest``.

    Writers are kept out only while the file is copied (a read-only connection holds DuckDB's
    shared lock); a writer busy now is waited for up to ``wait`` seconds. Raises
    FileNotFoundError for a missing store and StoreBusyError when it stays busy.
    """
    source, dest = Path(db), Path(dest)
    con = open_store(source, read_only=True, wait=wait)
    try:
        _copy_file(source, dest)
    finally:
        con.close()
    _fold_wal(dest)
    return dest


@contextmanager
def store_snapshot(db: str | Path, wait: float = 0.0) -> Iterator[Path]:
    """Yield the path of a private, consistent copy of the store ``db``, deleted afterwards.

    For long readers (a report runs for a minute or more): they read the copy and never hold
    the store itself. Raises as ``copy_store``.
    """
    with tempfile.TemporaryDirectory(prefix="mysetlist-slo-snapshot-") as folder:
        yield copy_store(db, Path(folder) / Path(db).name, wait)


def _tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    rows = con.execute("""
        SELECT t.schema_name, t.table_name, list(c.column_name ORDER BY c.column_index)
        FROM duckdb_tables() AS t
        JOIN duckdb_columns() AS c USING (database_name, schema_name, table_name)
        WHERE t.database_name = current_database()
        GROUP BY ALL
        ORDER BY t.schema_name, t.table_name""").fetchall()
    return [(schema, table, list(columns)) for schema, table, columns in rows]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_store(db: str | Path, wait: float = 0.0) -> StoreCheck:
    """Read every block of every table of the store ``db`` (DuckDB verifies each block's
    checksum as it reads it) and return what was found; damage is reported, not raised.

    Raises FileNotFoundError for a missing file and StoreBusyError while a writer holds it
    beyond ``wait`` seconds.
    """
    path = Path(db)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such store file")
    size = path.stat().st_size
    try:
        con = retry_while_busy(lambda: _connect(str(path), read_only=True), wait)
    except StoreBusyError:
        raise
    except SloError as exc:
        # The headers or the catalog are unreadable: nothing inside can be trusted. (Before
        # the store is open its block size is unknown: DuckDB's default is assumed.)
        return StoreCheck(str(path), size,
                          problems=[_describe(_first_line(exc), _DEFAULT_BLOCK_BYTES, size)])
    try:
        return _check_open(con, path, size)
    finally:
        con.close()


def _check_open(con: duckdb.DuckDBPyConnection, path: Path, size: int) -> StoreCheck:
    block_size = int(con.execute(
        "SELECT block_size FROM pragma_database_size() "
        "WHERE database_name = current_database()").fetchall()[0][0])
    tables, problems = [], []
    for schema, table, columns in _tables(con):
        name = f"{_quote(schema)}.{_quote(table)}"
        # hash() of every column makes DuckDB read every value, hence every block, of the table;
        # count(*) alone would be answered from metadata.
        query = (f"SELECT count(*), sum(hash({', '.join(map(_quote, columns))})) FROM {name}")
        try:
            rows = int(con.execute(query).fetchall()[0][0])
            tables.append(TableCheck(table, rows))
        except duckdb.Error as exc:
            message = _describe(_first_line(exc), block_size, size)
            tables.append(TableCheck(table, None, message))
            problems.append(f"table {table}: {message}")
    return StoreCheck(str(path), size, tables, problems)


def _describe(message: str, block_size: int, size: int) -> str:
    """Say which block an error is about, and whether the file is cut short before it."""
    where = _LOCATION.search(message)
    if where is None:
        return message
    offset = int(where[1])
    block = (offset - _HEADER_BYTES) // block_size
    # Told from the sizes, not DuckDB's wording (which changes between versions).
    if offset + block_size > size:
        return f"block {block} lies beyond the end of the file ({size:,} bytes): truncated"
    return f"block {block} is damaged: {message}"


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def backup_store(db: str | Path, dest: str | Path, wait: float = 0.0) -> StoreCheck:
    """Write a consistent copy of the store ``db`` to ``dest`` (a file, or a folder to put a
    time-stamped copy in), verified by reading it whole; return the copy's check.

    Ingests may run meanwhile: they wait (or are waited for) only during the copy. The copy is
    written beside ``dest`` and renamed into place once verified, so ``dest`` is never a partial
    file. Raises StoreDamagedError when the copy does not read back whole, and as ``copy_store``.
    """
    source, target = Path(db), Path(dest)
    if target.is_dir() or str(dest).endswith(("/", os.sep)):
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = target / f"{source.stem}-{stamp}{source.suffix or '.duckdb'}"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    try:
        copy_store(source, partial, wait)
        result = check_store(partial)
        if not result.ok:
            raise StoreDamagedError(str(source), result.problems)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
        _wal(partial).unlink(missing_ok=True)
    return StoreCheck(str(target), result.file_bytes, result.tables)


def restore_store(backup: str | Path, db: str | Path, wait: float = 0.0) -> Path | None:
    """Replace the store ``db`` with the backup file ``backup``; return where the replaced file
    was kept (``<db>.replaced-<time>``), or None when there was none.

    The backup is read whole first and refused if damaged (StoreDamagedError). A store in use is
    waited for up to ``wait`` seconds (StoreBusyError); a store too damaged to open is replaced
    all the same, which is what a restore is for. Stopped half-way (Ctrl-C, a full disk), the
    store is left as it was: never missing, never half-copied.
    """
    source, target = Path(backup), Path(db)
    result = check_store(source)
    if not result.ok:
        raise StoreDamagedError(str(source), result.problems)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.restoring")
    kept = orphan = None
    holder = _hold(target, wait)  # keeps writers out until the new file is in place
    try:
        shutil.copyfile(source, partial)
        with open(partial, "rb+") as handle:
            os.fsync(handle.fileno())
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        if target.exists():
            kept = target.with_name(f"{target.name}.replaced-{stamp}")
            os.replace(target, kept)
            if _wal(target).exists():
                os.replace(_wal(target), _wal(kept))
        elif _wal(target).exists():
            # The WAL of a store deleted since: DuckDB would refuse to open the backup beside it
            # ("WAL does not match database file"). Kept aside, as a replaced store is.
            orphan = _wal(target).with_name(f"{_wal(target).name}.replaced-{stamp}")
            os.replace(_wal(target), orphan)
        os.replace(partial, target)
    except BaseException:
        if kept is not None and not target.exists():  # stopped between the two renames
            os.replace(kept, target)
            if _wal(kept).exists():
                os.replace(_wal(kept), _wal(target))
        if orphan is not None and not target.exists() and orphan.exists():
            os.replace(orphan, _wal(target))
        raise
    finally:
        partial.unlink(missing_ok=True)
        if holder is not None:
            holder.close()
    return kept


def _hold(path: Path, wait: float) -> duckdb.DuckDBPyConnection | None:
    """Return a read-only connection that keeps writers off ``path``; None when there is no
    such file or it is too damaged to open."""
    if not path.exists():
        return None
    try:
        return retry_while_busy(lambda: _connect(str(path), read_only=True), wait)
    except StoreBusyError:
        raise
    except SloError:
        return None
