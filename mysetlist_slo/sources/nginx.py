"""nginx (and Apache) access logs in any ``log_format``, turned into canonical request rows."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from mysetlist_slo._regex import escape
from mysetlist_slo.errors import ConfigError
from mysetlist_slo.sources._lines import (
    DEFAULT_BATCH_BYTES,
    DEFAULT_MAX_LINE_BYTES,
    GZIP_MAGIC,
    ContentDigest,
    read_lines,
)
from mysetlist_slo.sources.requests_schema import UNIT_US, TimeKind, validation_query
from mysetlist_slo.sources.types import InputBatch, Reject, chunked, raw_lines

# nginx's predefined "combined" format, plus the two timings every SLO needs. This is the line
# most nginx.conf files carry as `log_format timed ...`.
COMBINED = ('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
            '"$http_referer" "$http_user_agent"')
COMBINED_TIMED = COMBINED + " $request_time $upstream_response_time"
# The same with the proxy cache's outcome last, as sites caching in nginx log it.
COMBINED_CACHED = COMBINED_TIMED + " $upstream_cache_status"

# Which nginx variable fills which staged column. The first present wins.
_TIME_VARIABLES: dict[str, TimeKind] = {
    "time_local": "nginx_local", "time_iso8601": "iso8601", "msec": "epoch_s",
}
_COLUMN_VARIABLES = {
    "status": ["status"],
    "duration": ["request_time"],
    "upstream": ["upstream_response_time"],
    "bytes": ["body_bytes_sent", "bytes_sent"],
    "client": ["remote_addr", "http_x_forwarded_for", "realip_remote_addr"],
    "user_agent": ["http_user_agent"],
    # The region that served the request: a variable set per server (``set $region ...;``,
    # ``map``) or a header the global load balancer adds.
    "region": ["region", "http_x_region"],
    # The cache outcome: nginx's own proxy cache, or a CDN's header as the origin saw it in
    # the response (upstream_http_*), sent it on (sent_http_*) or a proxy passed it (http_*).
    "cache_status": ["upstream_cache_status",
                     *(f"{where}_{header}" for header in ("cf_cache_status", "x_vercel_cache",
                                                          "x_cache")
                       for where in ("sent_http", "upstream_http", "http"))],
}
_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass(frozen=True)
class LogFormat:
    """A compiled ``log_format``: the line regex, its pieces and the variable of each column."""

    text: str
    pieces: tuple[tuple[str | None, str], ...]  # (variable or None for literal text, regex)
    columns: dict[str, str]
    time_kind: TimeKind

    @property
    def regex(self) -> str:
        """Return the regex matching one whole line, one named group per variable."""
        return "^" + "".join(regex for _, regex in self.pieces) + "$"

    @property
    def variables(self) -> list[str]:
        """Return the variables of the format, in order."""
        return [name for name, _ in self.pieces if name]

    def describe(self, column: str) -> str:
        """Return the name a user knows for a staged column: its nginx variable."""
        variable = self.columns.get(column)
        return "$" + variable if variable else column

    def diagnose(self, line: str) -> tuple[str, str]:
        """Return (field, problem) for a line the format's regex does not match."""
        if not line.strip():
            return "line", "empty line"
        prefix = "^"
        previous = "line"
        for name, regex in self.pieces:
            prefix += regex
            if not re.match(prefix, line):
                if name:
                    return f"${name}", "missing or malformed (line truncated?)"
                return previous, f"expected {_unescape(regex)!r} after it (line truncated?)"
            previous = f"${name}" if name else previous
        return "line", "unexpected text after the last field"


def _unescape(regex: str) -> str:
    return re.sub(r"\\(.)", lambda m: m.group(1), regex)


def _capture(next_literal: str, name: str = "") -> str:
    """Return the regex of a variable's value, which runs up to the literal after it."""
    if not next_literal:
        return r".*"
    if name.startswith("upstream_") and next_literal[0] == " ":
        # One value per upstream tried: "0.010, 0.020" (next server) or "0.010 : 0.020"
        # (internal redirect). The separators hold spaces, so the value is not cut there.
        return r"[^ ,]*(?:(?:, ?| : )[^ ,]*)*"
    stop = next_literal[0]
    if stop == '"':
        # Quoted values: nginx escapes a quote as \x22, Apache as \" -- accept both.
        return r'(?:[^"\\]|\\.)*'
    return "[^" + escape(stop) + "]*"


