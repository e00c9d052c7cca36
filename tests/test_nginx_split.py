"""The fast split of the combined formats reads every line exactly as the format's regex does."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mysetlist_slo.demo import DemoManifest
from mysetlist_slo.sources import nginx
from mysetlist_slo.sources.nginx import (
    COMBINED,
    COMBINED_TIMED,
    PARTS,
    NginxSource,
    _split_sql,
)
from mysetlist_slo.sources.requests_schema import CANONICAL_COLUMNS
from mysetlist_slo.sources.types import INPUT_TABLE

GOOD = ('203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET /show/123?x=1 HTTP/1.1" 200 512 '
        '"https://mysetlist.example/" "Mozilla/5.0 (X11)" 0.123 0.110')

# Lines a real log may hold, well formed or not; each is read by both paths.
MALFORMED = [
    GOOD,
    GOOD.replace("0.123 0.110", "0.123 0.010, 0.020"),  # two upstreams
    GOOD.replace("0.123 0.110", "0.123 0.010 : 0.020"),
    GOOD.replace("0.123 0.110", "0.123 -"),
    GOOD.replace("0.123 0.110", "0.123  0.110"),  # two spaces: the upstream starts with one
    GOOD.replace("0.123 0.110", "0.123"),  # no upstream field
    GOOD.replace("0.123 0.110", ""),  # plain combined in a timed log: line ends with '" '
    GOOD.replace("(X11)", 'with \\x22quotes\\x22'),  # nginx's escape
    GOOD.replace("(X11)", 'with \\"quotes\\"'),  # Apache's escape
    GOOD.replace("(X11)", 'ends in a backslash\\'),
    GOOD.replace("(X11)", 'a "bare" quote'),
    GOOD.replace("(X11)", 'doubled ""quote""'),
    GOOD.replace('"GET /show/123?x=1 HTTP/1.1"', "GET"),  # unquoted request
    GOOD.replace('"GET /show/123?x=1 HTTP/1.1"', '"-"'),
    GOOD.replace('"GET /show/123?x=1 HTTP/1.1"', '""'),
    GOOD.replace('"GET /show/123?x=1 HTTP/1.1"', '"\\x16\\x03\\x01"'),  # TLS on port 80
    # Request lines the cut at spaces must leave to the regex, or read as it does.
    *(GOOD.replace("GET /show/123?x=1 HTTP/1.1", request) for request in (
        "GET /a b HTTP/1.1", "get / HTTP/1.1", "GET  / HTTP/1.1", "GET / HTTP/1.1 ",
        " GET / HTTP/1.1", "PROPFIND /dav HTTP/1.1", "GET / HTTP/9.9", "GET / FTP/1.0",
        "GET /", "GET", "GET / HTTP/", "GET https://host HTTP/1.1", "GET /\ttab HTTP/1.1",
        "GET /\x0cff HTTP/1.1", "GET /\rcr HTTP/1.1", "GET\t/ HTTP/1.1", "GET /\x0bvt HTTP/1.1",
        "GET /\u00a0nbsp HTTP/1.1", "DELETE /x HTTP/2", "OPTIONS * HTTP/2.0", "GET / HTTP/3",
        "GET / HTTP/1.1 HTTP/1.1", "GET /?a=b%20c HTTP/1.0")),
    GOOD.replace(" 200 ", ' "200" '),  # quoted status
    GOOD.replace(" 200 512 ", " 200  512 "),
    GOOD.replace('HTTP/1.1" 200', 'HTTP/1.1"x 200'),  # no space after the quote
    GOOD.replace('+0000] "GET', '+0000] x"GET'),
    GOOD.replace(' 512 "https', ' 512 x"https'),
    GOOD.replace('+0000] "GET', '+0000]  "GET'),
    GOOD.replace('(X11)" 0.123', '(X11)"x 0.123'),
    GOOD.replace(" 200 512 ", " 200 "),
    GOOD.replace(" 200 512 ", " abc 512 "),
    GOOD.replace(" 200 512 ", " 200 512 extra "),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[10/Oct/2026:13:55:36]"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[10/Oct/2026:13:55:36  +0000]"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[10/Oct/2026:13:55:36 +0000]]"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[10/Oct]/2026:13:55:36 +0000]"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "10/Oct/2026:13:55:36 +0000"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[[10/Oct/2026:13:55:36 +0000]"),
    GOOD.replace("[10/Oct/2026:13:55:36 +0000]", "[99/Oct/2026:13:55:36 +0000]"),
    GOOD.replace("203.0.113.7 - -", "203.0.113.7 - alice"),
    GOOD.replace("203.0.113.7 - -", "203.0.113.7 -- -"),
    GOOD.replace("203.0.113.7 - -", '203.0.113.7 "-" -'),
    GOOD.replace("203.0.113.7 - -", "203.0.113.7  - -"),
    GOOD.replace("203.0.113.7 - -", '"203.0.113.7" - -'),
    GOOD.replace('"https://mysetlist.example/" "Mozilla', '"https://mysetlist.example/""Mozilla'),
    GOOD.replace('"https://mysetlist.example/" "Mozilla', '"https://x/"  "Mozilla'),
    GOOD[:60],  # truncated inside the request
    GOOD[:-12],  # truncated after the user agent
    GOOD + " ",
    " " + GOOD,
    GOOD.replace("0.123 0.110", "-1 0.110"),
    GOOD.replace("0.123 0.110", "nan 0.110"),
    "",
    "   ",
    "garbage",
    '"',
    '""""""',
    "\u00e9t\u00e9 - - [10/Oct/2026:13:55:36 +0000] \"GET /\u00e9 HTTP/1.1\" 200 1 "
    "\"-\" \"-\" 0.1 0.1",
]


def read_both(path: Path, log_format: str) -> tuple[tuple[pa.Table, list[tuple]], ...]:
    """Return (rows, rejects) of ``path`` read with the fast split and with the regex alone."""
    results = []
    for split in (True, False):
        source = NginxSource(log_format, split=split)
        con = duckdb.connect()
        tables, rejects = [], []
        for batch in source.batches(path):
            con.register(INPUT_TABLE, batch.table)
            checked = con.sql(batch.query, params=batch.params).to_arrow_table()
            tables.append(checked.select([*CANONICAL_COLUMNS, "bad_field", "problem"]))
            bad = checked.filter(pc.is_valid(checked.column("bad_field")))
            rejects += batch.rejects + source.explain(con, batch, list(zip(
                bad.column("line").to_pylist(), bad.column("bad_field").to_pylist(),
                bad.column("problem").to_pylist(), strict=True)))
        con.close()
        rows = pa.concat_tables(tables).sort_by("line")
        results.append((rows, sorted((r.line, r.field, r.problem, r.raw) for r in rejects)))
    return tuple(results)


def split_share(path: Path, log_format: str) -> float:
    """Return the share of the file's lines the fast split reads (the rest go to the regex)."""
    source = NginxSource(log_format)
    split = _split_sql(source.format)
    assert split is not None
    con = duckdb.connect()
    read = total = 0
    for batch in source.batches(path):
        con.register(INPUT_TABLE, batch.table)
        parts = ", ".join(f"q[{i}] AS p{i}" for i in range(1, PARTS + 1))
        hits, count = con.sql(f"""
            SELECT count(*) FILTER (WHERE len(q) = {PARTS} AND coalesce({split[1]}, false)),
                   count(*)
            FROM (SELECT text, q, {parts}, string_split(q[1], ' ') AS head,
                         string_split(q[3], ' ') AS middle
                  FROM (SELECT text, string_split(text, '"') AS q FROM {INPUT_TABLE}))
        """).fetchall()[0]
        read, total = read + hits, total + count
    con.close()
    return read / total


