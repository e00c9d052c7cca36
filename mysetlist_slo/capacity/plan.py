"""Capacity plan: will the autoscaler and the connection pools hold next month?

Reads what the store holds (request rollups, Prometheus CPU, PgBouncer and
pg_stat_statements snapshots) and puts the forecast, the HPA replay and recommendation and
the pool sizing together in one CapacityPlan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import duckdb
import pandas as pd

from mysetlist_slo._numbers import percent, significant, whole
from mysetlist_slo.capacity.autoscaling import (
    HpaRecommendation,
    HpaReplay,
    HpaSettings,
    PodModel,
    fit_pod_model,
    recommend_hpa,
    replay_hpa,
)
from mysetlist_slo.capacity.forecast import PeakPlan, plan_peak, request_rate
from mysetlist_slo.capacity.pools import PoolSize, erlang_c, size_pool
from mysetlist_slo.capacity.settings import PoolSettings, pool_settings
from mysetlist_slo.capacity.users import UserBehaviour, user_behaviour
from mysetlist_slo.config import Config
from mysetlist_slo.errors import InsufficientDataError

# PgBouncer's own admin console shows up in SHOW STATS / SHOW POOLS as a database of this name;
# its traffic is the monitoring's, not the application's.
ADMIN_DATABASE = "pgbouncer"

# SHOW STATS counters are cumulative per database; any counter lower than the snapshot before
# means PgBouncer restarted and counted every counter again from zero, so the new values
# themselves are the increases. Differences are taken per database over every snapshot
# before the window's end, then the intervals ending inside the window are kept (the first
# one is not lost), and the application databases are added up per snapshot: rates add,
# times are weighted by transactions (sum of time / sum of transactions).
_PGBOUNCER_RATES = """
WITH snapshots AS (
    SELECT ts, database, total_xact_count AS xacts, total_xact_time AS xact_us,
           total_wait_time AS wait_us,
           lag(ts) OVER w AS prev_ts, lag(total_xact_count) OVER w AS prev_xacts,
           lag(total_xact_time) OVER w AS prev_xact_us, lag(total_wait_time) OVER w AS prev_wait_us
    FROM pgbouncer_stats
    WHERE ts < $end AND database <> $admin
    WINDOW w AS (PARTITION BY database ORDER BY ts)
),
restarts AS (
    SELECT *, xacts < prev_xacts OR xact_us < prev_xact_us OR wait_us < prev_wait_us
              AS restarted
    FROM snapshots
    WHERE prev_ts IS NOT NULL AND ts >= $start
),
increases AS (
    -- Whole microseconds: epoch() in double seconds loses them at today's magnitudes.
    SELECT ts, database, (epoch_us(ts) - epoch_us(prev_ts)) / 1e6 AS seconds, restarted,
           CASE WHEN restarted THEN xacts ELSE xacts - prev_xacts END AS xacts,
           CASE WHEN restarted THEN xact_us ELSE xact_us - prev_xact_us END AS xact_us,
           CASE WHEN restarted THEN wait_us ELSE wait_us - prev_wait_us END AS wait_us
    FROM restarts
)
SELECT ts, count(*) AS databases, max(seconds) AS seconds, sum(xacts) AS xacts,
       sum(xact_us) AS xact_us, sum(wait_us) AS wait_us, sum(xacts / seconds) AS tps,
       sum(xact_us) / nullif(sum(xacts), 0) / 1000.0 AS mean_xact_ms,
       sum(wait_us) / nullif(sum(xacts), 0) / 1000.0 AS mean_wait_ms,
       bool_or(restarted) AS restarted
