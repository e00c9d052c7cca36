"""Prometheus collector: ``query_range`` over the HTTP API, chunked under the server's
11,000-points-per-series limit, retried with backoff, resumable per query."""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from mysetlist_slo.collect._http import ApiClient, Credentials, secret_file
from mysetlist_slo.collect._secrets import safe_url, scrub
from mysetlist_slo.collect.landing import land
from mysetlist_slo.errors import CollectError
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.ingest import IngestResult
from mysetlist_slo.store.snapshots import Cursor, Snapshot, collect_cursor

# Prometheus refuses a range query whose result would have more than 11,000 points in one
# series (promql's "exceeded maximum resolution of 11,000 points per timeseries").
MAX_POINTS = 11_000
METRICS = pa.schema([("ts", pa.timestamp("us", tz="UTC")), ("name", pa.string()),
                     ("labels", pa.string()), ("value", pa.float64())])
TOKEN_ENV = "MYSETLIST_SLO_PROMETHEUS_TOKEN"  # noqa: S105 - the variable's name, not a token
USER_ENV, PASSWORD_ENV = "MYSETLIST_SLO_PROMETHEUS_USER", "MYSETLIST_SLO_PROMETHEUS_PASSWORD"


@dataclass(frozen=True)
class PrometheusQuery:
    """A named PromQL expression; its samples are stored under ``name`` in ``metrics``."""

    name: str
    expr: str

    @classmethod
    def parse(cls, text: str) -> PrometheusQuery:
        """Return the query of ``NAME=PROMQL``; raise ValueError when it is not that shape."""
        name, sep, expr = text.partition("=")
        if not sep or not name.strip() or not expr.strip():
            raise ValueError(f"expected NAME=PROMQL, got {text!r}")
        if not name.strip().replace("_", "a").replace(":", "a").isalnum():
            raise ValueError(f"query name {name!r}: letters, digits, '_' and ':' only")
        return cls(name.strip(), expr.strip())


def auth_from(env: Mapping[str, str] | None = None, token_file: Path | None = None,
              basic_auth_file: Path | None = None) -> httpx.Auth | None:
    """Return the credentials for Prometheus: a bearer token from ``token_file`` or
    $MYSETLIST_SLO_PROMETHEUS_TOKEN, or basic auth from ``basic_auth_file`` (``user:password``
    on its first line) or $MYSETLIST_SLO_PROMETHEUS_USER / _PASSWORD; None when none is set.
    Raises CollectError when a file cannot be read or is empty."""
    env = os.environ if env is None else env
    token = secret_file(token_file, "credentials") if token_file else env.get(TOKEN_ENV)
    if token:
        return Credentials.bearer(token)
    basic = secret_file(basic_auth_file, "credentials") if basic_auth_file else None
    if basic is None and env.get(USER_ENV):
        basic = f"{env[USER_ENV]}:{env.get(PASSWORD_ENV, '')}"
    if basic is not None:
        password = basic.partition(":")[2]
        return Credentials("Basic " + base64.b64encode(basic.encode()).decode(), password)
    return None


def chunks(start: datetime, end: datetime, step_s: float,
           max_points: int = MAX_POINTS) -> list[tuple[datetime, datetime]]:
    """Return consecutive inclusive ranges [s, e] on the step grid from ``start`` covering up to
    ``end``, each with at most ``max_points`` evaluation points; none overlaps the next."""
    step = timedelta(seconds=step_s)
    ranges = []
    while start <= end:
        last = min(end, start + step * (max_points - 1))
        points = math.floor((last - start) / step)
        last = start + step * points
        ranges.append((start, last))
        start = last + step
    return ranges


class PrometheusClient:
    """The HTTP API of one Prometheus server, with timeouts and retries."""

    def __init__(self, url: str, *, auth: httpx.Auth | None = None, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 1.0) -> None:
        if httpx.URL(url).password:
            # Secrets never come from the command line, where ps and shell history show them.
            raise CollectError(safe_url(url), "a password in the URL is refused: set "
                               f"{USER_ENV}/{PASSWORD_ENV} or use --basic-auth-file")
        self.api = ApiClient(url, safe_url(url), auth=auth, timeout_s=timeout_s,
                             retries=retries, backoff_s=backoff_s)
        self.source = self.api.source

    def close(self) -> None:
        """Close the HTTP connections."""
        self.api.close()

    def query_range(self, expr: str, start: datetime, end: datetime,
                    step_s: float) -> list[dict[str, Any]]:
        """Return the matrix result of ``expr`` over [start, end] at ``step_s``.

        Timeouts, connection failures, 429 and 5xx answers are retried with exponential
        backoff; after the last attempt (or on another 4xx answer) raises CollectError.
        """
        params = {"query": expr, "start": f"{start.timestamp():.3f}",
                  "end": f"{end.timestamp():.3f}", "step": f"{step_s:g}"}
        response = self.api.request("GET", "/api/v1/query_range", what="query_range",
                                    detail="error", params=params)
        body = self.api.json(response)
        if not isinstance(body, dict) or body.get("status") != "success":
            reason = body.get("error") if isinstance(body, dict) else None
            raise CollectError(self.source, scrub(f"HTTP 200: {reason or 'not a success'}",
                                                  self.api.secrets))
        data: dict[str, Any] = body.get("data") or {}
        if data.get("resultType") != "matrix":
            raise CollectError(self.source, f"expected a matrix, got {data.get('resultType')}")
        series: list[dict[str, Any]] = data["result"]
        return series


