"""A deterministic demo data set: five weeks of MySetlist's nginx logs with planted incidents."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import math
import os
import shutil
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import BinaryIO, cast

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mysetlist_slo.sources.nextjs import is_next_build, read_build
from mysetlist_slo.store.ingest import TAIL_PREFIX, file_digest, withdraw_load

DEMO_DIR = Path("data/demo")
SERVER_TZ = "America/New_York"  # the log's local time; DST moves its offset on 1 November

ARTISTS = ["radiohead", "taylor-swift", "the-national", "phoebe-bridgers", "arctic-monkeys",
           "billie-eilish", "foo-fighters", "lcd-soundsystem", "boygenius", "pearl-jam",
           "the-cure", "fontaines-dc", "idles", "beyonce", "olivia-rodrigo", "wilco",
           "the-war-on-drugs", "big-thief", "muse", "paramore"]
VENUES = ["madison-square-garden", "red-rocks", "o2-arena", "the-fillmore", "brooklyn-steel",
          "hollywood-bowl", "royal-albert-hall", "the-anthem"]
USER_AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",  # noqa: E501
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",  # noqa: E501
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",  # noqa: E501
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",  # noqa: E501
    "Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",  # noqa: E501
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
]
USER_AGENT_SHARE = [0.38, 0.2, 0.22, 0.12, 0.05, 0.03]
_BOT = 5  # the index of the crawler above: crawlers send no beacons
_FORM_FACTOR = np.array(["phone", "phone", "desktop", "desktop", "tablet", "desktop"])


@dataclass(frozen=True)
class Route:
    """A route of the demo app: share of traffic, latency, and how to make a concrete path."""

    template: str
    share: float
    median_ms: float
    sigma: float
    method: str = "GET"
    static: bool = False  # served by nginx itself: no upstream time


ROUTES = [
    Route("/", 0.10, 160, 0.45),
    Route("/artist/[slug]", 0.16, 190, 0.5),
    Route("/show/[id]", 0.12, 120, 0.45),
    Route("/venue/[slug]", 0.04, 170, 0.5),
    Route("/setlist/[id]", 0.06, 150, 0.5),
    Route("/search", 0.04, 140, 0.6),
    Route("/api/artists/[slug]", 0.09, 45, 0.5),
    Route("/api/shows/[id]", 0.08, 40, 0.5),
    Route("/api/setlists/[id]", 0.07, 48, 0.5),
    Route("/api/search", 0.04, 60, 0.55),
    Route("/api/votes/[id]", 0.03, 55, 0.5, method="POST"),
    Route("/_next/static/[...path]", 0.15, 2, 0.8, static=True),
    Route("/scanner", 0.02, 3, 0.6, static=True),  # bots probing random paths
]


@dataclass(frozen=True)
class PlantedEvent:
    """Something the demo contains on purpose, for reports and tests to find."""

    name: str
    start: datetime
    end: datetime
    detail: str


@dataclass
class DemoManifest:
    """What the demo generator wrote and planted."""

    start: datetime
    end: datetime
    seed: int
    requests: int
    files: list[str] = field(default_factory=list)
    events: list[PlantedEvent] = field(default_factory=list)

    def event(self, name: str) -> PlantedEvent:
        """Return the planted event called ``name``."""
        return next(e for e in self.events if e.name == name)

    def to_json(self) -> str:
        """Return the manifest as JSON text."""
        return json.dumps(asdict(self), default=str, indent=2)


def default_end(now: datetime | None = None) -> datetime:
    """Return Monday 00:00 UTC of the current ISO week: the demo's last full week ends there."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    monday = now - timedelta(days=now.weekday())
    return monday.replace(hour=0, minute=0, second=0, microsecond=0)


# Relative traffic by local hour: a 4 a.m. low, a daytime plateau, a peak before concerts end.
_HOURLY = [0.55, 0.4, 0.3, 0.25, 0.22, 0.25, 0.35, 0.5, 0.65, 0.75, 0.8, 0.85,
           0.9, 0.9, 0.88, 0.9, 0.95, 1.05, 1.2, 1.35, 1.45, 1.4, 1.1, 0.8]


def _traffic_per_minute(minutes: np.ndarray, local_hours: np.ndarray, local_weekday: np.ndarray,
                        mean_rps: float) -> np.ndarray:
    """Return the expected requests in each minute: daily and weekly cycles and growth."""
    daily = np.interp(local_hours, np.arange(25), _HOURLY + _HOURLY[:1])
    weekly = np.where(local_weekday >= 4, 1.25, 0.95)  # Friday-Sunday: concert nights
    weeks = (minutes - minutes[0]) / (7 * 24 * 60)
    growth = 1.03 ** weeks  # 3 % more traffic each week
    shape = daily * weekly * growth
    return mean_rps * 60 * shape / shape.mean()


def _paths(rng: np.random.Generator, route: Route, n: int) -> np.ndarray:
    """Return ``n`` concrete request paths for ``route``."""
    if n == 0:
        return np.array([], dtype=object)
    ids = rng.integers(1000, 250_000, n).astype(str)
    artists = rng.choice(ARTISTS, n)
    if route.template == "/_next/static/[...path]":
        chunks = np.array([f"{h:012x}" for h in rng.integers(0, 2**48, 40)])
        return np.char.add(np.char.add("/_next/static/chunks/", rng.choice(chunks, n)), ".js")
    if route.template == "/scanner":
        junk = rng.integers(0, 10**9, n).astype(str)
        prefixes = rng.choice(["/wp-login.php?x=", "/.env.", "/admin/", "/phpmyadmin/",
                               "/cgi-bin/", "/xmlrpc.php?id="], n)
        return np.char.add(prefixes, junk)
    fill = {"[slug]": artists, "[id]": ids}
    template = route.template
    if template.startswith("/venue"):
        fill = {"[slug]": rng.choice(VENUES, n)}
    if template in ("/search", "/api/search"):
        return np.char.add(template + "?q=", artists)
    if "[" not in template:
        return np.full(n, template, dtype=object)
    head, _, tail = template.partition("[")
    placeholder = "[" + tail.split("]")[0] + "]"
    rest = tail.split("]", 1)[1]
    return np.char.add(np.char.add(head, fill[placeholder]), rest)


def _seconds_text(us: np.ndarray) -> pa.Array:
    """Return nginx's millisecond-resolution seconds ("0.123") for microsecond durations."""
    ms = np.round(us / 1000).astype(np.int64)
    whole = pa.array(ms // 1000).cast(pa.string())
    frac = pc.utf8_lpad(pa.array(ms % 1000).cast(pa.string()), 3, "0")
    return pc.binary_join_element_wise(whole, frac, ".")


# Above this many requests the logs are generated and written a chunk of minutes at a time,
# each chunk from its own seeded stream, so any rate fits in bounded memory. At and below it
# (the default rate: ~1 M requests) all requests are drawn at once, as they always were: the
# default demo's bytes, which tests and the README quote, stay the same.
STREAM_ABOVE = 3_000_000
_CHUNK_REQUESTS = 250_000  # requests generated at a time when streaming (~150 MB of work)
_DEFAULT_RPS = 0.3  # streamed demos sample beacons and PostHog sessions to this rate's volume


@dataclass(frozen=True)
class _Plants:
    """The incidents planted in the request logs (the last full week, local evenings)."""

    outage: PlantedEvent
    spike: PlantedEvent
    regression: PlantedEvent
    slowdown: PlantedEvent
    storm: PlantedEvent


def _plants(end: datetime) -> _Plants:
    """Return the incidents of the demo ending at ``end``."""
    last_week = end - timedelta(days=7)
    return _Plants(
        outage=PlantedEvent("outage", last_week + timedelta(days=2, hours=19, minutes=23),
                            last_week + timedelta(days=2, hours=19, minutes=30),
                            "upstream down for 7 minutes: every request answered 502"),
        spike=PlantedEvent("deploy_error_spike",
                           last_week + timedelta(days=3, hours=23, minutes=5),
                           last_week + timedelta(days=3, hours=23, minutes=45),
                           "bad deploy: 8 % of /api/* requests fail with 500 for 40 minutes"),
        regression=PlantedEvent("latency_regression", last_week + timedelta(days=1), end,
                                "/show/[id] takes 2.2x longer after a release"),
        slowdown=PlantedEvent("api_slowdown", last_week + timedelta(days=5, hours=16),
                              last_week + timedelta(days=5, hours=22),
                              "/api/* slow for 6 hours: api-latency's budget falls to about "
                              "15 % left, a release freeze under the error-budget policy"),
        storm=PlantedEvent("cache_miss_storm", last_week + timedelta(days=4, hours=13),
                           last_week + timedelta(days=4, hours=23),
                           "a deploy set Vary: Cookie on /_next/static/*: 80 % of static "
                           "asset requests missed the cache for 10 hours"))


@dataclass
class _Requests:
    """Generated requests: their log lines, and what the other sources are drawn from."""

    lines: pa.Array
    templates: np.ndarray
    paths: np.ndarray
    agents: np.ndarray
    status: np.ndarray

    def pages(self) -> np.ndarray:
        """Return which requests are page views by people (not API, static or crawlers)."""
        return np.isin(self.templates, [r.template for r in ROUTES if not r.static and
                                        not r.template.startswith("/api/")]) & (
            self.agents != _BOT)


SlowDown = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], None]


