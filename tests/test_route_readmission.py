"""Route re-admission for the request rollups: requests counted under "(other)" before their
template was admitted move to the route, so a route spread over files ends up as if loaded at
once; templates never admitted stay "(other)". Checked against a brute-force oracle over the
raw requests (plain pandas/numpy, sharing no code with the package)."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from mysetlist_slo import ingest_file, load_config, open_store

CONFIG = load_config()
THRESHOLDS_MS = CONFIG.all_thresholds_ms
MIN_REQUESTS = CONFIG.routes.min_requests  # 5 in the shipped configuration
START = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
LN_GAMMA = math.log(101 / 99)

# Paths and the template a reader of the README expects for each (not computed by the package).
CONFIGURED = ("/show/123", "/show/[id]")  # a configured pattern: a route from the start
THIN = ("/about", "/about")  # spread thinly over the files: admitted in the third
RARE = ("/press-kit", "/press-kit")  # seen fewer than min_requests times in all: never admitted


def _requests(seed: int) -> list[list[dict[str, object]]]:
    """Return three files' requests: the thin route 2 + 2 + 2 times (admitted by the third
    file's), the rare one twice in all, a configured route, and scanner URLs seen once each."""
    rng = random.Random(seed)
    files: list[list[dict[str, object]]] = []
    thin_per_file = (MIN_REQUESTS - 3, 2, 2)  # reaches min_requests in the third file only
    for index in range(3):
        paths = [THIN[0]] * thin_per_file[index] + [CONFIGURED[0]] * rng.randint(3, 8)
        paths += [f"/wp-{rng.choice('abcdefgh')}{k}x{seed}-{index}.php" for k in range(4)]
        if index != 1:
            paths.append(RARE[0])
        rng.shuffle(paths)
        records = []
        for path in paths:
            # Times anywhere in the file's hour (minutes and 5-minute slots shared by routes).
            ts = START + timedelta(hours=index, seconds=rng.randrange(0, 900),
                                   microseconds=rng.randrange(0, 10**6))
            record: dict[str, object] = {
                "timestamp": ts.isoformat().replace("+00:00", "Z"), "path": path,
                "status": rng.choice((200, 200, 200, 404, 500, 503)),
                "bytes": rng.randrange(0, 5000), "cache_status": rng.choice(("HIT", "MISS"))}
            if rng.random() < 0.9:  # a few requests without a duration
                record["duration_ms"] = rng.choice((1, 50, 199, 200, 201, 499, 500, 2500))
            records.append(record)
        files.append(records)
    return files


def _lines(records: list[dict[str, object]]) -> list[str]:
    return [json.dumps(r) for r in records]


def _oracle(records: list[dict[str, object]]) -> dict[str, pd.DataFrame]:
    """Return the rollups expected from the raw requests: the route of a path is its template
    when that template was seen min_requests times in all (or is configured), else (other)."""
    frame = pd.DataFrame(records)
    seen = frame["path"].value_counts()
    templates = dict((CONFIGURED, THIN, RARE))
    frame["route"] = [templates[p] if p in templates and (
        p == CONFIGURED[0] or seen[p] >= MIN_REQUESTS) else "(other)" for p in frame["path"]]
    frame["ts"] = pd.to_datetime(frame["timestamp"], utc=True)
    frame["minute"] = frame["ts"].dt.floor("min")
    frame["slot"] = frame["ts"].dt.floor("5min")
    frame["us"] = (frame["duration_ms"] * 1000).astype("Int64")
    counts = frame.groupby(["minute", "route", "status"]).agg(
        requests=("path", "size"), timed=("us", "count"), duration_sum_us=("us", "sum"),
        bytes_sum=("bytes", "sum")).reset_index()
    answered = frame[frame["us"].notna() & (frame["status"] < 500)]
    good = pd.concat([answered.assign(threshold_ms=float(t), good=(answered["us"] < t * 1000))
                      for t in THRESHOLDS_MS])
    good = good.groupby(["minute", "route", "threshold_ms"])["good"].sum().reset_index()
    us = answered["us"].to_numpy(dtype=float)
    buckets = answered.assign(bucket=np.ceil(np.log(us) / LN_GAMMA).astype(int))
    sketch = buckets.groupby(["slot", "route", "bucket"]).size().reset_index(name="count")
    cache = frame.groupby(["minute", "route", "cache_status"]).agg(
        requests=("path", "size"), bytes_sum=("bytes", "sum")).reset_index()
    return {"request_counts": counts, "request_good": good, "latency_sketch": sketch,
            "cache_counts": cache}


_STORED = {
    "request_counts": "SELECT minute, route, status, sum(requests) AS requests, sum(timed) AS "
                      "timed, sum(duration_sum_us) AS duration_sum_us, sum(bytes_sum) AS "
                      "bytes_sum FROM request_counts GROUP BY ALL",
    "request_good": "SELECT minute, route, threshold_ms, sum(good) AS good FROM request_good "
                    "GROUP BY ALL",
    "latency_sketch": "SELECT slot, route, bucket, sum(count) AS count FROM latency_sketch "
                      "GROUP BY ALL",
    "cache_counts": "SELECT minute, route, cache_status, sum(requests) AS requests, "
                    "sum(bytes_sum) AS bytes_sum FROM cache_counts GROUP BY ALL",
}


