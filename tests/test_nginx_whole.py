"""The whole-file reader of the combined formats (DuckDB's CSV reader) stores exactly what the
line reader stores, and gives way to it for every file it cannot read whole and good."""

from __future__ import annotations

import gzip
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nginx_split import GOOD, MALFORMED

import mysetlist_slo.sources.nginx as nginx
import mysetlist_slo.store.ingest as ingest
from mysetlist_slo import ingest_file, open_store
from mysetlist_slo.config import load_config
from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._lines import DEFAULT_MAX_LINE_BYTES
from mysetlist_slo.sources.nginx import COMBINED, COMBINED_TIMED, CSV_PARTS, NginxSource

# Columns that differ between two loads of the same content (ids, clocks).
VOLATILE = {"ingest_id", "id", "loaded_at", "seconds", "continues_ingest"}


def good_lines(count: int, seed: int = 7) -> list[str]:
    """Return ``count`` well-formed timed lines with varied routes, statuses and timings."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        line = GOOD.replace("13:55:36", f"13:{i // 60 % 60:02d}:{i % 60:02d}")
        line = line.replace("/show/123", rng.choice(["/show/123", "/", "/api/votes/9",
                                                     "/artist/abc-def"]))
        line = line.replace(" 200 ", f" {rng.choice([200, 200, 404, 500, 502])} ")
        lines.append(line.replace("0.123 0.110", f"{rng.uniform(0, 2):.3f} -"
                                  if i % 5 == 0 else f"{rng.uniform(0, 2):.3f} 0.050"))
    return lines


def stored(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple]]:
    """Return every row of every table of the store, without ids and clocks, sorted."""
    tables = [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
    rows = {}
    for table in tables:
        columns = [name for (name,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position", [table]).fetchall() if name not in VOLATILE]
        select = ", ".join(f'"{c}"' for c in columns)
        rows[table] = sorted(con.execute(f'SELECT {select} FROM "{table}"').fetchall(),
                             key=repr)
    return rows


def load(tmp_path: Path, name: str, log: Path, log_format: str, whole: bool,
         monkeypatch: pytest.MonkeyPatch, split: bool = True,
         **options: object) -> tuple[dict, object, int]:
    """Ingest ``log`` into a new store (with the whole-file reader or without it, and then
    with the fast split or the regex alone); return the stored rows, the result or
    IngestError, and how many whole-file reads were kept."""
    kept = 0
    real = ingest._whole_file

    def counting(*args: object) -> object:
        nonlocal kept
        checked = real(*args)  # type: ignore[arg-type]
        kept += checked is not None
        return checked

    with monkeypatch.context() as patch:
        patch.setattr(ingest, "_whole_file", counting)
        if not whole:
            patch.setattr(NginxSource, "whole_file", lambda *args: None)
        if not split:  # NginxSource(split=False), as the CLI builds it by its format
            patch.setattr(nginx, "_split_sql", lambda fmt: None)
        con = open_store(tmp_path / f"{name}-{log.name}.duckdb")
        try:
            outcome: object = ingest_file(con, log, log_format=log_format,
                                          config=load_config(None), **options)
        except IngestError as exc:  # the error is compared too
            outcome = exc
        rows = stored(con)
        con.close()
    return rows, outcome, kept


def assert_same_store(tmp_path: Path, log: Path, log_format: str,
                      monkeypatch: pytest.MonkeyPatch, split: bool = True,
                      **options: object) -> tuple[int, object]:
    """Assert the two readers (the line reader with the fast split or the regex alone) leave
    identical stores (rejects with their lines included) and outcomes; return the whole-file
    reads kept and the outcome."""
    fast, fast_outcome, kept = load(tmp_path, "whole", log, log_format, True, monkeypatch,
                                    **options)
    lines, line_outcome, _ = load(tmp_path, "lines", log, log_format, False, monkeypatch,
                                  split, **options)
    assert fast == lines
    assert type(fast_outcome) is type(line_outcome)
    if isinstance(line_outcome, Exception):
        assert str(fast_outcome) == str(line_outcome)
    else:
        assert (fast_outcome.loaded, fast_outcome.rejected) == (  # type: ignore[attr-defined]
            line_outcome.loaded, line_outcome.rejected)  # type: ignore[attr-defined]
    return kept, line_outcome


@pytest.mark.parametrize("log_format", [COMBINED_TIMED, COMBINED])
def test_a_good_file_is_read_whole(tmp_path, monkeypatch, log_format) -> None:
    """A file of good lines is read whole (gzip too), and the store equals the line reader's."""
    lines = good_lines(3000)
    if log_format == COMBINED:
        lines = [line.rsplit('" ', 1)[0] + '"' for line in lines]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    assert assert_same_store(tmp_path, log, log_format, monkeypatch)[0] == 1
    packed = tmp_path / "access.log.1"  # gzip is found by content, not by name
    packed.write_bytes(gzip.compress(log.read_bytes()))
    assert assert_same_store(tmp_path, packed, log_format, monkeypatch)[0] == 1