def _requests(rng: np.random.Generator, seconds: np.ndarray, plants: _Plants,
              cache_rng: np.random.Generator, slow_down: SlowDown) -> _Requests:
    """Return requests received at ``seconds`` (Unix seconds, sorted) with the incidents;
    ``slow_down(duration_us, ts, is_api, during)`` plants the API slowdown in place."""
    total = len(seconds)
    shares = np.array([r.share for r in ROUTES])
    route_index = rng.choice(len(ROUTES), total, p=shares / shares.sum())
    paths = np.empty(total, dtype=object)
    duration_us = np.empty(total)
    for i, route in enumerate(ROUTES):
        chosen = np.flatnonzero(route_index == i)
        paths[chosen] = _paths(rng, route, len(chosen))
        duration_us[chosen] = rng.lognormal(np.log(route.median_ms * 1000), route.sigma,
                                            len(chosen))
    methods = np.array([r.method for r in ROUTES], dtype=object)[route_index]
    static = np.array([r.static for r in ROUTES])[route_index]
    templates = np.array([r.template for r in ROUTES], dtype=object)[route_index]
    is_api = np.char.startswith(templates.astype(str), "/api/")

    status = np.full(total, 200)
    status[static & (rng.random(total) < 0.2)] = 304
    status[(templates == "/scanner")] = 404
    status[~static & (rng.random(total) < 0.004)] = 404
    status[~static & (rng.random(total) < 0.0002)] = 500

    ts = seconds.astype("datetime64[s]")
    in_window = lambda e: (ts >= np.datetime64(e.start.replace(tzinfo=None))) & (  # noqa: E731
        ts < np.datetime64(e.end.replace(tzinfo=None)))
    regressed = in_window(plants.regression) & (templates == "/show/[id]")
    duration_us[regressed] *= 2.2
    failing = in_window(plants.spike) & is_api & (rng.random(total) < 0.08)
    status[failing] = 500
    slow_down(duration_us, ts, is_api, in_window(plants.slowdown))
    down = in_window(plants.outage) & ~static
    status[down] = 502
    duration_us[down] = rng.uniform(1_000, 3_000, down.sum())  # connect refused: fast failures

    upstream_us = np.where(static, np.nan, duration_us * rng.uniform(0.85, 0.98, total))
    upstream_text = pc.if_else(pa.array(static | down), "-",
                               _seconds_text(np.nan_to_num(upstream_us)))
    body = np.where(status == 304, 0, rng.lognormal(np.log(9000), 0.9, total).astype(np.int64))
    clients = pc.binary_join_element_wise(
        pa.array(rng.choice(["203.0.113.", "198.51.100.", "192.0.2."], total)),
        pa.array(rng.integers(1, 255, total)).cast(pa.string()), "")
    agents = rng.choice(len(USER_AGENTS), total, p=USER_AGENT_SHARE)
    referer = pc.if_else(pa.array(rng.random(total) < 0.5), "https://mysetlist.example/", "-")

    when = pc.strftime(pa.array(seconds, pa.timestamp("s", tz=SERVER_TZ)),
                       format="%d/%b/%Y:%H:%M:%S %z")
    request = pc.binary_join_element_wise(pa.array(methods, pa.string()),
                                          pa.array(paths, pa.string()), "HTTP/1.1", " ")
    line = pc.binary_join_element_wise(
        clients, " - - [", when, '] "', request, '" ', pa.array(status).cast(pa.string()), " ",
        pa.array(body).cast(pa.string()), ' "', referer, '" "',
        pa.array(np.array(USER_AGENTS, dtype=object)[agents], pa.string()), '" ',
        _seconds_text(duration_us), " ", upstream_text, " ",
        pa.array(_cache_statuses(cache_rng, ts, templates, static, plants.storm), pa.string()),
        "",
    )
    return _Requests(line, templates, paths, agents, status)


