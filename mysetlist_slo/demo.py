"""A deterministic demo data set: five weeks of MySetlist's nginx logs with planted incidents."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

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
_CHUNK_REQUESTS = 250_000  # requests generated at a time when streaming (~100 MB of work)


def _events(end: datetime) -> tuple[PlantedEvent, PlantedEvent, PlantedEvent]:
    """Return the incidents (outage, deploy error spike, latency regression), placed in the
    last full week, in the server's local evening."""
    last_week = end - timedelta(days=7)
    outage = PlantedEvent("outage", last_week + timedelta(days=2, hours=19, minutes=23),
                          last_week + timedelta(days=2, hours=19, minutes=30),
                          "upstream down for 7 minutes: every request answered 502")
    spike = PlantedEvent("deploy_error_spike", last_week + timedelta(days=3, hours=23, minutes=5),
                         last_week + timedelta(days=3, hours=23, minutes=45),
                         "bad deploy: 8 % of /api/* requests fail with 500 for 40 minutes")
    regression = PlantedEvent("latency_regression", last_week + timedelta(days=1), end,
                              "/show/[id] takes 2.2x longer after a release")
    return outage, spike, regression


@dataclass
class _Requests:
    """Generated requests: their log lines, and what the beacons are drawn from."""

    lines: pa.Array
    templates: np.ndarray
    paths: np.ndarray
    agents: np.ndarray
    pages: np.ndarray  # page views by people (not API, static files or crawlers)


def _requests(rng: np.random.Generator, seconds: np.ndarray,
              events: tuple[PlantedEvent, PlantedEvent, PlantedEvent]) -> _Requests:
    """Return requests received at ``seconds`` (Unix seconds, sorted), with the incidents."""
    outage, spike, regression = events
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
    regressed = in_window(regression) & (templates == "/show/[id]")
    duration_us[regressed] *= 2.2
    failing = in_window(spike) & is_api & (rng.random(total) < 0.08)
    status[failing] = 500
    down = in_window(outage) & ~static
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
        _seconds_text(duration_us), " ", upstream_text, "",
    )
    pages = np.isin(templates, [r.template for r in ROUTES if not r.static and
                                not r.template.startswith("/api/")]) & (agents != _BOT)
    return _Requests(line, templates, paths, agents, pages)


