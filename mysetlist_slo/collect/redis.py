"""Redis collector: INFO (stats, memory, clients, keyspace) and LATENCY LATEST, in one
connection and two commands."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import redis

from mysetlist_slo.collect._secrets import safe_url, scrub
from mysetlist_slo.errors import CollectError
from mysetlist_slo.store.snapshots import Snapshot

TS = pa.timestamp("us", tz="UTC")
COUNTERS = ("uptime_in_seconds", "keyspace_hits", "keyspace_misses", "evicted_keys",
            "expired_keys", "total_commands_processed", "used_memory", "maxmemory",
            "connected_clients", "blocked_clients", "rejected_connections")
INFO = pa.schema([("ts", TS), ("instance", pa.string()),
                  *[(name, pa.int64()) for name in COUNTERS],
                  ("instantaneous_ops_per_sec", pa.float64()), ("keys", pa.int64()),
                  ("expires", pa.int64())])
LATENCY = pa.schema([("ts", TS), ("instance", pa.string()), ("event", pa.string()),
                     ("event_at", TS), ("latest_ms", pa.int64()), ("max_ms", pa.int64())])


def collect_redis(url: str, *, timeout_s: float = 5.0) -> Snapshot:
    """Return one snapshot of a Redis server: INFO's counters and gauges (table redis_info,
    keys summed over the keyspace's databases) and LATENCY LATEST (redis_latency; empty unless
    latency-monitor-threshold is set).

    The password comes from the URL (``redis://:PASSWORD@host:6379/0``) or $REDISCLI_AUTH, as
    for redis-cli; it is never part of what is stored or said. Raises CollectError when the
    server cannot be reached or refuses the credentials.
    """
    source = safe_url(url)
    parts = urlsplit(url)
    from_env = _env_password() if parts.password is None else None
    secrets = [p for p in (parts.password, from_env,
                           *parse_qs(parts.query).get("password", [])) if p]
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout_s,
                                      socket_connect_timeout=timeout_s,
                                      **({"password": from_env} if from_env else {}))
    except ValueError as exc:
        raise CollectError(source, scrub(f"not a Redis URL: {exc}", secrets)) from None
    try:
        ts = datetime.now(UTC)
        info: dict[str, Any] = client.info("everything")
        try:
            latest = client.execute_command("LATENCY", "LATEST")
        except redis.ResponseError:
            latest = []  # LATENCY disabled by rename-command: no latency data, not zero
    except redis.RedisError as exc:
        raise CollectError(source, scrub(str(exc) or type(exc).__name__, secrets)) from None
    finally:
        client.close()
    keyspace = [v for k, v in info.items() if k.startswith("db") and isinstance(v, dict)]
    row: dict[str, Any] = {"ts": ts, "instance": source,
                           **{name: int(info.get(name, 0)) for name in COUNTERS},
                           "instantaneous_ops_per_sec": float(info["instantaneous_ops_per_sec"]),
                           "keys": sum(int(db.get("keys", 0)) for db in keyspace),
                           "expires": sum(int(db.get("expires", 0)) for db in keyspace)}
    events = [{"ts": ts, "instance": source, "event": _text(event),
               "event_at": datetime.fromtimestamp(int(at), UTC), "latest_ms": int(last),
               "max_ms": int(worst)} for event, at, last, worst, *_ in latest]
    return Snapshot("collect-redis", source, {
        "redis_info": pa.Table.from_pylist([row], INFO),
        "redis_latency": pa.Table.from_pylist(events, LATENCY),
    })


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _env_password() -> str | None:
    return os.environ.get("REDISCLI_AUTH") or None
