"""Store operations: --wait on a busy store, `store check`, `store backup` while ingests run,
`store restore`, and a report that leaves the store free for ingests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from conftest import DEMO_END, table_counts, timed_line

from mysetlist_slo import open_store
from mysetlist_slo.errors import StoreBusyError
from mysetlist_slo.store import maintenance
from mysetlist_slo.store.maintenance import backup_store, check_store

AT = DEMO_END.isoformat()
HEADER_BYTES = 3 * 4096  # DuckDB's file header and two database headers precede block 0


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mysetlist_slo", *args], capture_output=True,
                          text=True, check=False)


@pytest.fixture(name="store_copy")
def fixture_store_copy(demo_store_path: Path, tmp_path: Path) -> Path:
    """A private copy of the small demo store, free to damage."""
    copy = tmp_path / "metrics.duckdb"
    shutil.copyfile(demo_store_path, copy)
    return copy


def own_block(db: Path, table: str) -> tuple[int, int]:
    """Return (block id, file offset of a data segment in it) of a block that holds data of
    ``table`` and of no other table."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        size = con.execute("SELECT block_size FROM pragma_database_size()").fetchall()[0][0]
        users: dict[int, set[str]] = {}
        segments: dict[int, int] = {}
        for (name,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall():
            for block, start in con.execute(
                    "SELECT block_id, min(block_offset) FROM pragma_storage_info(?) "
                    "WHERE block_id >= 0 GROUP BY block_id", [name]).fetchall():
                users.setdefault(block, set()).add(name)
                segments[block] = start
    finally:
        con.close()
    block = max(b for b, names in users.items() if names == {table})
    # Each block starts with its 8-byte checksum; segment offsets count from after it. (Bytes
    # in the unused part of a block are not checked by DuckDB, and hold no data either.)
    return block, HEADER_BYTES + block * size + 8 + segments[block]


def damage(db: Path, block: int, offset: int) -> None:
    """Flip 16 bytes at the start of a data segment of ``block``: its checksum then fails."""
    with open(db, "r+b") as handle:
        handle.seek(offset)
        data = handle.read(16)
        handle.seek(offset)
        handle.write(bytes(b ^ 0xFF for b in data))


def numbers(db: Path) -> tuple[dict[str, int], list[dict[str, object]]]:
    """Row counts of every table and the SLO table at the demo's end, read from ``db``."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        counts = table_counts(con)
    finally:
        con.close()
    status = run("status", "--db", str(db), "--at", AT, "--json")
    assert status.returncode == 0, status.stderr
    return counts, json.loads(status.stdout)


def test_check_reads_a_healthy_store_whole(store_copy: Path) -> None:
    """A healthy store checks ok and every table's rows are counted (as count(*) counts them)."""
    result = check_store(store_copy)
    assert result.ok and result.problems == []
    con = duckdb.connect(str(store_copy), read_only=True)
    expected = table_counts(con)
    con.close()
    assert {t.table: t.rows for t in result.tables} == expected
    cli = run("store", "check", "--db", str(store_copy))
    assert cli.returncode == 0 and cli.stderr.startswith(f"{store_copy}: ok, {len(expected)} "
                                                         "tables")


def test_check_names_the_damaged_table(store_copy: Path) -> None:
    """One damaged block of request_counts: `store check` exits 1 naming that table and that
    block, while `status` (which skips the old block) still answers as before."""
    block, offset = own_block(store_copy, "request_counts")
    damage(store_copy, block, offset)
    result = check_store(store_copy)
    assert not result.ok and result.damaged_tables == ["request_counts"]
    assert f"block {block} is damaged" in result.problems[0]
    cli = run("store", "check", "--db", str(store_copy))
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    first = cli.stderr.splitlines()[0]
    assert first.startswith(f"error: {store_copy}: damaged (request_counts); restore a backup")
    as_json = json.loads(run("store", "check", "--db", str(store_copy), "--json").stdout)
    assert as_json["ok"] is False and as_json["damaged_tables"] == ["request_counts"]


def test_half_truncated_store_is_a_clear_error(store_copy: Path) -> None:
    """A store cut to half its size: `store check` says truncated, and `status` says the store
    could not be read, each without a traceback."""
    os.truncate(store_copy, store_copy.stat().st_size // 2)
    cli = run("store", "check", "--db", str(store_copy))
    assert cli.returncode == 1 and "Traceback" not in cli.stderr
    assert "lies beyond the end of the file" in cli.stderr and "truncated" in cli.stderr
    status = run("status", "--db", str(store_copy), "--at", AT)
    assert status.returncode == 1 and "Traceback" not in status.stderr
    assert status.stderr.strip().splitlines() == [
        line for line in status.stderr.strip().splitlines() if line.startswith("error: ")]
    # Where DuckDB reads the cut-off catalog at open (1.3) the store cannot be opened; newer
    # versions open it and fail on the first read: both are one clear line.
    read_later = "could not be read" in status.stderr and "store check" in status.stderr
    assert read_later or "cannot open as a DuckDB store" in status.stderr


def test_garbage_is_not_a_store(tmp_path: Path) -> None:
    """A file that is not DuckDB at all fails the check with one clear problem."""
    fake = tmp_path / "x.duckdb"
    fake.write_bytes(b"\0" * 5000)
    result = check_store(fake)
    assert not result.ok and len(result.problems) == 1
    assert "cannot open as a DuckDB store" in result.problems[0]


# Holds the store (write lock) until a line arrives on stdin, then releases it.
HOLDER = textwrap.dedent("""
    import sys
    from mysetlist_slo import open_store
    con = open_store(sys.argv[1])
    print("holding", flush=True)
    sys.stdin.readline()
    con.close()
""")


def test_wait_retries_until_the_store_is_free(store_copy: Path) -> None:
    """Without --wait a busy store fails at once; with --wait the command waits for the writer
    and then succeeds; a wait too short gives up saying how long it waited."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_copy)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        with pytest.raises(StoreBusyError, match=r"still busy after waiting 0.5 s"):
            open_store(store_copy, read_only=True, wait=0.5)
        assert 0.4 < time.monotonic() - started < 3
        at_once = run("status", "--db", str(store_copy), "--at", AT)
        assert at_once.returncode == 1
        assert f"database is busy (held by PID {holder.pid}" in at_once.stderr
        assert "pass --wait" in at_once.stderr
        waiting = subprocess.Popen(
            [sys.executable, "-m", "mysetlist_slo", "status", "--db", str(store_copy), "--at",
             AT, "--wait", "2m"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(8)  # the waiting command has started and is retrying
        assert waiting.poll() is None
    finally:
        holder.communicate("go\n", timeout=60)
    out, err = waiting.communicate(timeout=120)
    assert waiting.returncode == 0, err
    assert "availability" in out


INGEST_LOOP = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from mysetlist_slo import ingest_file, open_store
    db, folder, pause = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
    for path in sorted(folder.glob("*.log")):
        asked = time.time()
        con = open_store(db, wait=60)
        opened = time.time()
        result = ingest_file(con, path)
        con.close()
        print(path.name, asked, opened, time.time(), result.loaded, flush=True)
        if (folder / "stop").exists():
            break
        time.sleep(pause)
""")


def write_logs(folder: Path, count: int, lines: int = 40) -> list[int]:
    """Write ``count`` logs of the week after the demo, each different; return lines each."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        day, minute = 24 + i // 600, (i % 600)
        (folder / f"{i:04d}.log").write_text("".join(
            timed_line(time=f"{day}/Nov/2026:{minute // 60:02d}:{minute % 60:02d}:{s:02d} "
                            "+0000", path=f"/show/{i}") + "\n" for s in range(lines)))
    return [lines] * count


def start_loop(db: Path, folder: Path, pause: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", INGEST_LOOP, str(db), str(folder),
                             str(pause)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_backup_during_ingests_then_restore(store_copy: Path, tmp_path: Path) -> None:
    """A backup taken while ingests run is a consistent state (its registry and its counts
    agree with the files it lists); after the original is damaged, a restore brings back
    exactly the backup's numbers."""
    logs = tmp_path / "logs"
    write_logs(logs, 12)
    before = numbers(store_copy)[0]["request_counts"]
    loop = start_loop(store_copy, logs, 0.2)
    try:
        assert loop.stdout is not None
        done = [loop.stdout.readline() for _ in range(2)]  # some ingests done, more to come
        backup = backup_store(store_copy, f"{tmp_path}/backups/", wait=60)
    finally:
        out, err = loop.communicate(timeout=300)
    assert loop.returncode == 0, err
    assert len(done + out.splitlines()) == 12  # every ingest of the loop landed
    copy = Path(backup.path)
    assert copy.parent == tmp_path / "backups" and backup.ok
    con = duckdb.connect(str(copy), read_only=True)
    in_backup = [f for (f,) in con.execute(
        "SELECT file FROM ingests WHERE file LIKE ? ORDER BY file", [f"{logs}%"]).fetchall()]
    requests = con.execute("SELECT sum(requests) FROM request_counts WHERE minute >= ?",
                           [DEMO_END]).fetchall()[0][0] or 0
    con.close()
    assert 0 < len(in_backup) < 12, "the backup should fall between two ingests of the loop"
    assert requests == 40 * len(in_backup)  # 40 lines per file, nothing half-loaded
    saved = numbers(copy)
    assert saved[0]["request_counts"] > before

    block, offset = own_block(store_copy, "request_counts")
    damage(store_copy, block, offset)
    assert run("store", "check", "--db", str(store_copy)).returncode == 1
    restored = run("store", "restore", str(copy), "--db", str(store_copy))
    assert restored.returncode == 0, restored.stderr
    assert "the replaced file is kept as" in restored.stderr
    assert run("store", "check", "--db", str(store_copy)).returncode == 0
    assert numbers(store_copy) == saved
    assert list(tmp_path.glob("metrics.duckdb.replaced-*"))  # the damaged file is kept


def test_backup_command_into_a_new_folder(store_copy: Path, tmp_path: Path) -> None:
    """`store backup DIR/` creates the folder and writes one verified, time-stamped copy whose
    tables hold what the store holds."""
    result = run("store", "backup", "--db", str(store_copy), f"{tmp_path}/b/")
    assert result.returncode == 0, result.stderr
    (copy,) = (tmp_path / "b").iterdir()
    assert copy.name.startswith("metrics-") and copy.suffix == ".duckdb"
    assert f"to {copy} (" in result.stderr and "verified" in result.stderr
    assert numbers(copy)[0] == numbers(store_copy)[0]


def test_restore_refuses_a_damaged_backup(store_copy: Path, tmp_path: Path) -> None:
    """A damaged backup is refused and the store is left as it was."""
    bad = tmp_path / "bad-backup.duckdb"
    shutil.copyfile(store_copy, bad)
    block, offset = own_block(bad, "request_counts")
    damage(bad, block, offset)
    before = store_copy.read_bytes()
    result = run("store", "restore", str(bad), "--db", str(store_copy))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {bad}: store is damaged")
    assert store_copy.read_bytes() == before


@pytest.mark.parametrize("stop_at", [1, 2])
def test_restore_stopped_half_way_leaves_the_store(store_copy: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   stop_at: int) -> None:
    """Ctrl-C at either of the restore's renames (the store moved aside, the backup moved
    in) leaves the store as it was, under its own name, and no copy behind."""
    backup = tmp_path / "backup.duckdb"
    backup_store(store_copy, backup)
    with duckdb.connect(str(store_copy)) as con:  # the store differs from its backup
        con.execute("CREATE TABLE after_backup AS SELECT 42 AS answer")
    before = store_copy.read_bytes()
    real_replace, calls = os.replace, []

    def replace(source: os.PathLike[str], dest: os.PathLike[str]) -> None:
        calls.append((Path(source).name, Path(dest).name))
        if len(calls) == stop_at:
            raise KeyboardInterrupt
        real_replace(source, dest)

    monkeypatch.setattr(maintenance.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        maintenance.restore_store(backup, store_copy)
    monkeypatch.setattr(maintenance.os, "replace", real_replace)
    assert store_copy.read_bytes() == before, calls
    assert [p.name for p in store_copy.parent.iterdir()
            if p.name.startswith((f".{store_copy.name}", f"{store_copy.name}.replaced"))] == []
    with duckdb.connect(str(store_copy), read_only=True) as con:
        assert con.execute("SELECT answer FROM after_backup").fetchall() == [(42,)]


def test_restore_over_a_deleted_store_with_its_wal(store_copy: Path, tmp_path: Path) -> None:
    """A store deleted but its WAL left behind (changes not yet checkpointed): the backup
    restored in its place opens and holds the backup's tables, not the WAL's; the WAL is kept
    aside, not deleted."""
    backup = tmp_path / "backup.duckdb"
    backup_store(store_copy, backup)
    con = duckdb.connect(str(store_copy))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("CREATE TABLE after_backup AS SELECT 42 AS answer")
    con.close()
    wal = store_copy.with_name(store_copy.name + ".wal")
    assert wal.exists()
    store_copy.unlink()
    assert maintenance.restore_store(backup, store_copy) is None
    tables = []
    for path in (store_copy, backup):
        with duckdb.connect(str(path), read_only=True) as con:
            tables.append(sorted(row[0] for row in con.execute(
                "SELECT table_name FROM information_schema.tables").fetchall()))
    assert tables[0] == tables[1] and "after_backup" not in tables[0]
    assert not wal.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f"{wal.name}.replaced-")]


