"""Application errors from Sentry: the error-rate SLI of errors the app reports per request
(beside the 5xx SLI), per route and per release, with a regression test between releases."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pandas as pd
import pyarrow as pa
from scipy.stats import binomtest

from mysetlist_slo._numbers import p_value_text
from mysetlist_slo.config import Config
from mysetlist_slo.store.routes import OTHER_ROUTE, RouteNormaliser

DEFAULT_MAX_ERROR_RATE = 0.001  # the plan's "application error rate < 0.1 %"
UNKNOWN_ROUTE = "(no transaction)"
# A release is a regression when its error rate is higher than the release before it with a
# one-sided p below this, and by more than MIN_CHANGE (as the Web Vitals regressions judge).
SIGNIFICANCE = 0.01
MIN_CHANGE = 0.05
# What counts as an application error: what Sentry marks unhandled, or an error-level event
# (fatal is worse than error); handled warnings and info messages are not failures.
ERROR_LEVELS = ("error", "fatal")
_METHOD = re.compile(r"^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) +")

# Each event once (the same event may come in two overlapping exports), and only errors.
_EVENTS = """
WITH unique_events AS (
    SELECT *
    FROM sentry_events
    WHERE ts >= $start AND ts < $end
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY ingest_id DESC) = 1
)
SELECT ts, time_bucket(INTERVAL 1 minute, ts) AS minute, event_id, level, release,
       transaction, issue, handled
FROM unique_events
WHERE handled IS FALSE OR level IN ('error', 'fatal')
"""
_REQUEST_MINUTES = """
SELECT minute, route, sum(requests) AS requests,
       sum(requests) FILTER (WHERE status >= 500) AS errors_5xx