def compile_log_format(text: str) -> LogFormat:
    """Return the LogFormat of an nginx ``log_format`` string; raise ConfigError if unusable.

    ``text`` is the format as written in nginx.conf (the quoted parts joined), e.g.
    ``'$remote_addr - $remote_user [$time_local] "$request" $status ...'``.
    """
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1]
    raw: list[tuple[str | None, str]] = []  # (variable, None) or (None, literal)
    position = 0
    for match in _VARIABLE.finditer(text):
        if match.start() > position:
            raw.append((None, text[position:match.start()]))
        raw.append((match.group(1) or match.group(2), ""))
        position = match.end()
    if position < len(text):
        raw.append((None, text[position:]))
    names = [name for name, _ in raw if name]
    pieces: list[tuple[str | None, str]] = []
    for index, (name, literal) in enumerate(raw):
        if name is None:
            pieces.append((None, escape(literal)))
            continue
        following = raw[index + 1] if index + 1 < len(raw) else (None, "")
        if following[0] is not None:
            raise ConfigError("log_format", [f"${name} is followed directly by ${following[0]}: "
                                             "the two cannot be told apart"])
        if names.count(name) > 1:
            raise ConfigError("log_format", [f"${name} appears more than once"])
        pieces.append((name, f"(?P<{name}>{_capture(following[1], name)})"))

    columns: dict[str, str] = {}
    time_kind: TimeKind | None = None
    for variable, kind in _TIME_VARIABLES.items():
        if variable in names:
            columns["ts"], time_kind = variable, kind
            break
    for variable in ("request", "request_uri", "uri"):
        if variable in names:
            columns["target"] = variable
            break
    for column, candidates in _COLUMN_VARIABLES.items():
        for variable in candidates:
            if variable in names:
                columns[column] = variable
                break
    missing = [need for need, column in (("$time_local, $time_iso8601 or $msec", "ts"),
                                         ("$request or $request_uri", "target"),
                                         ("$status", "status")) if column not in columns]
    if missing or time_kind is None:
        raise ConfigError("log_format", [f"the format has no {m}" for m in missing])
    return LogFormat(text, tuple(pieces), columns, time_kind)


# The fast split of the combined formats, without a regex: the line cut at its quotes into the
# parts p1 ... p7, the parts outside quotes cut at spaces (``head`` = p1, ``middle`` = p3), each
# variable picked from them. nginx writes a quote inside a value as \x22, so a well-formed line
# has exactly 6 quotes.
PARTS = 7
_COMBINED_SPLIT = {
    "remote_addr": "head[1]",
    "remote_user": "head[3]",
    "time_local": "head[4][2:] || ' ' || head[5][:-2]",
    "request": "p2",
    "status": "middle[2]",
    "body_bytes_sent": "middle[3]",
    "http_referer": "p4",
    "http_user_agent": "p6",
    "request_time": "split_part(p7, ' ', 2)",
    "upstream_response_time": "p7[length(split_part(p7, ' ', 2)) + 3:]",
}
# When the split reads a line exactly as the format's regex does: the line has the format's
# literal text between the values (" - ", " [", "] \"", ...), checked on the parts, and no
# value holds what its capture cannot: a time with "]" ([^\]]*), or a quoted value with a
# backslash escape (the regex reads \" as part of the value). Every capture of the regex ends
# at the first occurrence of the character after it, so each split value is the captured one,
# and both readings give identical rows (tests/test_nginx_split.py compares them).
_COMBINED_SHAPE = [
    "len(head) = 6", "head[2] = '-'", "head[6] = ''",
    "starts_with(head[4], '[')", "ends_with(head[5], ']')", "NOT contains(head[5][:-2], ']')",
    "NOT contains(head[4], ']')", "len(middle) = 4", "middle[1] = ''", "middle[4] = ''",
    "p5 = ' '", "NOT contains(p2, '\\')", "NOT contains(p4, '\\')",
    "NOT contains(p6, '\\')",
]
_TAIL_SHAPE = {
    COMBINED: ["p7 = ''"],
    # " $request_time $upstream_response_time": a space, a value, a space, the rest.
    COMBINED_TIMED: ["starts_with(p7, ' ')", "strpos(p7[2:], ' ') > 0"],
}


