"""nginx access logs: the default format, custom log_format strings, gzip, rotation, real logs."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import timed_line

from mysetlist_slo import ConfigError, IngestError, ingest_file
from mysetlist_slo.sources import parse_requests
from mysetlist_slo.sources.nginx import COMBINED, compile_log_format


def read_all(path: Path, log_format: str | None = None) -> tuple[list[dict], list]:
    """Parse a log without storing it: canonical rows as dicts, and rejects."""
    rows, rejects = parse_requests(path, kind="nginx", log_format=log_format)
    return rows.to_pylist(), rejects


def test_timed_combined_line_is_parsed_field_by_field(write_log) -> None:
    """Every field of a timed combined line lands in its canonical column, times in UTC."""
    path = write_log("access.log", [timed_line(time="10/Nov/2026:13:55:36 -0700",
                                               path="/artist/radiohead?tab=shows",
                                               status=503, rt="1.234", urt="1.200",
                                               nbytes=2326)])
    rows, rejects = read_all(path)
    assert rejects == []
    (row,) = rows
    # -0700 means the local clock was 7 hours behind UTC.
    assert row["ts"] == datetime(2026, 11, 10, 20, 55, 36, tzinfo=UTC)
    assert (row["method"], row["target"], row["status"]) == ("GET", "/artist/radiohead?tab=shows",
                                                             503)
    assert (row["duration_us"], row["upstream_us"], row["bytes"]) == (1_234_000, 1_200_000, 2326)
    assert row["client"] == "203.0.113.9"
    assert row["user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"


def test_upstream_lists_and_dashes(write_log) -> None:
    """Several upstream times add up; '-' means no upstream, not zero latency."""
    path = write_log("access.log", [timed_line(urt="0.010, 0.020 : 0.005"),
                                    timed_line(urt="-"), timed_line(rt="0.000", urt="0.000")])
    rows, rejects = read_all(path)
    assert rejects == []
    assert [r["upstream_us"] for r in rows] == [35_000, None, 0]
    assert rows[2]["duration_us"] == 0


def test_custom_log_format_from_nginx_conf(write_log) -> None:
    """A log_format pasted from nginx.conf (ISO time, other order, extra fields) is honoured."""
    fmt = ('$remote_addr [$time_iso8601] "$request_method $request_uri" $status '
           '$request_time $body_bytes_sent "$http_user_agent" $request_id')
    line = ('198.51.100.7 [2026-11-10T08:00:00+01:00] "POST /api/votes/9?x=1" 201 0.042 17 '
            '"curl/8.5" 5f2c9a')
    rows, rejects = read_all(write_log("app.log", [line]), fmt)
    assert rejects == []
    (row,) = rows
    assert row["ts"] == datetime(2026, 11, 10, 7, 0, tzinfo=UTC)
    assert (row["method"], row["target"], row["status"]) == ("POST", "/api/votes/9?x=1", 201)
    assert (row["duration_us"], row["bytes"], row["user_agent"]) == (42_000, 17, "curl/8.5")
    assert row["upstream_us"] is None


@pytest.mark.parametrize(("fmt", "message"), [
    ("$remote_addr $status", "has no $time_local"),
    ("[$time_local] $request$status", "cannot be told apart"),
    ("[$time_local] \"$request\" $remote_addr", "has no $status"),
])
def test_unusable_log_format_is_a_clear_error(fmt: str, message: str) -> None:
    """A format that lacks time, status or request, or that is ambiguous, is refused."""
    with pytest.raises(ConfigError, match=message.replace("$", r"\$")):
        compile_log_format(fmt)


def test_invalid_request_line_is_a_real_400_request(write_log) -> None:
    """Junk request lines ("-", TLS on port 80) are kept as requests with no route."""
    line = timed_line().replace('"GET /show/42 HTTP/1.1" 200', '"\\x16\\x03\\x01" 400')
    dash = timed_line().replace('"GET /show/42 HTTP/1.1" 200', '"-" 400')
    rows, rejects = read_all(write_log("access.log", [line, dash]))
    assert rejects == []
    assert [(r["method"], r["target"], r["status"]) for r in rows] == [(None, None, 400)] * 2


def test_rotated_set_plain_and_gzip(store, tmp_path: Path) -> None:
    """access.log, access.log.1 and access.log.2.gz load alike; gzip is told by content."""
    days = ["08/Nov/2026", "09/Nov/2026", "10/Nov/2026"]
    texts = ["\n".join(timed_line(time=f"{d}:12:00:0{i} +0000") for i in range(3)) + "\n"
             for d in days]
    (tmp_path / "access.log.2.gz").write_bytes(gzip.compress(texts[0].encode()))
    (tmp_path / "access.log.1").write_text(texts[1])
    (tmp_path / "access.log").write_text(texts[2])
    for name in ("access.log.2.gz", "access.log.1", "access.log"):
        result = ingest_file(store, tmp_path / name)
        assert (result.kind, result.loaded, result.rejected) == ("nginx", 3, 0)
    days_loaded = store.execute(
        "SELECT strftime(minute, '%d'), sum(requests) FROM request_counts GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert days_loaded == [("08", 3), ("09", 3), ("10", 3)]


def test_real_apache_log(store, real_data: Path) -> None:
    """A real server's combined log: 9,999 good lines, the truncated one at 8,899 named."""
    path = real_data / "apache_combined_2015.log"
    with pytest.raises(IngestError, match=r"apache_combined_2015.log:8899: \$http_user_agent"):
        ingest_file(store, path)
    result = ingest_file(store, path, max_bad_rows=1)
    assert (result.loaded, result.rejected) == (9999, 1)
    # Independent count from the raw text: status codes by a plain split of each line.
    statuses: dict[int, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if number != 8899:
                code = int(line.split('"')[2].split()[0])
                statuses[code] = statuses.get(code, 0) + 1
    stored = dict(store.execute(
        "SELECT status, sum(requests) FROM request_counts GROUP BY 1").fetchall())
    assert stored == statuses
    # No request time in this format: latency is absent, not zero.
    timed, histogram = store.execute(
        "SELECT (SELECT sum(timed) FROM request_counts), (SELECT count(*) FROM latency_sketch)"
    ).fetchall()[0]
    assert (timed, histogram) == (0, 0)
    # '-' byte counts (304s) are absent, not errors.
    assert ingest_file(store, path, max_bad_rows=1).skipped


def test_plain_combined_is_detected(write_log, store) -> None:
    """A log without the timing fields is read with the plain combined format."""
    line = timed_line().rsplit(" ", 2)[0]
    result = ingest_file(store, write_log("access.log", [line]))
    assert (result.kind, result.loaded) == ("nginx", 1)
    assert compile_log_format(COMBINED).columns.get("duration") is None
