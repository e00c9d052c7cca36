"""Active users and concurrency from PostHog product events: persons (distinct ids merged by
identity events), DAU/WAU/MAU, concurrent users per 5-minute window, and the requests one
concurrent user sends (sessions x request_counts), which the capacity plan's users scenario
uses beside its assumed think time.

Definitions (PostHog's own, where it has one):

- A **person** is a set of distinct ids joined by ``$identify`` (the event's distinct id and
  its ``$anon_distinct_id``) or ``$create_alias`` (``alias``) events, transitively (union-find:
  connected components); as in PostHog, a merge counts for the past too, so every link in the
  store is used whatever the period.
- **Active**: a person with at least one event of any kind in the period. DAU counts a day,
  WAU the 7 days and MAU the 30 days ending with each day (PostHog's rolling weekly and
  monthly active users); days are cut in the configured time zone.
- **Concurrent users** in a 5-minute window (aligned on the Unix epoch, so on the clock) are
  the sessions active in it: a session (``$session_id``, else the event's distinct id) is
  active from its first to its last event, and counts in every window that span touches.
- **Requests per concurrent user** in a window: its requests (request_counts) / (concurrent
  users x 300 s); the median over the windows with both sessions and requests is the measured
  rate, and 1 / rate the think time (Little's law with the response time left out, as the
  plan's scenario does).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from mysetlist_slo._numbers import percent, signed
from mysetlist_slo.config import Config

WINDOW_S = 300
# PostHog ends a session after 24 hours at most: events this long before a period can still
# belong to a session active in it.
SESSION_MAX = timedelta(hours=24)

_LINKS = """
SELECT DISTINCT distinct_id, linked_id
FROM posthog_events
WHERE linked_id IS NOT NULL AND linked_id <> distinct_id
"""


def person_map(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Return ``distinct_id, person`` for every distinct id that an identity event links to
    another: the person is the smallest distinct id of its connected component. Ids never
    linked are their own person and are not listed."""
    links = con.execute(_LINKS).df()
    if links.empty:
        return pd.DataFrame({"distinct_id": pd.Series(dtype=str),
                             "person": pd.Series(dtype=str)})
    ids, codes = np.unique(np.concatenate([links["distinct_id"].to_numpy(dtype=str),
                                           links["linked_id"].to_numpy(dtype=str)]),
                           return_inverse=True)
    half = len(links)
    graph = coo_matrix((np.ones(half), (codes[:half], codes[half:])), shape=(len(ids),) * 2)
    _, component = connected_components(graph, directed=False)
    frame = pd.DataFrame({"distinct_id": ids, "component": component})
    frame["person"] = frame.groupby("component")["distinct_id"].transform("min")
    return frame[["distinct_id", "person"]]


def _register_persons(con: duckdb.DuckDBPyConnection) -> None:
    con.register("person_map", person_map(con))


_ACTIVE_DAYS = """
WITH events AS (
    SELECT coalesce(person_map.person, posthog_events.distinct_id) AS person, ts
    FROM posthog_events LEFT JOIN person_map USING (distinct_id)
    WHERE ts >= $start AND ts < $end
)
SELECT DISTINCT person, CAST(timezone($tz, ts) AS DATE) AS day
FROM events
"""


def active_users(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime,
                 timezone: str = "UTC") -> pd.DataFrame:
    """Return one row per day of [start, end) cut in ``timezone`` (``start`` and ``end`` at
    local midnight for whole days): ``day, dau, wau, mau`` — distinct persons active that
    day, in the 7 and in the 30 days ending with it. Empty when no PostHog event falls in
    the 30 days before ``end``."""
    _register_persons(con)
    try:
        pairs = con.execute(_ACTIVE_DAYS, {"start": start - timedelta(days=30), "end": end,
                                           "tz": timezone}).df()
    finally:
        con.unregister("person_map")
    if pairs.empty:
        return pd.DataFrame(columns=["day", "dau", "wau", "mau"])
    pairs["day"] = pd.to_datetime(pairs["day"]).dt.date
    first = pd.Timestamp(start).tz_convert(timezone).date()
    last = (pd.Timestamp(end).tz_convert(timezone) - pd.Timedelta(microseconds=1)).date()
    rows = []
    for day in pd.date_range(first, last, freq="D").date:
        def within(days: int, day: object = day) -> int:
            since = day - timedelta(days=days - 1)  # type: ignore[operator]
            return int(pairs.loc[(pairs["day"] >= since) & (pairs["day"] <= day),
                                 "person"].nunique())
        rows.append({"day": day, "dau": within(1), "wau": within(7), "mau": within(30)})
    return pd.DataFrame(rows)