def _split_sql(fmt: LogFormat) -> tuple[dict[str, str], str] | None:
    """Return (variable -> SQL over the parts p1 ... p7, ``head`` and ``middle``; SQL: the
    split reads the line as the regex would) for the combined formats, or None for a format
    only the regex can read."""
    if fmt.text not in _TAIL_SHAPE:
        return None
    values = {name: _COMBINED_SPLIT[name] for name in fmt.variables}
    return values, " AND ".join(_COMBINED_SHAPE + _TAIL_SHAPE[fmt.text])


# "$request" is the whole request line: METHOD target PROTOCOL, read by this regex (RE2: \S is
# [^\t\n\f\r ]). Malformed request lines (TLS handshakes on port 80, "-") are real requests nginx
# answered with 400: they are kept, with no method and target, so they count against the route
# "(invalid)".
_REQUEST_LINE = r"^([A-Z]+) (\S+)( HTTP/[0-9.]+)?$"
# The request lines nearly every request has, cut at their two spaces instead: a common method,
# a target without whitespace, a common protocol. The regex reads such a line the same way;
# any other line is left to it (tests/test_nginx_split.py compares the two).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_PROTOCOLS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/2", "HTTP/3", "HTTP/3.0")


def _request_parts_sql(request: str, split: bool) -> str:
    """Return SQL for the struct (method, target) of the request line ``request``: empty
    strings where the line does not read as one. With ``split``, common lines are cut at their
    spaces (``words``: the line split at spaces, computed by the caller) and only the others
    go through the regex."""
    regex = f"regexp_extract({request}, '{_REQUEST_LINE}', ['method', 'target'])"
    if not split:
        return regex
    methods = ", ".join(f"'{method}'" for method in _METHODS)
    protocols = ", ".join(f"'{protocol}'" for protocol in _PROTOCOLS)
    whitespace = " AND ".join(f"NOT contains(words[2], chr({code}))" for code in (9, 10, 12, 13))
    return f"""CASE WHEN len(words) = 3 AND words[1] IN ({methods})
                          AND words[3] IN ({protocols}) AND words[2] <> ''
                          AND {whitespace}
                     THEN {{'method': words[1], 'target': words[2]}} ELSE {regex} END"""


def _staging_query(fmt: LogFormat, fields_sql: str, flat: bool = False,
                   split: bool = True) -> str:
    """Return SQL turning each row of ``fields_sql`` into the staged request columns: its
    ``line`` and the struct ``fields`` (one member per variable) or, ``flat``, a column per
    variable and the line's parts (p1 ...), passed on (a struct is computed whole; flat
    columns the query does not keep are never computed). ``split=False`` reads request lines
    with the regex alone."""
    prefix = "" if flat else "fields."

    def field(column: str) -> str:
        variable = fmt.columns.get(column)
        return f"{prefix}{variable}" if variable else "NULL"

    if fmt.columns["target"] == "request":
        # One struct gives both parts: the regex runs once, and only on the lines not cut.
        request = f"{prefix}request"
        if split:
            fields_sql = f"SELECT *, string_split({request}, ' ') AS words FROM ({fields_sql})"
        fields_sql = (f"SELECT *, {_request_parts_sql(request, split)} AS request_parts "
                      f"FROM ({fields_sql})")
        method = "NULLIF(request_parts.method, '')"
        target = "NULLIF(request_parts.target, '')"
    else:
        method = f"{prefix}request_method" if "request_method" in fmt.variables else "NULL"
        target = f"{prefix}{fmt.columns['target']}"
    # No match leaves every group empty; the time and status are never empty in a real line.
    unmatched = f"{prefix}{fmt.columns['ts']} = '' AND {prefix}status = ''"
    return f"""
    SELECT
        line,
        {prefix}{fmt.columns['ts']} AS ts,
        {method} AS method,
        {target} AS target,
        {field('status')} AS status,
        {field('duration')} AS duration,
        {field('upstream')} AS upstream,
        {field('bytes')} AS bytes,
        {field('client')} AS client,
        {field('user_agent')} AS user_agent,
        {field('region')} AS region,
        {field('cache_status')} AS cache_status,
        {unmatched} AS unmatched{_PART_LIST if flat else ""}
    FROM ({fields_sql})
"""


