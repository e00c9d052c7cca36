"""Bad input: strict by default (nothing stored, problems listed as file:line: field: problem),
or accepted within --max-bad-rows with every rejected record kept with its reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import table_counts, timed_line

from mysetlist_slo import IngestError, ingest_file

GOOD = [timed_line(time=f"10/Nov/2026:13:55:{s:02d} +0000") for s in range(10)]


def assert_strict_rejection(store, path: Path, expected: list[str]) -> IngestError:
    """Ingest strictly; the error must list ``expected`` problems and the store stay as it was."""
    before = table_counts(store)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    text = str(caught.value)
    for problem in expected:
        assert f"{path}:{problem}" in text, text
    assert table_counts(store) == before
    return caught.value


def stored_rejects(store) -> list[tuple[int, str, str, bytes]]:
    return store.execute("SELECT line, field, problem, raw FROM rejects ORDER BY line").fetchall()


def test_truncated_line(store, write_log) -> None:
    """A line cut in the middle is named with the field where it breaks off."""
    cut = GOOD[0][:60]
    path = write_log("access.log", [*GOOD[:3], cut, *GOOD[3:]])
    assert_strict_rejection(store, path, ["4: $request: expected"])
    result = ingest_file(store, path, max_bad_rows=1)
    assert (result.loaded, result.rejected) == (10, 1)
    ((line, field, problem, raw),) = stored_rejects(store)
    assert (line, field, raw) == (4, "$request", cut.encode())
    assert "truncated" in problem


def test_wrong_types(store, write_log) -> None:
    """Non-numeric status, request time and byte count are each named."""
    path = write_log("access.log", [GOOD[0], timed_line(status="OK"), timed_line(rt="fast"),
                                    timed_line(nbytes="lots"), timed_line(status=999)])
    assert_strict_rejection(store, path, [
        "2: $status: not an integer: 'OK'",
        "3: $request_time: not a number: 'fast'",
        "4: $body_bytes_sent: not a byte count: 'lots'",
        "5: $status: not an HTTP status (100-599): '999'",
    ])


def test_negative_duration(store, write_log) -> None:
    """A negative request time is refused, never clamped to zero."""
    path = write_log("access.log", [GOOD[0], timed_line(rt="-0.500")])
    assert_strict_rejection(store, path, ["2: $request_time: negative duration: '-0.500'"])


def test_bad_time(store, write_log) -> None:
    """An unreadable $time_local is named with the expected shape."""
    path = write_log("access.log", [timed_line(time="yesterday at noon")])
    assert_strict_rejection(store, path, ["1: $time_local: not a time like"])


def test_non_utf8_bytes(store, write_log) -> None:
    """Raw bytes that are not UTF-8 make a reject that keeps the bytes as they were."""
    bad = timed_line(path="/artist/caf\xe9").encode("latin-1")
    path = write_log("access.log", [GOOD[0], bad, GOOD[1]])
    assert_strict_rejection(store, path, ["2: line: not valid UTF-8"])
    result = ingest_file(store, path, max_bad_rows=1)
    assert (result.loaded, result.rejected) == (2, 1)
    assert stored_rejects(store)[0][3] == bad


def test_empty_file(store, tmp_path: Path) -> None:
    """An empty file, plain or gzip, is an error, not a successful load of nothing."""
    (tmp_path / "access.log").write_bytes(b"")
    (tmp_path / "access.log.2.gz").write_bytes(gzip.compress(b""))
    for name in ("access.log", "access.log.2.gz"):
        with pytest.raises(IngestError, match=r"empty|no records"):
            ingest_file(store, tmp_path / name, kind="nginx")
    assert table_counts(store)["ingests"] == 0


def test_one_megabyte_line(store, write_log) -> None:
    """A 1 MB line is reported with its size and does not stop the rest of the file."""
    huge = timed_line(path="/" + "a" * (1 << 20))
    path = write_log("access.log", [GOOD[0], huge, GOOD[1]])
    assert_strict_rejection(store, path, ["2: line: longer than 65536 bytes"])
    result = ingest_file(store, path, max_bad_rows=1)
    assert (result.loaded, result.rejected) == (2, 1)
    (line, _field, problem, raw), = stored_rejects(store)
    assert line == 2 and str(len(huge)) in problem
    assert raw == huge.encode()[:len(raw)] and len(raw) >= 4096


def test_timestamp_without_zone_in_export(store, write_log) -> None:
    """An export timestamp without an offset cannot be placed in time: refused, not guessed."""
    rows = [{"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": 200},
            {"timestamp": "2026-11-10T10:00:00", "path": "/", "status": 200}]
    path = write_log("requests.jsonl", [json.dumps(r) for r in rows])
    assert_strict_rejection(store, path, ["2: timestamp: timestamp has no time zone offset"])


def test_missing_csv_column(store, write_log) -> None:
    """A CSV without a required column fails at its header, naming the column."""
    path = write_log("requests.csv", ["timestamp,path,duration_ms", "2026-11-10T10:00:00Z,/,5"])
    with pytest.raises(IngestError, match="line 1: missing required column 'status'"):
        ingest_file(store, path)


def test_missing_json_key_and_wrong_record_shape(store, write_log) -> None:
    """Per-record problems in JSON Lines: a missing key, a non-object, broken JSON."""
    path = write_log("requests.jsonl", [
        json.dumps({"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": 200}),
        json.dumps({"timestamp": "2026-11-10T10:00:00Z", "path": "/"}),
        "[1, 2]",
        '{"timestamp": "2026-11-10T10:0',
    ])
    assert_strict_rejection(store, path, ["2: status: missing", "3: line: expected a JSON object",
                                          "4: line: not valid JSON"])


def test_naive_parquet_timestamps(store, tmp_path: Path) -> None:
    """A Parquet timestamp column without a zone is refused row by row."""
    path = tmp_path / "requests.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([0], pa.timestamp("us")),
                             "path": ["/"], "status": [200]}), path)
    assert_strict_rejection(store, path, ["1: timestamp: timestamp has no time zone"])


def test_ratio_limit(store, write_log) -> None:
    """A ratio limit counts against all records of the file."""
    path = write_log("access.log", [*GOOD, timed_line(status="x")])  # 1 bad in 11
    # 5 % of the at most 12 records 11 lines can hold is 0: refused as soon as it is seen.
    with pytest.raises(IngestError, match=r"1\+ bad records, more than 0.05 of the at most 12"):
        ingest_file(store, path, max_bad_rows=0.05)
    # 10 % of at most 20 records could allow 2 bad ones; of the 19 there are, it allows 1.
    with pytest.raises(IngestError, match="2 of 19 records are bad"):
        ingest_file(store, write_log("b.log", [*GOOD, *GOOD[:7], timed_line(status="x"),
                                               GOOD[0] + "x"]), max_bad_rows=0.1)
    assert ingest_file(store, path, max_bad_rows=0.1).rejected == 1


def test_first_problems_listed_then_counted(store, write_log) -> None:
    """With many bad lines the error lists the first ten and counts the rest."""
    path = write_log("access.log", [timed_line(status="x")] * 25 + GOOD)
    error = assert_strict_rejection(store, path, [f"{n}: $status" for n in range(1, 11)])
    assert f"{path}:11:" not in str(error)
    assert "more" in str(error)


@pytest.mark.parametrize(("value", "problem"), [
    ("nan", "not a finite number"), ("inf", "not a finite number"),
    ("1e13", "longer than a day"), ("-3", "negative duration"), ("fast", "not a number"),
])
def test_impossible_durations_are_rejects_not_crashes(store, write_log, value: str,
                                                      problem: str) -> None:
    """NaN, infinity and absurd durations are named rejects, never a crash or a stored number."""
    rows = [{"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": 200, "duration_ms": 5},
            {"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": 200,
             "duration_ms": value}]
    path = write_log("r.jsonl", [json.dumps(r) for r in rows])
    assert_strict_rejection(store, path, [f"2: duration_ms: {problem}"])


@pytest.mark.parametrize(("field", "value", "problem"), [
    ("timestamp", "2026-03-01", "timestamp has no time zone offset"),  # "-01" is no zone
    ("timestamp", "2026-03-01T10:00", "timestamp has no time zone offset"),
    ("status", "200.6", "not an integer"),
    ("bytes", "12.5", "not a byte count"),
])
def test_values_that_would_be_bent_are_refused(store, write_log, field: str, value: str,
                                               problem: str) -> None:
    """A date without a time, a fractional status or byte count is refused, not rounded."""
    row = {"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": "200", "bytes": "5"}
    row[field] = value
    path = write_log("r.csv", [",".join(row), ",".join(row.values())])
    assert_strict_rejection(store, path, [f"2: {field}: {problem}"])


def test_epoch_times_out_of_range(store, write_log) -> None:
    """Unix times are checked to fall between 1970 and 2100 (seconds read as ms, and so on)."""
    from mysetlist_slo.sources import ExportOptions

    rows = [{"timestamp": 1_763_000_000, "path": "/", "status": 200},
            {"timestamp": 1_763_000_000_000, "path": "/", "status": 200},
            {"timestamp": "nan", "path": "/", "status": 200}]
    path = write_log("r.jsonl", [json.dumps(r) for r in rows])
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, options=ExportOptions(time_format="epoch_s"))
    assert f"{path}:2: timestamp: not a Unix time between 1970 and 2100" in str(caught.value)
    assert f"{path}:3: timestamp" in str(caught.value)


def test_parquet_with_its_own_line_column(store, tmp_path: Path) -> None:
    """A file column called "line" does not stand in for the row number."""
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"timestamp": pa.array([0, 0, 0], pa.timestamp("us", tz="UTC")),
                             "path": ["/a", "/b", "/c"], "status": [200, 200, 900],
                             "line": [90, 91, 92]}), path)
    assert_strict_rejection(store, path, ["3: status: not an HTTP status"])


def test_csv_quoted_newlines_and_byte_order_mark(store, write_log) -> None:
    """A record spanning lines is named by the line it starts on; a BOM is not a column name."""
    path = write_log("r.csv", [
        "\ufefftimestamp,path,status,user_agent",
        '2026-11-10T10:00:00Z,/,200,"two\nlines"',
        "2026-11-10T10:00:00Z,/,oops,x",
    ])
    assert_strict_rejection(store, path, ["4: status: not an integer: 'oops'"])


def test_a_folder_is_named_as_a_folder(store, tmp_path) -> None:
    """ingest_file of a folder that is no Next.js build says it is a folder (not "no such
    file", which sends the user looking for a typo) and stores nothing."""
    folder = tmp_path / "logs"
    folder.mkdir()
    with pytest.raises(IngestError, match="logs: is a folder, not a file"):
        ingest_file(store, folder)
    assert table_counts(store)["ingests"] == 0
