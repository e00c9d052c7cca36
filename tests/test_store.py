"""The store: versioned schema and migrations, the write lock, and crash safety of ingests."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import table_counts, timed_line

from mysetlist_slo import SchemaVersionError, StoreBusyError, ingest_file, open_store
from mysetlist_slo.store.database import MIGRATIONS, latest_version, schema_version

LOG_LINES = [timed_line(time=f"10/Nov/2026:13:{m:02d}:00 +0000") for m in range(30)]


def snapshot(con) -> dict[str, list[tuple]]:
    """Return every row of every table, sorted, to compare stores exactly."""
    names = sorted(table_counts(con))
    return {n: sorted(con.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}


def test_new_store_has_latest_schema(store) -> None:
    """A new file gets every migration and records the version."""
    assert schema_version(store) == latest_version() == len(MIGRATIONS)
    assert {"ingests", "rejects", "routes", "request_counts", "request_good",
            "latency_sketch", "region_latency_sketch"} <= set(table_counts(store))


def test_migrates_forward_and_keeps_data(db_path, write_log) -> None:
    """Opening an older store applies only the new steps and keeps what was stored."""
    con = open_store(db_path)
    ingest_file(con, write_log("access.log", LOG_LINES))
    before = snapshot(con)
    con.close()
    newer = [*MIGRATIONS, ["ALTER TABLE ingests ADD COLUMN note VARCHAR"]]
    con = open_store(db_path, migrations=newer)
    assert schema_version(con) == len(newer)
    after = snapshot(con)
    assert after["request_counts"] == before["request_counts"]
    assert [row[:-1] for row in after["ingests"]] == before["ingests"]  # plus the new column
    con.close()
    # A reader (read-only) of an older store migrates it too, then reads.
    reader = open_store(db_path, read_only=True, migrations=[*newer, ["CREATE TABLE x (a INT)"]])
    assert schema_version(reader) == len(newer) + 1
    reader.close()


def test_newer_schema_is_a_clear_error(db_path) -> None:
    """A store written by a newer version is refused, naming both versions."""
    open_store(db_path, migrations=[*MIGRATIONS, ["CREATE TABLE future (a INT)"]]).close()
    with pytest.raises(SchemaVersionError, match=rf"version {len(MIGRATIONS) + 1} is newer"):
        open_store(db_path)
    result = subprocess.run([sys.executable, "-m", "mysetlist_slo", "status", "--db",
                             str(db_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "newer than this mysetlist-slo supports" in result.stderr
    assert "Traceback" not in result.stderr


HOLDER = textwrap.dedent("""
    import sys
    from mysetlist_slo import open_store
    con = open_store(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
""")


def test_second_writer_gets_busy_error(db_path, write_log) -> None:
    """While one process writes, another gets 'database is busy (held by ...)', no traceback."""
    open_store(db_path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(StoreBusyError, match=rf"database is busy \(held by PID {holder.pid}"):
            open_store(db_path)
        result = subprocess.run(
            [sys.executable, "-m", "mysetlist_slo", "ingest", "--db", str(db_path),
             str(write_log("access.log", LOG_LINES))],
            capture_output=True, text=True, check=False)
        assert result.returncode == 1
        assert "database is busy (held by" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.communicate("\n", timeout=30)
    # The holder has gone: the store opens and is intact.
    assert schema_version(open_store(db_path)) == latest_version()


KILLED_INGEST = textwrap.dedent("""
    import sys
    from mysetlist_slo import open_store, ingest_file

    def progress(position):
        print("batch", position, flush=True)
        sys.stdin.readline()  # wait here, mid-transaction, until the test kills us

    con = open_store(sys.argv[1])
    ingest_file(con, sys.argv[2], progress=progress)
    print("committed", flush=True)
""")


@pytest.mark.slow
@pytest.mark.parametrize("newline", ["\r\n", "\n"], ids=["by-lines", "whole-file"])
def test_kill_during_ingest_leaves_store_unchanged(db_path, write_log, tmp_path,
                                                   newline) -> None:
    """SIGKILL in the middle of an ingest: the store is as before and the file loads after
    (read by lines, killed after a batch; read whole, killed once it is staged, uncommitted)."""
    con = open_store(db_path)
    ingest_file(con, write_log("first.log", LOG_LINES))
    before = snapshot(con)
    con.close()
    # ~40 MB: several 16 MB batches, so the kill lands with part of the file written.
    line = timed_line(time="11/Nov/2026:09:00:00 +0000") + newline
    big = tmp_path / "big.log"
    big.write_bytes(line.encode() * (40_000_000 // len(line)))
    lines = 40_000_000 // len(line)

    child = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, str(db_path), str(big)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    first = child.stdout.readline()
    assert first.startswith("batch"), first
    if newline == "\r\n":
        assert 0 < int(first.split()[1]) < big.stat().st_size  # really in the middle
    else:
        assert 0 < int(first.split()[1]) <= big.stat().st_size
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    con = open_store(db_path)
    assert snapshot(con) == before
    result = ingest_file(con, big)
    assert (result.loaded, result.rejected, result.skipped) == (lines, 0, False)
    total = con.execute("SELECT sum(requests) FROM request_counts").fetchall()[0][0]
    assert total == lines + len(LOG_LINES)
    con.close()


def test_reader_of_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    """Reading a store that does not exist says so instead of creating an empty one."""
    with pytest.raises(FileNotFoundError, match="no such database"):
        open_store(tmp_path / "nope.duckdb", read_only=True)
    assert not (tmp_path / "nope.duckdb").exists()