@pytest.mark.parametrize("log_format", [COMBINED_TIMED, COMBINED])
def test_malformed_lines_read_identically(write_log, log_format: str) -> None:
    """Malformed and odd lines: the split and the regex give the same rows and rejects."""
    path = write_log("odd.log", MALFORMED)
    (split_rows, split_rejects), (regex_rows, regex_rejects) = read_both(path, log_format)
    assert split_rows.equals(regex_rows)
    assert split_rejects == regex_rejects
    assert split_rows.num_rows == len(MALFORMED)


def test_split_reads_the_plain_good_line(write_log) -> None:
    """The well-formed timed line is read by the split itself, with the expected values."""
    path = write_log("good.log", [GOOD])
    assert split_share(path, COMBINED_TIMED) == 1.0
    (rows, rejects), _ = read_both(path, COMBINED_TIMED)
    row = rows.to_pylist()[0]
    assert rejects == []
    assert (row["status"], row["duration_us"], row["upstream_us"], row["bytes"]) == (
        200, 123_000, 110_000, 512)
    assert (row["method"], row["target"], row["client"]) == ("GET", "/show/123?x=1",
                                                             "203.0.113.7")


def test_demo_logs_read_identically(demo: DemoManifest) -> None:
    """Every demo log (plain and gzip) reads to the same rows by both paths, nearly all of
    them through the split."""
    logs = [Path(f) for f in demo.files if Path(f).name.startswith("access.log")]
    assert logs
    for path in logs:
        (split_rows, split_rejects), (regex_rows, regex_rejects) = read_both(path,
                                                                             COMBINED_TIMED)
        assert split_rows.equals(regex_rows), path
        assert split_rejects == regex_rejects
        assert split_share(path, COMBINED_TIMED) > 0.99


def test_real_apache_log_reads_identically(real_data: Path) -> None:
    """The real Apache combined log (quotes escaped as \\" in some user agents) reads to the
    same rows by both paths; the lines without a backslash go through the split."""
    path = real_data / "apache_combined_2015.log"
    (split_rows, split_rejects), (regex_rows, regex_rejects) = read_both(path, COMBINED)
    assert split_rows.equals(regex_rows)
    assert split_rejects == regex_rejects
    assert split_rows.num_rows == 10_000
    assert split_share(path, COMBINED) > 0.9


def test_common_request_lines_are_cut_without_the_regex(monkeypatch) -> None:
    """The request lines nearly every request has are read by the cut at spaces: with the
    regex made to match nothing, they still give their method and target; the others none."""
    monkeypatch.setattr(nginx, "_REQUEST_LINE", "(a)^(b)")
    parts = nginx._request_parts_sql("request", split=True)
    lines = {"GET /show/1?x=1 HTTP/1.1": ("GET", "/show/1?x=1"), "HEAD / HTTP/2": ("HEAD", "/"),
             "POST /api/vote HTTP/1.0": ("POST", "/api/vote"),
             "PROPFIND /dav HTTP/1.1": ("", ""), "GET /a b HTTP/1.1": ("", "")}
    con = duckdb.connect()
    for line, expected in lines.items():
        got = con.execute(f"SELECT {parts} FROM (SELECT request, string_split(request, ' ') "
                          "AS words FROM (SELECT ?::VARCHAR AS request))", [line]).fetchone()
        assert got is not None
        assert (got[0]["method"], got[0]["target"]) == expected, line
