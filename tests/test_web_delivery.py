"""CDN cache hit ratios, Next.js bundle sizes and Lighthouse lab targets, each checked against
an independent computation (plain pandas, zlib, numpy) over the same inputs."""

from __future__ import annotations

import json
import re
import shutil
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from conftest import DEMO_END

from mysetlist_slo import DemoManifest, ingest_file, load_config
from mysetlist_slo.capacity.cdn import (
    ALL_ROUTES,
    cache_hit_ratios,
    cache_hit_trend,
    cache_miss_episodes,
)
from mysetlist_slo.cli import main
from mysetlist_slo.config import Config, default_config_text
from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources import COMBINED_CACHED, COMBINED_TIMED, ExportOptions, parse_requests
from mysetlist_slo.sources.nextjs import read_build
from mysetlist_slo.sources.requests_schema import cache_status_sql
from mysetlist_slo.store.bundles import store_build
from mysetlist_slo.vitals.bundles import bundle_check, first_load_js
from mysetlist_slo.vitals.delivery import NO_BUILDS, NO_CACHE, NO_LAB, web_delivery
from mysetlist_slo.vitals.lab import describe_value, lab_runs

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "web-delivery"
HITS = {"HIT", "STALE", "UPDATING", "REVALIDATED", "PRERENDER"}  # served from cache
WIDE = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
STATIC = "/_next/static/[...path]"
# A CDN's cache header as the origin logs it (CloudFront's and Fastly's X-Cache), quoted.
CDN_HEADER_FORMAT = COMBINED_TIMED + ' "$sent_http_x_cache"'


@pytest.fixture(name="config")
def fixture_config() -> Config:
    """The shipped configuration."""
    return load_config()


# --- cache status -------------------------------------------------------------------------

def test_cache_status_normalised() -> None:
    """Every vendor's spelling maps onto one status; junk is OTHER, "-" and empty are NULL."""
    cases = {"HIT": "HIT", "hit": "HIT", "Hit from cloudfront": "HIT",
             "RefreshHit from cloudfront": "REVALIDATED", "Miss from cloudfront": "MISS",
             "Error from cloudfront": "ERROR", "MISS, HIT": "HIT", "HIT, MISS": "MISS",
             "dynamic": "DYNAMIC", "none": "DYNAMIC", "PRERENDER": "PRERENDER",
             "expired": "EXPIRED", " STALE ": "STALE", "<script>x</script>": "OTHER",
             "-": None, "": None}
    con = duckdb.connect()
    got = dict(con.execute(
        f"SELECT v, {cache_status_sql('v')} FROM unnest($values) AS t(v)",
        {"values": list(cases)}).fetchall())
    assert got == cases


def _nginx_fixture() -> pd.DataFrame:
    """The nginx fixture read with a plain regex: path, bytes and the last field."""
    pattern = re.compile(r'"GET (\S+) HTTP/[\d.]+" (\d+) (\d+) .* (\S+)$')
    rows = [pattern.search(line).groups()  # type: ignore[union-attr]
            for line in (EXAMPLES / "nginx-proxy-cache.log").read_text().splitlines()]
    frame = pd.DataFrame(rows, columns=["path", "status", "bytes", "cache"])
    frame["bytes"] = frame["bytes"].astype(int)
    return frame


