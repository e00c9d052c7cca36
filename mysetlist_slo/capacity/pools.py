"""Connection pools (PgBouncer in front of PostgreSQL) sized by queueing theory: Erlang C.

Transactions arrive at ``tps`` and hold a server connection for ``mean_xact_s`` on average;
the offered load is A = tps * mean_xact_s (Little's law). With N server connections, the
Erlang C formula gives the probability that a transaction waits for one (M/M/N).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_b(servers: int, offered_load: float) -> float:
    """Return the Erlang B blocking probability, by the stable recursion
    B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1)) (no factorials, no overflow at 500 servers)."""
    if servers < 0 or offered_load < 0:
        raise ValueError("servers and offered_load must be non-negative")
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = offered_load * blocking / (k + offered_load * blocking)
    return blocking


def erlang_c(servers: int, offered_load: float) -> float:
    """Return the probability that a transaction waits for a server connection (Erlang C),
    from Erlang B: C = N B / (N - A (1 - B)); 1.0 when the load reaches the servers.

    Worked by hand: two servers offered one erlang give B = 0.2, so C = 0.4 / 1.2 = 1/3.

    >>> round(erlang_c(2, 1.0), 6)
    0.333333
    >>> erlang_c(25, 25.0)
    1.0
    """
    if servers <= 0:
        raise ValueError("servers must be positive")
    if offered_load >= servers:
        return 1.0
    blocking = erlang_b(servers, offered_load)
    return servers * blocking / (servers - offered_load * (1 - blocking))


def mean_wait(servers: int, offered_load: float, mean_service_s: float) -> float:
    """Return the mean wait for a connection E[Wq] = C / (N mu - lambda), in seconds
    (infinite when the load reaches the servers)."""
    if offered_load >= servers:
        return math.inf
    return erlang_c(servers, offered_load) * mean_service_s / (servers - offered_load)


def wait_longer_than(servers: int, offered_load: float, mean_service_s: float,
                     seconds: float) -> float:
    """Return P(wait > t) = C exp(-(N - A) t / mean service time)."""
    if offered_load >= servers:
        return 1.0
    return erlang_c(servers, offered_load) * math.exp(
        -(servers - offered_load) * seconds / mean_service_s)


@dataclass(frozen=True)
class PoolSize:
    """The smallest pool that meets the waiting limits, and what it gives."""

    offered_load: float
    servers: int
    wait_probability: float
    mean_wait_ms: float
    rule_of_thumb: int | None  # 2 x cores + spindles, for comparison


def size_pool(tps: float, mean_xact_s: float, max_wait_probability: float = 0.01,
              max_mean_wait_ms: float = 5.0, cores: int | None = None,
              spindles: int = 1) -> PoolSize:
    """Return the smallest server pool keeping P(wait) and E[Wq] under the limits at ``tps``."""
    load = tps * mean_xact_s
    servers = max(1, math.floor(load) + 1)
    while (erlang_c(servers, load) > max_wait_probability
           or 1000 * mean_wait(servers, load, mean_xact_s) > max_mean_wait_ms):
        servers += 1
    thumb = 2 * cores + spindles if cores else None
    return PoolSize(load, servers, erlang_c(servers, load),
                    1000 * mean_wait(servers, load, mean_xact_s), thumb)