def _rows(query: PrometheusQuery, series: list[dict[str, Any]]) -> pa.Table:
    """Return the samples of a matrix as ``metrics`` rows named after the query; NaN points (no
    sample) are left out, never stored as zeros. ``__name__`` is kept among the labels only when
    the series have several (``{__name__=~"a|b"}``), so that no two series collide."""
    names = {item.get("metric", {}).get("__name__") for item in series}
    rows = []
    for item in series:
        labels = {k: v for k, v in item.get("metric", {}).items()
                  if k != "__name__" or len(names) > 1}
        text = json.dumps(labels, sort_keys=True)
        for stamp, value in item.get("values", []):
            number = float(value)
            if not math.isnan(number):
                rows.append({"ts": datetime.fromtimestamp(float(stamp), UTC),
                             "name": query.name, "labels": text, "value": number})
    return pa.Table.from_pylist(rows, METRICS)


def _on_grid(moment: datetime, step_s: float, up: bool) -> datetime:
    seconds = moment.timestamp() / step_s
    return datetime.fromtimestamp((math.ceil(seconds) if up else math.floor(seconds)) * step_s,
                                  UTC)


def collect_prometheus(db: str | Path, url: str, queries: list[PrometheusQuery], *,
                       start: datetime | None = None, end: datetime | None = None,
                       since: timedelta = timedelta(days=7), step_s: float = 60.0,
                       settle_s: float = 60.0, max_points: int = MAX_POINTS,
                       auth: httpx.Auth | None = None, timeout_s: float = 30.0,
                       retries: int = 4, backoff_s: float = 1.0,
                       log: Callable[[str], None] | None = None) -> list[IngestResult]:
    """Collect each query's range into the ``metrics`` table of the store at ``db``; return one
    IngestResult per chunk stored.

    A query starts where its last run stopped (same server, name, expression and step), else
    at ``start`` (default: ``since`` before the end); it ends at ``end`` (default: now less
    ``settle_s``, so that late scrapes are in). Ranges sit on the step grid, so no evaluation
    point is stored twice. Each chunk of at most ``max_points`` points lands in its own
    transaction together with the query's cursor, so an interrupted run loses nothing stored
    and the next one resumes after the last chunk. Raises CollectError when the server fails
    past the retries or refuses a query; chunks stored before that stay stored.
    """
    client = PrometheusClient(url, auth=auth, timeout_s=timeout_s, retries=retries,
                              backoff_s=backoff_s)
    results: list[IngestResult] = []
    try:
        stop = _on_grid(end or datetime.now(UTC) - timedelta(seconds=settle_s), step_s, False)
        for query in queries:
            con = open_store(db)
            try:
                done = collect_cursor(con, client.source, query.name, query.expr, step_s)
            finally:
                con.close()  # no lock held while waiting for Prometheus
            first = _on_grid(start or stop - since, step_s, True)
            if done is not None:
                first = max(first, done + timedelta(seconds=step_s))
            for low, high in chunks(first, stop, step_s, max_points):
                series = client.query_range(query.expr, low, high, step_s)
                snapshot = Snapshot(
                    "collect-prometheus", client.source, {"metrics": _rows(query, series)},
                    identity=f"{query.name}\0{query.expr}\0{low.isoformat()}\0"
                             f"{high.isoformat()}\0{step_s:g}",
                    cursor=Cursor(client.source, query.name, query.expr, step_s, high))
                result = land(db, snapshot)
                results.append(result)
                if log is not None:
                    log(f"{query.name}: {low:%Y-%m-%d %H:%M:%S} to {high:%Y-%m-%d %H:%M:%S}: "
                        f"{result.loaded} samples")
    finally:
        client.close()
    return results