@pytest.mark.parametrize("odd", range(len(MALFORMED)))
def test_an_odd_line_among_good_ones(tmp_path, monkeypatch, odd: int) -> None:
    """Each odd or malformed line of the split's tests, placed among good lines: the store,
    the rejects (with their line numbers) and the verdict equal the line reader's."""
    lines = good_lines(200)
    lines.insert(137, MALFORMED[odd])
    log = tmp_path / "odd.log"
    log.write_text("\n".join(lines) + "\n")
    kept, _ = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch, max_bad_rows=5)
    # The whole-file reader reads every one of these lines itself (naming the rejects), but
    # an empty line, which DuckDB's CSV reader skips, and a carriage return, which it reads as
    # a line's end: those files are read by lines.
    assert kept == (MALFORMED[odd] != "" and "\r" not in MALFORMED[odd])


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbf",  # a byte-order mark first
    b"\r\n",  # Windows line ends
    b"\n\n",  # an empty line
    b"x" * (70 << 10) + b"\n",  # a line past the 64 KiB limit
    GOOD.replace("(X11)", "x" * (70 << 10)).encode() + b"\n",  # the same, with its quotes
    b"\xff\xfe not UTF-8\n",
    GOOD.replace("(X11)", '"' * CSV_PARTS).encode() + b"\n",  # more parts than read
], ids=["bom", "crlf", "empty-line", "long-line", "long-good-line", "not-utf8",
        "extra-quotes"])
def test_what_the_csv_reader_cannot_read(tmp_path, monkeypatch, content: bytes) -> None:
    """Bytes the CSV reader would read otherwise than the line reader (or not at all) leave
    the file to the line reader; the store is the same as with the line reader alone."""
    body = ("\n".join(good_lines(300)) + "\n").encode()
    if content.startswith(b"\xef\xbb\xbf"):
        data = content + body
    elif content == b"\r\n":
        data = body.replace(b"\n", b"\r\n")
    else:
        cut = body.index(b"\n", len(body) // 2) + 1
        data = body[:cut] + content + body[cut:]
    log = tmp_path / "access.log"
    log.write_bytes(data)
    kept, _ = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch, max_bad_rows=5)
    # Both readers drop a leading byte-order mark; everything else is left to the line reader.
    assert kept == content.startswith(b"\xef\xbb\xbf")


def test_a_path_duckdb_would_read_as_a_pattern(tmp_path, monkeypatch) -> None:
    """A file name with glob characters is read by lines (read_csv would expand it) and the
    other files the pattern would match are not read."""
    lines = good_lines(50)
    (tmp_path / "access1.log").write_text("\n".join(lines) + "\n")
    log = tmp_path / "access[1].log"
    log.write_text("\n".join(lines[:10]) + "\n")
    kept, _ = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch)
    assert kept == 0
    con = open_store(tmp_path / "check.duckdb")
    assert ingest_file(con, log, config=load_config(None)).loaded == 10
    con.close()


@pytest.mark.parametrize("max_bad_rows", [0, 3, 4, 10, 0.0099, 0.01])
def test_repeated_rejects_are_named_by_line(tmp_path, monkeypatch, max_bad_rows) -> None:
    """The same bad line three times and another bad one: every reject is named by its own
    line, and the limit's verdict (refused with the first problems, or stored) is the line
    reader's, word for word."""
    lines = good_lines(400)
    bad = GOOD.replace(" 200 ", " abc ")
    for at in (5, 170, 390):
        lines.insert(at, bad)
    lines.insert(250, GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[99/Oct/2026:13:55:36 +0000]"))
    log = tmp_path / "bad.log"
    log.write_text("\n".join(lines) + "\n")
    kept, outcome = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch,
                                      max_bad_rows=max_bad_rows)
    # 4 rejects of 404 records: a count of 4 or more is met, and a ratio of 1 % (4.04); 0.99 %
    # (3.99) is refused once all are counted, the lower counts as soon as they are passed.
    accepted = max_bad_rows >= 4 or max_bad_rows == 0.01
    assert kept == (max_bad_rows >= 4 or isinstance(max_bad_rows, float))
    assert isinstance(outcome, IngestError) != accepted
    if accepted:
        assert outcome.rejected == 4  # type: ignore[attr-defined]


