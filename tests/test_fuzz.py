"""Fuzzing every input kind: mutated demo and real files never end in an untyped exception, a
refused file leaves the store as it was, and a loaded one wrote exactly what the registry says.

Seeds are small valid files of each kind, cut from the demo data and read from
../shared/data/real/ (never copied into the repository). Mutations: byte flips, truncation,
NUL and invalid UTF-8, huge fields, deep JSON, swapped columns, out-of-range numbers, NaN and
infinity, byte-order marks, bare CRs, far-off years, empty files. A modest number of examples
runs by default; ``pytest -m fuzz tests/test_fuzz.py`` runs a large number.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REAL_DATA, table_counts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mysetlist_slo import generate_demo, ingest_file, open_store
from mysetlist_slo.errors import SloError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

DEFAULT_EXAMPLES = 10  # per input kind, in every run of the suite (about a minute in all)
LARGE_EXAMPLES = 300  # per input kind, with -m fuzz


def _head(path: Path, lines: int) -> bytes:
    """Return the first ``lines`` lines of a (possibly gzipped) text file."""
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return b"".join(data.splitlines(keepends=True)[:lines])


def _parquet(rows: list[dict[str, object]]) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def build_seeds(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Return input kind -> (file name, content) of one small valid file per kind."""
    demo = generate_demo(folder / "demo", end=datetime(2026, 11, 23, tzinfo=UTC), weeks=1,
                         mean_rps=0.02)
    files = {Path(f).name: Path(f) for f in demo.files}
    lighthouse = next(Path(f) for f in demo.files if "lighthouse" in f)
    prometheus = json.loads(next(Path(f) for f in demo.files if "prometheus" in f).read_text())
    prometheus["data"]["result"] = [{**s, "values": s["values"][:10]}
                                    for s in prometheus["data"]["result"][:2]]
    requests = [{"timestamp": f"2026-11-10T10:{i:02d}:00Z", "method": "GET",
                 "path": f"/show/{i}", "status": 200 + (i % 3) * 100, "duration_ms": 12.5 * i,
                 "bytes": 100 * i, "user_agent": "Mozilla/5.0"} for i in range(12)]
    posthog = [{"event": "$web_vitals", "uuid": f"u{i}", "timestamp": "2026-11-10T10:00:00Z",
                "properties": {"$current_url": "https://mysetlist.example/show/1",
                               "$web_vitals_LCP_value": 1800 + i, "$web_vitals_CLS_value": 0.01,
                               "$web_vitals_LCP_event": {"id": f"l{i}", "rating": "good"},
                               "$device_type": "Mobile"}} for i in range(6)]
    seeds = {
        "nginx": ("access.log", _head(files["access.log"], 15)),
        "nginx-gz": ("access.log.2.gz", gzip.compress(_head(files["access.log.2.gz"], 15))),
        "jsonl": ("requests.jsonl", "".join(json.dumps(r) + "\n" for r in requests).encode()),
        "csv": ("requests.csv", (",".join(requests[0]) + "\n" + "".join(
            ",".join(str(v) for v in r.values()) + "\n" for r in requests)).encode()),
        "parquet": ("requests.parquet", _parquet(requests)),
        "probes": ("probes.csv", _head(files["probes.csv"], 15)),
        "vitals": ("vitals.jsonl", _head(files["vitals.jsonl"], 12)),
        "posthog": ("posthog.jsonl", "".join(json.dumps(e) + "\n" for e in posthog).encode()),
        "posthog-events": ("events.jsonl", (EXAMPLES / "posthog" / "events.jsonl").read_bytes()),
        "posthog-csv": ("events.csv", (EXAMPLES / "posthog" / "events.csv").read_bytes()),
        "lighthouse": ("lighthouse.json", lighthouse.read_bytes()),
        "prometheus": ("prometheus.json", json.dumps(prometheus).encode()),
        "exposition": ("metrics.prom", b"# HELP up Whether up.\n# TYPE up gauge\n"
                       b'up{job="web"} 1 1794787200000\nhttp_requests_total{code="200"} '
                       b"1027 1794787200000\n"),
        "pgbouncer-stats": ("stats.csv", _head(files["pgbouncer-stats.csv"], 10)),
        "pgbouncer-pools": ("pools.csv", _head(files["pgbouncer-pools.csv"], 10)),
        "pg-statements": ("statements.csv", _head(files["pg_stat_statements.csv"], 10)),
        "deploys": ("deploys.jsonl", files["deploys.jsonl"].read_bytes()),
        "vercel": ("vercel.json", files["vercel-deployments.json"].read_bytes()),
    }
    if REAL_DATA.is_dir():
        seeds["real-apache"] = ("apache.log", _head(REAL_DATA / "apache_combined_2015.log", 15))
        for name in ("crux_record_github_origin_phone.json",
                     "crux_history_github_desktop_2023.json"):
            seeds["real-crux" + ("-history" if "history" in name else "")] = (
                name, (REAL_DATA / name).read_bytes())
    return seeds