def test_nginx_upstream_cache_status(store: duckdb.DuckDBPyConnection, config: Config) -> None:
    """An nginx log with $upstream_cache_status last is read as such (no format given), and
    the hit ratios by requests and by bytes equal a pandas count over the raw lines."""
    rows, rejects = parse_requests(EXAMPLES / "nginx-proxy-cache.log")
    raw = _nginx_fixture()
    assert not rejects
    assert rows.column("cache_status").to_pylist() == [None if c == "-" else c
                                                      for c in raw["cache"]]
    ingest_file(store, EXAMPLES / "nginx-proxy-cache.log")
    ratios = cache_hit_ratios(store, config, *WIDE).set_index("route")
    logged = raw[raw["cache"] != "-"]
    hit = logged["cache"].isin(HITS)
    assert ratios.loc[ALL_ROUTES, "requests"] == len(logged)
    assert ratios.loc[ALL_ROUTES, "hit_ratio"] == pytest.approx(hit.mean())
    assert ratios.loc[ALL_ROUTES, "byte_hit_ratio"] == pytest.approx(
        logged.loc[hit, "bytes"].sum() / logged["bytes"].sum())
    static = logged[logged["path"].str.startswith("/_next/static/")]
    assert ratios.loc[STATIC, "hit_ratio"] == pytest.approx(static["cache"].isin(HITS).mean())