def _rps(seconds: np.ndarray, start: datetime, end: datetime, step: int = 300) -> np.ndarray:
    """Return the mean requests per second in each ``step``-second bin from start to end."""
    bins = np.arange(int(start.timestamp()), int(end.timestamp()), step)
    return np.bincount((seconds - bins[0]) // step, minlength=len(bins))[: len(bins)] / step


def replace_earlier_demo(con: duckdb.DuckDBPyConnection, out_dir: str | Path,
                         files: list[str]) -> int:
    """Withdraw from the store every earlier load of a file under ``out_dir`` whose content is
    not among ``files`` as they are now (the demo just written there), and return how many
    loads were withdrawn, in one transaction.

    A demo is drawn over its whole span, so next week's (or another version's) demo holds other
    requests for the same days: loaded on top of the earlier one, every overlapping day would
    count twice. Loads of content still there stay, and so does the earlier part of a log
    grown since (its later part continues it), so rerunning the same demo loads nothing again.
    """
    folder = Path(out_dir).resolve()
    loads = con.execute("SELECT id, sha256, file, continues_ingest FROM ingests").fetchall()
    mine = {i: (str(sha), before) for i, sha, file, before in loads
            if Path(file).resolve().is_relative_to(folder)}
    if not mine:  # a first demo: nothing to compare, nothing hashed twice
        return 0
    current = {read_build(Path(f)).fingerprint if is_next_build(Path(f))
               else file_digest(Path(f)).sha256 for f in files}
    # A load of content still there stays (a tail piece is registered under its file's hash),
    # and so does every earlier load of a log it continues.
    kept = {i for i, (sha, _) in mine.items() if sha.removeprefix(TAIL_PREFIX) in current}
    todo = list(kept)
    while todo:
        before = mine[todo.pop()][1]
        if before in mine and before not in kept:
            kept.add(before)
            todo.append(before)
    stale = sorted(set(mine) - kept)
    if stale:
        con.execute("BEGIN TRANSACTION")
        try:
            for ingest_id in stale:
                withdraw_load(con, ingest_id)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(stale)


def generate_demo(out_dir: str | Path = DEMO_DIR, end: datetime | None = None, weeks: int = 5,
                  mean_rps: float = 0.3, seed: int = 20261124) -> DemoManifest:
    """Write the demo nginx logs under ``out_dir`` (a logrotate-style daily set) and a manifest.

    Returns the DemoManifest: files written, time span and the planted events (a 7-minute
    outage, an error spike after a deploy, a latency regression on /show/[id] in the last week,
    and an API slowdown that leaves api-latency's budget low enough for a release freeze).
    Above STREAM_ABOVE requests the logs are written a chunk of minutes at a time, in memory
    bounded whatever ``mean_rps``; ``end`` is taken to its minute. Raises ValueError, before
    writing anything, when ``weeks`` is below 1 or ``mean_rps`` is not a finite number above
    zero.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    if not (math.isfinite(mean_rps) and mean_rps > 0):
        raise ValueError(f"mean_rps must be a finite number above zero, got {mean_rps}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # Whole minutes: traffic is drawn per minute, and a minute cut by ``end`` (or by the start,
    # weeks before it) would put requests outside the demo's span.
    end = (end or default_end()).astimezone(UTC).replace(second=0, microsecond=0)
    start = end - timedelta(weeks=weeks)
    minutes = np.arange(np.datetime64(start.replace(tzinfo=None), "m"),
                        np.datetime64(end.replace(tzinfo=None), "m"))
    local = pc.local_timestamp(pa.array(minutes.astype("datetime64[s]"),
                                        pa.timestamp("s", tz=SERVER_TZ)))
    local_hours = (pc.hour(local).to_numpy() + pc.minute(local).to_numpy() / 60)
    counts = rng.poisson(_traffic_per_minute(minutes.astype(np.int64), local_hours,
                                             pc.day_of_week(local).to_numpy(), mean_rps))
    total = int(counts.sum())
    plants = _plants(end)
    manifest = DemoManifest(start, end, seed, total, events=[
        plants.outage, plants.spike, plants.regression, plants.slowdown, plants.storm])
    if total > STREAM_ABOVE:
        _generate_streamed(out_dir, rng, counts, minutes, plants, manifest)
    else:
        _generate_at_once(out_dir, rng, counts, minutes, plants, manifest)
    (out_dir / "manifest.json").write_text(manifest.to_json(), "utf-8")
    return manifest


def _generate_at_once(out_dir: Path, rng: np.random.Generator, counts: np.ndarray,
                      minutes: np.ndarray, plants: _Plants, manifest: DemoManifest) -> None:
    """Write every file of the demo from all its requests drawn at once (the default rate)."""
    start, end, seed, total = manifest.start, manifest.end, manifest.seed, manifest.requests
    seconds = np.repeat(minutes.astype("datetime64[s]").astype(np.int64), counts)
    seconds = np.sort(seconds + rng.integers(0, 60, total))
    made = _requests(rng, seconds, plants, np.random.default_rng(seed + 15),
                     lambda duration_us, ts, is_api, during: _plant_slowdown(
                         duration_us, ts, is_api, during, end, seed))
    _write_rotated(out_dir, seconds, made.lines, end, manifest)
    _write_probes(out_dir / "probes.csv", rng, start, end, plants.outage, manifest)
    viewed = np.flatnonzero(made.pages() & (rng.random(total) < 0.2))  # a fifth send beacons
    # Attribution draws from its own stream: the values drawn before it stay as they were.
    _write_vitals(out_dir / "vitals.jsonl", rng, seconds[viewed], made.templates[viewed],
                  made.paths[viewed], made.agents[viewed], plants.regression, manifest,
                  np.random.default_rng([seed, 18]))
    _write_lighthouse(out_dir / "lighthouse", rng, start, end, plants.regression, manifest)
    _write_capacity(out_dir / "capacity", rng, _rps(seconds, start, end), start, end, manifest)
    _write_recovery(out_dir / "recovery", seed, start, end, manifest)
    _write_deploys(out_dir / "deploys", end, plants.spike, manifest)
    _write_posthog(out_dir / "posthog-events.jsonl", seed, seconds, end, manifest)
    sentry = _SentryTally(seed, start, end, plants.spike)
    sentry.add(seconds, made.templates, made.status)
    sentry.write(out_dir / "sentry", manifest)
    _write_builds(out_dir / "builds", seed, start, end, manifest)


def _generate_streamed(out_dir: Path, rng: np.random.Generator, counts: np.ndarray,
                       minutes: np.ndarray, plants: _Plants, manifest: DemoManifest) -> None:
    """Write every file of the demo, the logs a chunk of whole minutes at a time, each chunk
    drawn from its own stream (seeded by the demo's seed and the chunk's first minute), so
    memory stays bounded whatever the rate. What follows requests one by one accumulates per
    chunk (requests per 5 minutes, Sentry's events and sessions); beacons and PostHog
    sessions are drawn from a uniform sample of the requests, thinned to the default rate's
    volume (a page view's chance of a beacon, a request's of starting a session, scaled)."""
    for old in out_dir.glob("access.log*"):
        old.unlink()
    start, end, seed = manifest.start, manifest.end, manifest.seed
    minute_s = minutes.astype("datetime64[s]").astype(np.int64)
    age = (int(end.timestamp()) - minute_s - 1) // 86400  # 0 = the last day
    chance = _slowdown_chance(counts, minute_s, plants.slowdown, end)
    keep = min(1.0, _DEFAULT_RPS * 60 * len(minutes) / max(manifest.requests, 1))
    rps = np.zeros(len(_rps(minute_s[:0], start, end)))
    sentry = _SentryTally(seed, start, end, plants.spike)
    beacons: list[tuple[np.ndarray, ...]] = []
    sampled: list[np.ndarray] = []
    names = []
    for day in range(int(age.max()), -1, -1):  # oldest first: the other sources accumulate
        name = "access.log" if day == 0 else f"access.log.{day}" + (".gz" if day >= 2 else "")
        names.append(name)
        day_minutes = np.flatnonzero(age == day)
        with _open_log(out_dir / name) as log:
            first = 0
            while first < len(day_minutes):
                # Whole minutes, up to _CHUNK_REQUESTS requests (at least one minute).
                cumulative = np.cumsum(counts[day_minutes[first:]])
                take = max(1, int(np.searchsorted(cumulative, _CHUNK_REQUESTS, side="right")))
                chunk = day_minutes[first:first + take]
                first += take
                key = int(chunk[0])
                chunk_rng = np.random.default_rng([seed, key])
                seconds = np.repeat(minute_s[chunk], counts[chunk])
                seconds = np.sort(seconds + chunk_rng.integers(0, 60, len(seconds)))
                if not len(seconds):
                    continue
                slow_rng = np.random.default_rng([seed, 18, key])
                made = _requests(chunk_rng, seconds, plants, np.random.default_rng([seed, 15, key]),
                                 partial(_slow_by_chance, chance=chance, rng=slow_rng))
                log.write(_log_bytes(made.lines))
                rps += _rps(seconds, start, end)
                sentry.add(seconds, made.templates, made.status)
                draw = chunk_rng.random(len(seconds))
                viewed = np.flatnonzero(made.pages() & (draw < 0.2 * keep))
                beacons.append((seconds[viewed], made.templates[viewed], made.paths[viewed],
                                made.agents[viewed]))
                sampled.append(seconds[chunk_rng.random(len(seconds)) < keep])
    manifest.files += [str(out_dir / name) for name in reversed(names)]
    seconds, templates, paths, agents = (np.concatenate(parts)
                                         for parts in zip(*beacons, strict=True))
    _write_probes(out_dir / "probes.csv", rng, start, end, plants.outage, manifest)
    _write_vitals(out_dir / "vitals.jsonl", rng, seconds, templates, paths, agents,
                  plants.regression, manifest, np.random.default_rng([seed, 18]))
    _write_lighthouse(out_dir / "lighthouse", rng, start, end, plants.regression, manifest)
    _write_capacity(out_dir / "capacity", rng, rps, start, end, manifest)
    _write_recovery(out_dir / "recovery", seed, start, end, manifest)
    _write_deploys(out_dir / "deploys", end, plants.spike, manifest)
    _write_posthog(out_dir / "posthog-events.jsonl", seed, np.concatenate(sampled), end,
                   manifest)
    sentry.write(out_dir / "sentry", manifest)
    _write_builds(out_dir / "builds", seed, start, end, manifest)


def _log_bytes(lines: pa.Array) -> memoryview:
    """Return the log lines as one UTF-8 text, each ended by a newline, without a copy per
    line (the string array's data buffer is that text once each line has its newline)."""
    ended = pc.binary_join_element_wise(lines, "", "\n")
    offsets = np.frombuffer(ended.buffers()[1], np.int32)[ended.offset:
                                                          ended.offset + len(ended) + 1]
    return memoryview(ended.buffers()[2])[int(offsets[0]):int(offsets[-1])]


@contextmanager
def _open_log(path: Path) -> Iterator[BinaryIO]:
    """Open a rotated log for writing; .gz as logrotate compresses it, byte for byte the same
    from run to run (mtime=0, no name)."""
    with open(path, "wb") as raw:
        if path.suffix != ".gz":
            yield raw
            return
        with gzip.GzipFile(filename="", mode="wb", compresslevel=5, mtime=0,
                           fileobj=raw) as handle:
            yield cast(BinaryIO, handle)


# The slowdown leaves this share of the api-latency SLO's budget (99 % of /api/* requests under
# 200 ms over 28 days, the shipped default): under the policy's 25 %, so the week ends frozen.
SLOWDOWN_LEFT = 0.15
_LATENCY_THRESHOLD_US = 200_000
_LATENCY_WINDOW = timedelta(days=28)


def _plant_slowdown(duration_us: np.ndarray, ts: np.ndarray, is_api: np.ndarray,
                    during: np.ndarray, end: datetime, seed: int) -> None:
    """Make just enough /api/* requests during the slowdown slower than 200 ms (in place) that
    the api-latency budget over the 28 days before ``end`` ends at SLOWDOWN_LEFT, whatever the
    demo's traffic; a generator of its own keeps the other planted events' draws unchanged."""
    rng = np.random.default_rng(seed + 18)
    in_slo = is_api & (ts >= np.datetime64((end - _LATENCY_WINDOW).replace(tzinfo=None)))
    slow = duration_us >= _LATENCY_THRESHOLD_US
    wanted = round((1 - SLOWDOWN_LEFT) * 0.01 * int(in_slo.sum())) - int((in_slo & slow).sum())
    candidates = np.flatnonzero(during & is_api & ~slow)
    chosen = rng.choice(candidates, min(max(wanted, 0), len(candidates)), replace=False)
    duration_us[chosen] = rng.uniform(250_000, 900_000, len(chosen))


def _slowdown_chance(counts: np.ndarray, minute_s: np.ndarray, slowdown: PlantedEvent,
                     end: datetime) -> float:
    """Return the chance an /api/* request under 200 ms during the slowdown is made slow so
    that api-latency's budget ends at about SLOWDOWN_LEFT, from the expected numbers (per
    minute counts, route shares, the log-normal latencies' tails): what _plant_slowdown
    counts exactly needs all requests at once, this a streamed demo can use chunk by chunk."""
    total_share = sum(r.share for r in ROUTES)
    api = [r for r in ROUTES if r.template.startswith("/api/")]
    api_share = sum(r.share for r in api) / total_share
    # P(lognormal(ln median, sigma) >= threshold) = erfc(z / sqrt 2) / 2.
    slow_share = sum(r.share * 0.5 * math.erfc(
        math.log(_LATENCY_THRESHOLD_US / (r.median_ms * 1000)) / r.sigma / math.sqrt(2))
        for r in api) / total_share
    in_slo = int(counts[minute_s >= int((end - _LATENCY_WINDOW).timestamp())].sum())
    during = int(counts[(minute_s >= int(slowdown.start.timestamp()))
                        & (minute_s < int(slowdown.end.timestamp()))].sum())
    wanted = ((1 - SLOWDOWN_LEFT) * 0.01 * api_share - slow_share) * in_slo
    candidates = (api_share - slow_share) * during
    return float(np.clip(wanted / max(candidates, 1e-9), 0.0, 1.0))


def _slow_by_chance(duration_us: np.ndarray, ts: np.ndarray, is_api: np.ndarray,
                    during: np.ndarray, *, chance: float, rng: np.random.Generator) -> None:
    """Make each /api/* request under 200 ms during the slowdown slow with ``chance``
    (in place): the streamed demo's _plant_slowdown."""
    candidates = np.flatnonzero(during & is_api & (duration_us < _LATENCY_THRESHOLD_US))
    chosen = candidates[rng.random(len(candidates)) < chance]
    duration_us[chosen] = rng.uniform(250_000, 900_000, len(chosen))


PROBE_TARGET = "https://mysetlist.example/api/health"
PROBE_LOCATIONS = ["us-east", "eu-west", "ap-southeast"]


def _write_probes(path: Path, rng: np.random.Generator, start: datetime, end: datetime,
                  outage: PlantedEvent, manifest: DemoManifest) -> None:
    """Write a health check per minute from each location: failing through the outage, and
    about one single failed check a day somewhere (a network blip, not an outage)."""
    minutes = np.arange(np.datetime64(start.replace(tzinfo=None), "m"),
                        np.datetime64(end.replace(tzinfo=None), "m"))
    rows = len(minutes) * len(PROBE_LOCATIONS)
    ts = np.repeat(minutes.astype("datetime64[s]"), len(PROBE_LOCATIONS))
    ts = ts + rng.integers(0, 10, rows).astype("timedelta64[s]")  # checks drift a little
    location = np.tile(PROBE_LOCATIONS, len(minutes))
    down = (ts >= np.datetime64(outage.start.replace(tzinfo=None))) & (
        ts < np.datetime64(outage.end.replace(tzinfo=None)))
    blip = rng.random(rows) < 1 / (24 * 60 * len(PROBE_LOCATIONS))
    ok = ~(down | blip)
    status = np.where(down, 502, 200)
    latency = np.where(down, rng.uniform(1, 5, rows),
                       np.where(blip, 10_000, rng.lognormal(np.log(40), 0.3, rows)))
    table = pa.table({
        "timestamp": pc.strftime(pa.array(ts, pa.timestamp("s", tz="UTC")),
                                 format="%Y-%m-%dT%H:%M:%SZ"),
        "target": pa.array(np.full(rows, PROBE_TARGET)),
        "location": pa.array(location),
        "ok": pa.array(ok),
        # A blip is a timeout: no HTTP status at all.
        "status": pa.array(status, pa.int16(), mask=blip),
        "latency_ms": pa.array(np.round(latency, 1)),
    })
    pa_csv.write_csv(table, path)
    manifest.files.append(str(path))


# Field LCP medians (ms) per page route on desktop; phones are slower with heavier tails.
_LCP_MEDIAN = {"/": 1700, "/artist/[slug]": 2000, "/show/[id]": 1600, "/venue/[slug]": 1800,
               "/setlist/[id]": 1700, "/search": 1500}
_DEVICE = {"desktop": (1.0, 0.35), "tablet": (1.15, 0.42), "phone": (1.35, 0.5)}


# The web-vitals attribution build's fields the demo's beacons carry. LCP elements per route
# (selector, share of views, resource URL pattern or None for text); the artist page's hero
# image is not preloaded, so its request starts late: resource load delay dominates there.
HERO_IMAGE = "main > section.artist-hero > img"
SEARCH_BOX = "header form.search > input#q"
_LCP_ELEMENTS: dict[str, list[tuple[str, float, str | None]]] = {
    "/": [("main > h1.tagline", 0.7, None),
          ("section.trending > a:nth-child(1) > img", 0.3, "/_next/image?url=%2Ftrending.jpg")],
    "/artist/[slug]": [(HERO_IMAGE, 0.85, "/_next/image?url=%2Fartists%2F{slug}-hero.jpg"),
                       ("main > h1.artist-name", 0.15, None)],
    "/show/[id]": [("main > h1.show-title", 1.0, None)],
    "/venue/[slug]": [("main > img.venue-photo", 0.8, "/_next/image?url=%2Fvenues%2F{slug}.jpg"),
                      ("main > h1.venue-name", 0.2, None)],
    "/setlist/[id]": [("ol.setlist > li:nth-child(1)", 1.0, None)],
    "/search": [("main > h1", 1.0, None)],
}
# How the time after TTFB splits for an image (delay, load duration; the rest is render delay).
_IMAGE_SPLIT = {HERO_IMAGE: (0.62, 0.22)}
_OTHER_IMAGE_SPLIT = (0.15, 0.55)
# Interaction targets: on /search most interactions type into the search box, whose handler
# filters the whole result list on every key (long processing): INP is poor there.
_INP_TARGETS = [("button.vote", "pointer"), ("a.show-link", "pointer"),
                ("nav > button.menu-toggle", "pointer")]
_SEARCH_BOX_SHARE = 0.7
_SEARCH_BOX_SLOWDOWN = 4.5
_SHIFT_SOURCES = {"/": "section.trending", "/artist/[slug]": "div.tour-dates",
                  "/show/[id]": "div.setlist-embed", "/venue/[slug]": "div.map",
                  "/setlist/[id]": "aside.ad-slot", "/search": "ul.results"}


def _vitals_attribution(rng: np.random.Generator, templates: np.ndarray, paths: np.ndarray,
                        values: dict[str, np.ndarray]) -> list[dict[str, dict[str, object]]]:
    """Return, per page view, the ``attribution`` object of LCP, INP and CLS as the
    web-vitals attribution build (v5) reports it (TTFB's is left out: the report does not
    rank it, and the demo's load time stays about the same); slows the search box's
    interactions in ``values``. Phases are computed on whole arrays; the loop only builds
    the objects."""
    n = len(templates)
    search_box = (templates == "/search") & (rng.random(n) < _SEARCH_BOX_SHARE)
    values["INP"][search_box] *= _SEARCH_BOX_SLOWDOWN
    pick, other_target = rng.random(n), rng.integers(0, len(_INP_TARGETS), n)
    jitter = rng.uniform(0.85, 1.15, (n, 4))
    shift_time = np.round(rng.uniform(300, 4000, n), 1).tolist()
    shift_share = rng.uniform(0.5, 1.0, n)

    # LCP: each view's element (the first whose cumulative share exceeds its draw) and how
    # the time after TTFB splits: an image waits (delay) and loads (duration), text renders.
    lcp, ttfb = values["LCP"], values["TTFB"]
    first = np.minimum(ttfb, 0.9 * lcp)  # TTFB is part of LCP: the rest comes after it
    after = lcp - first
    elements = np.empty(n, dtype=object)
    patterns = np.full(n, None, dtype=object)
    delay_share, duration_share = np.zeros(n), np.zeros(n)
    for route, options in _LCP_ELEMENTS.items():
        rows = np.flatnonzero(templates == route)
        shares = np.cumsum([share for _, share, _ in options])
        chosen = np.minimum(np.searchsorted(shares, pick[rows], "right"), len(options) - 1)
        for k, (element, _, pattern) in enumerate(options):
            picked = rows[chosen == k]
            elements[picked], patterns[picked] = element, pattern
            if pattern is not None:
                delay_share[picked], duration_share[picked] = _IMAGE_SPLIT.get(
                    element, _OTHER_IMAGE_SPLIT)
    delay = after * np.minimum(0.95, delay_share * jitter[:, 0])
    duration = np.minimum(after - delay, after * duration_share * jitter[:, 1])
    lcp_phases = [np.round(x, 1).tolist() for x in (first, delay, duration,
                                                     lcp - first - delay - duration)]
    # INP: the search box's time goes to its key handler; elsewhere input delay and
    # presentation take their usual shares.
    inp = values["INP"]
    input_delay = inp * np.where(search_box, 0.1, 0.25) * jitter[:, 2]
    processing = inp * np.where(search_box, 0.72, 0.35) * jitter[:, 3]
    inp_phases = [np.round(x, 1).tolist() for x in (
        input_delay, processing, np.maximum(0.0, inp - input_delay - processing))]
    cls = values["CLS"].tolist()
    largest = np.round(values["CLS"] * shift_share, 4).tolist()
    slugs = [str(path).rsplit("/", 1)[-1] for path in paths]
    # Python lists: indexing numpy arrays one element at a time is what would cost here.
    boxed, others, routes = search_box.tolist(), other_target.tolist(), templates.tolist()
    picked_elements, picked_patterns = elements.tolist(), patterns.tolist()

    out = []
    for i in range(n):
        lcp_attribution: dict[str, object] = {
            "target": picked_elements[i], "timeToFirstByte": lcp_phases[0][i],
            "resourceLoadDelay": lcp_phases[1][i], "resourceLoadDuration": lcp_phases[2][i],
            "elementRenderDelay": lcp_phases[3][i]}
        if picked_patterns[i] is not None:
            lcp_attribution["url"] = ("https://mysetlist.example"
                                      + picked_patterns[i].format(slug=slugs[i]))
        target, kind = (SEARCH_BOX, "keyboard") if boxed[i] else _INP_TARGETS[others[i]]
        cls_attribution: dict[str, object] = {"loadState": "complete"}
        if cls[i] > 0:
            cls_attribution.update({"largestShiftTarget": _SHIFT_SOURCES[routes[i]],
                                    "largestShiftTime": shift_time[i],
                                    "largestShiftValue": largest[i]})
        out.append({
            "LCP": lcp_attribution,
            "INP": {"interactionTarget": target, "interactionType": kind,
                    "inputDelay": inp_phases[0][i], "processingDuration": inp_phases[1][i],
                    "presentationDelay": inp_phases[2][i], "loadState": "complete"},
            "CLS": cls_attribution})
    return out


def _write_vitals(path: Path, rng: np.random.Generator, seconds: np.ndarray,
                  templates: np.ndarray, paths: np.ndarray, agents: np.ndarray,
                  regression: PlantedEvent, manifest: DemoManifest,
                  attribution_rng: np.random.Generator) -> None:
    """Write web-vitals beacons (JSON Lines) for page views: LCP, FCP, TTFB, CLS for each,
    INP for the views with an interaction; /show/[id]'s LCP regresses with the release.
    Some CLS and INP are reported twice (they grow), a few retired FID records come along.
    LCP, INP and CLS carry the attribution build's fields: /artist/[slug]'s hero image
    is its LCP element, late through resource load delay; /search's search box makes INP
    poor."""
    from mysetlist_slo.vitals.field import rating  # the demo rates as the library does

    factors = _FORM_FACTOR[agents]
    scale = np.array([_DEVICE[f][0] for f in factors])
    sigma = np.array([_DEVICE[f][1] for f in factors])
    lcp = rng.lognormal(np.log(np.array([_LCP_MEDIAN[t] for t in templates]) * scale), sigma)
    regressed = (templates == "/show/[id]") & (
        seconds >= int(regression.start.timestamp())) & (seconds < int(regression.end.timestamp()))
    lcp[regressed] *= 1.4
    values = {
        "LCP": lcp,
        "FCP": lcp * rng.uniform(0.45, 0.75, len(lcp)),
        "TTFB": rng.lognormal(np.log(350 * scale), 0.45),
        "CLS": np.where(rng.random(len(lcp)) < 0.3, 0.0, rng.lognormal(np.log(0.03), 1.0,
                                                                       len(lcp))),
        "INP": rng.lognormal(np.log(120 * scale), 0.6),
    }
    interacted = rng.random(len(lcp)) < 0.6
    repeated = rng.random(len(lcp)) < 0.1
    attributions = _vitals_attribution(attribution_rng, templates, paths, values)
    stamps = [datetime.fromtimestamp(int(s), UTC).isoformat() for s in seconds]
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(len(lcp)):
            page = f"https://mysetlist.example{paths[i]}"
            for name, series in values.items():
                if name == "INP" and not interacted[i]:
                    continue
                value = round(float(series[i]), 4 if name == "CLS" else 1)
                beacon = {"name": name, "value": value, "rating": rating(name, value),
                          "delta": value, "id": f"v4-{seconds[i]}-{i}-{name}",
                          "navigationType": "navigate", "url": page,
                          "userAgent": USER_AGENTS[agents[i]], "timestamp": stamps[i]}
                if name in attributions[i]:
                    beacon["attribution"] = attributions[i][name]
                if name in ("CLS", "INP") and repeated[i]:
                    early = round(value * 0.6, 4 if name == "CLS" else 1)
                    # An earlier, smaller report: its attribution is not the final one's.
                    first = {**beacon, "value": early, "delta": early,
                             "rating": rating(name, early)}
                    first.pop("attribution", None)
                    handle.write(json.dumps(first) + "\n")
                handle.write(json.dumps(beacon) + "\n")
            if i % 100 == 0:  # an old tag still reporting the retired First Input Delay
                handle.write(json.dumps({"name": "FID", "value": 12, "id": f"fid-{i}",
                                         "url": page, "timestamp": stamps[i]}) + "\n")
    manifest.files.append(str(path))
    start, end = (datetime.fromtimestamp(int(s), UTC) for s in (seconds.min(), seconds.max() + 1))
    manifest.events += [
        PlantedEvent("lcp_hero_image", start, end,
                     f"/artist/[slug]: the hero image ({HERO_IMAGE}) is the LCP element of "
                     "85 % of views, its p75 dominated by resource load delay"),
        PlantedEvent("inp_search_box", start, end,
                     f"/search: the search box ({SEARCH_BOX}) takes 70 % of interactions, "
                     f"{_SEARCH_BOX_SLOWDOWN}x slower (long key handler): poor INP"),
    ]


def _write_lighthouse(folder: Path, rng: np.random.Generator, start: datetime, end: datetime,
                      regression: PlantedEvent, manifest: DemoManifest) -> None:
    """Write a mobile Lighthouse report a week for three key pages (lab data)."""
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.json"):
        old.unlink()
    pages = {"/": "home", "/artist/radiohead": "artist", "/show/123456": "show"}
    runs = int((end - start) / timedelta(days=7))
    for week in range(runs):
        when = start + timedelta(days=7 * week + 6, hours=3)
        for page, slug in pages.items():
            slower = 1.35 if slug == "show" and when >= regression.start else 1.0
            lcp = float(rng.normal(2300, 150)) * slower
            report = {
                "lighthouseVersion": "12.2.0", "fetchTime": when.isoformat(),
                "requestedUrl": f"https://mysetlist.example{page}",
                "finalDisplayedUrl": f"https://mysetlist.example{page}",
                "configSettings": {"formFactor": "mobile"},
                "categories": {"performance": {"score": round(
                    min(0.99, max(0.5, 0.95 - (lcp - 2000) / 8000 + rng.normal(0, 0.01))), 2)}},
                "audits": {
                    "largest-contentful-paint": {"numericValue": lcp},
                    "first-contentful-paint": {"numericValue": lcp * 0.55},
                    "cumulative-layout-shift": {"numericValue": float(rng.uniform(0, 0.08))},
                    "total-blocking-time": {"numericValue": float(rng.normal(180, 40))},
                    "interactive": {"numericValue": lcp * 1.45},
                    "speed-index": {"numericValue": lcp * 0.9},
                },
            }
            target = folder / f"{when:%Y-%m-%d}-{slug}.json"
            target.write_text(json.dumps(report, indent=1), "utf-8")
            manifest.files.append(str(target))


# The demo app's pods: idle CPU and CPU per request/s (server-rendered pages are costly).
_IDLE_CORES, _CORES_PER_RPS, _TARGET_CPU = 0.05, 0.6, 0.7
# (queryid, statement, share of transactions, mean ms); one report query is slow.
_STATEMENTS = [
    ("select-show", "SELECT * FROM shows WHERE id = $1", 0.4, 2.0),
    ("select-artist", "SELECT * FROM artists WHERE slug = $1", 0.3, 3.0),
    ("setlist-songs", "SELECT s.* FROM setlist_songs s WHERE setlist_id = $1", 0.2, 6.0),
    ("search-fts", "SELECT id FROM artists WHERE tsv @@ plainto_tsquery($1)", 0.05, 45.0),
    ("vote-upsert", "INSERT INTO votes (song_id, user_id) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING", 0.04, 4.0),
    ("trending-report", "SELECT artist_id, count(*) FROM plays GROUP BY 1 ORDER BY 2 DESC",
     0.015, 180.0),
]


def _write_capacity(folder: Path, rng: np.random.Generator, rps: np.ndarray,
                    start: datetime, end: datetime, manifest: DemoManifest) -> None:
    """Write Prometheus query_range exports (CPU, replicas, memory, disk, network latency),
    PgBouncer SHOW STATS / SHOW POOLS snapshots (with one restart) and daily
    pg_stat_statements, all following the request load ``rps`` (per 5 minutes, _rps)."""
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    step = 300
    bins = np.arange(int(start.timestamp()), int(end.timestamp()), step)
    replicas = np.clip(np.ceil((_IDLE_CORES + _CORES_PER_RPS * rps / 2) / _TARGET_CPU * 2
                               / 2), 2, 10)
    cores = replicas * _IDLE_CORES + _CORES_PER_RPS * rps + rng.normal(0, 0.01, len(bins))
    series = {
        "mysetlist_cpu_cores": np.clip(cores, 0, None),
        "mysetlist_replicas": replicas,
        "mysetlist_memory_bytes": replicas * 380e6 + rps * 40e6 + rng.normal(0, 5e6, len(bins)),
        "mysetlist_disk_used_ratio": np.linspace(0.41, 0.47, len(bins)),
        "mysetlist_network_latency_ms": rng.lognormal(np.log(1.8), 0.2, len(bins)),
    }
    week = 7 * 86400 // step
    for first in range(0, len(bins), week):
        part = slice(first, first + week)
        result = [{"metric": {"__name__": name, "job": "mysetlist-web"},
                   "values": [[int(t), f"{v:.6g}"] for t, v in zip(bins[part], values[part],
                                                                     strict=True)]}
                  for name, values in series.items()]
        week_start = datetime.fromtimestamp(int(bins[first]), UTC)
        target = folder / f"prometheus-{week_start:%Y-%m-%d}.json"
        target.write_text(json.dumps({"status": "success", "data": {
            "resultType": "matrix", "result": result}}), "utf-8")
        manifest.files.append(str(target))
    # Two transactions per request, 4 ms each on average; PgBouncer restarts once (counters
    # start again from zero).
    xacts = rng.poisson(rps * step * 2)
    xact_us = xacts * rng.lognormal(np.log(4000), 0.15, len(bins))
    wait_us = xacts * rng.exponential(20, len(bins))
    restart = len(bins) // 2
    cumulative = [np.concatenate((np.cumsum(v[:restart]), np.cumsum(v[restart:])))
                  for v in (xacts, xact_us, wait_us)]
    stamps = [datetime.fromtimestamp(int(t) + step, UTC).isoformat() for t in bins]
    stats = ["timestamp,database,total_xact_count,total_query_count,total_received,total_sent,"
             "total_xact_time,total_query_time,total_wait_time"]
    pools = ["timestamp,database,user,cl_active,cl_waiting,sv_active,sv_idle,sv_used,"
             "sv_tested,sv_login,maxwait,maxwait_us,pool_mode"]
    for i, stamp in enumerate(stamps):
        count, busy, wait = (int(c[i]) for c in cumulative)
        stats.append(f"{stamp},mysetlist,{count},{count * 3},{count * 900},{count * 4200},"
                     f"{busy},{busy * 0.8:.0f},{wait}")
        active = int(min(25, rng.poisson(max(rps[i] * 2 * 0.004, 0.01)) + 1))
        pools.append(f"{stamp},mysetlist,app,{int(replicas[i] * 10)},0,{active},"
                     f"{max(0, 8 - active)},2,0,0,0,0,transaction")
    for name, lines in (("pgbouncer-stats.csv", stats), ("pgbouncer-pools.csv", pools)):
        (folder / name).write_text("\n".join(lines) + "\n", "utf-8")
        manifest.files.append(str(folder / name))
    # One application role (oid 16385) in one database (oid 16384), top-level statements.
    statements = ["timestamp,userid,dbid,queryid,toplevel,query,calls,total_exec_time,"
                  "mean_exec_time,rows"]
    daily = 86400 // step
    totals = np.cumsum(xacts)
    for day in range(daily - 1, len(bins), daily):
        for queryid, query, share, mean_ms in _STATEMENTS:
            calls = int(totals[day] * share)
            total = calls * mean_ms
            text = query.replace('"', '""')
            statements.append(f"{stamps[day]},16385,16384,{queryid},t,\"{text}\",{calls},"
                              f"{total:.1f},"
                              f"{mean_ms},{calls}")
    (folder / "pg_stat_statements.csv").write_text("\n".join(statements) + "\n", "utf-8")
    manifest.files.append(str(folder / "pg_stat_statements.csv"))


def _cache_statuses(rng: np.random.Generator, ts: np.ndarray, templates: np.ndarray,
                    static: np.ndarray,
                    storm: PlantedEvent) -> np.ndarray:
    """Return nginx's $upstream_cache_status per request: static assets hit 98.5 % of the
    time (80 % miss through the storm), the home page is cached briefly (ISR), other pages
    bypass the cache, API and scanner requests make no cache lookup ("-"). ``rng`` is its
    own stream: the other columns stay as they were."""
    draw = rng.random(len(ts))
    out = np.full(len(ts), "-", dtype=object)
    stormy = (ts >= np.datetime64(storm.start.replace(tzinfo=None))) & (
        ts < np.datetime64(storm.end.replace(tzinfo=None)))
    assets = static & (templates != "/scanner")
    out[assets] = np.where(draw[assets] < np.where(stormy[assets], 0.2, 0.985), "HIT", "MISS")
    home = templates == "/"
    out[home] = np.select([draw[home] < 0.8, draw[home] < 0.85], ["HIT", "STALE"], "MISS")
    pages = ~static & ~home & ~np.char.startswith(templates.astype(str), "/api/")
    out[pages] = "BYPASS"
    return out


# The demo app's JavaScript (gzip kB per chunk): React and Next's runtime load on every
# route, each route adds its page chunk. The last build pulls a charting library into
# /show/[id] and grows it past its 220 kB budget.
_CHUNKS = {"webpack": 2, "fd9d1056": 53, "117": 40, "main-app": 1, "layout": 8}
_PAGES = {"/": 12, "/artist/[slug]": 25, "/show/[id]": 20, "/venue/[slug]": 14,
          "/setlist/[id]": 18, "/search": 10}


def _write_builds(folder: Path, seed: int, start: datetime, end: datetime,
                  manifest: DemoManifest) -> None:
    """Write one Next.js build a week (``.next`` with its manifests and static files, the
    build id set to the commit as a ``generateBuildId`` does); the last regresses."""
    if folder.exists():
        shutil.rmtree(folder)
    rng = np.random.default_rng(seed + 16)
    weeks = int((end - start) / timedelta(days=7))
    last = None
    for week in range(weeks):
        built = start + timedelta(days=7 * week + 3, hours=15)
        commit = f"{int(rng.integers(0, 2**48)):012x}"
        growth = 1.01 ** week  # features land: 1 % more code a week
        sizes = {name: kb * growth for name, kb in _CHUNKS.items()}
        pages = {route: kb * growth for route, kb in _PAGES.items()}
        if week == weeks - 1:
            pages["/show/[id]"] += 120  # the charting library
            last = PlantedEvent("bundle_regression", built, built + timedelta(minutes=1),
                                f"commit {commit} grows /show/[id]'s First Load JS past its "
                                "220 kB budget (a charting library)")
        nxt = folder / commit / ".next"
        files: dict[str, float] = {}
        root = []
        for name, kb in sizes.items():
            path = (f"static/chunks/app/{name}-{commit[:8]}{week:08x}.js" if name == "layout"
                    else f"static/chunks/{name}-{commit[:8]}{week:08x}.js")
            files[path] = kb
            if name != "layout":
                root.append(path)
        layout = [p for p in files if "/app/layout-" in p]
        app_pages = {"/layout": root + layout}
        for route, kb in pages.items():
            chunk = f"static/chunks/app{'' if route == '/' else route}/page-{commit[:8]}.js"
            files[chunk] = kb
            app_pages[("" if route == "/" else route) + "/page"] = root + layout + [chunk]
        for path, kb in files.items():
            target = nxt / path
            target.parent.mkdir(parents=True, exist_ok=True)
            # Random bytes as base64 text: gzip leaves ~76 % of it, so a chunk of about the
            # planned gzip size is ~1.3x as large raw.
            raw = int(kb * 1000 / 0.76)
            target.write_bytes(b"/*" + base64.b64encode(rng.bytes(raw * 3 // 4)) + b"*/\n")
        (nxt / "app-build-manifest.json").write_text(json.dumps({"pages": app_pages}, indent=1),
                                                     "utf-8")
        (nxt / "build-manifest.json").write_text(json.dumps({
            "polyfillFiles": [], "devFiles": [], "ampDevFiles": [], "lowPriorityFiles": [],
            "rootMainFiles": root, "pages": {"/_app": []}, "ampFirstPages": []}, indent=1),
            "utf-8")
        (nxt / "BUILD_ID").write_text(commit, "utf-8")
        stamp = built.timestamp()
        os.utime(nxt / "BUILD_ID", (stamp, stamp))  # the build's time, as next build leaves it
        manifest.files.append(str(folder / commit))
    if last is not None:
        manifest.events.append(last)


def _write_rotated(out_dir: Path, seconds: np.ndarray, lines: pa.Array, end: datetime,
                   manifest: DemoManifest) -> None:
    """Write one file per UTC day as logrotate leaves them: access.log, .1, then .N.gz."""
    for old in out_dir.glob("access.log*"):
        old.unlink()
    days = (int(end.timestamp()) - seconds - 1) // 86400  # 0 = the last day
    for age in range(int(days.max()) + 1):
        picked = np.flatnonzero(days == age)
        text = ("\n".join(lines.take(pa.array(picked)).to_pylist()) + "\n").encode("utf-8")
        name = "access.log" if age == 0 else f"access.log.{age}"
        if age >= 2:
            name += ".gz"
            # mtime=0 keeps the bytes identical from run to run (the demo is deterministic).
            with open(out_dir / name, "wb") as raw, gzip.GzipFile(
                    filename="", mode="wb", fileobj=raw, compresslevel=5, mtime=0) as handle:
                handle.write(text)
        else:
            (out_dir / name).write_bytes(text)
        manifest.files.append(str(out_dir / name))


def _write_recovery(folder: Path, seed: int, start: datetime, end: datetime,
                    manifest: DemoManifest) -> None:
    """Write the backup logs (the plan's cron exit lines for the daily pg_dump, a job log for
    the weekly system backup and the monthly archive), the recovery-drill records and a small
    k6 summary, with planted failures: a missed daily backup, a shrinking dump, an overdue
    failover drill and a 7-minute restore."""
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    rng = np.random.default_rng(seed + 14)  # its own stream: the other files stay as they were
    last_week = end - timedelta(days=7)
    missed = PlantedEvent("missed_backup", last_week + timedelta(days=3, hours=2),
                          last_week + timedelta(days=4, hours=2),
                          "the daily pg_dump did not run: 48 h between good database backups")
    shrunk = PlantedEvent("shrinking_backup", last_week + timedelta(days=5, hours=2),
                          last_week + timedelta(days=5, hours=2, minutes=4),
                          "the database dump came out 45 % smaller than the day before")
    slow = PlantedEvent("slow_restore", last_week + timedelta(days=1, hours=10),
                        last_week + timedelta(days=1, hours=10, minutes=7),
                        "a database restore drill took 7 minutes (target 5)")
    failover_last = end - timedelta(days=12, hours=-10)
    overdue = PlantedEvent("overdue_failover_drill", failover_last + timedelta(days=7), end,
                           "the weekly application failover drill last ran 12 days ago")
    cron = []
    size = 2.1e9
    for day in range((end - start).days):
        when = start + timedelta(days=day, hours=2)
        size *= 1.004 * rng.normal(1, 0.003)  # 0.4 % growth a day
        if when == missed.start:
            continue
        dumped = size * (0.55 if when == shrunk.start else 1)
        took = timedelta(seconds=int(rng.integers(180, 300)))
        cron.append(f"{when:%Y-%m-%dT%H:%M:%SZ} {when + took:%Y-%m-%dT%H:%M:%SZ} exit=0 "
                    f"bytes={dumped:.0f} pg_dump -Fp mysetlist > "
                    f"/backups/backup_{when:%Y%m%d}.sql")
    (folder / "backup-cron.log").write_text("\n".join(cron) + "\n", "utf-8")
    jobs = []
    for week in range((end - start).days // 7):
        when = start + timedelta(days=7 * week + 6, hours=3)  # Sundays at 03:00
        jobs.append({"job": "system_backup", "kind": "system",
                     "started": f"{when:%Y-%m-%dT%H:%M:%SZ}",
                     "finished": f"{when + timedelta(minutes=41):%Y-%m-%dT%H:%M:%SZ}",
                     "status": "success", "bytes": int(18e9 * 1.01 ** week),
                     "destination": f"/backups/system_backup_{when:%Y%m%d}.tar.gz"})
    archive = start + timedelta(days=1, hours=4)
    jobs.append({"job": "monthly_archive", "kind": "archive",
                 "started": f"{archive:%Y-%m-%dT%H:%M:%SZ}",
                 "finished": f"{archive + timedelta(minutes=95):%Y-%m-%dT%H:%M:%SZ}",
                 "status": "success", "bytes": int(61e9),
                 "destination": "s3://mysetlist-backups/archive/"})
    jobs.sort(key=lambda job: str(job["started"]))
    (folder / "backups.jsonl").write_text(
        "".join(json.dumps(job) + "\n" for job in jobs), "utf-8")

    def drill(kind: str, began: datetime, minutes: float, verified: bool = True) -> str:
        return json.dumps({"drill": kind, "started": f"{began:%Y-%m-%dT%H:%M:%SZ}",
                           "recovered": f"{began + timedelta(minutes=minutes):%Y-%m-%dT%H:%M:%SZ}",
                           "status": "success", "data_verified": verified})

    drills = [drill("full_recovery", start + timedelta(days=2, hours=9), 4.5),
              drill("database_restore", start + timedelta(days=3, hours=10), 3.5),
              drill("database_restore", slow.start, 7)]
    failover = failover_last
    while failover > start:
        drills.append(drill("application_failover", failover, float(rng.uniform(1.5, 3))))
        failover -= timedelta(days=7)
    drills.sort(key=lambda line: json.loads(line)["started"])
    (folder / "drills.jsonl").write_text("\n".join(drills) + "\n", "utf-8")
    # A k6 run at the end of the last week: 420 req/s with 2,000 VUs, short of the targets.
    summary = {"root_group": {"name": "", "path": "", "id": "d41d8cd98f00b204e9800998ecf8427e",
                              "groups": [], "checks": []},
               "options": {"summaryTrendStats": ["avg", "min", "med", "max", "p(90)", "p(95)"]},
               "state": {"isStdOutTTY": False, "isStdErrTTY": False,
                         "testRunDurationMs": 300000},
               "metrics": {
                   "http_reqs": {"type": "counter", "contains": "default",
                                 "values": {"count": 126000, "rate": 420}},
                   "http_req_failed": {"type": "rate", "contains": "default",
                                       "values": {"rate": 0.0002, "passes": 25, "fails": 125975}},
                   "http_req_duration": {"type": "trend", "contains": "time", "values": {
                       "avg": 71.2, "min": 9.8, "med": 62.4, "max": 1203.0, "p(90)": 128.7,
                       "p(95)": 151.3}},
                   "vus_max": {"type": "gauge", "contains": "default",
                               "values": {"value": 2000, "min": 2000, "max": 2000}}}}
    (folder / f"k6-{last_week:%Y%m%d}.summary.json").write_text(json.dumps(summary, indent=2),
                                                                 "utf-8")
    for name in ("backup-cron.log", "backups.jsonl", "drills.jsonl",
                 f"k6-{last_week:%Y%m%d}.summary.json"):
        manifest.files.append(str(folder / name))
    manifest.events += [missed, shrunk, slow, overdue]


def _commit(name: str) -> str:
    """Return a made-up 40-hex-digit commit id for ``name`` (git's length)."""
    return hashlib.sha256(name.encode()).hexdigest()[:40]


BAD_RELEASE = "v2.14.0"


def _releases(end: datetime, spike: PlantedEvent) -> list[tuple[str, datetime]]:
    """Return the demo's one release schedule, oldest first: (version, when it went live).
    The deploy log, Vercel and Sentry all name these releases at these times. A minor release
    every four days before the last fortnight, then several at quiet moments, the bad release
    v2.14.0 at the start of the error spike and its fix v2.14.1 when the spike ends. The
    first release went live before any demo of up to eight weeks starts (Sentry's events need a
    release to run)."""
    last_week = end - timedelta(days=7)
    first = last_week - timedelta(days=5) + timedelta(hours=14, minutes=10)
    earlier = [(f"v2.{12 - k}.0", first - timedelta(days=4 * k)) for k in range(11, 0, -1)]
    return [*earlier, ("v2.12.0", first),
            ("v2.13.0", last_week - timedelta(days=2) + timedelta(hours=11, minutes=30)),
            ("v2.13.1", last_week + timedelta(hours=13)),
            ("v2.13.2", last_week + timedelta(days=1, hours=15, minutes=30)),
            (BAD_RELEASE, spike.start),
            ("v2.14.1", spike.end),
            ("v2.14.2", last_week + timedelta(days=5, hours=10))]


def _write_deploys(folder: Path, end: datetime, spike: PlantedEvent,
                   manifest: DemoManifest) -> None:
    """Write the deploy log (JSON Lines) and Vercel's deployments response for the releases
    of _releases that went live in the demo's span; Vercel also lists a preview deployment and
    a production build that failed (neither went live)."""
    folder.mkdir(exist_ok=True)
    for old in folder.iterdir():
        old.unlink()
    releases = [(version, when) for version, when in _releases(end, spike)
                if when >= manifest.start]
    commits = {version: _commit(version) for version, _ in releases}
    log = [json.dumps({"timestamp": f"{when:%Y-%m-%dT%H:%M:%SZ}", "service": "mysetlist-web",
                       "version": version, "environment": "production",
                       "commit": commits[version]})
           for version, when in releases]
    (folder / "deploys.jsonl").write_text("\n".join(log) + "\n", "utf-8")

    def vercel(uid: str, ref: str, sha: str, when: datetime, state: str,
               target: str | None) -> dict[str, object]:
        created = int(when.timestamp() * 1000) - 95_000  # a build of about a minute and a half
        return {"uid": f"dpl_{uid}", "name": "mysetlist-web",
                "url": f"mysetlist-web-{sha[:9]}-mysetlist.vercel.app", "created": created,
                "state": state, "readyState": state, "type": "LAMBDAS", "target": target,
                "meta": {"githubCommitRef": ref, "githubCommitSha": sha},
                "createdAt": created, "buildingAt": created + 3_000,
                **({"ready": int(when.timestamp() * 1000)} if state == "READY" else {})}

    deployments = [vercel(commits[v][:24], v, commits[v], when, "READY", "production")
                   for v, when in releases]
    first = releases[-1][1] - timedelta(hours=3)
    deployments += [vercel("preview000000000000000000", "feature/search-box",
                           _commit("preview"), first, "READY", None),
                    vercel("failed0000000000000000000", "v2.14.2-rc1",
                           _commit("v2.14.2-rc1"), first, "ERROR", "production")]
    deployments.sort(key=lambda d: -int(str(d["created"])))  # newest first, as the API lists
    response = {"deployments": deployments,
                "pagination": {"count": len(deployments), "next": None, "prev": None}}
    (folder / "vercel-deployments.json").write_text(json.dumps(response, indent=1), "utf-8")
    manifest.files += [str(folder / "deploys.jsonl"), str(folder / "vercel-deployments.json")]
    manifest.events.append(PlantedEvent(
        "bad_release", spike.start, spike.end,
        "release v2.14.0 of mysetlist-web: the error spike starts with it, v2.14.1 fixes it"))


PEAK_SESSIONS = 6_000  # the fans: every one of them comes to the concert-announcement peak
FAN_WEEKLY = 0.6  # the chance a fan visits in a given week
_POSTHOG_PAGES = ["/", "/artist/radiohead", "/artist/taylor-swift", "/show/8812",
                  "/venue/red-rocks", "/search", "/setlist/20931"]
_DEVICE_TYPES = ["Desktop", "Mobile", "Mobile", "Tablet"]


def _write_posthog(path: Path, seed: int, seconds: np.ndarray, end: datetime,
                   manifest: DemoManifest) -> None:
    """Write PostHog product events (JSON Lines, the batch-export shape): about one session
    per 120 requests, starting when requests do, of returning visitors of whom some log in
    ($identify joins their anonymous id); 6,000 fans who each visit in about 60 % of weeks;
    and a planted concert-announcement peak: all 6,000 fans active in one 5-minute window of
    the last week (Thursday 20:00 New York). The fans make the weeks before the peak's
    realistic: active users rise by about two thirds in its week, not forty-fold."""
    rng = np.random.default_rng(seed + 13)  # its own stream: the other files stay as they were
    last_week = end - timedelta(days=7)
    peak_start = last_week + timedelta(days=4, hours=1)
    peak = PlantedEvent("concurrency_peak", peak_start, peak_start + timedelta(minutes=5),
                        f"concert announcement: {PEAK_SESSIONS:,} fans (returning visitors) "
                        "active in the same 5-minute window")
    sessions = max(1, len(seconds) // 120)
    starts = np.sort(rng.choice(seconds, sessions))
    persons = max(1, sessions // 4)
    person = rng.zipf(1.6, sessions) % persons  # a few come back often, most rarely
    identified = rng.random(persons) < 0.4
    greeted = np.zeros(persons, dtype=bool)
    lines: list[str] = []

    def event(name: str, distinct_id: str, when: float, session: str, device: str,
              extra: dict[str, str] | None = None) -> None:
        stamp = datetime.fromtimestamp(float(when), UTC).isoformat(timespec="milliseconds")
        properties = {"$session_id": session, "$current_url": "https://mysetlist.example"
                      + _POSTHOG_PAGES[int(rng.integers(len(_POSTHOG_PAGES)))],
                      "$device_type": device,
                      **(extra or {})}
        lines.append(json.dumps({"uuid": f"01930000-0000-7000-8000-{len(lines):012d}",
                                 "event": name, "properties": properties,
                                 "distinct_id": distinct_id, "timestamp": stamp.replace(
                                     "+00:00", "Z")}))

    limit = end.timestamp()
    for index in range(sessions):
        who = int(person[index])
        device = _DEVICE_TYPES[who % len(_DEVICE_TYPES)]
        session = f"s-{index}"
        anon = f"anon-{who}"
        distinct = f"user-{who}" if identified[who] and greeted[who] else anon
        times = np.sort(starts[index] + rng.uniform(0, 1200, int(rng.integers(2, 6))))
        times = times[times < limit]
        for k, when in enumerate(times):
            event("$pageview", distinct, when, session, device)
            if k == 0 and identified[who] and not greeted[who]:
                greeted[who] = True
                event("$identify", f"user-{who}", when + 1, session, device,
                      {"$anon_distinct_id": anon})
                distinct = f"user-{who}"
    # The fans' ordinary visits: one session a week with chance FAN_WEEKLY, at a moment drawn
    # from the requests of that week (so mostly in the evening), two page views.
    week_end = limit
    week = 0
    while len(seconds) and week_end > seconds.min():
        pool = seconds[(seconds >= week_end - 7 * 86400) & (seconds < week_end)]
        visiting = np.flatnonzero(rng.random(PEAK_SESSIONS) < FAN_WEEKLY)
        if len(pool) and len(visiting):
            for fan, began in zip(visiting.tolist(), rng.choice(pool, len(visiting)).tolist(),
                                  strict=True):
                session = f"fan-{week}-{fan}"
                device = _DEVICE_TYPES[fan % len(_DEVICE_TYPES)]
                for when in (began, began + rng.uniform(30, 600)):
                    if when < limit:
                        event("$pageview", f"fan-{fan}", when, session, device)
        week_end -= 7 * 86400
        week += 1
    base = peak_start.timestamp()
    for index in range(PEAK_SESSIONS):
        session = f"peak-{index}"
        device = _DEVICE_TYPES[index % len(_DEVICE_TYPES)]
        for when in (base + rng.uniform(0, 150), base + rng.uniform(150, 299)):
            event("$pageview", f"fan-{index}", when, session, device)
    path.write_text("\n".join(lines) + "\n", "utf-8")
    manifest.files.append(str(path))
    manifest.events.append(peak)


SENTRY_LEVELS = ("error", "warning", "fatal", "info")
_SENTRY_LEVEL_SHARE = (0.6, 0.25, 0.05, 0.1)


class _SentryTally:
    """What Sentry's API answers for the demo, accumulated from requests a chunk at a time:
    error events (Discover's ``events``), ``stats_v2`` outcomes and release-health
    ``sessions`` per release, daily. The releases are the deploy log's (_releases: same
    versions, same times); the bad release v2.14.0 goes out with the deploy error spike and
    raises the error rate of /api/* twentyfold until its fix, and Sentry rate-limits some of
    that day's errors. Every 500 the app answered is an unhandled error in Sentry. Chunks
    must come in time order."""

    def __init__(self, seed: int, start: datetime, end: datetime, spike: PlantedEvent) -> None:
        """Plan the releases; nothing is counted yet."""
        self.start, self.end = start, end
        self.rng = np.random.default_rng(seed + 13)  # its own stream: the other files stay
        releases = [(name, when) for name, when in _releases(end, spike) if when < end]
        # From the release live when the demo starts: the older ones saw no request.
        live = [i for i, (_, when) in enumerate(releases) if when <= start]
        releases = releases[live[-1] if live else 0:]
        self.names = [name for name, _ in releases]
        self.bad = BAD_RELEASE
        bad = self.names.index(BAD_RELEASE)
        self.bad_at, self.fix_at = releases[bad][1], releases[bad + 1][1]
        self.stamps = np.array([int(when.timestamp()) for _, when in releases])
        self.days = [start + timedelta(days=d) for d in range((end - start).days)]
        shape = (len(self.names), len(self.days))
        self.page_views, self.crashes = np.zeros(shape, np.int64), np.zeros(shape, np.int64)
        self.accepted = np.zeros(len(self.days), np.int64)
        self.events: list[dict[str, object]] = []

    def add(self, seconds: np.ndarray, templates: np.ndarray, status: np.ndarray) -> None:
        """Count the requests received at ``seconds`` (sorted) with their routes and status."""
        rng = self.rng
        # Each request runs the release deployed last before it.
        release_of = np.searchsorted(self.stamps, seconds, side="right") - 1
        app = ~np.isin(templates, ["/_next/static/[...path]", "/scanner"]) & (release_of >= 0)
        api = np.char.startswith(templates.astype(str), "/api/")
        in_bad = ((seconds >= self.stamps[self.names.index(self.bad)])
                  & (seconds < int(self.fix_at.timestamp())))
        chance = np.where(in_bad & api, 0.008, 0.0004)
        reported = app & (rng.random(len(seconds)) < chance)
        crashed = app & (status == 500)  # the app's own 500s: unhandled errors
        picked = np.flatnonzero(reported | crashed)
        levels = rng.choice(len(SENTRY_LEVELS), len(picked), p=_SENTRY_LEVEL_SHARE)
        for index, level in zip(picked, levels, strict=True):
            unhandled = bool(crashed[index]) or SENTRY_LEVELS[level] == "fatal"
            template = str(templates[index])
            high, low = (int(x) for x in rng.integers(0, 2**63, 2))
            self.events.append({
                "id": f"{high:016x}{low:016x}",
                "timestamp": datetime.fromtimestamp(int(seconds[index]), UTC).isoformat(),
                "level": "error" if crashed[index] else SENTRY_LEVELS[level],
                "release": self.names[release_of[index]], "environment": "production",
                "transaction": f"GET {template}" if template.startswith("/api/") else template,
                "issue": f"MYSETLIST-{zlib.crc32(template.encode()) % 97 + 100 * level:X}",
                "handled": "no" if unhandled else "yes", "project.name": "mysetlist"})
        day_of = ((seconds - int(self.start.timestamp())) // 86400).astype(np.int64)
        self.accepted += np.bincount(day_of[picked], minlength=len(self.days))
        # Sessions: one per three page requests; an unhandled error crashes its session.
        pages = app & ~api
        fatal = np.zeros(len(seconds), dtype=bool)
        fatal[picked] = np.array(SENTRY_LEVELS)[levels] == "fatal"
        for i in np.unique(release_of[release_of >= 0]):
            mine = release_of == i
            self.page_views[i] += np.bincount(day_of[mine & pages], minlength=len(self.days))
            self.crashes[i] += np.bincount(day_of[mine & crashed], minlength=len(self.days))
            self.crashes[i] += np.bincount(day_of[mine & fatal], minlength=len(self.days))

    def write(self, folder: Path, manifest: DemoManifest) -> None:
        """Write events.json, stats_v2.json and sessions.json under ``folder``."""
        folder.mkdir(exist_ok=True)
        for old in folder.iterdir():
            old.unlink()
        manifest.events.append(PlantedEvent(
            "sentry_bad_release", self.bad_at, self.fix_at, f"release {self.bad} makes 0.8 % "
            "of /api/* requests fail in Sentry (twenty times the usual) besides the deploy "
            "error spike's 500s, until the next release fixes it"))
        events = sorted(self.events, key=lambda e: str(e["timestamp"]))
        (folder / "events.json").write_text(json.dumps({"data": events, "meta": {
            "fields": {"id": "string", "timestamp": "date", "level": "string",
                       "release": "string", "environment": "string", "transaction": "string",
                       "issue": "string", "handled": "string", "project.name": "string"}}},
            indent=1) + "\n", "utf-8")
        limited = np.zeros(len(self.days), np.int64)
        limited[(self.bad_at - self.start).days] = 60  # the error burst hit the key's limit
        filtered = self.rng.integers(0, 4, len(self.days))
        stamp = [f"{d:%Y-%m-%dT%H:%M:%SZ}" for d in self.days]
        end = f"{self.end:%Y-%m-%dT%H:%M:%SZ}"

        def group(by: dict[str, str], values: np.ndarray) -> dict[str, object]:
            series = [int(v) for v in values]
            return {"by": by, "totals": {"sum(quantity)": sum(series)},
                    "series": {"sum(quantity)": series}}

        stats = {"start": stamp[0], "end": end, "intervals": stamp,
                 "groups": [group({"outcome": "accepted", "category": "error"}, self.accepted),
                            group({"outcome": "rate_limited", "category": "error",
                                   "reason": "key_quota"}, limited),
                            group({"outcome": "filtered", "category": "error",
                                   "reason": "browser-extensions"}, filtered)]}
        (folder / "stats_v2.json").write_text(json.dumps(stats, indent=1) + "\n", "utf-8")
        groups = []
        for name, views, crashes in zip(self.names, self.page_views, self.crashes, strict=True):
            count = views // 3
            users = np.maximum(count * 2 // 5, np.minimum(count, 1))
            free = [None if n == 0 else round(1 - min(c, n) / n, 6)
                    for n, c in zip(count, crashes, strict=True)]
            free_users = [None if u == 0 else round(1 - min(c, u) / u, 6)
                          for u, c in zip(users, crashes, strict=True)]
            series = {"sum(session)": [int(n) for n in count],
                      "count_unique(user)": [int(u) for u in users],
                      "crash_free_rate(session)": free, "crash_free_rate(user)": free_users}
            groups.append({"by": {"release": name},
                           "totals": {"sum(session)": int(count.sum())}, "series": series})
        sessions = {"start": stamp[0], "end": end, "intervals": stamp,
                    "groups": groups, "query": ""}
        (folder / "sessions.json").write_text(json.dumps(sessions, indent=1) + "\n", "utf-8")
        for name in ("events.json", "stats_v2.json", "sessions.json"):
            manifest.files.append(str(folder / name))
