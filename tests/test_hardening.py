"""Hostile and broken input, one named scenario per defect found by fuzzing (issue 11): every
malformed record is a reject naming file, line and field, a file that cannot be read is one
IngestError, values outside their bounds are refused with the bound, and junk is refused
after a bounded amount of work."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import table_counts, timed_line

from mysetlist_slo import IngestError, ingest_file
from mysetlist_slo.store import ingest as ingest_module

DEEP = "[" * 20_000 + "]" * 20_000  # within the 64 KB line limit


def beacon(**fields: object) -> str:
    record = {"name": "LCP", "value": 1800, "id": "v1", "url": "https://x.example/show/1",
              "timestamp": "2026-11-10T10:00:00Z", "formFactor": "phone"}
    record.update(fields)
    return json.dumps(record)


def lighthouse(**fields: object) -> dict[str, object]:
    audits = {"largest-contentful-paint": 2300.0, "first-contentful-paint": 1200.0,
              "cumulative-layout-shift": 0.05, "total-blocking-time": 150.0,
              "interactive": 3300.0, "speed-index": 2000.0}
    report: dict[str, object] = {
        "lighthouseVersion": "12.2.0", "fetchTime": "2026-11-22T03:00:00Z",
        "requestedUrl": "https://x.example/", "finalDisplayedUrl": "https://x.example/",
        "configSettings": {"formFactor": "mobile"},
        "categories": {"performance": {"score": 0.9}},
        "audits": {k: {"numericValue": v} for k, v in audits.items()}}
    report.update(fields)
    return report


def crux(p75: object = 2000, first: object = None) -> dict[str, object]:
    period = {"firstDate": first or {"year": 2026, "month": 10, "day": 1},
              "lastDate": {"year": 2026, "month": 10, "day": 28}}
    return {"record": {"key": {"origin": "https://x.example", "formFactor": "PHONE"},
                       "metrics": {
                           "largest_contentful_paint": {
                               "histogram": [{"start": 0, "end": 2500, "density": 0.8}],
                               "percentiles": {"p75": p75}},
                           "first_contentful_paint": {
                               "histogram": [{"start": 0, "end": 1800, "density": 0.9}],
                               "percentiles": {"p75": 1200}}},
                       "collectionPeriod": period}}


STATS_HEADER = ("timestamp,database,total_xact_count,total_query_count,total_received,"
                "total_sent,total_xact_time,total_query_time,total_wait_time")


def stats_row(ts: str = "2026-11-16T00:05:00+00:00", count: str = "47") -> str:
    return f"{ts},mysetlist,{count},141,42300,197400,152393,121914,301"


def refused(store, path: Path, expected: str, **options: object) -> IngestError:
    """Ingest must fail with ``expected`` in the error and leave the store as it was."""
    before = table_counts(store)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path, **options)  # type: ignore[arg-type]
    assert expected in str(caught.value), str(caught.value)
    assert table_counts(store) == before
    return caught.value


# --- deep JSON ---------------------------------------------------------------------------

def test_deep_json_lines_are_rejects(store, write_log) -> None:
    """A deeply nested line is a reject in beacons and in JSON Lines exports alike."""
    vitals = write_log("v.jsonl", [beacon(), DEEP])
    refused(store, vitals, "v.jsonl:2: line: not usable JSON: nested deeper than")
    assert ingest_file(store, vitals, max_bad_rows=1).loaded == 1
    export = write_log("r.jsonl", [json.dumps({"timestamp": "2026-11-10T10:00:00Z",
                                               "path": "/", "status": 200}), DEEP])
    refused(store, export, "r.jsonl:2: line: not usable JSON: nested deeper than")


def test_deep_json_as_first_line_or_document(store, tmp_path: Path) -> None:
    """Kind detection and the whole-document readers refuse deep JSON with a reason."""
    first = tmp_path / "deep.jsonl"
    first.write_text(DEEP + "\n")
    with pytest.raises(IngestError):
        ingest_file(store, first)
    for kind in ("lighthouse", "crux", "prometheus"):
        doc = tmp_path / f"{kind}.json"
        doc.write_text('{"a": ' + DEEP + "}")
        refused(store, doc, "nested deeper than", kind=kind)


# --- malformed fields --------------------------------------------------------------------

@pytest.mark.parametrize(("fields", "expected"), [
    ({"navigationType": {"a": 1}}, "2: navigationType: not text"),
    ({"userAgent": ["x"], "formFactor": None}, "2: userAgent: not text"),
    ({"rating": 3}, "2: rating: not text"),
    ({"value": float("nan")}, "2: value: not a finite number"),
    ({"value": float("inf")}, "2: value: not a finite number"),
    ({"timestamp": 10**20}, "2: timestamp: not a Unix time between 1970 and 2100"),
    ({"timestamp": "9999-12-31T23:59:59-14:00"}, "2: timestamp: not a time between 1970"),
    ({"timestamp": "1969-12-31T23:59:59Z"}, "2: timestamp: not a time between 1970"),
])
def test_malformed_beacon_fields(store, write_log, fields: dict, expected: str) -> None:
    """Wrongly typed, non-finite or far-off values in a beacon are rejects naming the field;
    NaN is never stored."""
    path = write_log("v.jsonl", [beacon(id="ok"), beacon(**fields)])
    refused(store, path, f"v.jsonl:{expected}")
    assert ingest_file(store, path, max_bad_rows=1).loaded == 1
    assert store.execute("SELECT count(*) FROM vitals WHERE isnan(value)").fetchall() == [(0,)]


def test_malformed_posthog_event(store, write_log) -> None:
    """A PostHog event whose per-metric event is not an object is a reject naming it."""
    event = {"event": "$web_vitals", "timestamp": "2026-11-10T10:00:00Z",
             "properties": {"$current_url": "https://x.example/", "$web_vitals_LCP_value": 900,
                            "$web_vitals_LCP_event": [1, 2], "$raw_user_agent": ["x"]}}
    path = write_log("p.jsonl", [json.dumps(event)])
    refused(store, path, "p.jsonl:1: properties.$web_vitals_LCP_event: not an object")


@pytest.mark.parametrize(("document", "problem", "loaded", "rejected"), [
    (crux(p75=float("nan")), "largest_contentful_paint: malformed (ValueError: not a finite",
     1, 1),
    (crux(p75=[1]), "largest_contentful_paint: malformed (ValueError: not a number", 1, 1),
    # The collection period is shared: a bad date makes every metric a reject.
    (crux(first={"year": 2026, "month": 13, "day": 1}), "not a date", 0, 2),
    (crux(first={"year": 2026, "month": 1, "day": 2**63 - 1}), "not a date", 0, 2),
    (crux(first={"year": 2026, "month": 2, "day": 30}), "day is out of range", 0, 2),
    (crux(first={"year": 294247, "month": 1, "day": 1}),
     "year 294247 is not between 1970 and 2100", 0, 2),
])
def test_malformed_crux_metric_is_a_reject(store, tmp_path: Path, document: dict,
                                           problem: str, loaded: int, rejected: int) -> None:
    """A malformed CrUX metric is one reject naming it; the response's other metrics load."""
    path = tmp_path / "crux.json"
    path.write_text(json.dumps(document))
    refused(store, path, f"crux.json:1: record.metrics.{problem}" if "malformed" in problem
            else problem)
    result = ingest_file(store, path, max_bad_rows=2)
    assert (result.loaded, result.rejected) == (loaded, rejected)


