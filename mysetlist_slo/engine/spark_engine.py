"""The rollup definition executed by Apache Spark (pyspark, the optional extra ``spark``).

Spark is configured by the user's own settings (spark-defaults.conf, ``spark-submit --conf``,
``SPARK_CONF_DIR``): this module sets only the master (when given) and the application name.
One SQL setting of the job itself is fixed at run time because the output contract depends
on them: Parquet timestamps are written as INT64 microseconds marked UTC (Spark's default,
INT96, is a deprecated type that reads back without a zone).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.engine.definition import LAKE_COLUMNS, SPARK, Dialect, Query
from mysetlist_slo.errors import RollupError

APP_NAME = "mysetlist-slo rollup"
# Used only where the user's settings leave them unset: adaptive execution may shrink the
# partitions of the cached intermediate tables to fit their size (otherwise every later stage
# runs spark.sql.shuffle.partitions tasks, 200 by default, over a few thousand rows).
_DEFAULTS = {"spark.sql.optimizer.canChangeCachedPlanOutputPartitioning": "true"}
JAVA_PACKAGE = "openjdk-17-jre-headless"


def java_problem() -> str | None:
    """Return why no Java runtime can start Spark here (naming the Debian package), or None."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return None
    if shutil.which("java"):
        return None
    return (f"Spark needs a Java 17 (or newer) runtime and found none (no java on PATH, "
            f"JAVA_HOME unset); on Debian: apt-get install {JAVA_PACKAGE}")


# pyspark's own modules import pyspark.testing (when a session starts), which warns that pandas
# 3 is not supported yet: the rollup never hands Spark a pandas frame, so that one warning is
# not shown (a filter on its text only).
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)


def spark_session(master: str | None = None,
                  conf: dict[str, str] | None = None) -> tuple[Any, bool]:
    """Return the active SparkSession, or start one (``master`` and ``conf`` if given, else
    Spark's own settings decide), and whether it was started here. Raises RollupError naming
    the extra or the Java package when missing."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise RollupError("--engine spark", "pyspark is not installed; install the extra: "
                          "pip install 'mysetlist-slo[spark]'") from None
    problem = java_problem()
    if problem:
        raise RollupError("--engine spark", problem)
    active = SparkSession.getActiveSession()
    if active is not None:  # spark-submit's, or the caller's
        return active, False
    builder = SparkSession.builder.appName(APP_NAME)
    if master:  # else spark-submit's --master or spark-defaults.conf (Spark: local[*])
        builder = builder.master(master)
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    # A new SparkContext puts its own SIGINT handler in place of the caller's (it cancels the
    # jobs from inside the signal, amid a py4j call, and Ctrl-C was lost). The caller's comes
    # back: its KeyboardInterrupt ends the rollup, which stops the session.
    handler = signal.getsignal(signal.SIGINT)
    session = builder.getOrCreate()
    if threading.current_thread() is threading.main_thread() and handler is not None:
        signal.signal(signal.SIGINT, handler)
    return session, True


def _prepare(session: Any) -> None:
    """Set what the output format needs, and our defaults where the user set nothing."""
    session.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    configured = session.sparkContext.getConf()
    for key, value in _DEFAULTS.items():
        if not configured.contains(key):
            session.conf.set(key, value)


SETTLE_S = 1.0  # how long a stopped write's folder must stay unchanged
SETTLE_AT_MOST_S = 30.0


def _settle(folder: Path) -> None:
    """Wait until nothing under ``folder`` has changed for SETTLE_S (at most
    SETTLE_AT_MOST_S): a cancelled Spark task is not interrupted (HDFS takes interrupts
    badly), and writes its attempt's files for a moment after the session has stopped."""
    def state() -> set[tuple[str, int]]:
        with suppress(OSError):
            return {(str(p), p.stat().st_size) for p in folder.rglob("*")}
        return set()

    deadline = time.monotonic() + SETTLE_AT_MOST_S
    seen, since = state(), time.monotonic()
    while time.monotonic() - since < SETTLE_S and time.monotonic() < deadline:
        time.sleep(0.1)
        now = state()
        if now != seen:
            seen, since = now, time.monotonic()


