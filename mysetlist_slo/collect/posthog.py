"""PostHog collector: product events through the Query API (a ``HogQLQuery`` per page, with a
personal API key from the environment), a day per range, resumable, landed page by page."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa

from mysetlist_slo.collect._http import ApiClient, Credentials, secret_env, secret_file
from mysetlist_slo.collect._secrets import safe_url
from mysetlist_slo.collect.landing import land
from mysetlist_slo.errors import CollectError
from mysetlist_slo.sources._lines import BadField
from mysetlist_slo.sources.posthog import POSTHOG_SCHEMA, event_row
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.ingest import IngestResult
from mysetlist_slo.store.snapshots import Cursor, Snapshot, collect_cursor

# The key's variables: ours first, then the name PostHog's own API documentation uses.
KEY_ENVS = ("MYSETLIST_SLO_POSTHOG_API_KEY", "POSTHOG_PERSONAL_API_KEY")
# The Query API returns 100 rows unless the query sets a LIMIT, and suggests paginating
# beyond 50,000 (https://posthog.com/docs/api/queries).
PAGE_SIZE = 10_000
RANGE = timedelta(days=1)
COLUMNS = ("uuid", "event", "distinct_id", "timestamp", "session_id", "current_url",
           "device_type", "anon_distinct_id", "alias")
# Times are bound as values ({start}, {end}); the page's limit and offset are integers this
# module computes. Ordered by time and uuid so that pages do not overlap.
QUERY = """
SELECT uuid, event, distinct_id, timestamp, properties.$session_id AS session_id,
       properties.$current_url AS current_url, properties.$device_type AS device_type,
       properties.$anon_distinct_id AS anon_distinct_id, properties.alias AS alias