def test_a_file_too_large_for_the_temporary_disk(tmp_path, monkeypatch) -> None:
    """The whole-file reader writes the file's validated rows to DuckDB's temporary directory:
    with less free disk there than a quarter of the file's content it reads by lines (the
    same store), with exactly a quarter it reads whole."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(good_lines(500)) + "\n")
    quarter = math.ceil(log.stat().st_size / 4)
    free = {"bytes": quarter - 1}
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: real(path)._replace(free=free["bytes"]))
    assert assert_same_store(tmp_path / "short", log, COMBINED_TIMED, monkeypatch)[0] == 0
    free["bytes"] = quarter
    assert assert_same_store(tmp_path / "enough", log, COMBINED_TIMED, monkeypatch)[0] == 1


def test_too_many_rejects_to_find(tmp_path, monkeypatch) -> None:
    """Past the number of rejects the whole-file reader finds itself, the file is read by
    lines, with the same result."""
    monkeypatch.setattr(ingest, "_LOCATED_AT_MOST", 2)
    lines = good_lines(100)
    for at in (10, 20, 30):
        lines.insert(at, GOOD.replace(" 200 ", f" x{at} "))
    log = tmp_path / "bad.log"
    log.write_text("\n".join(lines) + "\n")
    kept, outcome = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch,
                                      max_bad_rows=10)
    assert kept == 0 and outcome.rejected == 3  # type: ignore[attr-defined]


def padded(line: str, size: int) -> str:
    """Return ``line`` with its user agent lengthened to ``size`` bytes in all."""
    return line.replace("(X11)", "(X11)" + "y" * (size - len(line.encode())))


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_a_first_line_one_byte_past_the_limit(tmp_path, monkeypatch, packed) -> None:
    """A good line one byte longer than the limit, first in the file (where DuckDB's reader
    starts a chunk and allows one byte more than elsewhere): the line reader's reject, not a
    stored request."""
    long = padded(GOOD, DEFAULT_MAX_LINE_BYTES + 1)
    data = ("\n".join([long, *good_lines(50)]) + "\n").encode()
    log = tmp_path / "long.log"
    log.write_bytes(gzip.compress(data) if packed else data)
    kept, outcome = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch,
                                      max_bad_rows=1)
    assert kept == 0 and outcome.rejected == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(("shown", "whole"), [(False, True), (True, True), (False, False)],
                         ids=["quiet", "progress-bar", "by-lines"])
def test_ctrl_c_during_the_statement(tmp_path, monkeypatch, shown, whole) -> None:
    """Ctrl-C while DuckDB reads the whole file (or checks a batch of lines) is a
    KeyboardInterrupt (the CLI's "interrupted", exit 130), not DuckDB's RuntimeError; nothing
    is stored and the store reads the file afterwards. (On a busy machine the signal can come
    after the statement: the file is then made longer and the test tried again.)"""
    real = ingest._check_batch
    for attempt, count in enumerate((200_000, 600_000, 1_500_000)):
        log = tmp_path / f"access-{attempt}.log"
        log.write_text("\n".join(good_lines(count)) + "\n")
        con = open_store(tmp_path / f"store-{attempt}.duckdb")
        stopped = []

        def interrupted(*args: object, **kwargs: object) -> object:
            timer = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            try:
                return real(*args, **kwargs)  # type: ignore[arg-type]
            except BaseException as exc:
                stopped.append(exc)  # noqa: B023 (read before the next attempt defines it)
                raise
            finally:
                timer.join()

        with monkeypatch.context() as patch:
            patch.setattr(ingest, "_check_batch", interrupted)
            if not whole:
                patch.setattr(NginxSource, "whole_file", lambda *args: None)
            with pytest.raises(KeyboardInterrupt):
                ingest_file(con, log, config=load_config(None),
                            progress=(lambda done: None) if shown else None)
        assert con.execute("SELECT count(*) FROM ingests").fetchone() == (0,)
        if stopped:
            assert ingest_file(con, log, config=load_config(None)).loaded == count
            con.close()
            return
        con.close()
    pytest.fail("the statement ended before the signal each time")


def test_a_log_deleted_while_it_is_read_whole(tmp_path, monkeypatch) -> None:
    """A log deleted (rotated away, not replaced) during the whole-file statement, with a
    progress bar: one IngestError saying so, nothing stored (it was a FileNotFoundError from
    the bar's last update)."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(good_lines(300)) + "\n")
    real = ingest._check_batch

    def then_deleted(*args: object, **kwargs: object) -> object:
        checked = real(*args, **kwargs)  # type: ignore[arg-type]
        log.unlink()
        return checked

    monkeypatch.setattr(ingest, "_check_batch", then_deleted)
    con = open_store(tmp_path / "store.duckdb")
    with pytest.raises(IngestError, match="replaced or truncated while it was read"):
        ingest_file(con, log, config=load_config(None), progress=lambda done: None)
    assert con.execute("SELECT count(*) FROM ingests").fetchone() == (0,)
    con.close()


def test_a_refusal_past_the_first_batch(tmp_path, monkeypatch) -> None:
    """A file longer than one batch of the line reader (16 MiB) with rejects beyond the limit
    early and late: refused with the line reader's words (it stops at the batch that passes
    the limit, so it counts "2+" where the whole file holds 3)."""
    lines = good_lines(120_000)
    bad = GOOD.replace(" 200 ", " abc ")
    for at in (10, 20, 119_000):
        lines.insert(at, bad)
    log = tmp_path / "big.log"
    log.write_text("\n".join(lines) + "\n")
    assert log.stat().st_size > 16 << 20
    _, outcome = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch, max_bad_rows=1)
    assert isinstance(outcome, IngestError) and "2+ bad records" in str(outcome)


def test_a_relative_path_under_a_folder_named_tilde(tmp_path, monkeypatch) -> None:
    """``~/access.log`` relative to the working folder (a folder named "~", as a misquoted
    script makes) is that file, as Python opens it, not the home folder's that DuckDB's
    reader would expand it to."""
    lines = good_lines(60)
    home = tmp_path / "home"
    home.mkdir()
    (home / "access.log").write_text("\n".join(line.replace('"GET /', '"GET /home/')
                                               for line in lines) + "\n")
    (tmp_path / "work" / "~").mkdir(parents=True)
    (tmp_path / "work" / "~" / "access.log").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path / "work")
    con = open_store(tmp_path / "store.duckdb")
    assert ingest_file(con, "~/access.log", config=load_config(None)).loaded == 60
    routes = {route for (route,) in con.execute("SELECT DISTINCT route FROM request_counts")
              .fetchall()}
    con.close()
    assert not any(route.startswith("/home") for route in routes), routes