def _rollups(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """Return every request rollup of the store summed over its ingests, sorted."""
    out = {}
    for table, sql in _STORED.items():
        frame = con.execute(sql).df()
        keys = list(frame.columns[:3])
        frame[keys[0]] = pd.to_datetime(frame[keys[0]], utc=True)
        out[table] = frame.sort_values(keys, ignore_index=True)
    return out


def _same(stored: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    for table, frame in expected.items():
        keys = list(frame.columns[:3])
        want = frame.sort_values(keys, ignore_index=True)
        got = stored[table][list(want.columns)]
        pd.testing.assert_frame_equal(got, want, check_dtype=False, obj=table)


def _one_file_store(path: Path, lines: list[str]) -> duckdb.DuckDBPyConnection:
    path.write_text("\n".join(lines) + "\n")
    con = open_store(path.with_suffix(".duckdb"))
    ingest_file(con, path)
    return con


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_route_spread_over_three_files_equals_one_file_load(tmp_path: Path, seed: int) -> None:
    """A route admitted by its third file's requests holds all its requests afterwards, in
    every rollup: the three loads equal one load of all three files and the oracle over the
    raw requests; scanner URLs and the rare path stay under (other)."""
    files = _requests(seed)
    store = open_store(tmp_path / "three.duckdb")
    for index, records in enumerate(files):
        path = tmp_path / f"part{index}.jsonl"
        path.write_text("\n".join(_lines(records)) + "\n")
        ingest_file(store, path)
        thin = store.execute("SELECT coalesce(sum(requests), 0) FROM request_counts "
                             "WHERE route = ?", [THIN[1]]).fetchone()
        admitted_now = sum(len([r for r in f if r["path"] == THIN[0]])
                           for f in files[:index + 1])
        assert thin == ((admitted_now if index == 2 else 0),)
    everything = [r for records in files for r in records]
    expected = _oracle(everything)
    _same(_rollups(store), expected)
    one = _one_file_store(tmp_path / "all.jsonl", _lines(everything))
    _same(_rollups(one), {t: f for t, f in _rollups(store).items()})
    # Only templates still tracked (never admitted) keep a tag, all of them under (other).
    for table in _STORED:
        tagged = store.execute(f"SELECT DISTINCT route, template FROM {table} "
                               "WHERE template IS NOT NULL").fetchall()
        assert all(route == "(other)" and template != THIN[1] for route, template in tagged)
    assert (RARE[1],) in store.execute(
        "SELECT DISTINCT template FROM request_counts WHERE template IS NOT NULL").fetchall()


def test_admission_inside_a_file_moves_its_earlier_batches(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Within one file read in several batches, a template admitted in a later batch takes
    the requests of the earlier ones too (the rows are moved at the file's commit)."""
    from mysetlist_slo.sources.request_exports import ExportSource

    rows = [{"timestamp": (START + timedelta(minutes=i)).isoformat(), "path": "/faq",
             "status": 200, "duration_ms": 10} for i in range(12)]
    path = tmp_path / "batches.jsonl"
    path.write_text("\n".join(_lines(rows)) + "\n")
    read = ExportSource.batches
    batches = []

    def small_batches(self: ExportSource, path: Path, batch_bytes: int = 0):  # type: ignore[no-untyped-def]
        for batch in read(self, path, 200):  # about two records a batch
            batches.append(batch)
            yield batch

    monkeypatch.setattr(ExportSource, "batches", small_batches)
    store = open_store(tmp_path / "s.duckdb")
    ingest_file(store, path)
    assert len(batches) >= 4
    assert store.execute("SELECT route, sum(requests) FROM request_counts GROUP BY 1"
                         ).fetchall() == [("/faq", 12)]


def test_tail_withdrawn_and_reloaded_stays_consistent(tmp_path: Path) -> None:
    """A log whose last line (a request of the route admitted later) had no newline yet,
    then grew: after reading on, and after loading the grown file again (a no-op), every rollup
    equals a one-file load of the final content and the oracle."""
    files = _requests(7)
    first = _lines(files[0]) + _lines(files[1])
    # The thin route's admitting requests come last in the third part, the last one cut.
    third = sorted(files[2], key=lambda r: r["path"] == THIN[0])
    grown = first + _lines(third)
    log = tmp_path / "grows.jsonl"
    # A thin-route request last, whole but without its newline yet: loaded as the tail.
    log.write_text("\n".join(grown[:-2]))
    store = open_store(tmp_path / "tail.duckdb")
    ingest_file(store, log)
    log.write_text("\n".join(grown) + "\n")
    ingest_file(store, log)
    assert ingest_file(store, log).skipped
    records = files[0] + files[1] + third
    expected = _oracle(records)
    _same(_rollups(store), expected)
    one = _one_file_store(tmp_path / "once.jsonl", grown)
    _same(_rollups(one), expected)


def test_null_template_is_the_old_rollup(tmp_path: Path) -> None:
    """Configured routes and admitted templates are stored with a NULL template: a reader
    that ignores the column sees the rollups as before."""
    rows = [{"timestamp": START.isoformat(), "path": "/show/1", "status": 200,
             "duration_ms": 10}] * 3
    path = tmp_path / "show.jsonl"
    path.write_text("\n".join(_lines(rows)) + "\n")
    store = open_store(tmp_path / "n.duckdb")
    ingest_file(store, path)
    assert store.execute("SELECT route, template, requests FROM request_counts").fetchall() == [
        ("/show/[id]", None, 3)]