def _rps(seconds: np.ndarray, start: datetime, end: datetime, step: int = 300) -> np.ndarray:
    """Return the mean requests per second in each ``step``-second bin from start to end."""
    bins = np.arange(int(start.timestamp()), int(end.timestamp()), step)
    return np.bincount((seconds - bins[0]) // step, minlength=len(bins))[: len(bins)] / step


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


def _generate_streamed(out_dir: Path, rng: np.random.Generator, counts: np.ndarray,
                       minutes: np.ndarray, events: tuple[PlantedEvent, PlantedEvent,
                                                          PlantedEvent],
                       manifest: DemoManifest) -> None:
    """Write every file of the demo, the logs a chunk of minutes at a time (each chunk drawn
    from its own stream, seeded by the demo's seed and its first minute): memory stays bounded
    whatever the rate. Beacons are sampled to the default rate's number."""
    for old in out_dir.glob("access.log*"):
        old.unlink()
    start, end = manifest.start, manifest.end
    minute_s = minutes.astype("datetime64[s]").astype(np.int64)
    age = (int(end.timestamp()) - minute_s - 1) // 86400  # 0 = the last day
    rps = np.zeros(len(_rps(minute_s[:0], start, end)))
    beacons = min(1.0, 0.3 / max(manifest.requests / len(minutes) / 60, 1e-9))
    sampled: list[tuple[np.ndarray, ...]] = []
    for day in range(int(age.max()) + 1):
        name = "access.log" if day == 0 else f"access.log.{day}" + (".gz" if day >= 2 else "")
        day_minutes = np.flatnonzero(age == day)
        with _open_log(out_dir / name) as log:
            first = 0
            while first < len(day_minutes):
                # Whole minutes, up to _CHUNK_REQUESTS requests (at least one minute).
                cumulative = np.cumsum(counts[day_minutes[first:]])
                take = max(1, int(np.searchsorted(cumulative, _CHUNK_REQUESTS, side="right")))
                chunk = day_minutes[first:first + take]
                first += take
                chunk_rng = np.random.default_rng([manifest.seed, int(chunk[0])])
                seconds = np.repeat(minute_s[chunk], counts[chunk])
                seconds = np.sort(seconds + chunk_rng.integers(0, 60, len(seconds)))
                if not len(seconds):
                    continue
                made = _requests(chunk_rng, seconds, events)
                log.write(("\n".join(made.lines.to_pylist()) + "\n").encode("utf-8"))
                rps += _rps(seconds, start, end)
                viewed = np.flatnonzero(made.pages & (chunk_rng.random(len(seconds))
                                                      < 0.2 * beacons))
                sampled.append((seconds[viewed], made.templates[viewed], made.paths[viewed],
                                made.agents[viewed]))
        manifest.files.append(str(out_dir / name))
    seconds, templates, paths, agents = (np.concatenate(parts) for parts in zip(*sampled,
                                                                                 strict=True))
    order = np.argsort(seconds, kind="stable")  # the days were written newest first
    seconds, templates, paths, agents = (seconds[order], templates[order], paths[order],
                                         agents[order])
    _write_probes(out_dir / "probes.csv", rng, start, end, events[0], manifest)
    _write_vitals(out_dir / "vitals.jsonl", rng, seconds, templates, paths, agents, events[2],
                  manifest)
    _write_lighthouse(out_dir / "lighthouse", rng, start, end, events[2], manifest)
    _write_capacity(out_dir / "capacity", rng, rps, start, end, manifest)
    _write_recovery(out_dir / "recovery", manifest.seed, start, end, manifest)


def generate_demo(out_dir: str | Path = DEMO_DIR, end: datetime | None = None, weeks: int = 5,
                  mean_rps: float = 0.3, seed: int = 20261124) -> DemoManifest:
    """Write the demo nginx logs under ``out_dir`` (a logrotate-style daily set) and a manifest.

    Returns the DemoManifest: files written, time span and the planted events (a 7-minute
    outage, an error spike after a deploy, a latency regression on /show/[id] in the last week).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    end = (end or default_end()).astimezone(UTC)
    start = end - timedelta(weeks=weeks)
    minutes = np.arange(np.datetime64(start.replace(tzinfo=None), "m"),
                        np.datetime64(end.replace(tzinfo=None), "m"))
    local = pc.local_timestamp(pa.array(minutes.astype("datetime64[s]"),
                                        pa.timestamp("s", tz=SERVER_TZ)))
    local_hours = (pc.hour(local).to_numpy() + pc.minute(local).to_numpy() / 60)
    counts = rng.poisson(_traffic_per_minute(minutes.astype(np.int64), local_hours,
                                             pc.day_of_week(local).to_numpy(), mean_rps))
    total = int(counts.sum())
    events = _events(end)
    manifest = DemoManifest(start, end, seed, total, events=list(events))
    if total > STREAM_ABOVE:
        _generate_streamed(out_dir, rng, counts, minutes, events, manifest)
        return manifest
    seconds = np.repeat(minutes.astype("datetime64[s]").astype(np.int64), counts)
    seconds = np.sort(seconds + rng.integers(0, 60, total))
    made = _requests(rng, seconds, events)
    _write_rotated(out_dir, seconds, made.lines, end, manifest)
    _write_probes(out_dir / "probes.csv", rng, start, end, events[0], manifest)
    viewed = np.flatnonzero(made.pages & (rng.random(total) < 0.2))  # a fifth of views send beacons
    _write_vitals(out_dir / "vitals.jsonl", rng, seconds[viewed], made.templates[viewed],
                  made.paths[viewed], made.agents[viewed], events[2], manifest)
    _write_lighthouse(out_dir / "lighthouse", rng, start, end, events[2], manifest)
    _write_capacity(out_dir / "capacity", rng, _rps(seconds, start, end), start, end, manifest)
    _write_recovery(out_dir / "recovery", seed, start, end, manifest)
    (out_dir / "manifest.json").write_text(manifest.to_json(), "utf-8")
    return manifest


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


def _write_vitals(path: Path, rng: np.random.Generator, seconds: np.ndarray,
                  templates: np.ndarray, paths: np.ndarray, agents: np.ndarray,
                  regression: PlantedEvent, manifest: DemoManifest) -> None:
    """Write web-vitals beacons (JSON Lines) for page views: LCP, FCP, TTFB, CLS for each,
    INP for the views with an interaction; /show/[id]'s LCP regresses with the release.
    Some CLS and INP are reported twice (they grow), a few retired FID records come along."""
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
                if name in ("CLS", "INP") and repeated[i]:
                    early = round(value * 0.6, 4 if name == "CLS" else 1)
                    handle.write(json.dumps({**beacon, "value": early, "delta": early,
                                             "rating": rating(name, early)}) + "\n")
                handle.write(json.dumps(beacon) + "\n")
            if i % 100 == 0:  # an old tag still reporting the retired First Input Delay
                handle.write(json.dumps({"name": "FID", "value": 12, "id": f"fid-{i}",
                                         "url": page, "timestamp": stamps[i]}) + "\n")
    manifest.files.append(str(path))


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
    pg_stat_statements, all following the request load."""
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