# Pieces a hostile log mixes into lines: the separators the formats cut at, escapes, bytes a
# reader might end a line at or drop (NUL, Unicode line separators, a byte-order mark), bytes
# that are not UTF-8, and a carriage return.
ODD_TEXT = ['"', " ", "  ", "\\", "\\x22", "[", "]", "-", "\t", "\x00", "\u2028", "\u0085",
            "\ufeff", "é", "日", "\x0b", "\x0c", "0", "abc", ", ", " : "]
ODD_BYTES = [b"\xff", b"\xc3", b"\xef\xbb\xbf", b"\r"]


@st.composite
def odd_lines(draw: st.DrawFn) -> bytes:
    """Return one line (bytes, no newline): a good or malformed line, perhaps cut, with odd
    pieces put in at random places."""
    line = draw(st.sampled_from([GOOD, *MALFORMED])).encode()
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(line)))
        piece = draw(st.sampled_from([*map(str.encode, ODD_TEXT), *ODD_BYTES]))
        line = line[:at] + piece + line[at:]
    if draw(st.booleans()):
        line = line[:draw(st.integers(0, len(line)))]
    return line


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(odd=st.lists(odd_lines(), min_size=1, max_size=6),
       places=st.lists(st.integers(0, 80), min_size=7, max_size=7),
       limit=st.sampled_from([0, 3, 100, 0.05]), packed=st.booleans(),
       log_format=st.sampled_from([COMBINED_TIMED, COMBINED]), split=st.booleans())