def _fields_sql(fmt: LogFormat, split: bool = True) -> str:
    """Return SQL giving each line's ``fields`` (a struct, one member per variable): the fast
    split where the format has one and it reads the line as the regex would, else the regex."""
    regex = "regexp_extract(text, $regex, $names)"
    fast = _split_sql(fmt) if split else None
    if fast is None:
        return f"SELECT line, {regex} AS fields FROM batch_input"
    values, check = fast
    members = ", ".join(f"{name} := {values[name]}" for name in fmt.variables)
    parts = ", ".join(f"q[{i}] AS p{i}" for i in range(1, PARTS + 1))
    return f"""
        SELECT line, CASE WHEN len(q) = {PARTS} AND coalesce({check}, false)
                          THEN struct_pack({members}) ELSE {regex} END AS fields
        FROM (SELECT line, text, q, {parts}, string_split(q[1], ' ') AS head,
                     string_split(q[3], ' ') AS middle
              FROM (SELECT line, text, string_split(text, '"') AS q FROM batch_input))"""


# The whole file at once, for the combined formats: DuckDB's parallel CSV reader cuts every
# line at its quotes (the quote as the delimiter, no quoting), the split above without reading
# lines in Python. A line of other than seven parts (a truncated line, Apache's \" escapes) is
# read as the line reader reads it: by the format's regex, on the parts joined again. The CSV
# reader cannot number lines, skips empty lines and stops at a line of more than CSV_PARTS
# parts, longer than the line reader takes, or not UTF-8: the caller compares the records with
# the file's line count, finds the lines of the rejects by their text, and otherwise reads the
# file by lines (tests/test_nginx_whole.py compares the two on every line of test_nginx_split).
CSV_PARTS = 16
# An empty part is '' (a newline, which no part holds, stands for NULL: a missing part).
# max_line_size counts the newline, but not on a line that starts one of the reader's chunks
# (the file's first line, some buffers' first): set to DEFAULT_MAX_LINE_BYTES, it reads no
# line longer than that anywhere; one of exactly that length it may leave to the line reader.
_CSV_OPTIONS = ("delim = '\"', quote = '', escape = '', header = false, auto_detect = false, "
                "strict_mode = true, null_padding = true, nullstr = '\n', "
                f"max_line_size = {DEFAULT_MAX_LINE_BYTES}, compression = $compression")
_GLOB = re.compile(r"[*?\[\]{}]")  # read_csv reads its path as a glob pattern
_PARTS = [f"p{i}" for i in range(1, CSV_PARTS + 1)]
_PART_LIST = "".join(f", {part}" for part in _PARTS)
# The line as it was: its parts joined by the quotes they were cut at.
_RAW_LINE = f"concat_ws('\"', {', '.join(_PARTS)})"


def _whole_file_sql(fmt: LogFormat) -> str | None:
    """Return SQL giving, for every line of the file ``$path`` read by DuckDB's CSV reader, its
    parts p1 ... p16 and a column per variable: the split's value where it reads the line as the
    regex does, else the regex's group (as the line reader's query does); None for a format
    without the fast split."""
    fast = _split_sql(fmt)
    if fast is None:
        return None
    values, check = fast
    variables = ", ".join(f"CASE WHEN split THEN {values[name]} ELSE regex.{name} END AS {name}"
                          for name in fmt.variables)
    columns = ", ".join(f"'{part}': 'VARCHAR'" for part in _PARTS)
    return f"""
        SELECT NULL::BIGINT AS line, {variables}{_PART_LIST}
        FROM (SELECT *, CASE WHEN NOT split THEN regexp_extract({_RAW_LINE}, $regex, $names)
                        END AS regex
              FROM (SELECT *, p{PARTS + 1} IS NULL AND coalesce({check}, false) AS split
                    FROM (SELECT *, string_split(p1, ' ') AS head,
                                 string_split(p3, ' ') AS middle
                          FROM read_csv($path, columns = {{{columns}}}, {_CSV_OPTIONS}))))"""


