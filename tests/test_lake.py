"""The raw Parquet lake: contract layout and columns, ingest's validation, a manifest that makes
adding twice a no-op, and a killed `lake add` that leaves the lake as it was."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mysetlist_slo import DemoManifest, ingest_file, open_store
from mysetlist_slo.cli import main
from mysetlist_slo.errors import IngestError, LakeError
from mysetlist_slo.lake import add_to_lake, lake_files, lake_manifest, writer
from mysetlist_slo.lake._crash import CRASH_AT

# The columns and types the lake/spark contract fixes, written out here on purpose.
CONTRACT = pa.schema([
    ("ts", pa.timestamp("us", tz="UTC")), ("method", pa.string()), ("target", pa.string()),
    ("status", pa.int16()), ("duration_us", pa.int64()), ("upstream_us", pa.int64()),
    ("bytes", pa.int64()), ("client", pa.string()), ("user_agent", pa.string()),
    ("region", pa.string()), ("cache_status", pa.string()), ("source_sha256", pa.string()),
    ("line", pa.int64()),
])

# (time as logged, path, status, request_time, upstream_time): the -0500 evening lines fall on
# the next UTC day, so the file spans two Hive partitions.
REQUESTS = [
    ("22/Nov/2026:18:59:58 -0500", "/show/1", 200, "0.120", "0.100"),
    ("22/Nov/2026:18:59:59 -0500", "/artist/x?y=1", 404, "0.005", "-"),
    ("22/Nov/2026:19:00:00 -0500", "/show/2", 502, "0.001", "0.010, 0.020"),
    ("23/Nov/2026:00:00:01 +0000", "/api/search", 200, "1.500", "1.400"),
]


def _line(time: str, path: str, status: int, request_time: str, upstream: str) -> str:
    return (f'198.51.100.7 - - [{time}] "GET {path} HTTP/1.1" {status} 512 "-" '
            f'"curl/8.0" {request_time} {upstream}')


@pytest.fixture(name="two_day_log")
def fixture_two_day_log(tmp_path: Path) -> Path:
    """An nginx log of four requests over two UTC days, and one malformed line (line 3)."""
    lines = [_line(*r) for r in REQUESTS[:2]] + ["this is not a log line"] + [
        _line(*r) for r in REQUESTS[2:]]
    path = tmp_path / "access.log"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (the lock file included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _committed_of(tree: dict[str, bytes]) -> dict[str, bytes]:
    """The files of the lake a reader sees: all but the staging area."""
    return {name: data for name, data in tree.items() if not name.startswith("_staging")}


def _committed(root: Path) -> dict[str, bytes]:
    return _committed_of(_tree(root))


def test_rows_partitions_and_columns_follow_the_contract(two_day_log: Path,
                                                         tmp_path: Path) -> None:
    """Each good line is one row in the partition of its UTC day, with the contract's columns
    and types, values as logged (durations in us, upstream times added up), and provenance."""
    lake = tmp_path / "lake"
    result = add_to_lake(lake, two_day_log, max_bad_rows=1)
    assert (result.rows, result.rejected, result.skipped) == (4, 1, False)
    sha = hashlib.sha256(two_day_log.read_bytes()).hexdigest()
    assert lake_files(lake) == sorted(
        os.path.join(str(lake), f"requests/date={day}/{sha}.parquet")
        for day in ("2026-11-22", "2026-11-23"))
    rows = []
    for name in lake_files(lake):
        table = pq.read_table(name, partitioning=None)
        assert table.schema.remove_metadata() == CONTRACT  # no `date` column inside
        rows += [(Path(name).parent.name, row) for row in table.to_pylist()]
    expected_lines = [1, 2, 4, 5]  # line 3 is the malformed one
    for (partition, row), logged, line in zip(rows, REQUESTS, expected_lines, strict=True):
        when = datetime.strptime(logged[0], "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
        assert partition == f"date={when:%Y-%m-%d}"
        assert row["ts"] == when
        assert (row["target"], row["status"], row["method"]) == (logged[1], logged[2], "GET")
        assert row["duration_us"] == round(float(logged[3]) * 1_000_000)
        assert (row["source_sha256"], row["line"]) == (sha, line)
    assert [row["upstream_us"] for _, row in rows] == [100_000, None, 30_000, 1_400_000]
    rejects = pq.read_table(lake / f"_rejects/{sha}.parquet").to_pylist()
    assert [(r["line"], r["raw"]) for r in rejects] == [(3, b"this is not a log line")]


def test_manifest_records_each_file_and_a_second_add_is_a_no_op(two_day_log: Path,
                                                                tmp_path: Path) -> None:
    """The manifest names the file, its content hash, rows, rejects and Parquet files; the
    same content again (even gzipped under another name) adds nothing."""
    lake = tmp_path / "lake"
    add_to_lake(lake, two_day_log, max_bad_rows=1)
    before = _tree(lake)
    zipped = tmp_path / "access.log.2.gz"
    zipped.write_bytes(gzip.compress(two_day_log.read_bytes()))
    again = add_to_lake(lake, zipped, max_bad_rows=1)
    assert again.skipped and "already in the lake" in again.message
    assert _tree(lake) == before
    (entry,) = lake_manifest(lake).entries
    assert entry.sha256 == hashlib.sha256(two_day_log.read_bytes()).hexdigest()
    assert (entry.file, entry.kind, entry.rows, entry.rejects) == (str(two_day_log), "nginx", 4, 1)
    assert sorted(os.path.join(str(lake), p) for p in entry.parquet) == lake_files(lake)
    assert json.loads((lake / "_lake.json").read_text())["format"] == 1


def test_bad_rows_over_the_limit_refuse_the_file_and_leave_the_lake(two_day_log: Path,
                                                                    tmp_path: Path) -> None:
    """Strict by default, as ingest: the error names file, line and field, nothing is written."""
    lake = tmp_path / "lake"
    lake.mkdir()
    with pytest.raises(IngestError) as caught:
        add_to_lake(lake, two_day_log)
    assert f"{two_day_log}:3: $remote_addr" in str(caught.value)
    con = open_store(tmp_path / "s.duckdb")
    with pytest.raises(IngestError) as by_ingest:
        ingest_file(con, two_day_log)
    con.close()
    assert caught.value.problems == by_ingest.value.problems
    assert str(caught.value) == str(by_ingest.value)
    assert lake_manifest(lake).entries == []
    assert [n for n in _tree(lake) if not n.startswith("_lake.")] == []


def test_lake_holds_what_ingest_counts_on_the_demo_logs(demo: DemoManifest,
                                                        tmp_path: Path) -> None:
    """Per UTC day, the lake's rows equal the requests the store's rollups count after ingest
    of the same logs, and the total equals the logs' line count."""
    logs = sorted(Path(f) for f in demo.files if Path(f).name.startswith("access.log"))[:4]
    lake = tmp_path / "lake"
    con = open_store(tmp_path / "a.duckdb")
    lines = 0
    for log in logs:
        add_to_lake(lake, log)
        ingest_file(con, log)
        opener = gzip.open if log.suffix == ".gz" else open
        with opener(log, "rb") as handle:
            lines += sum(1 for _ in handle)
    stored = dict(con.execute(
        "SELECT strftime(timezone('UTC', minute), '%Y-%m-%d'), sum(requests)::BIGINT "
        "FROM request_counts GROUP BY 1").fetchall())
    con.close()
    in_lake = dict(duckdb.sql(
        "SELECT regexp_extract(filename, 'date=([0-9-]+)', 1), count(*) FROM "
        f"read_parquet({lake_files(lake)!r}, filename = true, hive_partitioning = false) "
        "GROUP BY 1").fetchall())
    assert in_lake == stored
    assert sum(in_lake.values()) == lines


