"""Redis cache health from collected INFO snapshots: hit ratio, evictions, memory headroom,
commands per second and clients over a window."""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

# INFO counters are cumulative since the server started (or since CONFIG RESETSTAT): a counter
# lower than in the snapshot before was reset, so its new value is the whole increase.
_REDIS_HEALTH = """
WITH snapshots AS (
    SELECT instance, ts, keyspace_hits AS hits, keyspace_misses AS misses,
           evicted_keys AS evicted, total_commands_processed AS commands, uptime_in_seconds,
           lag(ts) OVER w AS prev_ts, lag(keyspace_hits) OVER w AS prev_hits,
           lag(keyspace_misses) OVER w AS prev_misses, lag(evicted_keys) OVER w AS prev_evicted,
           lag(total_commands_processed) OVER w AS prev_commands,
           lag(uptime_in_seconds) OVER w AS prev_uptime
    FROM redis_info
    WHERE ts >= $start AND ts < $end
    WINDOW w AS (PARTITION BY instance ORDER BY ts)
),
increases AS (
    SELECT instance, epoch(ts) - epoch(prev_ts) AS seconds,
           uptime_in_seconds < prev_uptime AS restarted,
           CASE WHEN hits >= prev_hits AND uptime_in_seconds >= prev_uptime
                THEN hits - prev_hits ELSE hits END AS hits,
           CASE WHEN misses >= prev_misses AND uptime_in_seconds >= prev_uptime
                THEN misses - prev_misses ELSE misses END AS misses,
           CASE WHEN evicted >= prev_evicted AND uptime_in_seconds >= prev_uptime
                THEN evicted - prev_evicted ELSE evicted END AS evicted,
           CASE WHEN commands >= prev_commands AND uptime_in_seconds >= prev_uptime
                THEN commands - prev_commands ELSE commands END AS commands
    FROM snapshots
    WHERE prev_ts IS NOT NULL
),
totals AS (
    SELECT instance, count(*) AS intervals, sum(seconds) AS seconds, sum(hits) AS hits,
           sum(misses) AS misses, sum(evicted) AS evictions, sum(commands) AS commands,
           count(*) FILTER (WHERE restarted) AS restarts
    FROM increases
    GROUP BY instance
),
latest AS (
    SELECT instance, count(*) AS snapshots, max(ts) AS last_ts,
           arg_max(used_memory, ts) AS used_memory, arg_max(maxmemory, ts) AS maxmemory,
           max(connected_clients) AS max_clients, max(rejected_connections) AS rejected
    FROM redis_info
    WHERE ts >= $start AND ts < $end
    GROUP BY instance
)
SELECT latest.instance, snapshots, intervals, seconds, hits, misses,
       hits / nullif(hits + misses, 0) AS hit_ratio, evictions,
       commands / nullif(seconds, 0) AS ops_per_s, restarts, used_memory,
       nullif(maxmemory, 0) AS maxmemory,
       1 - used_memory / nullif(maxmemory, 0) AS memory_headroom, max_clients, last_ts
FROM latest LEFT JOIN totals USING (instance)
ORDER BY latest.instance
"""


def redis_health(con: duckdb.DuckDBPyConnection, start: datetime,
                 end: datetime) -> pd.DataFrame:
    """Return per Redis instance over [start, end): snapshots, the hits, misses, hit ratio,
    evictions and commands/s between consecutive snapshots (counter resets and restarts
    handled), the last used memory, maxmemory (NaN: no limit) and headroom share, and the most
    clients seen. Fewer than two snapshots give counts and ratio as NaN: no data, not zero."""
    return con.execute(_REDIS_HEALTH, {"start": start, "end": end}).df()
