"""The embedded DuckDB store: opening it, its versioned schema and the ingest registry."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import duckdb
import pandas as pd

from mysetlist_slo.errors import SchemaVersionError, SloError, StoreBusyError

DEFAULT_DB = Path("data/metrics.duckdb")
_T = TypeVar("_T")

# Each entry moves the schema from version N-1 to N. Never edit a released entry: add a new one.
# Rollup tables carry the ingest that wrote each row, so a file's rows can be found (and the same
# minute can come from two overlapping files) and reads always aggregate with SUM ... GROUP BY.
MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE schema_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)""",
        """CREATE SEQUENCE ingest_id_seq START 1""",
        """CREATE TABLE ingests (
            id          BIGINT PRIMARY KEY,
            sha256      VARCHAR NOT NULL UNIQUE,
            kind        VARCHAR NOT NULL,
            file        VARCHAR NOT NULL,
            bytes       BIGINT NOT NULL,
            loaded      BIGINT NOT NULL,
            rejected    BIGINT NOT NULL,
            first_ts    TIMESTAMPTZ,
            last_ts     TIMESTAMPTZ,
            loaded_at   TIMESTAMPTZ NOT NULL,
            seconds     DOUBLE NOT NULL
        )""",
        """CREATE TABLE rejects (
            ingest_id   BIGINT NOT NULL,
            line        BIGINT NOT NULL,
            field       VARCHAR NOT NULL,
            problem     VARCHAR NOT NULL,
            raw         BLOB
        )""",
        """CREATE TABLE routes (
            route            VARCHAR PRIMARY KEY,
            first_ingest_id  BIGINT NOT NULL
        )""",
        """CREATE TABLE request_counts (
            ingest_id        BIGINT NOT NULL,
            minute           TIMESTAMPTZ NOT NULL,
            route            VARCHAR NOT NULL,
            status           SMALLINT NOT NULL,
            requests         BIGINT NOT NULL,
            timed            BIGINT NOT NULL,
            duration_sum_us  BIGINT NOT NULL,
            bytes_sum        BIGINT NOT NULL
        )""",
        """CREATE TABLE request_good (
            ingest_id     BIGINT NOT NULL,
            minute        TIMESTAMPTZ NOT NULL,
            route         VARCHAR NOT NULL,
            threshold_ms  DOUBLE NOT NULL,
            good          BIGINT NOT NULL
        )""",
        """CREATE TABLE latency_histogram (
            ingest_id  BIGINT NOT NULL,
            minute     TIMESTAMPTZ NOT NULL,
            route      VARCHAR NOT NULL,
            bucket_us  BIGINT NOT NULL,
            count      BIGINT NOT NULL
        )""",
    ],
    [
        # Health-check probe results, kept as they are: a few per minute per location.
        """CREATE TABLE probes (
            ingest_id   BIGINT NOT NULL,
            ts          TIMESTAMPTZ NOT NULL,
            target      VARCHAR NOT NULL,
            location    VARCHAR NOT NULL,
            ok          BOOLEAN NOT NULL,
            status      SMALLINT,
            latency_ms  DOUBLE
        )""",
    ],
    [
        # Records of metrics a source does not know (the retired FID), counted, not rejected.
        "ALTER TABLE ingests ADD COLUMN ignored BIGINT DEFAULT 0",
        # Web Vitals samples as beacons report them; a metric id may come more than once (CLS
        # and INP grow during a visit): readers keep the last report of each id.
        """CREATE TABLE vitals (
            ingest_id        BIGINT NOT NULL,
            line             BIGINT NOT NULL,
            ts               TIMESTAMPTZ NOT NULL,
            metric           VARCHAR NOT NULL,
            value            DOUBLE NOT NULL,
            metric_id        VARCHAR NOT NULL,
            url              VARCHAR NOT NULL,
            route            VARCHAR NOT NULL,
            form_factor      VARCHAR NOT NULL,
            navigation_type  VARCHAR,
            rating           VARCHAR,
            source           VARCHAR NOT NULL
        )""",
        """CREATE TABLE crux (
            ingest_id    BIGINT NOT NULL,
            key_type     VARCHAR NOT NULL,
            key          VARCHAR NOT NULL,
            form_factor  VARCHAR NOT NULL,
            metric       VARCHAR NOT NULL,
            first_date   DATE NOT NULL,
            last_date    DATE NOT NULL,
            p75          DOUBLE NOT NULL,
            histogram    VARCHAR NOT NULL
        )""",
        """CREATE TABLE lighthouse (
            ingest_id    BIGINT NOT NULL,
            fetch_time   TIMESTAMPTZ NOT NULL,
            url          VARCHAR NOT NULL,
            route        VARCHAR NOT NULL,
            form_factor  VARCHAR NOT NULL,
            performance  DOUBLE NOT NULL,
            lcp          DOUBLE,
            fcp          DOUBLE,
            cls          DOUBLE,
            tbt          DOUBLE,
            tti          DOUBLE,
            speed_index  DOUBLE
        )""",
    ],
    [
        # Prometheus samples; labels as sorted JSON text, compared as text.
        """CREATE TABLE metrics (
            ingest_id  BIGINT NOT NULL,
            ts         TIMESTAMPTZ NOT NULL,
            name       VARCHAR NOT NULL,
            labels     VARCHAR NOT NULL,
            value      DOUBLE NOT NULL
        )""",
        # PgBouncer counters are cumulative since it started; readers derive rates and treat a
        # counter that went down as a restart.
        """CREATE TABLE pgbouncer_stats (
            ingest_id          BIGINT NOT NULL,
            ts                 TIMESTAMPTZ NOT NULL,
            database           VARCHAR NOT NULL,
            total_xact_count   BIGINT,
            total_query_count  BIGINT,
            total_received     BIGINT,
            total_sent         BIGINT,
            total_xact_time    BIGINT,
            total_query_time   BIGINT,
            total_wait_time    BIGINT
        )""",
        """CREATE TABLE pgbouncer_pools (
            ingest_id   BIGINT NOT NULL,
            ts          TIMESTAMPTZ NOT NULL,
            database    VARCHAR NOT NULL,
            "user"      VARCHAR NOT NULL,
            cl_active   BIGINT,
            cl_waiting  BIGINT,
            sv_active   BIGINT,
            sv_idle     BIGINT,
            sv_used     BIGINT,
            sv_tested   BIGINT,
            sv_login    BIGINT,
            maxwait     BIGINT,
            maxwait_us  BIGINT,
            pool_mode   VARCHAR
        )""",
        """CREATE TABLE pg_statements (
            ingest_id        BIGINT NOT NULL,
            ts               TIMESTAMPTZ NOT NULL,
            queryid          VARCHAR NOT NULL,
            query            VARCHAR,
            calls            BIGINT NOT NULL,
            total_exec_time  DOUBLE NOT NULL,
            mean_exec_time   DOUBLE,
            rows             BIGINT
        )""",
    ],
    [
        # What a log held when it was loaded, so that the same log grown since is read on
        # from there instead of counted twice.
        "ALTER TABLE ingests ADD COLUMN content_bytes BIGINT",
        "ALTER TABLE ingests ADD COLUMN content_lines BIGINT",
        "ALTER TABLE ingests ADD COLUMN first_line_sha256 VARCHAR",
        "ALTER TABLE ingests ADD COLUMN ends_with_newline BOOLEAN",
        "ALTER TABLE ingests ADD COLUMN continues_ingest BIGINT",
    ],
    [
        # Templates seen but not yet admitted as routes, with their requests so far.
        """CREATE TABLE route_candidates (
            route     VARCHAR PRIMARY KEY,
            requests  BIGINT NOT NULL
        )""",
    ],
    [
        # pg_stat_statements' full key: the same queryid run by two roles, in two databases or
        # nested (toplevel false) is a separate counter. Rows loaded before have NULLs here and
        # stay one key per queryid, as they were read.
        "ALTER TABLE pg_statements ADD COLUMN userid VARCHAR",
        "ALTER TABLE pg_statements ADD COLUMN dbid VARCHAR",
        "ALTER TABLE pg_statements ADD COLUMN toplevel BOOLEAN",
        # The CrUX record's connection type (effectiveConnectionType); NULL: all connections
        # (what every record loaded before this version was taken for).
        "ALTER TABLE crux ADD COLUMN connection_type VARCHAR",
    ],
    [
        # Load tests (k6, Locust): per run and endpoint totals, points over time, failures.
        # A run is named by its files, so a run's summary and its point stream meet by name.
        """CREATE TABLE load_runs (
            ingest_id   BIGINT NOT NULL,
            run         VARCHAR NOT NULL,
            tool        VARCHAR NOT NULL,
            endpoint    VARCHAR NOT NULL,
            started     TIMESTAMPTZ,
            finished    TIMESTAMPTZ,
            duration_s  DOUBLE,
            requests    BIGINT,
            failures    BIGINT,
            rps         DOUBLE,
            users       BIGINT,
            avg_ms      DOUBLE,
            p50_ms      DOUBLE,
            p90_ms      DOUBLE,
            p95_ms      DOUBLE,
            p99_ms      DOUBLE,
            max_ms      DOUBLE
        )""",
        """CREATE TABLE load_points (
            ingest_id  BIGINT NOT NULL,
            run        VARCHAR NOT NULL,
            ts         TIMESTAMPTZ NOT NULL,
            endpoint   VARCHAR NOT NULL,
            metric     VARCHAR NOT NULL,
            value      DOUBLE NOT NULL
        )""",
        """CREATE TABLE load_failures (
            ingest_id    BIGINT NOT NULL,
            run          VARCHAR NOT NULL,
            method       VARCHAR,
            endpoint     VARCHAR,
            error        VARCHAR,
            occurrences  BIGINT NOT NULL
        )""",
        # Backup jobs (from a job log or the cron commands' exit lines) and recovery drills.
        """CREATE TABLE backups (
            ingest_id    BIGINT NOT NULL,
            line         BIGINT NOT NULL,
            job          VARCHAR NOT NULL,
            kind         VARCHAR NOT NULL,
            started      TIMESTAMPTZ NOT NULL,
            finished     TIMESTAMPTZ,
            status       VARCHAR NOT NULL,
            bytes        BIGINT,
            destination  VARCHAR
        )""",
        """CREATE TABLE drills (
            ingest_id      BIGINT NOT NULL,
            line           BIGINT NOT NULL,
            drill          VARCHAR NOT NULL,
            started        TIMESTAMPTZ NOT NULL,
            recovered      TIMESTAMPTZ,
            status         VARCHAR NOT NULL,
            data_verified  BOOLEAN
        )""",
    ],
    [
        # Requests that name the region serving them, per minute and region (exact counts
        # and the same 3-significant-digit histogram as latency_histogram); probes may name
        # their region too.
        """CREATE TABLE region_counts (
            ingest_id        BIGINT NOT NULL,
            minute           TIMESTAMPTZ NOT NULL,
            region           VARCHAR NOT NULL,
            status           SMALLINT NOT NULL,
            requests         BIGINT NOT NULL,
            timed            BIGINT NOT NULL,
            duration_sum_us  BIGINT NOT NULL
        )""",
        """CREATE TABLE region_latency (
            ingest_id  BIGINT NOT NULL,
            minute     TIMESTAMPTZ NOT NULL,
            region     VARCHAR NOT NULL,
            bucket_us  BIGINT NOT NULL,
            count      BIGINT NOT NULL
        )""",
        "ALTER TABLE probes ADD COLUMN region VARCHAR",
    ],
    [
        # Live collectors (mysetlist_slo.collect). Settings read from a running system:
        # PostgreSQL's max_connections, PgBouncer's default_pool_size and max_client_conn.
        """CREATE TABLE server_settings (
            ingest_id  BIGINT NOT NULL,
            ts         TIMESTAMPTZ NOT NULL,
            system     VARCHAR NOT NULL,
            name       VARCHAR NOT NULL,
            value      VARCHAR NOT NULL
        )""",
        # pg_stat_database counters (cumulative since the last stats reset) per database.
        """CREATE TABLE pg_databases (
            ingest_id      BIGINT NOT NULL,
            ts             TIMESTAMPTZ NOT NULL,
            database       VARCHAR NOT NULL,
            numbackends    BIGINT NOT NULL,
            xact_commit    BIGINT NOT NULL,
            xact_rollback  BIGINT NOT NULL,
            blks_read      BIGINT NOT NULL,
            blks_hit       BIGINT NOT NULL,
            deadlocks      BIGINT NOT NULL
        )""",
        # pg_stat_activity client backends counted by database, role, state and wait type.
        """CREATE TABLE pg_activity (
            ingest_id        BIGINT NOT NULL,
            ts               TIMESTAMPTZ NOT NULL,
            database         VARCHAR,
            usename          VARCHAR,
            state            VARCHAR,
            wait_event_type  VARCHAR,
            connections      BIGINT NOT NULL
        )""",
        # Redis INFO: counters cumulative since the server started (a lower value: restarted).
        """CREATE TABLE redis_info (
            ingest_id                  BIGINT NOT NULL,
            ts                         TIMESTAMPTZ NOT NULL,
            instance                   VARCHAR NOT NULL,
            uptime_in_seconds          BIGINT NOT NULL,
            keyspace_hits              BIGINT NOT NULL,
            keyspace_misses            BIGINT NOT NULL,
            evicted_keys               BIGINT NOT NULL,
            expired_keys               BIGINT NOT NULL,
            total_commands_processed   BIGINT NOT NULL,
            instantaneous_ops_per_sec  DOUBLE NOT NULL,
            used_memory                BIGINT NOT NULL,
            maxmemory                  BIGINT NOT NULL,
            connected_clients          BIGINT NOT NULL,
            blocked_clients            BIGINT NOT NULL,
            rejected_connections       BIGINT NOT NULL,
            keys                       BIGINT NOT NULL,
            expires                    BIGINT NOT NULL
        )""",
        # LATENCY LATEST, when the latency monitor is on: one row per event seen.
        """CREATE TABLE redis_latency (
            ingest_id   BIGINT NOT NULL,
            ts          TIMESTAMPTZ NOT NULL,
            instance    VARCHAR NOT NULL,
            event       VARCHAR NOT NULL,
            event_at    TIMESTAMPTZ NOT NULL,
            latest_ms   BIGINT NOT NULL,
            max_ms      BIGINT NOT NULL
        )""",
        # How far each Prometheus query has been collected, so the next run starts there.
        """CREATE TABLE collect_cursors (
            source      VARCHAR NOT NULL,
            query       VARCHAR NOT NULL,
            expr        VARCHAR NOT NULL,
            step_s      DOUBLE NOT NULL,
            done_until  TIMESTAMPTZ NOT NULL,
            ingest_id   BIGINT NOT NULL,
            PRIMARY KEY (source, query, expr, step_s)
        )""",
    ],
    [
        # The web-vitals attribution build's fields, when a beacon carries them (NULL when
        # not): the element a metric is attributed to (LCP element, INP interaction target,
        # CLS largest shift), LCP's resource URL, and the phases the value splits into, ms.
        "ALTER TABLE vitals ADD COLUMN attribution_target VARCHAR",
        "ALTER TABLE vitals ADD COLUMN attribution_url VARCHAR",
        "ALTER TABLE vitals ADD COLUMN interaction_type VARCHAR",
        "ALTER TABLE vitals ADD COLUMN load_state VARCHAR",
        "ALTER TABLE vitals ADD COLUMN largest_shift_time DOUBLE",
        "ALTER TABLE vitals ADD COLUMN largest_shift_value DOUBLE",
        "ALTER TABLE vitals ADD COLUMN time_to_first_byte DOUBLE",
        "ALTER TABLE vitals ADD COLUMN resource_load_delay DOUBLE",
        "ALTER TABLE vitals ADD COLUMN resource_load_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN element_render_delay DOUBLE",
        "ALTER TABLE vitals ADD COLUMN input_delay DOUBLE",
        "ALTER TABLE vitals ADD COLUMN processing_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN presentation_delay DOUBLE",
        "ALTER TABLE vitals ADD COLUMN waiting_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN cache_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN dns_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN connection_duration DOUBLE",
        "ALTER TABLE vitals ADD COLUMN request_duration DOUBLE",
    ],
    [
        # Deploy and release events (a deploy log; Vercel, GitHub and Sentry API responses).
        # ``ts`` is when the deploy went live as the source tells it; GitHub statuses
        # (source github-status) name their deployment in ``deploy_id`` and carry ``state``.
        """CREATE TABLE deploys (
            ingest_id    BIGINT NOT NULL,
            line         BIGINT NOT NULL,
            ts           TIMESTAMPTZ NOT NULL,
            source       VARCHAR NOT NULL,
            deploy_id    VARCHAR,
            service      VARCHAR,
            version      VARCHAR,
            environment  VARCHAR,
            "commit"     VARCHAR,
            state        VARCHAR,
            url          VARCHAR
        )""",
    ],
    [
        # PostHog product events (file exports and `collect posthog`): who was active when,
        # in which session; ``linked_id`` is the other distinct id an $identify
        # ($anon_distinct_id) or $create_alias (alias) event joins to the event's own.
        """CREATE TABLE posthog_events (
            ingest_id    BIGINT NOT NULL,
            line         BIGINT,
            ts           TIMESTAMPTZ NOT NULL,
            uuid         VARCHAR,
            event        VARCHAR NOT NULL,
            distinct_id  VARCHAR NOT NULL,
            session_id   VARCHAR,
            url          VARCHAR,
            device_type  VARCHAR,
            linked_id    VARCHAR
        )""",
    ],
    [
        # Sentry (issue 13): error events as the Discover events API returns them (one row per
        # event; the same event loaded twice is told apart by event_id when read), the
        # stats_v2 outcome series and release-health sessions, one row per interval.
        """CREATE TABLE sentry_events (
            ingest_id    BIGINT NOT NULL,
            ts           TIMESTAMPTZ NOT NULL,
            event_id     VARCHAR NOT NULL,
            level        VARCHAR NOT NULL,
            release      VARCHAR,
            environment  VARCHAR,
            transaction  VARCHAR,
            issue        VARCHAR,
            handled      BOOLEAN,
            project      VARCHAR
        )""",
        """CREATE TABLE sentry_stats (
            ingest_id  BIGINT NOT NULL,
            ts         TIMESTAMPTZ NOT NULL,
            ts_end     TIMESTAMPTZ NOT NULL,
            category   VARCHAR,
            outcome    VARCHAR NOT NULL,
            reason     VARCHAR,
            quantity   BIGINT NOT NULL
        )""",
        """CREATE TABLE sentry_sessions (
            ingest_id            BIGINT NOT NULL,
            ts                   TIMESTAMPTZ NOT NULL,
            ts_end               TIMESTAMPTZ NOT NULL,
            release              VARCHAR NOT NULL,
            status               VARCHAR,
            sessions             BIGINT,
            users                BIGINT,
            crash_free_sessions  DOUBLE,
            crash_free_users     DOUBLE
        )""",
    ],
    [
        # Latency as 5-minute sketches with log-spaced buckets (store/rollups.py): bucket
        # ceil(ln(v) / ln(101/99)) of v us (-32768 for 0 us), 1 % relative accuracy, so the rows
        # grow with slots x routes, not requests. The 3-significant-digit histograms are
        # converted: an old bucket b >= 1000 us held the integers [b, b + w - 1] with
        # w = 10^(digits(b) - 3) <= b / 100, and goes to the sketch bucket of its midpoint,
        # within 0.5 % of every value it held; below 1000 us the old bucket was the value
        # itself. Converted percentiles are therefore within (1.01 x 1.005) - 1 < 1.51 % of
        # exact. Exact counters (request_counts, request_good) are untouched.
        """CREATE TABLE latency_sketch (
            ingest_id  BIGINT NOT NULL,
            slot       TIMESTAMPTZ NOT NULL,
            route      VARCHAR NOT NULL,
            bucket     SMALLINT NOT NULL,
            count      BIGINT NOT NULL
        )""",
        """CREATE TABLE region_latency_sketch (
            ingest_id  BIGINT NOT NULL,
            slot       TIMESTAMPTZ NOT NULL,
            region     VARCHAR NOT NULL,
            bucket     SMALLINT NOT NULL,
            count      BIGINT NOT NULL
        )""",
        """INSERT INTO latency_sketch
        WITH midpoints AS (
            SELECT ingest_id, time_bucket(INTERVAL 5 minute, minute, 'UTC') AS slot, route,
                   CASE WHEN bucket_us < 1000 THEN bucket_us::DOUBLE
                        ELSE bucket_us + (10 ** (length(bucket_us::VARCHAR) - 3) - 1) / 2
                   END AS mid_us,
                   count
            FROM latency_histogram
        )
        SELECT ingest_id, slot, route,
               CASE WHEN mid_us = 0 THEN -32768
                    ELSE CAST(ceil(ln(mid_us) / ln(101 / 99)) AS SMALLINT) END AS bucket,
               sum(count)
        FROM midpoints
        GROUP BY ALL""",
        """INSERT INTO region_latency_sketch
        WITH midpoints AS (
            SELECT ingest_id, time_bucket(INTERVAL 5 minute, minute, 'UTC') AS slot, region,
                   CASE WHEN bucket_us < 1000 THEN bucket_us::DOUBLE
                        ELSE bucket_us + (10 ** (length(bucket_us::VARCHAR) - 3) - 1) / 2
                   END AS mid_us,
                   count
            FROM region_latency
        )
        SELECT ingest_id, slot, region,
               CASE WHEN mid_us = 0 THEN -32768
                    ELSE CAST(ceil(ln(mid_us) / ln(101 / 99)) AS SMALLINT) END AS bucket,
               sum(count)
        FROM midpoints
        GROUP BY ALL""",
        "DROP TABLE latency_histogram",
        "DROP TABLE region_latency",
    ],
    [
        # Requests by cache outcome (CDN or nginx proxy cache) per minute and route; only
        # requests whose log names a cache status have rows. Written beside the rollups.
        """CREATE TABLE cache_counts (
            ingest_id     BIGINT NOT NULL,
            minute        TIMESTAMPTZ NOT NULL,
            route         VARCHAR NOT NULL,
            cache_status  VARCHAR NOT NULL,
            requests      BIGINT NOT NULL,
            bytes_sum     BIGINT NOT NULL
        )""",
        # Next.js builds (mysetlist_slo.sources.nextjs), one row per build, and every file a
        # route loads first, with its size and gzip size (gzip as `next build` reports it).
        """CREATE TABLE bundle_builds (
            ingest_id         BIGINT NOT NULL,
            build_id          VARCHAR NOT NULL,
            commit            VARCHAR NOT NULL,
            built_at          TIMESTAMPTZ NOT NULL,
            static_bytes      BIGINT NOT NULL,
            static_gzip_bytes BIGINT NOT NULL,
            static_files      BIGINT NOT NULL
        )""",
        """CREATE TABLE bundle_routes (
            ingest_id   BIGINT NOT NULL,
            route       VARCHAR NOT NULL,
            router      VARCHAR NOT NULL,
            file        VARCHAR NOT NULL,
            bytes       BIGINT NOT NULL,
            gzip_bytes  BIGINT NOT NULL
        )""",
        """CREATE TABLE bundle_files (
            ingest_id   BIGINT NOT NULL,
            file        VARCHAR NOT NULL,
            bytes       BIGINT NOT NULL,
            gzip_bytes  BIGINT NOT NULL
        )""",
    ],
    [
        # Route re-admission for the request rollups: a row stored under "(other)" for a
        # template still tracked in route_candidates names it, so that admitting the template
        # later moves exactly those rows to the route. NULL (every existing row) is a row of
        # its stored route, as before.
        "ALTER TABLE request_counts ADD COLUMN template VARCHAR",
        "ALTER TABLE request_good ADD COLUMN template VARCHAR",
        "ALTER TABLE latency_sketch ADD COLUMN template VARCHAR",
        "ALTER TABLE cache_counts ADD COLUMN template VARCHAR",
    ],
    [
        # The lake files each loaded day of rollups (ingest kind "rollups") was made from, so
        # a later output of the same day is known as a re-run over more files (it replaces
        # the day), an older one (skipped), another lake's (added) or an overlap (refused);
        # source_sha256 is the file's content hash when its name is one (`lake add`'s).
        """CREATE TABLE rollup_sources (
            ingest_id      BIGINT NOT NULL,
            day            DATE NOT NULL,
            lake_file      VARCHAR NOT NULL,
            source_sha256  VARCHAR
        )""",
    ],
]