_ACTIVE_COUNT = """
SELECT count(DISTINCT coalesce(person_map.person, posthog_events.distinct_id))
FROM posthog_events LEFT JOIN person_map USING (distinct_id)
WHERE ts >= $start AND ts < $end
"""


def active_user_count(con: duckdb.DuckDBPyConnection, start: datetime,
                      end: datetime) -> int | None:
    """Return the distinct persons with an event in [start, end), or None when the store
    holds no PostHog event at all (not measured, rather than zero users)."""
    if con.execute("SELECT count(*) FROM posthog_events").fetchall() == [(0,)]:
        return None
    _register_persons(con)
    try:
        [(count,)] = con.execute(_ACTIVE_COUNT, {"start": start, "end": end}).fetchall()
    finally:
        con.unregister("person_map")
    return int(count)


_CONCURRENCY = """
WITH events AS (
    SELECT coalesce(session_id, 'distinct_id:' || distinct_id) AS session, ts
    FROM posthog_events
    WHERE ts >= $since AND ts < $end
),
sessions AS (
    SELECT session,
           CAST(floor(epoch(min(ts)) / $window_s) AS BIGINT) AS first_window,
           CAST(floor(epoch(max(ts)) / $window_s) AS BIGINT) AS last_window
    FROM events
    GROUP BY session
),
windows AS (
    SELECT unnest(generate_series(first_window, last_window)) AS slot
    FROM sessions
)
SELECT to_timestamp(slot * $window_s) AS window_start, count(*) AS concurrent_users
FROM windows
WHERE slot >= CAST(floor(epoch($start) / $window_s) AS BIGINT)
  AND to_timestamp(slot * $window_s) < $end
GROUP BY slot
ORDER BY slot
"""


def concurrent_users(con: duckdb.DuckDBPyConnection, start: datetime,
                     end: datetime) -> pd.DataFrame:
    """Return ``window_start, concurrent_users`` for each 5-minute window starting in
    [start, end) with at least one session active (see the module's definition); windows
    without any session are left out."""
    frame = con.execute(_CONCURRENCY, {"since": start - SESSION_MAX, "start": start,
                                       "end": end, "window_s": WINDOW_S}).df()
    frame = frame[frame["window_start"] >= pd.Timestamp(start)]
    return frame.reset_index(drop=True)


_REQUESTS_PER_WINDOW = """
SELECT to_timestamp(CAST(floor(epoch(minute) / $window_s) AS BIGINT) * $window_s) AS window_start,
       sum(requests) AS requests
FROM request_counts
WHERE minute >= $start AND minute < $end
GROUP BY window_start
"""


@dataclass(frozen=True)
class UserBehaviour:
    """The request rate one concurrent user sends, measured from sessions and requests."""

    rps_per_user: float  # median over windows of requests / (concurrent users x 300 s)
    think_time_s: float  # 1 / rps_per_user
    windows: int  # 5-minute windows with both sessions and requests


def user_behaviour(con: duckdb.DuckDBPyConnection, start: datetime,
                   end: datetime) -> UserBehaviour | None:
    """Return the measured UserBehaviour of [start, end), or None when no 5-minute window
    there has both PostHog sessions and requests."""
    users = concurrent_users(con, start, end)
    requests = con.execute(_REQUESTS_PER_WINDOW, {"start": start, "end": end,
                                                  "window_s": WINDOW_S}).df()
    both = users.merge(requests, on="window_start")
    both = both[both["requests"] > 0]
    if both.empty:
        return None
    rate = float((both["requests"] / (both["concurrent_users"] * WINDOW_S)).median())
    return UserBehaviour(rate, 1 / rate, len(both))


NO_POSTHOG = ("no PostHog events in the period: active users and concurrency not measured "
              "(load a PostHog export or run `mysetlist-slo collect posthog`)")