class SparkExecutor:
    """Runs the rollup queries as Spark SQL; the intermediate tables are cached."""

    dialect: Dialect = SPARK

    def __init__(self, master: str | None = None, session: Any = None,
                 conf: dict[str, str] | None = None) -> None:
        if session is None:
            session, self._owned = spark_session(master, conf)
        else:
            self._owned = False
        self.spark = session
        _prepare(self.spark)
        self._cached: list[Any] = []
        self._closed = False
        self._writing: Path | None = None  # the folder a write is under way to
        self._running = False  # a job (a fetch, a write) is under way

    def register_lake(self, files: list[str]) -> None:
        """Make ``files`` (the lake's committed request files) readable as ``lake_requests``."""
        try:
            frame = self.spark.read.parquet(*files).select(*LAKE_COLUMNS)
        except Exception as exc:  # pyspark's AnalysisException: a file or column missing
            raise RollupError(", ".join(files[:3]),
                              f"cannot be read: {str(exc).splitlines()[0]}") from None
        frame.createOrReplaceTempView("lake_requests")

    def _frame(self, query: Query) -> Any:
        try:
            return self.spark.sql(query.sql, args=query.params or None)
        except Exception as exc:  # pyspark's AnalysisException and friends
            raise RollupError("spark", f"query refused: {str(exc).splitlines()[0]}") from None

    def materialise(self, name: str, query: Query) -> None:
        """Compute ``query`` once (cached) and register it as the view ``name``."""
        frame = self._frame(query).cache()
        self._cached.append(frame)
        frame.createOrReplaceTempView(name)

    def fetch(self, query: Query) -> pa.Table:
        """Return the result of ``query`` (small) as an Arrow table on the driver."""
        frame = self._frame(query)
        self._running = True
        rows = [row.asDict() for row in frame.collect()]
        self._running = False
        return pa.Table.from_pylist(rows) if rows else pa.table(
            {name: pa.array([], pa.string()) for name in frame.columns})

    def write(self, query: Query, folder: str) -> None:
        """Write ``query``'s rows under ``folder``, Hive-partitioned by ``date``: one file per
        date (rollups are small; the shuffle puts each date in one task)."""
        frame = self._frame(query)
        self._writing, self._running = Path(folder), True
        frame.repartition("date").write.mode("overwrite").partitionBy("date").parquet(folder)
        self._writing, self._running = None, False

    def close(self) -> None:
        """Drop the cached tables; stop the session if this executor started it. A second
        call does nothing (a failed rollup closes its executor before its caller does).

        Closed early (Ctrl-C, an error), a session this executor started may be half gone:
        Ctrl-C reaches the JVM's connection too, and the JVM may be shutting down. Its calls
        failing then (py4j errors) do not stop the rest of the teardown, nor replace the error
        that ended the run; a caller's session is left to the caller, errors and all."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._owned and self._running:
                # Stopped amid a job: cancelled, and the errors its tasks log as the session
                # stops under them (a block gone, a shuffle file deleted) are Spark's
                # teardown, not the user's problem. (The level holds for the JVM, which a
                # later session in this process reuses: set only then.)
                self.spark.sparkContext.cancelAllJobs()
                self.spark.sparkContext.setLogLevel("OFF")
            for frame in self._cached:
                frame.unpersist()
            for view in ("lake_requests", "route_map", "aggregate"):
                self.spark.catalog.dropTempView(view)
        except Exception:  # py4j's errors, from a JVM half gone (not a declared dependency)
            if not self._owned:
                raise
        finally:
            if self._owned:
                with suppress(Exception):
                    self.spark.stop()
            if self._writing is not None:
                _settle(self._writing)