@pytest.mark.parametrize(("report", "problem"), [
    (lighthouse(requestedUrl=None, finalDisplayedUrl=None), "requestedUrl: missing"),
    (lighthouse(requestedUrl="", finalDisplayedUrl=""), "requestedUrl: missing"),
    (lighthouse(fetchTime="2150-01-01T00:00:00Z"), "fetchTime: missing or bad"),
    (lighthouse(categories={"performance": {"score": None}}),
     "categories.performance.score: missing or bad"),
    (lighthouse(configSettings=["mobile"]), "configSettings.formFactor: not text"),
    (lighthouse(lhr=7), "lhr: not a Lighthouse report object"),
])
def test_incomplete_lighthouse_report_is_refused(store, tmp_path: Path, report: dict,
                                                  problem: str) -> None:
    """A report without a URL (silently dropped before) or with a bad field is refused."""
    path = tmp_path / "lh.json"
    path.write_text(json.dumps(report))
    refused(store, path, problem, kind="lighthouse")


# --- bounds ------------------------------------------------------------------------------

def test_far_future_nginx_time_is_a_reject(store, write_log) -> None:
    """[31/Dec/9999:23:59:59 -1400] is a reject with the bound, not a str/datetime crash."""
    path = write_log("access.log", [timed_line(), timed_line(time="31/Dec/9999:23:59:59 -1400"),
                                    timed_line(time="31/Dec/1969:23:59:59 +0000")])
    error = refused(store, path, "access.log:2: $time_local: not a time between 1970 and 2100")
    assert "access.log:3: $time_local: not a time between 1970 and 2100" in str(error)
    assert ingest_file(store, path, max_bad_rows=2).loaded == 1


@pytest.mark.parametrize("value", ["294247-01-10T04:00:54Z", "2101-01-01T00:00:00Z",
                                   "1969-12-31T23:59:59Z"])