FROM events
WHERE timestamp >= toDateTime({start}) AND timestamp < toDateTime({end})
ORDER BY timestamp, uuid
LIMIT %d OFFSET %d
"""
STORED = POSTHOG_SCHEMA.remove(POSTHOG_SCHEMA.get_field_index("line"))


def api_key(env: Mapping[str, str] | None = None, key_file: Path | None = None) -> str:
    """Return the personal API key from ``key_file`` (its first line) or the environment
    ($MYSETLIST_SLO_POSTHOG_API_KEY, else $POSTHOG_PERSONAL_API_KEY). Raises CollectError
    when there is none or the file cannot be read."""
    key = secret_file(key_file, "API key") if key_file is not None else secret_env(KEY_ENVS, env)
    if key is None:
        raise CollectError("posthog", f"no personal API key: set {KEY_ENVS[0]} (or "
                           f"{KEY_ENVS[1]}) or use --key-file")
    return key


class PostHogClient:
    """The Query API of one PostHog project, with timeouts and retries."""

    def __init__(self, host: str, project: str, key: str, *, timeout_s: float = 30.0,
                 retries: int = 4, backoff_s: float = 1.0) -> None:
        if httpx.URL(host).password:
            raise CollectError(safe_url(host), "a password in the URL is refused: the API key "
                               f"comes from {KEY_ENVS[0]} or --key-file")
        if not project.isdigit():
            raise CollectError(safe_url(host), f"project id is not a number: {project[:40]!r}")
        self.path = f"/api/projects/{project}/query/"
        self.api = ApiClient(host, f"{safe_url(host).rstrip('/')}/project/{project}",
                             auth=Credentials.bearer(key), timeout_s=timeout_s,
                             retries=retries, backoff_s=backoff_s)
        self.source = self.api.source

    def close(self) -> None:
        """Close the HTTP connections."""
        self.api.close()

    def page(self, start: datetime, end: datetime, limit: int, offset: int) -> list[list[Any]]:
        """Return one page of events in [start, end) as rows in COLUMNS order.

        Timeouts, connection failures, 429 and 5xx answers are retried with exponential
        backoff; after the last attempt, or on any other answer but 200, raises CollectError
        (see ``ApiClient.request``).
        """
        body = {"query": {"kind": "HogQLQuery", "query": QUERY % (limit, offset),
                          "values": {"start": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
                                     "end": end.strftime("%Y-%m-%d %H:%M:%S.%f")}},
                "name": "mysetlist-slo collect posthog"}
        answer = self.api.json(self.api.request("POST", self.path, what="query", json=body))
        if not isinstance(answer, dict):
            raise CollectError(self.source, "the answer is not a JSON object")
        columns, results = answer.get("columns"), answer.get("results")
        if not isinstance(columns, list) or not isinstance(results, list):
            raise CollectError(self.source, "the answer has no columns and results")
        missing = [c for c in COLUMNS if c not in columns]
        if missing:
            raise CollectError(self.source, f"the answer lacks columns {', '.join(missing)}")
        order = [columns.index(c) for c in COLUMNS]
        rows = []
        for number, row in enumerate(results, 1):
            if not isinstance(row, list) or len(row) != len(columns):
                raise CollectError(self.source, f"row {offset + number}: not a row of "
                                   f"{len(columns)} values")
            rows.append([row[i] for i in order])
        return rows


def _table(source: str, rows: list[list[Any]], offset: int) -> pa.Table:
    """Return the ``posthog_events`` rows of one page; raise CollectError naming the row and
    field of a value that cannot be used."""
    out = []
    for number, values in enumerate(rows, 1):
        item = dict(zip(COLUMNS, values, strict=True))
        properties = {"$session_id": item["session_id"], "$current_url": item["current_url"],
                      "$device_type": item["device_type"],
                      "$anon_distinct_id": item["anon_distinct_id"], "alias": item["alias"]}
        try:
            out.append(event_row(item, properties))
        except BadField as bad:
            raise CollectError(source, f"row {offset + number}: {bad.field}: {bad.problem}") \
                from None
    return pa.Table.from_pylist(out, STORED)


def collect_posthog(db: str | Path, host: str, project: str, key: str, *,
                    start: datetime | None = None, end: datetime | None = None,
                    since: timedelta = timedelta(days=1), settle_s: float = 600.0,
                    page_size: int = PAGE_SIZE, timeout_s: float = 30.0, retries: int = 4,
                    backoff_s: float = 1.0,
                    log: Callable[[str], None] | None = None) -> list[IngestResult]:
    """Collect the project's events into ``posthog_events`` of the store at ``db``; return one
    IngestResult per page stored.

    The range starts where the last run stopped (same host and project), else at ``start``
    (default: ``since`` before the end), and ends at ``end`` (default: now less ``settle_s``,
    for events still being ingested). It is read a day at a time, ``page_size`` events per
    request; each page lands in its own transaction and a day's last page records the cursor,
    so an interrupted run keeps what it stored and the next one resumes after the last whole
    day. Raises CollectError when PostHog refuses the key or the query, fails past the
    retries, or returns a value that cannot be used; pages stored before stay stored.
    """
    client = PostHogClient(host, project, key, timeout_s=timeout_s, retries=retries,
                           backoff_s=backoff_s)
    results: list[IngestResult] = []
    try:
        stop = (end or datetime.now(UTC) - timedelta(seconds=settle_s)).astimezone(UTC)
        con = open_store(db)
        try:
            done = collect_cursor(con, client.source, "events", "posthog", 0.0)
        finally:
            con.close()  # no lock held while waiting for PostHog
        low = (start or stop - since).astimezone(UTC)
        if done is not None:
            low = max(low, done)
        while low < stop:
            high = min(low + RANGE, stop)
            offset = 0
            while True:
                rows = client.page(low, high, page_size, offset)
                last = len(rows) < page_size
                snapshot = Snapshot(
                    "collect-posthog", client.source,
                    {"posthog_events": _table(client.source, rows, offset)},
                    identity=f"{low.isoformat()}\0{high.isoformat()}\0{offset}",
                    cursor=Cursor(client.source, "events", "posthog", 0.0, high)
                    if last else None)
                results.append(land(db, snapshot))
                if log is not None:
                    log(f"{low:%Y-%m-%d %H:%M} to {high:%Y-%m-%d %H:%M}: {len(rows)} events "
                        f"from offset {offset}")
                if last:
                    break
                offset += page_size
            low = high
    finally:
        client.close()
    return results