# --- mutations: each takes (content, a position in [0, 1), a choice) and returns content ---

_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_HUGE_NUMBERS = [b"9223372036854775807", b"99999999999999999999999", b"1e400", b"-1",
                 b"-9223372036854775808", b"1e-400", b"4.2e18", b"1125899906842625"]
_NON_FINITE = [b"NaN", b"nan", b"Infinity", b"-Infinity", b"inf", b"+Inf", b'"NaN"']
_YEARS = [b"9999", b"0001", b"1969", b"2101", b"294247", b"0000"]


def _at(content: bytes, where: float) -> int:
    return min(len(content), int(where * (len(content) + 1)))


def flip_byte(content: bytes, where: float, choice: int) -> bytes:
    if not content:
        return content
    i = min(len(content) - 1, int(where * len(content)))
    return content[:i] + bytes([content[i] ^ (1 << (choice % 8))]) + content[i + 1:]


def truncate(content: bytes, where: float, choice: int) -> bytes:
    return content[:_at(content, where)]


def insert_bytes(content: bytes, where: float, choice: int) -> bytes:
    payload = [b"\x00", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\r", b"\x1b[2J", b"\n\n\n",
               b'"', b",", b"\t", b"\xef\xbb\xbf"][choice % 11]
    i = _at(content, where)
    return content[:i] + payload + content[i:]


def huge_field(content: bytes, where: float, choice: int) -> bytes:
    size = [70_000, 140_000, 1 << 20][choice % 3]
    i = _at(content, where)
    return content[:i] + b"a" * size + content[i:]


def deep_json(content: bytes, where: float, choice: int) -> bytes:
    depth = [1_000, 100_000][choice % 2]
    i = _at(content, where)
    return content[:i] + b"[" * depth + b"]" * depth + content[i:]


def replace_number(content: bytes, where: float, choice: int) -> bytes:
    numbers = list(_NUMBER.finditer(content))
    if not numbers:
        return content
    match = numbers[min(len(numbers) - 1, int(where * len(numbers)))]
    pool = _HUGE_NUMBERS + _NON_FINITE + _YEARS
    return content[:match.start()] + pool[choice % len(pool)] + content[match.end():]


def swap_columns(content: bytes, where: float, choice: int) -> bytes:
    """Swap two comma-separated fields of the first line (a CSV header), or two JSON keys."""
    lines = content.split(b"\n", 1)
    fields = lines[0].split(b",")
    if len(fields) < 2:
        keys = re.findall(rb'"(\w+)":', content)
        if len(keys) < 2:
            return content
        a, b = keys[choice % len(keys)], keys[int(where * len(keys)) % len(keys)]
        return content.replace(b'"' + a + b'":', b'"\x00":').replace(
            b'"' + b + b'":', b'"' + a + b'":').replace(b'"\x00":', b'"' + b + b'":')
    i, j = choice % len(fields), int(where * len(fields)) % len(fields)
    fields[i], fields[j] = fields[j], fields[i]
    return b",".join(fields) + (b"\n" + lines[1] if len(lines) > 1 else b"")


def add_bom(content: bytes, where: float, choice: int) -> bytes:
    return b"\xef\xbb\xbf" + content


def make_empty(content: bytes, where: float, choice: int) -> bytes:
    return [b"", b"\n", b"\n" * 1000, b"{}", b"[]", b" "][choice % 6]


def far_year(content: bytes, where: float, choice: int) -> bytes:
    years = list(re.finditer(rb"(?<![\d])(19|20)\d\d(?![\d])", content))
    if not years:
        return content
    match = years[min(len(years) - 1, int(where * len(years)))]
    return content[:match.start()] + _YEARS[choice % len(_YEARS)] + content[match.end():]


MUTATIONS: list[Callable[[bytes, float, int], bytes]] = [
    flip_byte, truncate, insert_bytes, huge_field, deep_json, replace_number, swap_columns,
    add_bom, make_empty, far_year]

mutation_lists = st.lists(
    st.tuples(st.sampled_from(MUTATIONS), st.floats(0, 1, exclude_max=True),
              st.integers(0, 1_000)), min_size=1, max_size=3)


def mutate(content: bytes, steps: list[tuple[Callable[[bytes, float, int], bytes], float, int]],
           gzipped: bool) -> bytes:
    """Apply the mutation steps (to the decompressed content of a gzip file)."""
    if gzipped:
        content = gzip.decompress(content)
    for step, where, choice in steps:
        content = step(content, where, choice)
    return gzip.compress(content) if gzipped else content


def registry_matches_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Every ingest wrote as many records and rejects as the registry counts for it."""
    tables = {"nginx": "request_counts", "jsonl": "request_counts", "csv": "request_counts",
              "parquet": "request_counts", "probes": "probes", "vitals": "vitals",
              "crux": "crux", "lighthouse": "lighthouse", "prometheus": "metrics",
              "pgbouncer-stats": "pgbouncer_stats", "pgbouncer-pools": "pgbouncer_pools",
              "pg-statements": "pg_statements", "deploys": "deploys",
              "posthog": "posthog_events"}
    for ingest_id, kind, loaded, rejected in con.execute(
            "SELECT id, kind, loaded, rejected FROM ingests").fetchall():
        table = tables[kind]
        measure = "sum(requests)" if table == "request_counts" else "count(*)"
        ((rows,),) = con.execute(f"SELECT coalesce({measure}, 0) FROM {table} "
                                 "WHERE ingest_id = ?", [ingest_id]).fetchall()
        ((kept,),) = con.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?",
                                 [ingest_id]).fetchall()
        assert (rows, kept) == (loaded, rejected), (ingest_id, kind)


def check_one(con: duckdb.DuckDBPyConnection, path: Path, limit: int | float) -> str:
    """Ingest ``path``; return 'loaded', 'skipped' or 'refused'. Any exception that is not an
    SloError propagates (the fuzz property); a refusal must leave the store unchanged."""
    before = table_counts(con)
    try:
        result = ingest_file(con, path, max_bad_rows=limit)
    except SloError:
        assert table_counts(con) == before, "a refused file changed the store"
        return "refused"
    registry_matches_rows(con)
    return "skipped" if result.skipped else "loaded"


class Fuzzer:
    """One store and one set of seeds for a whole fuzz test."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="fuzz-"))
        self.seeds = build_seeds(self.folder)
        self.con = open_store(self.folder / "fuzz.duckdb")
        self.cases = 0
        self.outcomes: dict[str, int] = {}

    def run(self, kind: str, steps: list, limit: int | float) -> None:
        name, content = self.seeds[kind]
        data = mutate(content, steps, name.endswith(".gz"))
        self.cases += 1
        path = self.folder / f"case{self.cases}-{name}"
        path.write_bytes(data)
        try:
            outcome = check_one(self.con, path, limit)
        finally:
            path.unlink()
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def close(self) -> None:
        self.con.close()


@pytest.fixture(name="fuzzer", scope="module")
def fixture_fuzzer():  # type: ignore[no-untyped-def]
    """A store and seeds shared by the fuzz tests of this module."""
    fuzzer = Fuzzer()
    yield fuzzer
    fuzzer.close()


SEED_KINDS = ["nginx", "nginx-gz", "jsonl", "csv", "parquet", "probes", "vitals", "posthog",
              "posthog-events", "posthog-csv",
              "lighthouse", "prometheus", "exposition", "pgbouncer-stats", "pgbouncer-pools",
              "pg-statements", "deploys", "vercel", "real-apache", "real-crux", "real-crux-history"]


def fuzz(fuzzer: Fuzzer, kind: str, examples: int) -> None:
    """Run ``examples`` mutated files of one seed kind through ingest_file."""
    if kind not in fuzzer.seeds:
        pytest.skip(f"no seed for {kind} (real data not found at {REAL_DATA})")

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(steps=mutation_lists, limit=st.sampled_from([0, 3, 0.5]))
    def one_kind(steps: list, limit: int | float) -> None:
        fuzzer.run(kind, steps, limit)

    one_kind()


def test_seeds_load_cleanly(fuzzer: Fuzzer) -> None:
    """Every unmutated seed loads (so the mutations start from valid files)."""
    assert set(fuzzer.seeds) <= set(SEED_KINDS)
    for kind, (name, content) in sorted(fuzzer.seeds.items()):
        path = fuzzer.folder / f"seed-{name}"
        path.write_bytes(content)
        assert check_one(fuzzer.con, path, 0) in ("loaded", "skipped"), kind


@pytest.mark.parametrize("kind", SEED_KINDS)
def test_fuzz(fuzzer: Fuzzer, kind: str) -> None:
    """Mutated files of one kind: only SloError escapes, refusals change nothing, loads write
    what the registry counts."""
    fuzz(fuzzer, kind, DEFAULT_EXAMPLES)


@pytest.mark.fuzz
@pytest.mark.parametrize("kind", SEED_KINDS)
def test_fuzz_large(fuzzer: Fuzzer, kind: str, request: pytest.FixtureRequest) -> None:
    """The same property over many more cases (run with -m fuzz)."""
    if "fuzz" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the large fuzz run is selected with -m fuzz")
    fuzz(fuzzer, kind, LARGE_EXAMPLES)
    print(f"fuzz {kind}: {fuzzer.cases} cases so far, outcomes {fuzzer.outcomes}")