@pytest.mark.slow
def test_report_and_ingests_run_together(store_copy: Path, tmp_path: Path) -> None:
    """Ingests every second for the whole of a weekly report: every ingest lands, none waits
    more than a few seconds, the report succeeds (without the kernel's TCP warning) and its
    numbers equal those of a quiet run on the same data."""
    from mysetlist_slo.report.runner import run_report

    week = "2026-W47"  # the demo's last full week; the loop's logs are all after it
    quiet = run_report("weekly", week=week, db=store_copy, out=tmp_path / "quiet",
                       progress=False)
    logs = tmp_path / "logs"
    write_logs(logs, 300)
    loop = start_loop(store_copy, logs, 1.0)
    try:
        assert loop.stdout is not None
        first = loop.stdout.readline()  # the loop is under way before the report starts
        started = time.time()
        busy = run("report", "weekly", "--db", str(store_copy), "--week", week,
                   "--out", str(tmp_path / "busy"))
        ended = time.time()
    finally:
        (logs / "stop").touch()
        out, err = loop.communicate(timeout=300)
    assert busy.returncode == 0, busy.stderr
    assert "Traceback" not in busy.stderr and "without encryption" not in busy.stderr
    assert loop.returncode == 0, err
    ingests = [line.split() for line in [first, *out.splitlines()]]
    during = [i for i in ingests if float(i[1]) < ended and float(i[3]) > started]
    assert len(during) >= 0.5 * (ended - started) / 2  # one every ~2 s: the report never held
    assert all(int(i[4]) == 40 for i in ingests)  # every file loaded whole
    waits = [float(i[2]) - float(i[1]) for i in ingests]
    assert max(waits) < 5, f"an ingest waited {max(waits):.1f} s for the report"
    summary = json.loads((tmp_path / "busy" / "weekly" / week / "summary.json").read_text())
    expected = json.loads(quiet.summary_json.read_text())
    for document in (summary, expected):
        document.pop("generated_at")
    assert summary == expected