def test_random_odd_lines_among_good_ones(odd: list[bytes], places: list[int],
                                          limit: int | float, packed: bool, log_format: str,
                                          split: bool) -> None:
    """Any mixture of good lines and odd ones (each perhaps more than once, at other places),
    in either combined format: the whole-file reader and the line reader (with the split or
    the regex alone) leave the same store and the same verdict."""
    lines = [line.encode() for line in good_lines(80)]
    if log_format == COMBINED:  # the good lines without their timings
        lines = [line.rsplit(b'" ', 1)[0] + b'"' for line in lines]
    for line, at in zip([*odd, odd[0]], places, strict=False):  # the first one twice
        lines.insert(at, line)
    data = b"\n".join(lines) + b"\n"
    with tempfile.TemporaryDirectory() as folder, pytest.MonkeyPatch.context() as patch:
        log = Path(folder) / "access.log"
        log.write_bytes(gzip.compress(data) if packed else data)
        assert_same_store(Path(folder), log, log_format, patch, split, max_bad_rows=limit)


def test_rejects_too_large_to_hold(tmp_path, monkeypatch) -> None:
    """Rejects whose text passes a line reader's batch (16 MiB: 300 bad lines of 60 KB) are
    not fetched into memory to be found by text (the peak grew with them: 1.8 GiB for 3,000
    such lines, 0.8 by lines); the file is read by lines, with the same result."""
    lines = good_lines(100)
    for at in range(300):
        lines.insert(at // 3, padded(GOOD.replace(" 200 ", f" x{at} "), 60_000))
    log = tmp_path / "long-rejects.log"
    log.write_text("\n".join(lines) + "\n")
    kept, outcome = assert_same_store(tmp_path, log, COMBINED_TIMED, monkeypatch,
                                      max_bad_rows=300)
    assert kept == 0 and outcome.rejected == 300  # type: ignore[attr-defined]


def test_the_validated_rows_go_to_a_parquet_file_that_is_removed(tmp_path, monkeypatch) -> None:
    """A whole file's validated rows are a Parquet file in DuckDB's temporary directory, read
    through the view ``checked`` while the rollups are made (a table of them all grows memory
    with the file); the file, the view and the directory made for it are gone afterwards,
    also when the load fails, and the same connection loads the file again."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(good_lines(300)) + "\n")
    store = tmp_path / "store.duckdb"
    temp = Path(f"{store}.tmp")  # DuckDB's default temporary directory of a store file
    seen: list[tuple[list[str], int, int]] = []
    real = ingest.add_rollups

    def rollups(con: duckdb.DuckDBPyConnection, *args: object) -> None:
        spills = sorted(p.name for p in temp.glob("whole-file-*.parquet"))
        rows = con.execute(f"SELECT count(*) FROM read_parquet('{temp}/*.parquet')").fetchone()
        views = con.execute("SELECT count(*) FROM duckdb_views() "
                            "WHERE temporary AND view_name = 'checked'").fetchone()
        seen.append((spills, rows[0] if rows else -1, views[0] if views else -1))
        if len(seen) == 1:
            raise KeyboardInterrupt  # the first load stops in the middle
        real(con, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(ingest, "add_rollups", rollups)
    con = open_store(store)
    with pytest.raises(KeyboardInterrupt):
        ingest_file(con, log, config=load_config(None))
    assert not temp.exists()
    result = ingest_file(con, log, config=load_config(None))
    assert result.loaded == 300
    assert not temp.exists()
    assert [(len(spills), rows, views) for spills, rows, views in seen] == [(1, 300, 1)] * 2
    assert con.execute("SELECT sum(requests) FROM request_counts").fetchone() == (300,)
    con.close()


def test_a_killed_ingests_spill_file_is_removed(tmp_path) -> None:
    """A spill file left by an ingest whose process is gone (killed) is removed by the next
    whole-file read of the store; one of a running process, or named otherwise, stays."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(good_lines(50)) + "\n")
    store = tmp_path / "store.duckdb"
    temp = Path(f"{store}.tmp")
    temp.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    stale = temp / f"whole-file-{dead}-0123.parquet"
    alive = temp / f"whole-file-{os.getpid()}-4567.parquet"
    other = temp / "whole-file-notes.parquet"
    for path in (stale, alive, other):
        path.write_bytes(b"PAR1")
    con = open_store(store)
    assert ingest_file(con, log, config=load_config(None)).loaded == 50
    con.close()
    assert (stale.exists(), alive.exists(), other.exists()) == (False, True, True)