_LOCK_HOLDER = re.compile(r"held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


def latest_version() -> int:
    """Return the schema version this package writes."""
    return len(MIGRATIONS)


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: object = None) -> object:
    """Return the first column of the first row of ``sql`` (None when there is no row)."""
    rows = con.execute(sql, params).fetchall()  # fetchall: leave no result open on ``con``
    return rows[0][0] if rows else None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """Return the schema version of an open store (0 for an empty database)."""
    exists = scalar(con, "SELECT count(*) FROM information_schema.tables "
                         "WHERE table_name = 'schema_meta'")
    if not exists:
        return 0
    version = scalar(con, "SELECT value FROM schema_meta WHERE key = 'version'")
    return int(str(version)) if version is not None else 0


def migrate(con: duckdb.DuckDBPyConnection, path: str,
            migrations: list[list[str]] | None = None) -> int:
    """Bring the schema up to date in one transaction; return the version now in force."""
    steps = MIGRATIONS if migrations is None else migrations
    found = schema_version(con)
    if found > len(steps):
        raise SchemaVersionError(path, found, len(steps))
    if found == len(steps):
        return found
    con.execute("BEGIN TRANSACTION")
    try:
        for statements in steps[found:]:
            for statement in statements:
                con.execute(statement)
        con.execute(
            "INSERT OR REPLACE INTO schema_meta VALUES ('version', ?)", [str(len(steps))]
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return len(steps)


def _connect(path: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(path, read_only=read_only)
    except duckdb.IOException as exc:
        held = _LOCK_HOLDER.search(str(exc))
        if held or "lock" in str(exc).lower():
            holder = f"PID {held['pid']}, {held['exe']}" if held else "another process"
            raise StoreBusyError(path, holder) from None
        raise SloError(f"{path}: cannot open as a DuckDB store: {exc}") from None
    except duckdb.Error as exc:
        raise SloError(f"{path}: cannot open as a DuckDB store: {exc}") from None
    con.execute("SET TimeZone = 'UTC'")
    # DuckDB draws a progress bar on stdout for a query that runs a few seconds; stdout is the
    # CLI's output (JSON, digests) and a slow machine must not change it. Inside a Jupyter
    # kernel DuckDB refuses the setting without ipywidgets; there the bar is no stdout anyway.
    with contextlib.suppress(duckdb.InvalidInputException):
        con.execute("SET enable_progress_bar = false")
    return con


def open_store(path: str | Path = DEFAULT_DB, read_only: bool = False,
               migrations: list[list[str]] | None = None,
               wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Return a connection to the store at ``path``, created or migrated to the latest schema.

    A store held by another process is retried with backoff for up to ``wait`` seconds. Raises
    StoreBusyError when it is still held then (a writer excludes every other process; a reader
    excludes writers), SchemaVersionError when the file was written by a newer version of this
    package, and SloError when ``path`` is not a DuckDB file.
    """
    path = str(path)
    if path != ":memory:" and Path(path).is_dir():
        raise SloError(f"{path}: is a directory, not a DuckDB store file")
    if read_only and not Path(path).exists():
        raise FileNotFoundError(f"{path}: no such database; ingest some data first")
    return retry_while_busy(lambda: _open(path, read_only, migrations), wait)


# Backoff between attempts on a busy store: short at first (an ingest of one file often ends
# within a second), capped so that a long wait still notices the store coming free.
_FIRST_RETRY_S, _MAX_RETRY_S = 0.1, 5.0


def retry_while_busy(action: Callable[[], _T], wait: float) -> _T:
    """Return ``action()``, retried with exponential backoff while it raises StoreBusyError, for
    up to ``wait`` seconds in all. Raises the last StoreBusyError, saying how long it waited."""
    deadline = time.monotonic() + max(wait, 0.0)
    delay = _FIRST_RETRY_S
    while True:
        try:
            return action()
        except StoreBusyError as exc:
            left = deadline - time.monotonic()
            if left <= 0:
                if wait > 0:
                    raise StoreBusyError(exc.path, exc.holder, waited=wait) from None
                raise
            time.sleep(min(delay, left))
            delay = min(delay * 2, _MAX_RETRY_S)


def _open(path: str, read_only: bool,
          migrations: list[list[str]] | None) -> duckdb.DuckDBPyConnection:
    steps = MIGRATIONS if migrations is None else migrations
    if path != ":memory:" and not read_only:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = _connect(path, read_only)
    try:
        found = schema_version(con)
        if found > len(steps):
            raise SchemaVersionError(path, found, len(steps))
        if found < len(steps):
            if read_only:
                # A reader may be the first to open a store written by an older version:
                # migrate once under the write lock, then go back to reading.
                con.close()
                _with_write(path, lambda c: migrate(c, path, steps))
                return _connect(path, read_only=True)
            migrate(con, path, steps)
    except BaseException:
        con.close()
        raise
    return con


def _with_write(path: str, action: Callable[[duckdb.DuckDBPyConnection], object]) -> None:
    con = _connect(path, read_only=False)
    try:
        action(con)
    finally:
        con.close()


def table_sizes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Return every table of the store with its row count."""
    names = [name for (name,) in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "AND table_schema = 'main' ORDER BY table_name").fetchall()]
    rows = [(name, scalar(con, f'SELECT count(*) FROM "{name}"')) for name in names]
    return pd.DataFrame(rows, columns=["table", "rows"])


def ingest_registry(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Return one row per loaded file: id, sha256, kind, file, counts, time range, load time."""
    return con.execute("SELECT * FROM ingests ORDER BY id").df()


def find_ingest(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, object] | None:
    """Return the registry row of the file with content hash ``sha256``, or None."""
    cursor = con.execute("SELECT * FROM ingests WHERE sha256 = ?", [sha256])
    rows = cursor.fetchall()
    if not rows:
        return None
    names = [d[0] for d in cursor.description]
    return dict(zip(names, rows[0], strict=True))