FROM increases
GROUP BY ts
ORDER BY ts
"""


def pgbouncer_rates(con: duckdb.DuckDBPyConnection, start: datetime,
                    end: datetime) -> pd.DataFrame:
    """Return per SHOW STATS snapshot ending an interval in [start, end), summed over the
    application databases (PgBouncer's ``pgbouncer`` admin database left out): databases,
    seconds, transactions, transaction and wait time (us), transactions/s, mean transaction
    and wait time (ms, weighted by transactions), and whether PgBouncer restarted (counters
    reset) in it."""
    return con.execute(_PGBOUNCER_RATES, {"start": start, "end": end,
                                          "admin": ADMIN_DATABASE}).df()


def transactions_per_request(rates: pd.DataFrame, mean_rps: float) -> float:
    """Return the database transactions per HTTP request: the mean transactions/s of
    ``rates`` (from pgbouncer_rates) over the mean request rate of the same history."""
    return float(rates["tps"].mean()) / max(mean_rps, 1e-9)


def mean_transaction_s(rates: pd.DataFrame) -> float:
    """Return the mean transaction time (s) over every transaction of ``rates`` (from
    pgbouncer_rates): total time over total transactions, not a mean of interval means."""
    return float(rates["xact_us"].sum() / max(rates["xacts"].sum(), 1)) / 1e6


# SHOW POOLS prints the oldest waiting client's wait as whole seconds (maxwait) and the
# microseconds beyond them (maxwait_us), so the wait is maxwait * 1e6 + maxwait_us.
_PGBOUNCER_WAITS = """
SELECT ts, sum(cl_waiting) AS clients_waiting,
       max(coalesce(maxwait, 0) * 1000000 + coalesce(maxwait_us, 0)) / 1000.0
           AS longest_wait_ms
FROM pgbouncer_pools
WHERE ts >= $start AND ts < $end AND database <> $admin
GROUP BY ts
ORDER BY ts
"""


def pgbouncer_waits(con: duckdb.DuckDBPyConnection, start: datetime,
                    end: datetime) -> pd.DataFrame:
    """Return per SHOW POOLS snapshot in [start, end): clients waiting for a server connection
    (summed over the application pools) and the longest wait of any of them (ms)."""
    return con.execute(_PGBOUNCER_WAITS, {"start": start, "end": end,
                                          "admin": ADMIN_DATABASE}).df()


# pg_stat_statements counts per (userid, dbid, queryid, toplevel) since its last reset. The
# differences are taken per key over every snapshot before the window's end, then the intervals
# that end inside the window are kept (so the window's first interval is not lost). A counter
# that went down (calls or time) means the view was reset: the new value is the increase.
_STATEMENTS = """
WITH snapshots AS (
    SELECT userid, dbid, queryid, toplevel, query, ts, calls, total_exec_time,
           lag(ts) OVER w AS previous, lag(calls) OVER w AS previous_calls,
           lag(total_exec_time) OVER w AS previous_exec_ms
    FROM pg_statements
    WHERE ts < $end
    WINDOW w AS (PARTITION BY userid, dbid, queryid, toplevel ORDER BY ts)
),
intervals AS (
    SELECT *, calls < previous_calls OR total_exec_time < previous_exec_ms AS reset
    FROM snapshots
    WHERE previous IS NOT NULL AND ts >= $start
),
increases AS (
    SELECT userid, dbid, queryid, toplevel, query, reset,
           CASE WHEN reset THEN calls ELSE calls - previous_calls END AS calls,
           CASE WHEN reset THEN total_exec_time
                ELSE total_exec_time - previous_exec_ms END AS exec_ms
    FROM intervals
)
SELECT userid, dbid, queryid, toplevel, any_value(query) AS query,
       sum(calls) AS calls, sum(exec_ms) AS exec_ms, sum(exec_ms) / sum(calls) AS mean_ms,
       count(*) FILTER (WHERE reset) AS resets
FROM increases
GROUP BY userid, dbid, queryid, toplevel
HAVING sum(calls) > 0
ORDER BY exec_ms DESC, queryid, userid, dbid, toplevel
"""


def statement_times(con: duckdb.DuckDBPyConnection, start: datetime,
                    end: datetime) -> pd.DataFrame:
    """Return per statement key (userid, dbid, queryid, toplevel) the calls and execution time
    (ms) of the snapshot intervals that end in [start, end), its mean time (ms) and how many
    resets of the view those intervals held; the costliest first."""
    return con.execute(_STATEMENTS, {"start": start, "end": end}).df()


def fast_statement_share(statements: pd.DataFrame, threshold_ms: float = 100.0) -> float | None:
    """Return the share of calls whose statement's mean time is under ``threshold_ms``
    (weighted by calls; pg_stat_statements keeps means, not each call)."""
    calls = statements["calls"].sum()
    if not calls:
        return None
    return float(statements.loc[statements["mean_ms"] < threshold_ms, "calls"].sum() / calls)


# CPU may come per pod (one series per pod label set) or as one total: each series is averaged
# within the bucket, then the series are added up, so per-pod series give the total CPU and a
# single total stays itself. Replicas likewise (one series per deployment); without a
# replicas series, the number of CPU series in the bucket (pods) stands in. Buckets are
# counted from the window's start, as request_rate counts them.
_CPU = """
WITH per_series AS (
    SELECT time_bucket(INTERVAL 5 minute, ts, $origin) AS time, name, labels,
           avg(value) AS value
    FROM metrics
    WHERE ts >= $start AND ts < $end AND name IN ('mysetlist_cpu_cores', 'mysetlist_replicas')
    GROUP BY ALL
)
SELECT time,
       sum(value) FILTER (WHERE name = 'mysetlist_cpu_cores') AS cores,
       coalesce(sum(value) FILTER (WHERE name = 'mysetlist_replicas'),
                count(*) FILTER (WHERE name = 'mysetlist_cpu_cores')) AS replicas
FROM per_series
GROUP BY time
HAVING cores IS NOT NULL AND replicas > 0
ORDER BY time
"""


def cpu_per_pod(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Return per 5 minutes (counted from ``start``): replicas, CPU cores per pod and
    requests/s per pod, from the Prometheus series ``mysetlist_cpu_cores`` (per pod or in
    total) and ``mysetlist_replicas`` and the request rollups."""
    origin = pd.Timestamp(start).tz_convert("UTC").floor("min")
    frame = con.execute(_CPU, {"origin": origin, "start": start, "end": end}).df()
    if frame.empty:
        return pd.DataFrame(columns=["time", "replicas", "cores_per_pod", "rps_per_pod"])
    rate = request_rate(con, start, end, "5min")
    wide = frame.set_index("time").join(rate.rename("rps"), how="inner").dropna()
    return pd.DataFrame({"time": wide.index, "replicas": wide["replicas"],
                         "cores_per_pod": wide["cores"] / wide["replicas"],
                         "rps_per_pod": wide["rps"] / wide["replicas"]}
                        ).reset_index(drop=True)


@dataclass(frozen=True)
class PoolObservation:
    """What PgBouncer's SHOW STATS and SHOW POOLS showed over the history."""

    tps_p99: float  # transactions/s over the application databases, 99th percentile interval
    mean_xact_ms: float  # over all transactions
    mean_wait_ms: float  # wait for a server connection, over all transactions
    clients_waiting_max: int
    longest_wait_ms: float


@dataclass(frozen=True)
class CapacityPlan:
    """Everything the capacity plan says, with a verdict a person can act on."""

    peak: PeakPlan
    backtest: pd.DataFrame
    pod_model: PodModel | None
    fit_quality: dict[str, float]
    replay_history: HpaReplay | None
    replay_forecast: HpaReplay | None
    hpa: HpaRecommendation | None
    hpa_concurrent_users: HpaRecommendation | None  # the N-concurrent-users scenario
    pool: PoolSize | None
    pool_now_wait_probability: float | None
    client_connections_at_max: int | None
    statements_fast_share: float | None
    slow_statements: pd.DataFrame
    verdict: str
    pool_observed: PoolObservation | None = None
    # When the forecast (95 % bound, growth, bursts, headroom) first needs more than
    # maxReplicas; None when it never does within the horizon or the HPA cannot be judged.
    max_replicas_exceeded_at: datetime | None = None
    # The concurrent-users scenario from measured behaviour (PostHog sessions x requests),
    # beside the assumed think time's: None without PostHog data.
    user_behaviour: UserBehaviour | None = None
    measured_users_rps: float | None = None
    hpa_measured_users: HpaRecommendation | None = None
    # The PgBouncer and PostgreSQL settings the pool plan used, each collected from the
    # running servers (latest at or before ``at``) or, where none was, as configured.
    pool_settings: PoolSettings | None = None
    # Why the HPA is not judged (None when it is): no autoscaling section, or too little CPU.
    hpa_not_judged: str | None = None


def capacity_plan(con: duckdb.DuckDBPyConnection, config: Config, at: datetime,
                  history_days: int = 28, horizon_days: int | None = None,
                  growth: float = 0.0, headroom: float | None = None,
                  client_pool_per_replica: int = 10, cpu_request: float = 1.0,
                  cpu_limit: float = 2.0, database_cores: int = 4) -> CapacityPlan:
    """Return the CapacityPlan from the ``history_days`` before ``at``.

    Raises InsufficientDataError when the traffic history is too short to forecast from
    (see forecast.MIN_HISTORY_HOURS).
    """
    capacity, hpa_config, bouncer = config.capacity, config.autoscaling, config.pgbouncer
    horizon = horizon_days or (capacity.forecast_horizon_days if capacity else 30)
    spare = headroom if headroom is not None else (capacity.headroom if capacity else 0.2)
    start = at - timedelta(days=history_days)
    hourly = request_rate(con, start, at, "1h")
    five = request_rate(con, start, at, "5min")
    peak, folds = plan_peak(hourly, five, horizon * 24, growth,
                            capacity.concurrent_users if capacity else None,
                            capacity.think_time_s if capacity else 10.0)
    lines = [f"Forecast ({peak.model}, chosen by backtest): the peak over the next "
             f"{whole(horizon)} days is {significant(peak.peak_rps)} req/s including "
             f"{percent(growth, 0)} growth and 5-minute bursts."]
    samples = cpu_per_pod(con, start, at)
    model = quality = replay_history = replay_forecast = recommendation = None
    exceeded_at: datetime | None = None
    not_judged: str | None = None
    if hpa_config and len(samples) >= 10:
        model, quality = fit_pod_model(samples["rps_per_pod"].to_numpy(),
                                       samples["cores_per_pod"].to_numpy(), cpu_request,
                                       cpu_limit)
        settings = HpaSettings(hpa_config.min_replicas, hpa_config.max_replicas,
                               hpa_config.target_cpu_utilization)
        replay_history = replay_hpa(five.iloc[-7 * 288:], model, settings)
        future = peak.forecast["hi95"].clip(lower=0) * (1 + growth) * peak.burst_factor
        replay_forecast = replay_hpa(future, model, settings)
        recommendation = recommend_hpa(peak.peak_rps, model, settings, spare,
                                       float(hourly.quantile(0.05)))
        lines.append(recommendation.verdict)
        ceiling = settings.max_replicas * model.capacity_rps(settings.target_utilization / 100)
        over = future[future * (1 + spare) > ceiling]
        if len(over):
            exceeded_at = over.index[0].to_pydatetime()
            lines.append(f"The forecast first needs more than {whole(settings.max_replicas)} "
                         f"replicas on {over.index[0]:%Y-%m-%d %H:%M} UTC.")
        lines.append(f"Replaying the HPA over the last week: "
                     f"{whole(replay_history.scaling_events)} scaling events, "
                     f"{replay_history.seconds_at_max / 3600:.1f} h at maxReplicas, "
                     f"{whole(replay_history.excess_requests)} requests beyond capacity.")
    elif not hpa_config:
        not_judged = "No autoscaling section is configured: the HPA cannot be judged."
    elif len(samples) == 0:
        not_judged = "No CPU data (Prometheus) is loaded: the HPA cannot be judged."
    else:
        not_judged = (f"Only {whole(len(samples))} five-minute CPU samples are loaded "
                      "(Prometheus), fewer than the 10 the pod model needs: the HPA cannot be "
                      "judged.")
    if not_judged:
        lines.append(not_judged)
    scenario = None
    if peak.concurrent_users_rps is not None and capacity:
        times = peak.concurrent_users_rps / max(peak.peak_rps, 1e-9)
        lines.append(f"{capacity.concurrent_users:,} concurrent users at a "
                     f"{capacity.think_time_s:g} s think time send "
                     f"{significant(peak.concurrent_users_rps)} req/s (Little's law), "
                     f"{significant(times)} times the forecast peak.")
        if model is not None and hpa_config:
            scenario = recommend_hpa(peak.concurrent_users_rps, model, HpaSettings(
                hpa_config.min_replicas, hpa_config.max_replicas,
                hpa_config.target_cpu_utilization), spare)
            lines.append(f"For that scenario: {scenario.verdict}")
    behaviour = user_behaviour(con, start, at)
    measured_rps = measured_scenario = None
    if behaviour is not None and capacity:
        measured_rps = capacity.concurrent_users * behaviour.rps_per_user
        lines.append(f"Measured (PostHog sessions x requests, {behaviour.windows:,} 5-minute "
                     "windows): one concurrent user sends "
                     f"{significant(behaviour.rps_per_user)} req/s, "
                     f"a request every {behaviour.think_time_s:.1f} s (assumed: "
                     f"{capacity.think_time_s:g} s), so {capacity.concurrent_users:,} users "
                     f"send {significant(measured_rps)} req/s.")
        if model is not None and hpa_config:
            measured_scenario = recommend_hpa(measured_rps, model, HpaSettings(
                hpa_config.min_replicas, hpa_config.max_replicas,
                hpa_config.target_cpu_utilization), spare)
            lines.append(f"At the measured rate: {measured_scenario.verdict}")
    rates = pgbouncer_rates(con, start, at)
    pool = now_wait = clients = observed = in_force = None
    if len(rates) and bouncer:
        in_force = pool_settings(con, bouncer, at)
        pool_size = in_force.default_pool_size.value
        reserve = in_force.reserve_connections.value
        max_connections = in_force.postgres_max_connections.value
        max_client_conn = in_force.max_client_conn.value
        tps_per_rps = transactions_per_request(rates, float(five.mean()))
        mean_xact_s = mean_transaction_s(rates)
        pool = size_pool(peak.peak_rps * tps_per_rps, mean_xact_s,
                         bouncer.max_wait_probability, bouncer.max_mean_wait_ms,
                         database_cores)
        load_now = float(rates["tps"].quantile(0.99)) * mean_xact_s  # the busiest 1 %
        now_wait = erlang_c(pool_size, load_now)
        clients = (hpa_config.max_replicas if hpa_config else 1) * client_pool_per_replica
        waits = pgbouncer_waits(con, start, at)
        observed = PoolObservation(
            tps_p99=float(rates["tps"].quantile(0.99)),
            mean_xact_ms=1000 * mean_xact_s,
            mean_wait_ms=float(rates["wait_us"].sum() / max(rates["xacts"].sum(), 1)) / 1000,
            clients_waiting_max=int(waits["clients_waiting"].max()) if len(waits) else 0,
            longest_wait_ms=float(waits["longest_wait_ms"].max()) if len(waits) else 0.0)
        lines.append(f"Observed: up to {whole(observed.clients_waiting_max)} clients waiting, "
                     f"longest wait {observed.longest_wait_ms:.1f} ms, mean wait "
                     f"{observed.mean_wait_ms:.3f} ms per transaction.")
        lines.append(f"PgBouncer: {peak.peak_rps * tps_per_rps:,.1f} transactions/s of "
                     f"{1000 * mean_xact_s:.1f} ms at the peak need {whole(pool.servers)} server "
                     f"connections (P(wait) {percent(pool.wait_probability, 2)}); "
                     "default_pool_size is "
                     f"{whole(pool_size)} (rule of thumb 2 x cores + 1 = "
                     f"{pool.rule_of_thumb}).")
        lines.append("Settings used: " + ", ".join(s.describe() for s in in_force.all) + ".")
        if pool_size + reserve > max_connections:
            lines.append(f"PostgreSQL max_connections {whole(max_connections)} is below the "
                         f"pool ({whole(pool_size)}) plus the reserve ({whole(reserve)}).")
        if clients > max_client_conn:
            lines.append(f"max_client_conn {whole(max_client_conn)} is below the "
                         f"{whole(clients)} client connections of maxReplicas x "
                         f"{client_pool_per_replica}: raise it.")
    statements = statement_times(con, start, at)
    share = fast_statement_share(statements)
    if share is not None:
        lines.append(f"{percent(share)} of statement calls average under 100 ms.")
    return CapacityPlan(peak, folds, model, quality or {}, replay_history, replay_forecast,
                        recommendation, scenario, pool, now_wait, clients, share,
                        statements[statements["mean_ms"] >= 100].head(10), " ".join(lines),
                        observed, exceeded_at, behaviour, measured_rps, measured_scenario,
                        in_force, not_judged)



def capacity_outlook(con: duckdb.DuckDBPyConnection, config: Config, at: datetime) -> str:
    """Return the capacity plan's verdict from the 28 days before ``at``, or one line saying
    why there is none (too little traffic history to forecast from)."""
    try:
        return capacity_plan(con, config, at).verdict
    except InsufficientDataError as exc:
        return (f"No capacity outlook: the forecast needs {whole(exc.minimum)} {exc.unit} of "
                f"traffic history and the store holds {whole(exc.count)}.")


_TECHNICAL = """
SELECT time_bucket(INTERVAL 1 hour, ts) AS time, name, avg(value) AS value
FROM metrics
WHERE ts >= ? AND ts < ?
GROUP BY ALL
ORDER BY time
"""


def technical_metrics(con: duckdb.DuckDBPyConnection, start: datetime,
                      end: datetime) -> pd.DataFrame:
    """Return hourly means of every Prometheus series in [start, end), one column per series
    name (CPU, memory, disk, network latency...), indexed by hour."""
    frame = con.execute(_TECHNICAL, [start, end]).df()
    if frame.empty:
        return pd.DataFrame()
    return frame.pivot_table(index="time", columns="name", values="value")