class NginxSource:
    """Reads access logs written in one ``log_format``."""

    kind = "nginx"
    record = "requests"
    resumable = True  # one record per line: a grown log can be read from where it was

    def __init__(self, log_format: str = COMBINED_TIMED, split: bool = True) -> None:
        """Read logs of ``log_format``; ``split=False`` reads every line with the regex (the
        fast split of the combined formats gives identical rows; tests compare the two)."""
        self.format = compile_log_format(log_format)
        self.split = split
        self.start = (0, 0)  # (bytes, lines) of the content to skip, already loaded
        self.stop: int | None = None  # content offset to read up to (None: the end)
        whole = _whole_file_sql(self.format) if split else None
        self._query = self._checked(_fields_sql(self.format, split))
        self._whole_query = None if whole is None else f"""
            SELECT * EXCLUDE ({', '.join(_PARTS)}),
                   CASE WHEN bad_field IS NOT NULL THEN {_RAW_LINE} END AS raw
            FROM ({self._checked(whole, flat=True)})"""

    def _checked(self, fields_sql: str, flat: bool = False) -> str:
        """Return the validation query of the rows of ``fields_sql`` (see _staging_query)."""
        return validation_query(
            _staging_query(self.format, fields_sql, flat, self.split), self.format.time_kind,
            UNIT_US["s"], UNIT_US["s"], upstream_lists=True, target_required=False,
            may_be_unmatched=True, carried=_PARTS if flat else (),
        )

    def whole_file(self, path: Path, digest: ContentDigest) -> InputBatch | None:
        """Return one batch reading the whole log at ``path`` with DuckDB's CSV reader, or
        None when only the line reader can read it as it would: another format, a part of
        the file (read on from an earlier load), a last line without a newline, carriage
        returns, or a path DuckDB would read as a glob pattern.

        The batch's rows have no line numbers; a rejected row has its line's text in ``raw``
        instead, and ``locate`` finds its numbers. It reads the file as it is: lines written
        since ``digest`` make more rows than the digest counts (the caller then reads by lines,
        up to ``stop``).
        """
        if (self._whole_query is None or self.start != (0, 0)
                or self.stop not in (None, digest.size)
                or not digest.ends_with_newline or digest.carriage_returns
                or _GLOB.search(str(path.absolute()))):
            return None
        with open(path, "rb") as raw:
            compression = "gzip" if raw.read(2) == GZIP_MAGIC else "none"
        # Absolute: DuckDB reads a relative "~/..." as the home folder's file.
        return InputBatch(self._whole_query, None,
                          {"path": str(path.absolute()), "compression": compression,
                           "regex": self.format.regex, "names": self.format.variables}, [],
                          path.stat().st_size)

    def locate(self, path: Path, lines: set[str]) -> dict[str, list[int]]:
        """Return the numbers of the lines of ``path`` (read as ``batches`` reads it) whose
        text is one of ``lines``, by text."""
        wanted = pa.array(sorted(lines), pa.string())
        found: dict[str, list[int]] = {}
        for batch in read_lines(path):
            hit = pc.is_in(batch.text, value_set=wanted)
            for number, text in zip(batch.numbers.filter(hit).to_pylist(),
                                    batch.text.filter(hit).to_pylist(), strict=True):
                found.setdefault(text, []).append(number)
        return found


    def batches(self, path: Path, batch_bytes: int = DEFAULT_BATCH_BYTES) -> Iterator[InputBatch]:
        """Yield the lines of the log at ``path`` in batches, with the query that parses them."""
        params: dict[str, object] = {"regex": self.format.regex, "names": self.format.variables}
        for lines in read_lines(path, batch_bytes=batch_bytes, start=self.start,
                                stop=self.stop):
            table = chunked(pa.table({"line": lines.numbers, "text": lines.text}))
            rejects = [Reject(r.line, r.field, r.problem, r.raw) for r in lines.rejects]
            yield InputBatch(self._query, table, params, rejects, lines.position)

    def explain(self, con: duckdb.DuckDBPyConnection, batch: InputBatch,
                bad: list[tuple[int, str, str]]) -> list[Reject]:
        """Return rejects named by nginx variable; unmatched lines get a diagnosis."""
        raw = raw_lines(batch, [line for line, _, _ in bad])
        return [self.reject(line, field, problem, raw[line]) for line, field, problem in bad]

    def reject(self, line: int, field: str, problem: str, raw: bytes) -> Reject:
        """Return the reject of ``line`` from its staged field and problem: named by nginx
        variable, a line the format does not match diagnosed."""
        if field == "unmatched":
            field, problem = self.format.diagnose(raw.decode("utf-8"))
        else:
            field = self.format.describe(field)
        return Reject(line, field, problem, raw)