def test_export_years_outside_bounds(store, write_log, value: str) -> None:
    """An ISO time outside 1970-2100 is refused as such (not as 'has no time zone offset')."""
    rows = [{"timestamp": "2026-11-10T10:00:00Z", "path": "/", "status": 200},
            {"timestamp": value, "path": "/", "status": 200}]
    path = write_log("r.jsonl", [json.dumps(r) for r in rows])
    refused(store, path, "r.jsonl:2: timestamp: not a time between 1970 and 2100")


def test_probe_years_outside_bounds(store, write_log) -> None:
    """Probes apply the same bound."""
    path = write_log("probes.csv", ["timestamp,target,location,ok",
                                    "2026-11-10T10:00:00Z,web,eu,true",
                                    "9999-12-31T23:59:59Z,web,eu,true"])
    refused(store, path, "probes.csv:3: timestamp: not a time between 1970 and 2100")


def test_byte_sums_cannot_overflow_the_rollups(store, write_log) -> None:
    """Two requests of 2^63-1 bytes in one minute are rejects (over a petabyte), where they
    used to overflow the per-minute byte sum (INT128 -> INT64)."""
    path = write_log("access.log", [timed_line(nbytes=2**63 - 1), timed_line(nbytes=2**63 - 1),
                                    timed_line(nbytes=10**15)])
    error = refused(store, path, "access.log:1: $body_bytes_sent: more than a petabyte")
    assert "access.log:2:" in str(error) and "access.log:3:" not in str(error)
    assert ingest_file(store, path, max_bad_rows=2).loaded == 1
    assert store.execute("SELECT sum(bytes_sum) FROM request_counts").fetchall() == [(10**15,)]


def test_counters_and_sample_times_beyond_bounds(store, tmp_path: Path, write_log) -> None:
    """A PgBouncer counter over int64 and a Prometheus sample at an absurd time are rejects."""
    stats = write_log("stats.csv", [STATS_HEADER, stats_row(),
                                    stats_row(count=str(2**63))])
    refused(store, stats, "stats.csv:3: total_xact_count: larger than a 64-bit counter")
    prometheus = tmp_path / "p.json"
    prometheus.write_text(json.dumps({"status": "success", "data": {
        "resultType": "matrix", "result": [
            {"metric": {"__name__": "cpu"}, "values": [[1700000000, "0.5"], [1e300, "1"]]},
            {"metric": {"__name__": "mem"}, "values": [[1700000000, "+Inf"]]}]}}))
    error = refused(store, prometheus, "p.json:1: data.result[0].values: time: not a Unix")
    assert "p.json:2: data.result[1].values: value: not a finite number" in str(error)


# --- CSV ---------------------------------------------------------------------------------

def test_huge_csv_field_is_a_row_reject(store, write_log) -> None:
    """A field over the csv module's 131,072-byte limit refuses its record, not the file."""
    export = write_log("r.csv", ["timestamp,path,status", "2026-11-10T10:00:00Z,/,200",
                                 "2026-11-10T10:00:00Z,/" + "a" * 140_000 + ",200",
                                 "2026-11-10T10:01:00Z,/,200"])
    refused(store, export, "r.csv:3: line: not valid CSV: field larger than field limit")
    assert ingest_file(store, export, max_bad_rows=1).loaded == 2
    stats = write_log("stats.csv", [STATS_HEADER, stats_row(),
                                    stats_row().replace("mysetlist", "m" * 140_000)])
    refused(store, stats, "stats.csv:3: line: not valid CSV")
    assert ingest_file(store, stats, max_bad_rows=1).loaded == 1


def test_non_utf8_byte_in_snapshot_csv_is_a_row_reject(store, write_log) -> None:
    """A byte that is not UTF-8 in a PgBouncer CSV refuses its row, within --max-bad-rows."""
    path = write_log("stats.csv", [STATS_HEADER.encode(), stats_row().encode(),
                                   stats_row().replace("mysetlist", "caf\xe9").encode("latin-1")])
    refused(store, path, "stats.csv:3: line: not valid UTF-8")
    assert ingest_file(store, path, max_bad_rows=1).loaded == 1


def test_missing_required_snapshot_values_are_rejects(store, write_log) -> None:
    """An empty database name or call count is a reject, not a NOT NULL violation."""
    path = write_log("statements.csv", [
        "timestamp,queryid,query,calls,total_exec_time,mean_exec_time,rows",
        "2026-11-17T00:00:00+00:00,q1,SELECT 1,10,5.0,0.5,10",
        "2026-11-17T00:00:00+00:00,q2,SELECT 2,,5.0,0.5,10"])
    refused(store, path, "statements.csv:3: calls: missing")