def _lake_add(lake: Path, path: Path, crash_at: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if crash_at:
        env[CRASH_AT] = crash_at
    return subprocess.run([sys.executable, "-m", "mysetlist_slo", "lake", "add", "--lake",
                           str(lake), "--max-bad-rows", "1", str(path)],
                          env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(name="lake_with_one_file")
def fixture_lake_with_one_file(demo: DemoManifest, tmp_path: Path) -> Path:
    """A lake holding one demo log."""
    lake = tmp_path / "lake"
    first = next(Path(f) for f in demo.files if Path(f).name == "access.log.3.gz")
    add_to_lake(lake, first)
    return lake


def test_killed_while_writing_leaves_the_lake_and_manifest_as_before(
        lake_with_one_file: Path, two_day_log: Path) -> None:
    """SIGKILL after Parquet was staged: the committed files, their bytes and the manifest are
    unchanged; the next open clears the staging; adding again counts the file once."""
    lake = lake_with_one_file
    before = _tree(lake)
    killed = _lake_add(lake, two_day_log, "lake-staged")
    assert killed.returncode == -9, killed.stderr
    assert any(lake.glob("_staging/*/requests/date=*/*.parquet"))  # it had written Parquet
    assert _committed(lake) == _committed_of(before)
    assert len(lake_manifest(lake).entries) == 1  # opening clears the crashed write
    assert _tree(lake) == before
    again = _lake_add(lake, two_day_log, None)
    assert again.returncode == 0, again.stderr
    entries = lake_manifest(lake).entries
    assert [e.file for e in entries].count(str(two_day_log)) == 1 and entries[-1].rows == 4
    assert len(lake_files(lake)) == 3


def test_killed_after_commit_is_rolled_forward_once(lake_with_one_file: Path,
                                                    two_day_log: Path) -> None:
    """SIGKILL after the commit record, between file moves: the next open finishes the add,
    and adding the file again is a no-op (its rows counted once)."""
    lake = lake_with_one_file
    killed = _lake_add(lake, two_day_log, "lake-moving")
    assert killed.returncode == -9, killed.stderr
    assert len(json.loads((lake / "_lake.json").read_text())["files"]) == 1
    entries = lake_manifest(lake).entries
    assert len(entries) == 2 and entries[-1].rows == 4
    assert not any((lake / "_staging").iterdir())
    again = _lake_add(lake, two_day_log, None)
    assert again.returncode == 0 and "already in the lake" in again.stderr
    rows = duckdb.sql(f"SELECT count(*) FROM read_parquet({lake_files(lake)!r}) "
                      "WHERE source_sha256 = ?",
                      params=[hashlib.sha256(two_day_log.read_bytes()).hexdigest()]).fetchall()
    assert rows == [(4,)]


@pytest.mark.parametrize(("argv", "code", "says"), [
    (["lake", "add", "FILE"], 2, "required: --lake"),
    (["lake", "add", "--lake", "LAKE", "--kind", "probes", "FILE"], 2, "invalid choice"),
    (["lake", "add", "--lake", "LAKE", "MISSING"], 1, "missing.log: no such file"),
    (["lake", "add", "--lake", "LAKE", "NOT_A_LAKE"], 1, "other: is a directory"),
    (["lake", "add", "--lake", "NOT_A_LAKE", "FILE"], 1, "not a lake"),
    (["lake", "list", "--lake", "NOT_A_LAKE"], 1, "not a lake"),
    (["lake", "add", "--lake", "s3://bucket/lake", "FILE"], 1, "object-store lakes"),
    (["rollup", "--lake", "s3://bucket/lake", "--out", "OUT"], 1, "lakes are local folders"),
    (["rollup", "--lake", "LAKE", "--out", "s3://bucket/out"], 1, "local folders"),
    (["ingest", "--kind", "rollups", "NOT_A_LAKE"], 1, "_rollup.json: missing"),
    (["ingest", "ROLLUPS"], 1, "is rollup output; load it with --kind rollups"),
    (["ingest", "--kind", "rollups", "FILE"], 1, "not a folder"),
    (["rollup", "--lake", "LAKE", "--out", "OUT", "--master", "local[2]"], 1,
     "add --engine spark"),
])
def test_cli_mistakes_are_one_line(argv: list[str], code: int, says: str, two_day_log: Path,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Missing --lake, an unknown kind, a missing file, a folder that is no lake, a remote
    lake, a file given as rollup output, a Spark setting without Spark: one line on stderr
    (lake commands: nothing on stdout), exit 2 (usage) or 1 (failed)."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("not a lake")
    (tmp_path / "rollups").mkdir()
    (tmp_path / "rollups" / "_rollup.json").write_text("{}")
    names = {"FILE": str(two_day_log), "LAKE": str(tmp_path / "lake"),
             "ROLLUPS": str(tmp_path / "rollups"),
             "MISSING": str(tmp_path / "missing.log"), "NOT_A_LAKE": str(other),
             "OUT": str(tmp_path / "out")}
    argv = [names.get(a, a) for a in argv] + ["--db", str(tmp_path / "s.duckdb")]
    if code == 2:
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    else:
        assert main(argv) == code
    captured = capsys.readouterr()
    error = captured.err.strip()
    assert says in error and len(error.splitlines()) <= 2, error
    if argv[0] == "lake":  # nothing else: no empty result table above the error
        assert not captured.out.strip(), captured.out


def test_a_non_lake_folder_is_refused_by_the_library(tmp_path: Path, two_day_log: Path) -> None:
    """A folder with other files and no manifest is not turned into a lake."""
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(LakeError, match="not a lake"):
        add_to_lake(tmp_path / "x", two_day_log, max_bad_rows=1)
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["keep.txt"]


def test_a_grown_log_is_read_on_from_where_it_was_added(tmp_path: Path) -> None:
    """The live log added, then added again after it grew: only the new lines are added (with
    their line numbers in the file), so every request is in the lake once."""
    lake, log = tmp_path / "lake", tmp_path / "access.log"
    log.write_text("\n".join(_line(*r) for r in REQUESTS[:2]) + "\n")
    add_to_lake(lake, log)
    with open(log, "a") as handle:
        handle.write("\n".join(_line(*r) for r in REQUESTS[2:]) + "\n")
    grown = add_to_lake(lake, log)
    assert (grown.rows, grown.skipped) == (2, False) and "read on from line 3" in grown.message
    assert add_to_lake(lake, log).skipped
    rows = duckdb.sql(f"SELECT target, line FROM read_parquet({lake_files(lake)!r}) "
                      "ORDER BY line").fetchall()
    assert rows == [(r[1], i) for i, r in enumerate(REQUESTS, start=1)]


def test_lines_written_while_the_log_is_added(tmp_path: Path, monkeypatch) -> None:
    """nginx writes on after the log's content was hashed and before it is read: the add
    holds only the content it registers, so the next add reads the new lines once."""
    lake, log = tmp_path / "lake", tmp_path / "access.log"
    log.write_text("\n".join(_line(*r) for r in REQUESTS[:2]) + "\n")
    hashed = writer.file_digest

    def written_on(path: Path) -> object:
        digest = hashed(path)
        with open(log, "a") as handle:
            handle.write("\n".join(_line(*r) for r in REQUESTS[2:]) + "\n")
        return digest

    with monkeypatch.context() as patch:
        patch.setattr(writer, "file_digest", written_on)
        assert add_to_lake(lake, log).rows == 2
    assert add_to_lake(lake, log).rows == len(REQUESTS) - 2
    rows = duckdb.sql(f"SELECT target, line FROM read_parquet({lake_files(lake)!r}) "
                      "ORDER BY line").fetchall()
    assert rows == [(r[1], i) for i, r in enumerate(REQUESTS, start=1)]


def test_a_log_rotated_while_it_is_added(tmp_path: Path, monkeypatch) -> None:
    """logrotate renames the log and nginx starts a new one after the content was hashed and
    before it is read: the add is refused and the lake holds nothing of it; adding both files
    afterwards holds every request once."""
    lake, log, rotated = tmp_path / "lake", tmp_path / "access.log", tmp_path / "access.log.1"
    log.write_text("\n".join(_line(*r) for r in REQUESTS[:2]) + "\n")
    hashed = writer.file_digest

    def rotated_on(path: Path) -> object:
        digest = hashed(path)
        log.rename(rotated)
        log.write_text("\n".join(_line(*r) for r in REQUESTS[2:]) + "\n")
        return digest

    with monkeypatch.context() as patch:
        patch.setattr(writer, "file_digest", rotated_on)
        with pytest.raises(IngestError, match="replaced or truncated while it was read"):
            add_to_lake(lake, log)
    assert lake_files(lake) == []
    add_to_lake(lake, rotated)
    add_to_lake(lake, log)
    rows = duckdb.sql(f"SELECT target FROM read_parquet({lake_files(lake)!r}) "
                      "ORDER BY ts").fetchall()
    assert rows == [(r[1],) for r in REQUESTS]


def test_a_log_added_mid_line_is_not_read_on(tmp_path: Path) -> None:
    """A log added while its last line had no newline cannot be read on without counting that
    line twice: refused in one error, the lake unchanged."""
    lake, log = tmp_path / "lake", tmp_path / "access.log"
    log.write_text("\n".join(_line(*r) for r in REQUESTS[:2]))
    add_to_lake(lake, log)
    before = _tree(lake)
    with open(log, "a") as handle:
        handle.write("\n" + _line(*REQUESTS[2]) + "\n")
    with pytest.raises(IngestError, match="had no newline yet"):
        add_to_lake(lake, log)
    assert _tree(lake) == before


def test_a_lake_written_by_another_tool_lists_its_files(tmp_path: Path) -> None:
    """Files in the lake's layout without a manifest (pyarrow, Spark) are the lake's files;
    a folder in neither shape is refused."""
    table = pa.table({name: pa.array([], column.type) for name, column in
                      zip(CONTRACT.names, CONTRACT, strict=True)})
    for day in ("2026-11-23", "2026-11-22"):
        (tmp_path / f"lake/requests/date={day}").mkdir(parents=True)
        pq.write_table(table, tmp_path / f"lake/requests/date={day}/part-0.parquet")
    assert lake_files(tmp_path / "lake") == [
        os.path.join(str(tmp_path / "lake"), f"requests/date={day}/part-0.parquet")
        for day in ("2026-11-22", "2026-11-23")]
    with pytest.raises(LakeError, match="not a lake"):
        lake_files(tmp_path)


def test_exports_land_like_logs(tmp_path: Path) -> None:
    """JSONL and Parquet request exports are added with the same columns: their region, cache
    status (normalised), duration in us, and each row in its UTC day."""
    stamps = [datetime(2026, 11, 22, 23, 59, tzinfo=UTC), datetime(2026, 11, 23, 0, 1, tzinfo=UTC)]
    parquet = tmp_path / "export.parquet"
    pq.write_table(pa.table({
        "timestamp": pa.array(stamps, pa.timestamp("ms", tz="UTC")), "path": ["/a", "/b?q=1"],
        "status": [200, 503], "duration_ms": [1.5, 2.0], "region": ["iad1", None]}), parquet)
    jsonl = tmp_path / "export.jsonl"
    jsonl.write_text(json.dumps({"timestamp": "2026-11-23T11:00:00+01:00", "path": "/c",
                                 "status": 200, "duration_ms": 3,
                                 "cache_status": "hit"}) + "\n")
    lake = tmp_path / "lake"
    assert add_to_lake(lake, parquet).rows == 2 and add_to_lake(lake, jsonl).rows == 1
    rows = duckdb.sql(
        "SELECT regexp_extract(filename, 'date=([0-9-]+)', 1), ts, target, status, duration_us, "
        f"region, cache_status FROM read_parquet({lake_files(lake)!r}, filename = true, "
        "hive_partitioning = false) ORDER BY ts").fetchall()
    assert rows == [
        ("2026-11-22", stamps[0], "/a", 200, 1500, "iad1", None),
        ("2026-11-23", stamps[1], "/b?q=1", 503, 2000, None, None),
        ("2026-11-23", datetime(2026, 11, 23, 10, tzinfo=UTC), "/c", 200, 3000, None, "HIT"),
    ]


def test_a_second_writer_is_told_the_lake_is_busy(two_day_log: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """While one process holds the writer lock, another add waits, then fails in one line,
    and a reader still gets the committed manifest."""
    import fcntl

    from mysetlist_slo.lake import layout

    lake = tmp_path / "lake"
    add_to_lake(lake, two_day_log, max_bad_rows=1)
    monkeypatch.setattr(layout, "WRITER_WAIT_S", 0.2)
    with open(lake / "_lake.lock", "rb+") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        other = tmp_path / "other.log"
        other.write_text(_line(*REQUESTS[0]) + "\n")
        with pytest.raises(LakeError, match="lake is busy"):
            add_to_lake(lake, other)
        assert len(lake_manifest(lake).entries) == 1
    assert add_to_lake(lake, other).rows == 1


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
def test_a_lake_file_gone_or_damaged_is_named_by_rollup(
        damage: str, two_day_log: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A committed file that was deleted or cut short since: `rollup` fails in one line naming
    that file, writes no output, and does not send the user to check the store."""
    lake, out = tmp_path / "lake", tmp_path / "out"
    add_to_lake(lake, two_day_log, max_bad_rows=1)
    victim = Path(lake_files(lake)[0])
    if damage == "deleted":
        victim.unlink()
    else:
        victim.write_bytes(victim.read_bytes()[:100])
    assert main(["rollup", "--lake", str(lake), "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert victim.name in error and "store" not in error, error
    assert len(error.splitlines()) <= 2, error
    assert not (out / "_rollup.json").exists()


_ENTRY = {"sha256": "a" * 64, "file": "access.log", "kind": "nginx", "bytes": 10, "rows": 1,
          "rejects": 0, "parquet": [f"requests/date=2026-11-23/{'a' * 64}.parquet"],
          "rejects_file": None, "first_ts": None, "last_ts": None,
          "added": "2026-11-26T12:00:00+00:00"}


@pytest.mark.parametrize(("document", "says"), [
    ("", "Expecting value"),
    ("[]", "not of type 'object'"),
    ('{"format": 1, "files": {"a": 1}}', "files"),
    (json.dumps({"format": 1, "files": [{**_ENTRY, "parquet": "abc"}]}), "parquet"),
    (json.dumps({"format": 1, "files": [{**_ENTRY, "rows": "1"}]}), "rows"),
    (json.dumps({"format": 1, "files": [{**_ENTRY, "parquet": ["../../outside.parquet"]}]}),
     "parquet"),
    (json.dumps({"format": 1, "files": [{**_ENTRY, "rejects_file": "/etc/passwd"}]}),
     "rejects_file"),
])
def test_a_damaged_manifest_is_one_typed_error(document: str, says: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest that is not JSON, or whose entries have the wrong shape or types, or name
    files outside the lake's layout: LakeError naming the manifest and the field, from the
    library and in one line from `lake list` and `rollup` (never a traceback)."""
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "_lake.json").write_text(document)
    with pytest.raises(LakeError, match="damaged manifest") as raised:
        lake_manifest(lake)
    assert says in str(raised.value)
    for argv in (["lake", "list", "--lake", str(lake)],
                 ["rollup", "--lake", str(lake), "--out", str(tmp_path / "out")]):
        assert main(argv) == 1
        error = capsys.readouterr().err.strip()
        assert "damaged manifest" in error and len(error.splitlines()) <= 2, error


def test_manifest_and_path_text_is_shown_not_obeyed(two_day_log: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Text from a manifest (a lake copied from elsewhere) and an output path are printed as
    written: console markup shown literally, escape sequences made visible, never sent."""
    lake = tmp_path / "lake"
    add_to_lake(lake, two_day_log, max_bad_rows=1)
    document = json.loads((lake / "_lake.json").read_text())
    document["files"][0].update(kind="[blink]x[/blink]", added="\x1b]0;owned\x07",
                                first_ts="[red]2026[/red]")
    (lake / "_lake.json").write_text(json.dumps(document))
    assert main(["lake", "list", "--lake", str(lake)]) == 0
    shown = capsys.readouterr().out
    assert "\x1b" not in shown and "\\x1b" in shown, shown
    assert "[blink]x[/blink]" in shown and "[red]2026" in shown, shown
    out = tmp_path / "[bold]rolled[/bold]"
    assert main(["rollup", "--lake", str(lake), "--out", str(out)]) == 0
    assert "[bold]rolled[/bold]" in capsys.readouterr().out


def test_a_lake_killed_while_being_created_can_be_added_to(two_day_log: Path,
                                                           tmp_path: Path) -> None:
    """A first `lake add` killed after taking the lock but before writing the manifest leaves
    only the lock file (and perhaps the manifest's temporary file): the next add makes the
    lake, rather than calling the folder someone else's."""
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "_lake.lock").touch()
    (lake / "._lake.json.0123abcd.tmp").write_text('{"format": 1, "fi')
    assert add_to_lake(lake, two_day_log, max_bad_rows=1).rows == 4
    assert len(lake_manifest(lake).entries) == 1
    assert not list(lake.glob("._lake.json.*.tmp"))


@pytest.fixture(name="synced")
def fixture_synced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths os.fsync is called on from now on, in order (the real fsync still runs)."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return synced


def test_staged_files_reach_the_disk_before_the_commit_record(
        two_day_log: Path, tmp_path: Path, synced: list[str]) -> None:
    """Every Parquet file of an add (rows and rejects) is flushed to disk (fsync) before its
    commit record is: after a power cut, a committed add never names a file the disk lost."""
    lake = tmp_path / "lake"
    result = add_to_lake(lake, two_day_log, max_bad_rows=1)
    commit = next(i for i, path in enumerate(synced) if Path(path).name.startswith(".COMMIT."))
    names = [Path(path).name for path in synced[:commit]]
    sha = Path(result.parquet[0]).stem
    assert names.count(f"{sha}.parquet") == len(result.parquet) + 1  # the days and the rejects


def test_rollup_output_reaches_the_disk_before_its_completion_file(
        two_day_log: Path, tmp_path: Path, synced: list[str]) -> None:
    """Every file of a rollup output is flushed to disk (fsync) before _rollup.json, which says
    the output is complete, is: after a power cut, a 'complete' output has all its files."""
    from mysetlist_slo.engine import rollup_lake

    lake, out = tmp_path / "lake", tmp_path / "out"
    add_to_lake(lake, two_day_log, max_bad_rows=1)
    rollup_lake(lake, out)
    done = next(i for i, path in enumerate(synced) if Path(path).name.startswith("._rollup.json"))
    written = {str(path) for path in out.rglob("*.parquet")}
    assert written and written <= set(synced[:done]), written - set(synced[:done])