@dataclass(frozen=True)
class ActiveUsersReport:
    """Active users and concurrency of the period [start, end) and of the one before it."""

    start: datetime
    end: datetime
    active_users: int | None  # distinct persons in the period; None: no PostHog data at all
    active_users_before: int | None  # the same span just before
    daily: pd.DataFrame  # day, dau, wau, mau
    peak_concurrent_users: int | None
    peak_window_start: datetime | None
    target_concurrent_users: int | None  # the plan's scenario (capacity.concurrent_users)
    behaviour: UserBehaviour | None

    @property
    def status(self) -> str:
        """Return ``no_data`` without events in the period, ``at_risk`` when the peak reached
        the plan's concurrent-users scenario (beyond what capacity was planned for), else
        ``ok``."""
        if not self.active_users:
            return "no_data"
        if self.target_concurrent_users and self.peak_concurrent_users is not None and \
                self.peak_concurrent_users >= self.target_concurrent_users:
            return "at_risk"
        return "ok"

    def lines(self) -> list[str]:
        """Return the section's findings as sentences (one line when there is no data)."""
        if self.status == "no_data":
            return [NO_POSTHOG[0].upper() + NO_POSTHOG[1:] + "."]
        assert self.active_users is not None
        change = ""
        if self.active_users_before:
            delta = 100 * (self.active_users - self.active_users_before) / \
                self.active_users_before
            change = f" ({signed(delta, '+.1f')} % on the {self.active_users_before:,} before)"
        lines = [f"{self.active_users:,} active users{change}; DAU "
                 f"{int(self.daily['dau'].mean()):,} on average, highest "
                 f"{int(self.daily['dau'].max()):,}; MAU {int(self.daily['mau'].iloc[-1]):,} "
                 "at the end of the period."]
        if self.peak_concurrent_users is not None and self.peak_window_start is not None:
            target = self.target_concurrent_users
            share = (f", {percent(self.peak_concurrent_users / target, 0)} of the plan's "
                     f"{target:,}" if target else "")
            lines.append(f"Peak {self.peak_concurrent_users:,} concurrent users (sessions "
                         f"active in the 5 minutes from {self.peak_window_start:%a %d %b %H:%M}"
                         f" UTC){share}.")
        if self.behaviour is not None:
            lines.append(f"One concurrent user sends {self.behaviour.rps_per_user:.3f} req/s "
                         f"(a request every {self.behaviour.think_time_s:.1f} s, median of "
                         f"{self.behaviour.windows:,} 5-minute windows).")
        return lines

    def to_dict(self) -> dict[str, object]:
        """Return the section as JSON-ready data (times as ISO 8601 UTC text, rounded)."""
        peak = self.peak_window_start
        behaviour = self.behaviour
        return {
            "status": self.status,
            "active_users": self.active_users,
            "active_users_before": self.active_users_before,
            "dau_mean": None if self.daily.empty else round(float(self.daily["dau"].mean()), 1),
            "dau_max": None if self.daily.empty else int(self.daily["dau"].max()),
            "wau": None if self.daily.empty else int(self.daily["wau"].iloc[-1]),
            "mau": None if self.daily.empty else int(self.daily["mau"].iloc[-1]),
            "peak_concurrent_users": self.peak_concurrent_users,
            "peak_window_start": None if peak is None
            else peak.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "target_concurrent_users": self.target_concurrent_users,
            "rps_per_user": None if behaviour is None else round(behaviour.rps_per_user, 5),
            "think_time_s": None if behaviour is None else round(behaviour.think_time_s, 2),
        }


def active_users_report(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                        end: datetime) -> ActiveUsersReport:
    """Return the ActiveUsersReport of [start, end): persons active in it and in the span
    before, DAU/WAU/MAU per day (cut in the config's time zone), the peak concurrent users
    against ``capacity.concurrent_users`` and the requests per concurrent user."""
    now = active_user_count(con, start, end)
    before = active_user_count(con, start - (end - start), start)
    windows = concurrent_users(con, start, end)
    peak = windows.loc[windows["concurrent_users"].idxmax()] if len(windows) else None
    return ActiveUsersReport(
        start, end, now, before,
        active_users(con, start, end, config.timezone) if now else pd.DataFrame(
            columns=["day", "dau", "wau", "mau"]),
        None if peak is None else int(peak["concurrent_users"]),
        None if peak is None else pd.Timestamp(peak["window_start"]).to_pydatetime(),
        config.capacity.concurrent_users if config.capacity else None,
        user_behaviour(con, start, end))