FROM request_counts
WHERE minute >= $start AND minute < $end
GROUP BY minute, route
"""
# A later export of the same interval replaces an earlier one: the latest ingest per key.
_STATS = """
WITH latest AS (
    SELECT *
    FROM sentry_stats
    WHERE ts >= $start AND ts < $end
      AND (category IS NULL OR category IN ('error', 'default'))
    QUALIFY ingest_id = max(ingest_id) OVER (PARTITION BY ts, category, outcome, reason)
)
SELECT outcome, sum(quantity) AS quantity FROM latest GROUP BY outcome
"""
_SESSIONS = """
WITH latest AS (
    SELECT *
    FROM sentry_sessions
    WHERE ts >= $start AND ts < $end
    QUALIFY ingest_id = max(ingest_id) OVER (PARTITION BY ts, release, status)
)
SELECT release, status, ts, sessions, users, crash_free_sessions, crash_free_users
FROM latest
"""
# When a release went live, as late as the data allow: its first event, or the end of its first
# session interval if that comes first (it had sessions by then; an interval's start would
# date a release deployed at 23:00 to midnight, and give it the whole day's requests).
_FIRST_SEEN = """
WITH seen AS (
    SELECT release, min(ts) AS first_seen FROM sentry_events
    WHERE release IS NOT NULL GROUP BY release
    UNION ALL
    SELECT release, min(ts_end) FROM sentry_sessions
    WHERE coalesce(sessions, 1) > 0 GROUP BY release
)
SELECT release, min(first_seen) AS first_seen FROM seen GROUP BY release ORDER BY 2, 1
"""


def _pct(share: float, digits: int = 3) -> str:
    """Return a share as a percentage the way the reports write it (``0.053 %``, ``0 %``)."""
    return "0 %" if share == 0 else f"{100 * share:.{digits}f} %"


@dataclass(frozen=True)
class AppErrorSli:
    """The application error-rate SLI over [start, end), beside the 5xx SLI.

    ``app_errors`` counts Sentry events that are unhandled or error-level in minutes that
    have request data; ``events_without_requests`` those in minutes without. Rates are
    shares of requests (None without requests). ``lower_bound`` is True when Sentry dropped
    error events (rate-limited or filtered, per stats_v2): the real count is higher.
    """

    start: datetime
    end: datetime
    requests: int
    errors_5xx: int
    app_errors: int
    events_without_requests: int
    rate_limited: int
    filtered: int
    max_error_rate: float
    has_sentry_data: bool

    @property
    def rate_5xx(self) -> float | None:
        """Return 5xx responses per request (None without requests)."""
        return self.errors_5xx / self.requests if self.requests else None

    @property
    def app_error_rate(self) -> float | None:
        """Return application errors per request (None without requests)."""
        return self.app_errors / self.requests if self.requests else None

    @property
    def lower_bound(self) -> bool:
        """Return True when Sentry dropped error events, so the rate is a lower bound."""
        return self.rate_limited + self.filtered > 0

    @property
    def status(self) -> str:
        """Return ``no_data``, ``ok`` or ``breach`` (the app error rate against the target)."""
        rate = self.app_error_rate
        if not self.has_sentry_data or rate is None:
            return "no_data"
        return "breach" if rate >= self.max_error_rate else "ok"

    def line(self) -> str:
        """Return the SLI in one sentence."""
        if not self.has_sentry_data:
            return "No Sentry data for this period: application errors not measured."
        if not self.requests:
            return (f"{self.app_errors:,} application errors in Sentry but no request data: "
                    "the error rate cannot be computed.")
        bound = (f" (a lower bound: Sentry dropped {self.rate_limited:,} rate-limited and "
                 f"{self.filtered:,} filtered error events)" if self.lower_bound else "")
        rate, rate_5xx = self.app_error_rate or 0.0, self.rate_5xx or 0.0
        return (f"Application error rate {'≥ ' if self.lower_bound else ''}{_pct(rate)} "
                f"({self.app_errors:,} errors in {self.requests:,} requests){bound}, 5xx rate "
                f"{_pct(rate_5xx)}, target < {_pct(self.max_error_rate, 1)}: "
                f"{'met' if self.status == 'ok' else 'missed'}.")


def max_error_rate(config: Config) -> float:
    """Return the share of requests allowed to fail: 1 - the ``error_rate`` SLO's objective
    (the plan's 0.1 % when no such SLO is configured)."""
    slo = next((s for s in config.slos if s.sli == "error_rate"), None)
    return DEFAULT_MAX_ERROR_RATE if slo is None else 1 - slo.objective / 100


def transaction_routes(con: duckdb.DuckDBPyConnection, config: Config,
                       transactions: pd.Series) -> pd.Series:
    """Return the route of each Sentry transaction name: the HTTP method prefix dropped
    (``GET /api/shows/[id]``), then the store's route normalisation (configured patterns,
    then the routes the store admitted); a template never admitted is "(other)", no
    transaction "(no transaction)"."""
    known = [r for (r,) in con.execute("SELECT route FROM routes").fetchall()]
    routes = RouteNormaliser(config.routes.patterns, config.routes.max_routes, known)
    names = transactions.fillna("").astype(str).str.replace(_METHOD, "", regex=True)
    paths = names.where(names.str.startswith("/"), "")
    templates = routes.templates(pa.array(paths.tolist(), pa.string())).to_pylist()
    mapped = [UNKNOWN_ROUTE if not path else t if routes.admitted(t) else OTHER_ROUTE
              for path, t in zip(paths, templates, strict=True)]
    return pd.Series(mapped, index=transactions.index, dtype=object)


def app_error_events(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                     end: datetime) -> pd.DataFrame:
    """Return the application errors of [start, end): each Sentry event once, unhandled or
    error-level, with its minute and route (columns ts, minute, event_id, level, release,
    transaction, issue, handled, route)."""
    events = con.execute(_EVENTS, {"start": start, "end": end}).df()
    events["route"] = transaction_routes(con, config, events["transaction"]) if len(
        events) else pd.Series(dtype=object)
    return events


def _request_minutes(con: duckdb.DuckDBPyConnection, start: datetime,
                     end: datetime) -> pd.DataFrame:
    frame = con.execute(_REQUEST_MINUTES, {"start": start, "end": end}).df()
    frame["errors_5xx"] = frame["errors_5xx"].fillna(0).astype("int64")
    frame["requests"] = frame["requests"].astype("int64")
    return frame


def _dropped(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> dict[str, int]:
    rows = con.execute(_STATS, {"start": start, "end": end}).fetchall()
    return {str(outcome): int(quantity) for outcome, quantity in rows}


def _has_sentry(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> bool:
    found = con.execute(
        "SELECT (SELECT count(*) FROM sentry_events WHERE ts >= $s AND ts < $e) "
        "+ (SELECT count(*) FROM sentry_stats WHERE ts >= $s AND ts < $e) "
        "+ (SELECT count(*) FROM sentry_sessions WHERE ts >= $s AND ts < $e)",
        {"s": start, "e": end}).fetchone()
    return bool(found and found[0])


def application_error_sli(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                          end: datetime) -> AppErrorSli:
    """Return the application error-rate SLI of [start, end) (see AppErrorSli): errors from
    Sentry counted in the minutes that have requests, requests and 5xx from the request
    rollups, dropped error events from stats_v2."""
    events = app_error_events(con, config, start, end)
    minutes = _request_minutes(con, start, end)
    covered = events["minute"].isin(set(minutes["minute"])) if len(events) else pd.Series(
        dtype=bool)
    dropped = _dropped(con, start, end)
    return AppErrorSli(start, end, int(minutes["requests"].sum()),
                       int(minutes["errors_5xx"].sum()), int(covered.sum()),
                       int((~covered).sum()), dropped.get("rate_limited", 0),
                       dropped.get("filtered", 0), max_error_rate(config),
                       _has_sentry(con, start, end))


def application_errors_by_route(con: duckdb.DuckDBPyConnection, config: Config,
                                start: datetime, end: datetime) -> pd.DataFrame:
    """Return per route over [start, end): requests, errors_5xx, app_errors (Sentry errors
    whose transaction maps to the route, in minutes with request data), rate_5xx and
    app_error_rate (None without requests); most application errors first."""
    events = app_error_events(con, config, start, end)
    minutes = _request_minutes(con, start, end)
    events = events[events["minute"].isin(set(minutes["minute"]))]
    traffic = minutes.groupby("route", as_index=False)[["requests", "errors_5xx"]].sum()
    errors = events.groupby("route").size().rename("app_errors").reset_index()
    frame = traffic.merge(errors, on="route", how="outer")
    frame[["requests", "errors_5xx", "app_errors"]] = frame[
        ["requests", "errors_5xx", "app_errors"]].fillna(0).astype("int64")
    frame["rate_5xx"] = (frame["errors_5xx"] / frame["requests"]).where(frame["requests"] > 0)
    frame["app_error_rate"] = (frame["app_errors"] / frame["requests"]).where(
        frame["requests"] > 0)
    columns = ["route", "requests", "errors_5xx", "app_errors", "rate_5xx", "app_error_rate"]
    return frame[columns].sort_values(["app_errors", "requests", "route"],
                                      ascending=[False, False, True], ignore_index=True)


def rate_regression_p_value(errors: int, requests: int, errors_before: int,
                            requests_before: int) -> float:
    """Return the one-sided p-value that ``errors``/``requests`` is a higher rate than
    ``errors_before``/``requests_before``.

    The exact conditional test for two Poisson rates (Przyborowski & Wilenski 1940): given
    the n = errors + errors_before errors of both, under equal rates the new release's
    count is Binomial(n, requests / (requests + requests_before)). Exact at the small counts
    a new release has, no normal approximation; errors are rare events over many requests,
    so the Poisson model of the count fits. 1.0 when there is nothing to compare.
    """
    total = errors + errors_before
    if total == 0 or requests <= 0 or requests_before <= 0:
        return 1.0
    share = requests / (requests + requests_before)
    return float(binomtest(errors, total, share, alternative="greater").pvalue)


def _crash_free(sessions: pd.DataFrame) -> tuple[int, float | None, float | None]:
    """Return (sessions, crash-free session share, crash-free user share) of one release's
    session rows. With a ``session.status`` breakdown: 1 - crashed / all sessions; with
    Sentry's rates per interval: weighted by each interval's sessions (users), exact for
    sessions and a user-interval weighting for users (a user active in several intervals
    counts in each)."""
    by_status = sessions[sessions["status"].notna()]
    if len(by_status):
        total = by_status["sessions"].fillna(0).sum()
        crashed = by_status.loc[by_status["status"] == "crashed", "sessions"].fillna(0).sum()
        return int(total), (1 - crashed / total) if total else None, None
    rated = sessions.dropna(subset=["sessions", "crash_free_sessions"])
    total = rated["sessions"].sum()
    session_share = (float((rated["sessions"] * rated["crash_free_sessions"]).sum() / total)
                     if total else None)
    users = sessions.dropna(subset=["users", "crash_free_users"])
    user_total = users["users"].sum()
    user_share = (float((users["users"] * users["crash_free_users"]).sum() / user_total)
                  if user_total else None)
    return int(sessions["sessions"].fillna(0).sum()), session_share, user_share


RELEASE_COLUMNS = ["release", "live_from", "live_until", "requests", "app_errors",
                   "error_rate", "sessions", "crash_free_sessions", "crash_free_users",
                   "previous", "previous_error_rate", "p_value", "regression", "in_period"]


def release_health(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                   end: datetime, significance: float = SIGNIFICANCE,
                   min_change: float = MIN_CHANGE) -> pd.DataFrame:
    """Return one row per release live in [start - (end - start), end), oldest first.

    A release is live from its first event (or the end of its first session interval, when
    that is earlier) until the next release goes live (the last one until ``end``): a
    release's own deploy time is not in these data, so its start is the latest it can be.
    Its ``requests`` are those of its live time, its ``app_errors`` its own application
    errors in that time (so a rolling deploy's stragglers of the old release are not
    counted against the new one's traffic), ``error_rate`` their ratio;
    ``sessions`` and the crash-free shares come from its release-health sessions. Each
    release is tested against the one before it (``rate_regression_p_value``): a
    ``regression`` when p < ``significance`` and the rate rose by more than ``min_change``.
    ``in_period`` is True for releases live in [start, end) (the week's releases).
    """
    lookback = start - (end - start)
    first = con.execute(_FIRST_SEEN).df()
    first = first[first["first_seen"] < end]
    if first.empty:
        return pd.DataFrame(columns=RELEASE_COLUMNS)
    first = first.sort_values(["first_seen", "release"], ignore_index=True)
    first["live_until"] = first["first_seen"].shift(-1)
    first.loc[first.index[-1], "live_until"] = pd.Timestamp(end)
    first = first[first["live_until"] > pd.Timestamp(lookback)]
    events = app_error_events(con, config, lookback, end)
    minutes = _request_minutes(con, lookback, end).groupby("minute")["requests"].sum()
    sessions = con.execute(_SESSIONS, {"start": lookback, "end": end}).df()
    rows = []
    for row in first.itertuples():
        live_from = max(row.first_seen, pd.Timestamp(lookback))
        live_until = min(row.live_until, pd.Timestamp(end))
        in_live = (minutes.index >= live_from.floor("min")) & (minutes.index < live_until)
        mine = events[(events["release"] == row.release) & (events["ts"] >= live_from)
                      & (events["ts"] < live_until)]
        requests = int(minutes[in_live].sum())
        count, crash_free_sessions, crash_free_users = _crash_free(
            sessions[sessions["release"] == row.release])
        rows.append({"release": row.release, "live_from": live_from, "live_until": live_until,
                     "requests": requests, "app_errors": len(mine),
                     "error_rate": len(mine) / requests if requests else None,
                     "sessions": count, "crash_free_sessions": crash_free_sessions,
                     "crash_free_users": crash_free_users,
                     "in_period": bool(live_until > pd.Timestamp(start))})
    for before, row in zip([None, *rows[:-1]], rows, strict=True):
        row["previous"] = None if before is None else before["release"]
        # Kept on the row: the release before may not be live in the period itself.
        row["previous_error_rate"] = None if before is None else before["error_rate"]
        row["p_value"], row["regression"] = None, False
        if before is None or not row["requests"] or not before["requests"]:
            continue
        p_value = rate_regression_p_value(row["app_errors"], row["requests"],
                                          before["app_errors"], before["requests"])
        old, new = before["error_rate"], row["error_rate"]
        change = (new - old) / old if old else math.inf if new else 0.0
        row["p_value"] = p_value
        row["regression"] = bool(p_value < significance and change > min_change)
    return pd.DataFrame(rows, columns=RELEASE_COLUMNS)


@dataclass(frozen=True)
class AppErrors:
    """The weekly report's "Application errors (Sentry)" section for [start, end)."""

    sli: AppErrorSli
    releases: pd.DataFrame  # release_health rows of the period's releases
    routes: pd.DataFrame  # application_errors_by_route, routes with application errors

    @property
    def status(self) -> str:
        """Return ``no_data``, ``ok`` or ``at_risk`` (target missed or a release regressed)."""
        if self.sli.status == "no_data" and self.releases.empty:
            return "no_data"
        regressed = bool(self.releases["regression"].any()) if len(self.releases) else False
        return "at_risk" if self.sli.status == "breach" or regressed else "ok"

    def lines(self) -> list[str]:
        """Return the digest lines: the SLI, then each release that raised the error rate."""
        out = [self.sli.line()]
        for row in self.releases[self.releases["regression"].astype(bool)].itertuples():
            out.append(f"Release {row.release} raised the error rate to {_pct(row.error_rate)} "
                       f"from {_pct(row.previous_error_rate)} ({row.previous}), one-sided "
                       f"{p_value_text(row.p_value)}.")
        return out


def application_errors(con: duckdb.DuckDBPyConnection, config: Config, start: datetime,
                       end: datetime) -> AppErrors:
    """Return the "Application errors (Sentry)" section of [start, end): the SLI, the
    releases live in the period (each tested against the one before), and the routes with
    application errors. Without Sentry data the SLI says so in one line."""
    releases = release_health(con, config, start, end)
    if len(releases):
        releases = releases[releases["in_period"].astype(bool)].reset_index(drop=True)
    routes = application_errors_by_route(con, config, start, end)
    return AppErrors(application_error_sli(con, config, start, end), releases,
                     routes[routes["app_errors"] > 0].reset_index(drop=True))


__all__ = ["AppErrorSli", "AppErrors", "application_error_sli", "application_errors",
           "application_errors_by_route", "rate_regression_p_value", "release_health",
           "transaction_routes"]
