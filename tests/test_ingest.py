"""The ingest registry: content hashes, idempotent loads, row counts, one transaction per file."""

from __future__ import annotations

import gzip
import hashlib
from datetime import UTC, datetime

import pytest
from conftest import table_counts, timed_line

from mysetlist_slo import ingest_file, ingest_files, ingest_registry
from mysetlist_slo.errors import IngestError

LINES = [timed_line(time=f"10/Nov/2026:13:{m:02d}:00 +0000") for m in range(20)]


def test_registry_records_each_file(store, write_log) -> None:
    """Hash, kind, counts, time range and load time are recorded per file."""
    path = write_log("access.log", [*LINES, timed_line(status="x")])
    result = ingest_file(store, path, max_bad_rows=1)
    (row,) = ingest_registry(store).to_dict("records")
    assert row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (row["kind"], row["loaded"], row["rejected"]) == ("nginx", 20, 1)
    assert row["first_ts"] == datetime(2026, 11, 10, 13, 0, tzinfo=UTC)
    assert row["last_ts"] == datetime(2026, 11, 10, 13, 19, tzinfo=UTC)
    assert row["id"] == result.ingest_id


def test_same_content_twice_is_a_noop(store, write_log, tmp_path) -> None:
    """Loading the same content again, even renamed or gzipped by logrotate, changes nothing."""
    path = write_log("access.log.1", LINES)
    ingest_file(store, path)
    before = table_counts(store)
    again = ingest_file(store, path)
    assert again.skipped and again.loaded == 0 and "already loaded" in again.message
    rotated = tmp_path / "access.log.2.gz"
    rotated.write_bytes(gzip.compress(path.read_bytes()))
    assert ingest_file(store, rotated).skipped
    assert table_counts(store) == before


def test_one_bad_file_does_not_stop_the_others(store, write_log) -> None:
    """ingest_files loads every good file and returns the error of the bad one."""
    good1 = write_log("a.log", LINES[:10])
    bad = write_log("b.log", [timed_line(status="x")])
    good2 = write_log("c.log", LINES[10:])
    outcomes = ingest_files(store, [good1, bad, good2])
    assert [type(o).__name__ for o in outcomes] == ["IngestResult", "IngestError",
                                                   "IngestResult"]
    assert isinstance(outcomes[1], IngestError) and outcomes[1].file == str(bad)
    assert store.execute("SELECT sum(requests) FROM request_counts").fetchall() == [(20,)]


def test_overlapping_files_add_up_per_minute(store, write_log) -> None:
    """Two files with requests in the same minute are summed when read."""
    ingest_file(store, write_log("a.log", [timed_line(time="10/Nov/2026:13:00:01 +0000")]))
    ingest_file(store, write_log("b.log", [timed_line(time="10/Nov/2026:13:00:59 +0000")] * 2))
    rows = store.execute("SELECT minute, sum(requests) FROM request_counts GROUP BY 1").fetchall()
    assert rows == [(datetime(2026, 11, 10, 13, 0, tzinfo=UTC), 3)]


def test_a_grown_log_is_read_on_not_counted_twice(store, tmp_path) -> None:
    """access.log loaded at 3 lines, again at 5, then rotated and gzipped: 5 requests in all,
    and a bad line added later is reported with its own line number in the whole file."""
    log = tmp_path / "access.log"
    log.write_text("".join(line + "\n" for line in LINES[:3]))
    assert ingest_file(store, log).loaded == 3
    log.write_text("".join(line + "\n" for line in LINES[:5]))
    grown = ingest_file(store, log)
    assert (grown.loaded, grown.skipped) == (2, False)
    assert "the first 3 lines were loaded before" in grown.message
    rotated = tmp_path / "access.log.2.gz"
    rotated.write_bytes(gzip.compress(log.read_bytes()))
    assert ingest_file(store, rotated).skipped
    assert store.execute("SELECT sum(requests) FROM request_counts").fetchall() == [(5,)]
    log.write_text(log.read_text() + timed_line(status="x") + "\n")
    with pytest.raises(IngestError, match=r"access.log:6: \$status"):
        ingest_file(store, log)


def test_corrupt_gzip_is_a_clear_error(store, tmp_path) -> None:
    """A truncated or corrupt gzip file is refused with a reason, never a traceback."""
    whole = gzip.compress(("\n".join(LINES) + "\n").encode() * 50)
    (tmp_path / "cut.log.2.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "junk.log.3.gz").write_bytes(b"\x1f\x8bnot gzip at all")
    for name in ("cut.log.2.gz", "junk.log.3.gz"):
        with pytest.raises(IngestError, match="corrupt or truncated gzip"):
            ingest_file(store, tmp_path / name)


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_progress_reports_bytes_read(store, tmp_path, newline) -> None:
    """The progress callback (what the CLI's bar shows) rises to the file size: batch by
    batch when lines are read in batches (a CRLF log), and from DuckDB's progress through
    the statement when the whole file is read at once (how often then depends on time)."""
    line = timed_line() + newline
    path = tmp_path / "big.log"
    path.write_bytes(line.encode() * (40_000_000 // len(line)))
    seen: list[int] = []
    ingest_file(store, path, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size
    if newline == "\r\n":
        assert len(seen) >= 3
