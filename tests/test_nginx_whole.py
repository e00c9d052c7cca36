"""The whole-file reader of the combined formats (DuckDB's CSV reader) stores exactly what the
line reader stores, and gives way to it for every file it cannot read whole and good."""

from __future__ import annotations

import gzip
import math
import random
import shutil
from pathlib import Path

import duckdb
import pytest
from test_nginx_split import GOOD, MALFORMED

import mysetlist_slo.store.ingest as ingest
from mysetlist_slo import ingest_file, open_store
from mysetlist_slo.config import load_config
from mysetlist_slo.errors import IngestError
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
         monkeypatch: pytest.MonkeyPatch, **options: object) -> tuple[dict, object, int]:
    """Ingest ``log`` into a new store (with the whole-file reader or without it); return
    the stored rows, the result or IngestError, and how many whole-file reads were kept."""
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
                      monkeypatch: pytest.MonkeyPatch, **options: object) -> tuple[int, object]:
    """Assert the two readers leave identical stores (rejects with their lines included) and
    outcomes; return the whole-file reads kept and the outcome."""
    fast, fast_outcome, kept = load(tmp_path, "whole", log, log_format, True, monkeypatch,
                                    **options)
    lines, line_outcome, _ = load(tmp_path, "lines", log, log_format, False, monkeypatch,
                                  **options)
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
    # an empty line, which DuckDB's CSV reader skips: that file is read by lines.
    assert kept == (MALFORMED[odd] != "")


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


@pytest.mark.parametrize("max_bad_rows", [0, 3, 10])
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
    assert kept == (max_bad_rows >= 4)  # a refused file keeps nothing
    if max_bad_rows >= 4:
        assert outcome.rejected == 4  # type: ignore[attr-defined]


def test_a_file_too_large_for_the_temporary_disk(tmp_path, monkeypatch) -> None:
    """The whole-file reader spills the file's validated rows to DuckDB's temporary directory:
    with less free disk there than half the file's content it reads by lines (the same store),
    with exactly half it reads whole."""
    log = tmp_path / "access.log"
    log.write_text("\n".join(good_lines(500)) + "\n")
    half = math.ceil(log.stat().st_size / 2)
    free = {"bytes": half - 1}
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage",
                        lambda path: real(path)._replace(free=free["bytes"]))
    assert assert_same_store(tmp_path / "short", log, COMBINED_TIMED, monkeypatch)[0] == 0
    free["bytes"] = half
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
