"""Service level indicators: good and total events per minute for an SLO, and SLO windows."""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import duckdb
import numpy as np
import pandas as pd

from mysetlist_slo.config import ProbesConfig, SloConfig, parse_duration
from mysetlist_slo.slo.incidents import uptime_minutes
from mysetlist_slo.slo.latency import (
    latency_event_params,
    latency_events_sql,
    route_filter_named,
    route_filter_sql,
)

REQUEST_SLIS = ("availability", "error_rate", "latency")
# the SLIs whose events are in the store
STORED_SLIS = (*REQUEST_SLIS, "probe_uptime", "db_query_time")

# pg_stat_statements counts since its last reset: the calls between two snapshots are the
# difference (the new count itself after a reset); a statement's calls in that interval are
# good when their mean time is under the threshold (the view keeps means, not each call).
# The calls belong to the time the interval spans, spread evenly over it as whole calls: the
# calls up to an instant are floor(calls x elapsed / length), so each minute holds the
# difference at its two ends and an interval's minutes add up to its calls exactly. Every
# minute an interval covers is a minute with data, even with no calls in it.
_STATEMENT_EVENTS = """
WITH deltas AS (
    SELECT ts, queryid,
           CASE WHEN calls >= lag(calls) OVER w THEN calls - lag(calls) OVER w
                ELSE calls END AS calls,
           CASE WHEN calls >= lag(calls) OVER w
                THEN total_exec_time - lag(total_exec_time) OVER w
                ELSE total_exec_time END AS exec_ms,
           lag(ts) OVER w AS previous
    FROM pg_statements
    WINDOW w AS (PARTITION BY userid, dbid, queryid, toplevel ORDER BY ts)
),
intervals AS (
    SELECT previous, ts, calls::HUGEINT AS calls,
           calls > 0 AND exec_ms / calls < $threshold AS good,
           epoch_us(ts) - epoch_us(previous) AS length_us
    FROM deltas
    WHERE previous IS NOT NULL AND previous < $end AND ts > $start
),
spanned AS (
    SELECT previous, calls, good, length_us, minute,
           epoch_us(greatest(minute, previous)) - epoch_us(previous) AS from_us,
           epoch_us(least(minute + INTERVAL 1 MINUTE, ts)) - epoch_us(previous) AS to_us
    FROM intervals,
         unnest(generate_series(date_trunc('minute', greatest(previous, $start)),
                                least(ts, $end) - INTERVAL 1 MICROSECOND,
                                INTERVAL 1 MINUTE)) AS spans(minute)
),
spread AS (
    SELECT minute, good,
           calls * to_us // length_us - calls * from_us // length_us AS calls
    FROM spanned
)
SELECT minute,
       coalesce(sum(calls) FILTER (WHERE good), 0) AS good,
       sum(calls) AS total
FROM spread
GROUP BY minute
ORDER BY minute
"""
MINUTE = timedelta(minutes=1)

_REQUEST_EVENTS = """
SELECT
    minute,
    sum(requests) FILTER (WHERE status < 500) AS good,
    sum(requests) AS total
FROM request_counts
WHERE minute >= ? AND minute < ? AND {routes}
GROUP BY minute
ORDER BY minute
"""

# Latency events are the answered timed requests; good ones are faster than the threshold: exact
# per-minute counts where the threshold was configured at ingest (see slo/latency.py).
_LATENCY_EVENTS = """
WITH {events}
SELECT minute, sum(good) AS good, sum(total) AS total
FROM latency_events
GROUP BY minute
ORDER BY minute
"""


def window_bounds(window: str, at: datetime, timezone: str = "UTC") -> tuple[datetime, datetime]:
    """Return the [start, end) of the SLO window that ends at ``at``.

    ``window`` is rolling (``28d``, ``1w``, ``6h``) or calendar-aligned (``week``: from the ISO
    week's Monday, ``month``: from the 1st), calendar periods being cut in ``timezone``.
    """
    if window in ("week", "month"):
        local = at.astimezone(ZoneInfo(timezone))
        start = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if window == "week":
            start -= timedelta(days=start.weekday())
        else:
            start = start.replace(day=1)
        # Wall-clock arithmetic on a zoned time: the offset at the period's start applies.
        return start.astimezone(at.tzinfo), at
    return at - parse_duration(window), at