def test_cloudflare_logpush_mapped(store: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Cloudflare Logpush records load with --map (CacheCacheStatus in lower case) and give
    the hit ratios pandas computes from the same records."""
    mapping = {"timestamp": "EdgeStartTimestamp", "path": "ClientRequestPath",
               "method": "ClientRequestMethod", "status": "EdgeResponseStatus",
               "bytes": "EdgeResponseBytes", "cache_status": "CacheCacheStatus"}
    result = ingest_file(store, EXAMPLES / "cloudflare-logpush.jsonl",
                         options=ExportOptions(mapping=mapping))
    raw = pd.read_json(EXAMPLES / "cloudflare-logpush.jsonl", lines=True)
    assert result.loaded == len(raw)
    status = raw["CacheCacheStatus"].str.upper()
    hit = status.isin(HITS)
    ratios = cache_hit_ratios(store, config, *WIDE).set_index("route")
    assert ratios.loc[ALL_ROUTES, "requests"] == len(raw)
    assert ratios.loc[ALL_ROUTES, "hits"] == hit.sum()
    assert ratios.loc[ALL_ROUTES, "uncached"] == status.isin({"BYPASS", "DYNAMIC"}).sum()
    assert ratios.loc[ALL_ROUTES, "byte_hit_ratio"] == pytest.approx(
        raw.loc[hit, "EdgeResponseBytes"].sum() / raw["EdgeResponseBytes"].sum())
    static = raw["ClientRequestPath"].str.startswith("/_next/static/")
    assert ratios.loc[STATIC, "hit_ratio"] == pytest.approx(hit[static].mean())
    assert bool(ratios.loc[STATIC, "below_target"]) == (hit[static].mean() < 0.95)


@pytest.fixture(name="random_log")
def fixture_random_log(tmp_path: Path) -> tuple[Path, pd.DataFrame, tuple[datetime, datetime]]:
    """Three days of random requests with random X-Cache values (several spellings), and a
    planted 3-hour storm of misses on static assets; returns the log, the truth, the storm."""
    rng = np.random.default_rng(7)
    start = datetime(2026, 11, 9, tzinfo=UTC)
    n = 6000
    seconds = np.sort(rng.integers(0, 3 * 86400, n))
    templates = rng.choice([STATIC, "/show/[id]", "/api/shows/[id]"], n, p=[0.6, 0.25, 0.15])
    storm = (start + timedelta(days=1, hours=10), start + timedelta(days=1, hours=13))
    in_storm = (seconds >= 86400 + 10 * 3600) & (seconds < 86400 + 13 * 3600)
    spelled = {"HIT": ["HIT", "hit", "Hit from cloudfront", "MISS, HIT"],
               "MISS": ["MISS", "miss", "Miss from cloudfront"],
               "REVALIDATED": ["RefreshHit from cloudfront", "REVALIDATED"],
               "STALE": ["STALE"], "BYPASS": ["BYPASS"], "EXPIRED": ["EXPIRED"]}
    truth_status, written, paths = [], [], []
    for i in range(n):
        if templates[i] == STATIC:
            p_hit = 0.1 if in_storm[i] else 0.99
            status = "HIT" if rng.random() < p_hit else str(rng.choice(["MISS", "EXPIRED"]))
            paths.append(f"/_next/static/chunks/{rng.integers(0, 50):04x}.js")
        elif templates[i] == "/show/[id]":
            status = str(rng.choice(["HIT", "STALE", "REVALIDATED", "MISS", "BYPASS"]))
            paths.append(f"/show/{rng.integers(1, 10**6)}")
        else:
            status = "-"
            paths.append(f"/api/shows/{rng.integers(1, 10**6)}")
        truth_status.append(None if status == "-" else status)
        written.append("-" if status == "-" else str(rng.choice(spelled[status])))
    nbytes = rng.integers(0, 50_000, n)
    when = [start + timedelta(seconds=int(s)) for s in seconds]
    lines = [f'203.0.113.1 - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET {p} HTTP/1.1" 200 {b} "-" '
             f'"UA" 0.010 0.009 "{c}"' for t, p, b, c in zip(when, paths, nbytes, written,
                                                           strict=True)]
    path = tmp_path / "cache.log"
    path.write_text("\n".join(lines) + "\n")
    truth = pd.DataFrame({"ts": pd.to_datetime(when), "route": templates,
                          "status": truth_status, "bytes": nbytes})
    return path, truth, storm


def test_cache_ratios_match_pandas_oracle(store: duckdb.DuckDBPyConnection, config: Config,
                                          random_log: tuple[Path, pd.DataFrame, tuple]) -> None:
    """Per route and per day, requests, hits and bytes served from cache equal a brute-force
    pandas count over the raw requests (statuses written in several vendors' spellings)."""
    path, truth, _ = random_log
    ingest_file(store, path, log_format=CDN_HEADER_FORMAT)
    logged = truth[truth["status"].notna()].assign(hit=lambda f: f["status"].isin(HITS))
    logged = logged.assign(hit_bytes=logged["bytes"].where(logged["hit"], 0))
    expected = logged.groupby("route").agg(requests=("hit", "size"), hits=("hit", "sum"),
                                           bytes=("bytes", "sum"),
                                           hit_bytes=("hit_bytes", "sum"))
    got = cache_hit_ratios(store, config, *WIDE).set_index("route")
    for route, row in expected.iterrows():
        assert got.loc[route, ["requests", "hits", "bytes", "hit_bytes"]].tolist() == \
            row[["requests", "hits", "bytes", "hit_bytes"]].tolist(), route
    assert "/api/shows/[id]" not in got.index  # no cache lookup: not in the ratio
    days = logged.groupby(logged["ts"].dt.floor("D").dt.tz_localize(None))
    trend = cache_hit_trend(store, config, *WIDE, grain="day")
    overall = trend[trend["routes"] == ALL_ROUTES].set_index("period")
    assert overall["requests"].tolist() == days.size().tolist()
    assert overall["hit_ratio"].to_numpy() == pytest.approx(days["hit"].mean().to_numpy())


def test_cache_miss_storm_found(store: duckdb.DuckDBPyConnection, config: Config,
                                random_log: tuple[Path, pd.DataFrame, tuple]) -> None:
    """The planted 3-hour storm on static assets is the one episode, with its hit ratio."""
    path, truth, (start, end) = random_log
    ingest_file(store, path, log_format=CDN_HEADER_FORMAT)
    storms = cache_miss_episodes(store, config, *WIDE)
    assert len(storms) == 1
    assert (storms.loc[0, "start"], storms.loc[0, "end"]) == (start, end)
    during = truth[(truth["route"] == STATIC) & (truth["ts"] >= start) & (truth["ts"] < end)]
    assert storms.loc[0, "requests"] == len(during)
    assert storms.loc[0, "hit_ratio"] == pytest.approx(during["status"].isin(HITS).mean())


# --- bundles ------------------------------------------------------------------------------

def _gzip_len(data: bytes) -> int:
    """gzip size at level 9 through zlib directly (not the gzip module the code uses)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return len(packer.compress(data) + packer.flush())


def _first_load_oracle(build: Path) -> dict[str, int]:
    """First Load JS per app route by hand: the route's entry's .js files, gzip-summed."""
    routes = {"/page": "/", "/(browse)/artist/[slug]/page": "/artist/[slug]",
              "/show/[id]/page": "/show/[id]", "/_not-found/page": "/_not-found"}
    pages = json.loads((build / ".next" / "app-build-manifest.json").read_text())["pages"]
    return {route: sum(_gzip_len((build / ".next" / f).read_bytes())
                       for f in set(pages[entry]) if f.endswith(".js"))
            for entry, route in routes.items()}


def test_first_load_js_matches_oracle(store: duckdb.DuckDBPyConnection) -> None:
    """First Load JS per route (gzip, layouts and runtime included, route groups dropped) and
    the static total equal a hand computation over the manifests and files."""
    folder = EXAMPLES / "nextjs" / "build-a"
    result = ingest_file(store, folder)
    assert result.kind == "nextjs-build" and not result.skipped
    got = first_load_js(store, result.ingest_id)  # type: ignore[arg-type]
    assert dict(zip(got["route"], got["first_load_gzip_bytes"], strict=True)) == \
        _first_load_oracle(folder)
    static = [p for p in (folder / ".next" / "static").rglob("*") if p.is_file()]
    stored = store.execute("SELECT static_bytes, static_files FROM bundle_builds").fetchone()
    assert stored == (sum(p.stat().st_size for p in static), len(static))
    assert ingest_file(store, folder).skipped  # the same build again changes nothing


def _copy_builds(tmp_path: Path) -> tuple[Path, Path]:
    builds = []
    for name in ("build-a", "build-b"):
        target = tmp_path / name
        shutil.copytree(EXAMPLES / "nextjs" / name, target)
        builds.append(target)
    return builds[0], builds[1]


def test_bundle_regression_against_previous_build(store: duckdb.DuckDBPyConnection,
                                                  tmp_path: Path) -> None:
    """Build B grows /show/[id] past its budget and by more than max_growth; the other
    routes, unchanged, are ok. Growth equals the oracle's sizes' ratio."""
    a, b = _copy_builds(tmp_path)
    oracle_a, oracle_b = _first_load_oracle(a), _first_load_oracle(b)
    budget_kb = (oracle_a["/show/[id]"] + oracle_b["/show/[id]"]) / 2 / 1000
    config = load_config().model_copy(update={"bundles": load_config().bundles.model_copy(
        update={"budgets_kb": {"/show/[id]": budget_kb}, "default_budget_kb": None})})
    t0 = datetime(2026, 11, 10, 12, tzinfo=UTC)
    store_build(store, read_build(a, commit="aaa1111", built_at=t0))
    stored = store_build(store, read_build(b, commit="bbb2222", built_at=t0 + timedelta(days=1)))
    check = bundle_check(store, config, stored.ingest_id).set_index("route")
    show = check.loc["/show/[id]"]
    assert bool(show["regression"]) and show["finding"] == "grew past budget"
    assert show["growth"] == pytest.approx(oracle_b["/show/[id]"] / oracle_a["/show/[id]"] - 1)
    others = check.drop(index="/show/[id]")
    assert not others["regression"].any() and (others["growth"] == 0).all()


def test_bundles_check_cli_exit_codes(tmp_path: Path) -> None:
    """`bundles check --fail-on regression` exits 0 for the first build and 3 for the one
    that regresses; an empty folder is one error line and exit 1."""
    a, b = _copy_builds(tmp_path)
    config = tmp_path / "slo.yaml"
    # A budget between the two builds' /show/[id] sizes (about 7 and 17 kB).
    config.write_text(default_config_text().replace('"/show/[id]": 220', '"/show/[id]": 10'))
    db = tmp_path / "m.duckdb"
    common = ["--db", str(db), "--config", str(config), "--fail-on", "regression"]
    assert main(["bundles", "check", str(a), "--commit", "a1", "--built-at",
                 "2026-11-10T12:00Z", *common]) == 0
    assert main(["bundles", "check", str(b / ".next"), "--commit", "b2", "--built-at",
                 "2026-11-11T12:00Z", *common]) == 3
    (tmp_path / "empty").mkdir()
    assert main(["bundles", "check", str(tmp_path / "empty"), *common]) == 1


def test_partial_or_hostile_build_refused(tmp_path: Path) -> None:
    """A file the manifest names but the build lacks, or a name leaving the build folder, is
    an IngestError naming it; nothing is read outside."""
    a, _ = _copy_builds(tmp_path)
    chunk = next((a / ".next" / "static" / "chunks" / "app").rglob("page-*.js"))
    chunk.unlink()
    with pytest.raises(IngestError, match=re.escape(chunk.name)):
        read_build(a)
    manifest = a / ".next" / "app-build-manifest.json"
    manifest.write_text(json.dumps({"pages": {"/page": ["../../../../etc/passwd.js"]}}))
    with pytest.raises(IngestError, match="outside the build"):
        read_build(a)


# --- Lighthouse lab targets ---------------------------------------------------------------

def test_lab_median_of_repeated_runs(store: duckdb.DuckDBPyConnection, config: Config) -> None:
    """Three Lighthouse CI runs of a page are one collection whose metrics are the numpy
    medians of the runs; each is judged against the plan's targets; a report without the
    `interactive` audit has TTI "not measured" (NULL in the store, never 0)."""
    for path in sorted((EXAMPLES / "lighthouse").glob("*.json")):
        ingest_file(store, path)
    runs = lab_runs(store, config, *WIDE).set_index("url")
    reports = [json.loads(p.read_text())
               for p in sorted((EXAMPLES / "lighthouse").glob("lhci-show-run-*.json"))]
    show = runs.loc["https://mysetlist.example/show/123456"]
    assert show["runs"] == 3
    audits = {"FCP": "first-contentful-paint", "LCP": "largest-contentful-paint",
              "CLS": "cumulative-layout-shift", "TTI": "interactive"}
    for metric, audit in audits.items():
        assert show[metric] == pytest.approx(
            np.median([r["audits"][audit]["numericValue"] for r in reports]))
    assert show["score"] == pytest.approx(
        np.median([100 * r["categories"]["performance"]["score"] for r in reports]))
    # 0.89 < 0.90; FCP 1.69 s < 1.8; LCP 2.49 s < 2.5; CLS 0.04 < 0.1; TTI 3.72 s < 3.8
    assert [show[f"meets_{m}"] for m in ("score", "FCP", "LCP", "CLS", "TTI")] == \
        [False, True, True, True, True]
    home = runs.loc["https://mysetlist.example/"]
    assert np.isnan(home["TTI"]) and home["meets_TTI"] is None and bool(home["meets_all"])
    assert describe_value("TTI", home["TTI"]) == "not measured"
    assert store.execute("SELECT count(*) FROM lighthouse WHERE tti IS NULL").fetchone() == (1,)


# --- the report section -------------------------------------------------------------------

def test_section_says_one_line_per_missing_part(store: duckdb.DuckDBPyConnection,
                                                config: Config) -> None:
    """On an empty store each part is one line saying its data is missing, status no_data."""
    section = web_delivery(store, config, *WIDE)
    assert [line.text for line in section.lines] == [NO_CACHE, NO_BUILDS, NO_LAB]
    assert section.status == "no_data" and section.digest_lines() == []


def test_demo_storm_and_bundle_regression_found(demo: DemoManifest,
                                                demo_con: duckdb.DuckDBPyConnection,
                                                config: Config) -> None:
    """The demo's last week: the section finds the planted cache-miss storm (its hours) and
    the bundle regression (its commit), and flags /_next/static/* under 95 % hits."""
    end = DEMO_END
    section = web_delivery(demo_con, config, end - timedelta(days=7), end)
    storm = demo.event("cache_miss_storm")
    assert len(section.cache_storms) == 1
    assert (section.cache_storms.loc[0, "start"], section.cache_storms.loc[0, "end"]) == \
        (storm.start, storm.end)
    regression = demo.event("bundle_regression")
    regressed = section.bundle_regressions
    assert regressed["route"].tolist() == ["/show/[id]"]
    assert regressed.loc[0, "commit"] in regression.detail
    static = section.cache_routes.set_index("route").loc[STATIC]
    assert bool(static["below_target"])
    digest = "\n".join(section.digest_lines())
    assert "cache-miss storm" in digest and "/show/[id]" in digest


def test_weekly_summary_carries_web_delivery(demo: DemoManifest,
                                             demo_con: duckdb.DuckDBPyConnection,
                                             config: Config) -> None:
    """summary.json of the demo's last week holds web_delivery, valid against the schema,
    with the storm's hours and the regressed route; the digest lists both findings."""
    from mysetlist_slo.report.summaries import summary_document, summary_markdown, validate
    from mysetlist_slo.report.weekly import weekly_summary

    summary = weekly_summary(demo_con, config, "2026-W47")
    document = summary_document("weekly", demo_con, config, summary)
    validate(document)
    delivery = document["web_delivery"]
    storm = demo.event("cache_miss_storm")
    assert delivery["cdn"]["status"] == "at_risk"
    assert delivery["cdn"]["storms"][0]["start"] == f"{storm.start:%Y-%m-%dT%H:%M:%SZ}"
    assert [r["route"] for r in delivery["bundles"]["regressions"]] == ["/show/[id]"]
    digest = summary_markdown(document)
    assert "cache-miss storm" in digest and "grew past budget" in digest
    # The lab scores fell since the collection before: signed with a minus sign.
    assert "score \u2212" in digest and "score -" not in digest
    # Every signed change of the section is written so (the demo's hit ratio fell 1.5 points).
    texts = [line["text"] for line in delivery["lines"]]
    assert any("\u22121.5 points on the period before" in text for text in texts), texts
    assert not [text for text in texts if re.search(r"(?<![\w/.])-\d", text)]


def test_vercel_cache_column_in_csv(store: duckdb.DuckDBPyConnection, config: Config,
                                    tmp_path: Path) -> None:
    """A CSV export naming the column x_vercel_cache is read without a mapping; PRERENDER
    counts as served from cache, MISS and BYPASS do not."""
    path = tmp_path / "vercel.csv"
    path.write_text("timestamp,path,status,bytes,x_vercel_cache\n"
                    "2026-11-10T10:00:00Z,/show/1,200,1000,PRERENDER\n"
                    "2026-11-10T10:00:01Z,/show/2,200,3000,MISS\n"
                    "2026-11-10T10:00:02Z,/show/3,200,500,BYPASS\n"
                    "2026-11-10T10:00:03Z,/show/4,200,500,\n")
    ingest_file(store, path)
    overall = cache_hit_ratios(store, config, *WIDE).set_index("route").loc[ALL_ROUTES]
    assert (overall["requests"], overall["hits"], overall["uncached"]) == (3, 1, 1)
    assert overall["byte_hit_ratio"] == pytest.approx(1000 / 4500)


def test_cache_header_keys_in_jsonl(store: duckdb.DuckDBPyConnection, config: Config,
                                    tmp_path: Path) -> None:
    """JSON Lines records hold their cache outcome under any of the documented keys (and their
    target under path or route), record by record: Cloudflare's and Vercel's keys count as
    cache outcomes, a record without any key is uncached."""
    path = tmp_path / "cdn.jsonl"
    path.write_text(
        '{"timestamp":"2026-11-10T10:00:00Z","path":"/show/1","status":200,"bytes":1000,'
        '"cf_cache_status":"HIT"}\n'
        '{"timestamp":"2026-11-10T10:00:01Z","route":"/show/2","status":200,"bytes":3000,'
        '"x_vercel_cache":"MISS"}\n'
        '{"timestamp":"2026-11-10T10:00:02Z","path":"/show/3","status":200,"bytes":500,'
        '"x_cache":"Hit from cloudfront"}\n'
        '{"timestamp":"2026-11-10T10:00:03Z","path":"/show/4","status":200,"bytes":500}\n')
    ingest_file(store, path, kind="jsonl")
    assert store.execute("SELECT count(*) FROM rejects").fetchone() == (0,)
    overall = cache_hit_ratios(store, config, *WIDE).set_index("route").loc[ALL_ROUTES]
    assert (overall["requests"], overall["hits"]) == (3, 2)
    assert overall["byte_hit_ratio"] == pytest.approx(1500 / 4500)


def test_lab_median_of_an_even_number_of_runs(store: duckdb.DuckDBPyConnection,
                                              config: Config, tmp_path: Path) -> None:
    """Four runs: each metric is the mean of the two middle runs (LHCI's median); a run an
    hour later starts a new collection."""
    template = json.loads((EXAMPLES / "lighthouse" / "lhci-show-run-1.json").read_text())
    lcps = [2400.0, 2700.0, 2500.0, 2600.0, 2000.0]
    starts = [0, 40, 80, 120, 3600]  # seconds after the first run
    for i, (lcp, after) in enumerate(zip(lcps, starts, strict=True)):
        report = json.loads(json.dumps(template))
        report["audits"]["largest-contentful-paint"]["numericValue"] = lcp
        when = datetime(2026, 11, 10, 3, tzinfo=UTC) + timedelta(seconds=after)
        report["fetchTime"] = when.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        (tmp_path / f"run-{i}.json").write_text(json.dumps(report))
        ingest_file(store, tmp_path / f"run-{i}.json")
    runs = lab_runs(store, config, *WIDE)
    assert runs["runs"].tolist() == [4, 1]
    assert runs["LCP"].tolist() == [(2500.0 + 2600.0) / 2, 2000.0]  # sorted: 2400 2500 2600 2700
    assert runs["meets_LCP"].tolist() == [False, True]


def test_fail_on_over_budget(tmp_path: Path) -> None:
    """--fail-on over-budget exits 3 when a route is over its budget (here every route, with a
    1 kB default budget); the same build checked again with --fail-on never exits 0."""
    a, _ = _copy_builds(tmp_path)
    config = tmp_path / "slo.yaml"
    config.write_text(default_config_text().replace("default_budget_kb: 250",
                                                    "default_budget_kb: 1"))
    common = ["--db", str(tmp_path / "m.duckdb"), "--config", str(config), "--commit", "a1"]
    assert main(["bundles", "check", str(a), *common, "--fail-on", "over-budget"]) == 3
    assert main(["bundles", "check", str(a), *common, "--fail-on", "never", "--json"]) == 0


def test_upstream_list_before_cache_status(tmp_path: Path) -> None:
    """Several upstream times ("0.010, 0.020", "0.010 : 0.020") before the cache status are
    one field: they add up, and the cache status after them is still read."""
    head = ('203.0.113.1 - - [10/Nov/2026:10:00:0{i} +0000] "GET /show/1 HTTP/1.1" 200 10 "-" '
            '"UA" 0.040 ')
    path = tmp_path / "list.log"
    path.write_text(head.format(i=1) + "0.010, 0.020 MISS\n" +
                    head.format(i=2) + "0.015 : 0.005 EXPIRED\n" +
                    head.format(i=3) + "- HIT\n")
    rows, rejects = parse_requests(path, log_format=COMBINED_CACHED)
    assert not rejects
    assert rows.column("upstream_us").to_pylist() == [30_000, 20_000, None]
    assert rows.column("cache_status").to_pylist() == ["MISS", "EXPIRED", "HIT"]
