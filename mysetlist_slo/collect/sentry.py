"""Sentry collector: error events (Discover ``events``, every page of its ``Link`` cursor),
``stats_v2`` outcomes and release-health ``sessions`` of one organisation over a time range,
landed as one snapshot; the auth token comes from the environment and is never shown."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa

from mysetlist_slo.collect._http import ApiClient, Credentials, secret_env, secret_file
from mysetlist_slo.collect._secrets import safe_url
from mysetlist_slo.collect.landing import land
from mysetlist_slo.errors import CollectError
from mysetlist_slo.sources._lines import BadField
from mysetlist_slo.sources.sentry import (
    EVENT_SCHEMA,
    SESSION_FIELDS,
    SESSION_SCHEMA,
    STATS_SCHEMA,
    SentrySessionsSource,
    SentryStatsSource,
    answer_time,
    event_row,
    group_rows,
    interval_ends,
)
from mysetlist_slo.store.ingest import IngestResult
from mysetlist_slo.store.snapshots import Snapshot

TOKEN_ENV = "SENTRY_AUTH_TOKEN"  # noqa: S105 - the variable's name (sentry-cli's), not a token
DEFAULT_URL = "https://sentry.io"
# The Discover fields read (sources/sentry.py): Discover calls the handled flag error.handled.
EVENT_FIELDS = ("id", "timestamp", "level", "release", "environment", "transaction", "issue",
                "error.handled", "project.name")
MAX_PAGES = 10_000  # a cursor that never ends is a server bug, not data


def token_from(env: Mapping[str, str] | None = None, token_file: Path | None = None) -> str:
    """Return the Sentry auth token from ``token_file`` (its first line) or $SENTRY_AUTH_TOKEN.
    Raises CollectError when neither is set or the file cannot be read or is empty."""
    token = (secret_file(token_file, "token") if token_file is not None
             else secret_env((TOKEN_ENV,), env))
    if token is None:
        raise CollectError("sentry", f"no auth token: set {TOKEN_ENV} or pass --token-file")
    return token


class SentryClient:
    """Sentry's web API for one organisation, with timeouts, retries and Link pagination."""

    def __init__(self, url: str, org: str, token: str, *, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 1.0) -> None:
        base = httpx.URL(url)
        if base.password or base.username:
            raise CollectError(safe_url(url), "credentials in the URL are refused: set "
                               f"{TOKEN_ENV} or use --token-file")
        if not org or "/" in org:
            raise CollectError(safe_url(url), f"not an organisation slug: {org!r}")
        self.prefix = f"/api/0/organizations/{quote(org)}"
        self.api = ApiClient(url, f"{safe_url(url).rstrip('/')}/organizations/{org}",
                             auth=Credentials.bearer(token), timeout_s=timeout_s,
                             retries=retries, backoff_s=backoff_s)
        self.source = self.api.source

    def close(self) -> None:
        """Close the HTTP connections."""
        self.api.close()

    def get(self, url: str | httpx.URL,
            params: list[tuple[str, str]] | None = None) -> httpx.Response:
        """Return the answer to a GET; timeouts, connection failures, 429 and 5xx are retried
        with exponential backoff, then (or on another 4xx) CollectError."""
        return self.api.request("GET", url, what="GET",
                                params=None if params is None else httpx.QueryParams(
                                    tuple(params)))

    def pages(self, endpoint: str, params: list[tuple[str, str]]) -> list[Any]:
        """Return the ``data`` rows of every page of a paginated endpoint, following the
        ``Link`` header's ``rel="next"`` while it says ``results="true"`` (Sentry's cursor
        pagination). A next link to another host is refused: the token goes nowhere else."""
        rows: list[Any] = []
        response = self.get(f"{self.prefix}/{endpoint}/", params)
        for _ in range(MAX_PAGES):
            body = self.api.json(response)
            data = body.get("data") if isinstance(body, dict) else body
            if not isinstance(data, list):
                raise CollectError(self.source, f"{endpoint}: answer holds no data list")
            rows += data
            link = response.links.get("next")
            if not link or link.get("results") != "true":
                return rows
            response = self.get(self.api.next_page(link["url"], endpoint))
        raise CollectError(self.source, f"{endpoint}: more than {MAX_PAGES} pages")

    def series(self, endpoint: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        """Return a time-series answer (stats_v2, sessions) as a dict."""
        body = self.api.json(self.get(f"{self.prefix}/{endpoint}/", params))
        if not isinstance(body, dict) or not isinstance(body.get("intervals"), list) or (
                not isinstance(body.get("groups"), list)):
            raise CollectError(self.source, f"{endpoint}: answer holds no intervals and groups")
        return body


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _series_rows(client: SentryClient, endpoint: str, body: dict[str, Any],
                 source: SentryStatsSource | SentrySessionsSource) -> list[dict[str, Any]]:
    """Return the rows of a time-series answer, checked as a file's are; a bad value is a
    CollectError naming the endpoint and the value's path."""
    try:
        starts = [answer_time(v, f"intervals[{i}]") for i, v in enumerate(body["intervals"])]
        end = answer_time(body["end"], "end") if body.get("end") else None
    except BadField as bad:
        raise CollectError(client.source, f"{endpoint}: {bad}") from None
    rows, rejects = group_rows(source, "", body["groups"], starts, interval_ends(starts, end))
    if rejects:
        raise CollectError(client.source, f"{endpoint}: {rejects[0].field}: "
                           f"{rejects[0].problem}")
    return rows


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Return rows as a store table: the source schema without its ``line`` column."""
    stored = pa.schema([f for f in schema if f.name != "line"])
    return pa.Table.from_pylist([{k: v for k, v in r.items() if k != "line"} for r in rows],
                                stored)


def collect_sentry(db: str | Path, url: str, org: str, token: str, *,
                   start: datetime | None = None, end: datetime | None = None,
                   since: timedelta = timedelta(days=1), projects: tuple[str, ...] = (),
                   environment: str | None = None, interval: str = "1h",
                   timeout_s: float = 30.0, retries: int = 4, backoff_s: float = 1.0,
                   log: Callable[[str], None] | None = None) -> IngestResult:
    """Collect one organisation's error events, stats_v2 error outcomes and release-health
    sessions for [start, end) (default: ``since`` before now, to now) into the store at
    ``db`` as one snapshot; return its IngestResult.

    Runs may overlap: events are counted once by id and an interval is taken from the
    latest run (slo.app_errors), so a run every hour over the last day repairs late data.
    Raises CollectError when Sentry refuses (bad token: HTTP 401), fails past the retries,
    or answers something that is not these endpoints' shape; nothing is stored then.
    """
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = (start or end - since).astimezone(UTC)
    if start >= end:
        raise CollectError(safe_url(url), f"empty range: {start.isoformat()} is not before "
                           f"{end.isoformat()}")
    client = SentryClient(url, org, token, timeout_s=timeout_s, retries=retries,
                          backoff_s=backoff_s)
    common = [("start", _iso(start)), ("end", _iso(end)),
              *(("project", p) for p in projects),
              *((("environment", environment),) if environment else ())]
    try:
        events = client.pages("events", [
            *(("field", f) for f in EVENT_FIELDS), ("dataset", "errors"),
            ("query", "event.type:error"), ("sort", "timestamp"), ("per_page", "100"),
            *common])
        event_rows = []
        for index, record in enumerate(events):
            try:
                event_rows.append(event_row(record))
            except BadField as bad:
                raise CollectError(client.source, f"events: data[{index}].{bad}") from None
        stats = client.series("stats_v2", [
            ("field", "sum(quantity)"), ("groupBy", "outcome"), ("groupBy", "reason"),
            ("groupBy", "category"), ("category", "error"), ("interval", interval), *common])
        sessions = client.series("sessions", [
            *(("field", f) for f in SESSION_FIELDS), ("groupBy", "release"),
            ("interval", interval), *common])
        tables = {
            "sentry_events": _table(event_rows, EVENT_SCHEMA),
            "sentry_stats": _table(_series_rows(client, "stats_v2", stats, SentryStatsSource()),
                                   STATS_SCHEMA),
            "sentry_sessions": _table(_series_rows(client, "sessions", sessions,
                                                   SentrySessionsSource()), SESSION_SCHEMA),
        }
    finally:
        client.close()
    snapshot = Snapshot("collect-sentry", client.source, tables,
                        identity=f"{start.isoformat()}\0{end.isoformat()}\0{interval}\0"
                                 f"{','.join(projects)}\0{environment or ''}")
    result = land(db, snapshot)
    if log is not None:
        log(f"{client.source}: {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: "
            f"{tables['sentry_events'].num_rows} events, {tables['sentry_stats'].num_rows} "
            f"outcome rows, {tables['sentry_sessions'].num_rows} session rows")
    return result