def period_end(window: str, start: datetime, timezone: str = "UTC") -> datetime:
    """Return when the window starting at ``start`` ends (calendar) or lasts to (rolling)."""
    if window == "week":
        local = start.astimezone(ZoneInfo(timezone)).replace(tzinfo=None) + timedelta(days=7)
    elif window == "month":
        local = start.astimezone(ZoneInfo(timezone)).replace(tzinfo=None)
        local = (local.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        return start + parse_duration(window)
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(start.tzinfo)


def window_length(slo: SloConfig, at: datetime, timezone: str = "UTC") -> timedelta:
    """Return the length of the SLO window in force at ``at``: the rolling window's length, or
    the calendar period (cut in ``timezone``) that holds ``at`` (a 28-day February, a 30-day
    November)."""
    if slo.window in ("week", "month"):
        start, _ = window_bounds(slo.window, at, timezone)
        return period_end(slo.window, start, timezone) - start
    return parse_duration(slo.window)


def event_minutes(con: duckdb.DuckDBPyConnection, slo: SloConfig, start: datetime,
                  end: datetime, probes: ProbesConfig | None = None) -> pd.DataFrame:
    """Return (minute, good, total) for each minute in [start, end) that had data.

    Probe uptime has one event per minute with checks (see incidents.uptime_minutes);
    statement times have a row, perhaps of no calls, for each minute a snapshot interval
    covers (see _STATEMENT_EVENTS); latency counts are exact where the threshold was
    configured at ingest, else estimated from 5-minute sketches (see latency.count_below). Raises
    ValueError for SLI kinds whose events are not in the store.
    """
    if slo.sli == "probe_uptime":
        return uptime_minutes(con, start, end, probes)
    if slo.sli == "db_query_time":
        assert slo.threshold_ms is not None  # the config validation guarantees it
        frame = con.execute(_STATEMENT_EVENTS, {"threshold": slo.threshold_ms, "start": start,
                                                "end": end}).df()
        return frame.astype({"good": "int64", "total": "int64"})
    condition, values = route_filter_sql(slo.routes)
    if slo.sli == "latency":
        assert slo.threshold_ms is not None  # the config validation guarantees it
        named, routes = route_filter_named(slo.routes)
        frame = con.execute(_LATENCY_EVENTS.format(events=latency_events_sql(named)),
                            latency_event_params(slo.threshold_ms, start, end, routes)).df()
        return frame.astype({"good": "int64", "total": "int64"})
    if slo.sli in ("availability", "error_rate"):
        sql = _REQUEST_EVENTS.format(routes=condition)
        params: list[object] = [start, end, *values]
    else:
        raise ValueError(f"SLI kind {slo.sli!r} has no events in the store yet")
    frame = con.execute(sql, params).df()
    frame["good"] = frame["good"].fillna(0).astype("int64")
    frame["total"] = frame["total"].astype("int64")
    return frame


def timeslices(events: pd.DataFrame, target_percent: float) -> pd.DataFrame:
    """Return the events as one-minute timeslices: a minute is one event, good when its own
    ratio of good events reaches ``target_percent`` (exactly: a minute at the target is good);
    minutes without events are not counted."""
    events = events[events["total"] > 0]
    target = Fraction(str(float(target_percent)))
    good = (100 * target.denominator * events["good"]
            >= target.numerator * events["total"]).astype("int64")
    return pd.DataFrame({"minute": events["minute"], "good": good,
                         "total": np.ones(len(events), dtype="int64")})


def dense_minutes(events: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Return the events on every minute of [start, end), zero where there were none."""
    index = pd.date_range(start, end, freq="1min", inclusive="left", tz="UTC", name="minute")
    frame = events.set_index("minute")[["good", "total"]].reindex(index, fill_value=0)
    return frame.reset_index()