def test_byte_order_mark_in_every_text_format(store, tmp_path: Path) -> None:
    """A UTF-8 BOM before the content is accepted by every text format."""
    bom = b"\xef\xbb\xbf"
    documents = {
        "v.jsonl": beacon().encode() + b"\n",
        "r.jsonl": json.dumps({"timestamp": "2026-11-10T10:00:00Z", "path": "/",
                               "status": 200}).encode() + b"\n",
        "access.log": timed_line().encode() + b"\n",
        "lh.json": json.dumps(lighthouse()).encode(),
        "crux.json": json.dumps(crux()).encode(),
        "stats.csv": (STATS_HEADER + "\n" + stats_row() + "\n").encode(),
        "p.json": json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"__name__": "up"}, "value": [1700000000, "1"]}]}}).encode(),
        "m.prom": b"# TYPE up gauge\nup 1 1700000000000\n",
    }
    for name, content in documents.items():
        (tmp_path / name).write_bytes(bom + content)
        result = ingest_file(store, tmp_path / name)
        assert (result.loaded, result.rejected) == (2 if name == "crux.json" else 1, 0), name


# --- Parquet -----------------------------------------------------------------------------

@pytest.mark.parametrize(("column", "values", "named"), [
    ("path", pa.array([["/a", "/b"]], pa.list_(pa.string())), "column 'path'"),
    ("status", pa.array([{"code": 200}]), "column 'status'"),
    ("timestamp", pa.array([0], pa.date32()), "column 'timestamp'"),
])
def test_parquet_column_of_the_wrong_type_is_refused(store, tmp_path: Path, column: str,
                                                     values: pa.Array, named: str) -> None:
    """A list, struct or date where a value is expected is refused, naming the column (a
    list<string> path used to load as requests under '(invalid)')."""
    columns = {"timestamp": pa.array([0], pa.timestamp("us", tz="UTC")), "path": ["/"],
               "status": [200]}
    columns[column] = values
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table(columns), path)
    refused(store, path, named)


def test_corrupt_parquet_is_one_ingest_error(store, tmp_path: Path) -> None:
    """Flipped bytes inside a Parquet file's pages are an IngestError naming the file."""
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"timestamp": pa.array(list(range(0, 10**9, 10**6)),
                                                   pa.timestamp("us", tz="UTC")),
                             "path": ["/x"] * 1000, "status": [200] * 1000}), path,
                   compression="snappy")
    data = bytearray(path.read_bytes())
    for offset in range(8, 400, 7):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    refused(store, path, str(path))


# --- the registry invariant --------------------------------------------------------------

def test_rows_written_must_match_the_registry(store, write_log,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """If a store path wrote fewer rows than it counted (as Lighthouse did for reports
    without a URL), the ingest fails before commit and nothing is stored."""
    monkeypatch.setitem(ingest_module._STORE, "probes",
                        "INSERT INTO probes SELECT $ingest_id, ts, target, location, ok, "
                        "status, latency_ms, region FROM checked "
                        "WHERE bad_field IS NULL AND line > 2")
    path = write_log("probes.csv", ["timestamp,target,location,ok",
                                    "2026-11-10T10:00:00Z,web,eu,true",
                                    "2026-11-10T10:00:05Z,web,eu,true"])
    refused(store, path, "internal check failed: 2 records and 0 rejects counted, but 1 and 0")


# --- bounded work ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("kind", "limit"), [("nginx", "0"), ("nginx", "0.01"),
                                             ("vitals", "0"), ("jsonl", "0.01")])
def test_sixteen_megabytes_of_blank_lines(tmp_path: Path, kind: str, limit: str) -> None:
    """A 16 MB file of blank lines is refused in seconds and well under 1 GB (it took 57 s
    and 7.4 GB before), listing ten problems."""
    script = textwrap.dedent(f"""
        import resource, sys, time
        from mysetlist_slo import IngestError, ingest_file, open_store
        path = {str(tmp_path / "blank.log")!r}
        open(path, "wb").write(b"\\n" * (16 << 20))
        con = open_store({str(tmp_path / "s.duckdb")!r})
        started = time.perf_counter()
        try:
            ingest_file(con, path, kind={kind!r}, max_bad_rows={limit})
        except IngestError as exc:
            shown = sum(": line: empty line" in l or "unmatched" in l or ": line:" in l
                        for l in str(exc).splitlines())
            print(time.perf_counter() - started, shown,
                  resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=300).stdout.split()
    seconds, shown, peak_kib = float(out[0]), int(out[1]), int(out[2])
    assert seconds < 30 and shown == 10 and peak_kib < 1 << 20, out
