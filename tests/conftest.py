"""Shared fixtures: a fresh store per test, a small demo data set per session, log writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest
import servers
from hypothesis import Phase, settings

from mysetlist_slo import DemoManifest, generate_demo, ingest_file, open_store

# Real data written by no one on this project: ../shared/data/real beside the clone (as in CI),
# or wherever MYSETLIST_REAL_DATA points.
REAL_DATA = Path(os.environ.get("MYSETLIST_REAL_DATA",
                                Path(__file__).resolve().parents[2] / "shared" / "data" / "real"))

# For mutation runs (`--hypothesis-profile mutation`, bench/MUTATION.md): a failing example is
# enough to kill a mutant; shrinking it can take minutes per mutant on two shared cores.
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate])


@pytest.fixture(name="fuzz_selected")
def fixture_fuzz_selected(request: pytest.FixtureRequest) -> None:
    """Skip unless the run selected the fuzz marker (``pytest -m fuzz``)."""
    if "fuzz" not in (request.config.option.markexpr or ""):
        pytest.skip("the full-strength oracle run: select it with -m fuzz")


@pytest.fixture(name="local_http")
def fixture_local_http() -> Iterator[Callable[..., Any]]:
    """Start fake HTTP APIs (``local_http(FakeX, *args)``: servers.LocalHttp subclasses) for
    one test; stop them all after it."""
    started: list[servers.LocalHttp] = []

    def start(factory: Callable[..., servers.LocalHttp], *args: Any, **kwargs: Any) -> Any:
        started.append(factory(*args, **kwargs))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture(name="real_data")
def fixture_real_data() -> Path:
    """The folder of real data; skipped outside CI when it is not there, an error in CI."""
    if not REAL_DATA.is_dir():
        if os.environ.get("CI"):
            raise FileNotFoundError(f"real data not found at {REAL_DATA}")
        pytest.skip(f"real data not found at {REAL_DATA} (set MYSETLIST_REAL_DATA)")
    return REAL_DATA
DEMO_END = datetime(2026, 11, 23, tzinfo=UTC)

# One line of nginx's combined format with $request_time $upstream_response_time.
TIMED_LINE = ('{ip} - - [{time}] "{method} {path} HTTP/1.1" {status} {bytes} "-" '
              '"Mozilla/5.0 (X11; Linux x86_64)" {rt} {urt}')


def press_ctrl_c(argv: list[str], ready: Callable[[subprocess.Popen[str]], bool],
                 wait: float = 300) -> subprocess.CompletedProcess[str] | None:
    """Run ``python -m mysetlist_slo *argv`` in a session of its own and, once ``ready(process)``
    holds (polled), press Ctrl-C as a terminal does: SIGINT to its whole process group. Return
    the finished process, or None when it ended before it could be interrupted."""
    process = subprocess.Popen([sys.executable, "-m", "mysetlist_slo", *argv],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.monotonic() + wait
    while process.poll() is None and time.monotonic() < deadline and not ready(process):
        time.sleep(0.05)
    if process.poll() is not None:
        process.communicate()
        return None
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def timed_line(time: str = "10/Nov/2026:13:55:36 +0000", path: str = "/show/42",
               status: int | str = 200, rt: str = "0.123", urt: str = "0.120",
               method: str = "GET", ip: str = "203.0.113.9", nbytes: int | str = 512) -> str:
    """Return one access-log line in the default timed combined format."""
    return TIMED_LINE.format(ip=ip, time=time, method=method, path=path, status=status,
                             bytes=nbytes, rt=rt, urt=urt)


@pytest.fixture(name="db_path")
def fixture_db_path(tmp_path: Path) -> Path:
    """Path of a store that does not exist yet."""
    return tmp_path / "metrics.duckdb"


@pytest.fixture(name="store")
def fixture_store(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A fresh, empty store, closed after the test."""
    con = open_store(db_path)
    yield con
    con.close()


@pytest.fixture(name="write_log")
def fixture_write_log(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write lines (str or bytes) to a file under tmp_path and return its path."""
    def write(name: str, lines: list[str | bytes], newline_at_end: bool = True) -> Path:
        data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
        if newline_at_end:
            data += b"\n"
        path = tmp_path / name
        path.write_bytes(data)
        return path
    return write


@pytest.fixture(name="demo", scope="session")
def fixture_demo(tmp_path_factory: pytest.TempPathFactory) -> DemoManifest:
    """A small demo data set (two weeks at 0.1 req/s), written once per test session."""
    return generate_demo(tmp_path_factory.mktemp("demo"), end=DEMO_END, weeks=2, mean_rps=0.1)


@pytest.fixture(name="demo_store_path", scope="session")
def fixture_demo_store_path(demo: DemoManifest,
                            tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the small demo loaded through the real ingest path."""
    path = tmp_path_factory.mktemp("store") / "demo.duckdb"
    con = open_store(path)
    for file in demo.files:
        ingest_file(con, file)
    con.close()
    return path


@pytest.fixture(name="demo_con", scope="session")
def fixture_demo_con(demo_store_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the small demo store, shared by the tests that only read."""
    con = open_store(demo_store_path, read_only=True)
    yield con
    con.close()


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Return the row count of every table in the store."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
        "ORDER BY 1").fetchall()]
    return {name: con.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
            for name in names}


# --- real servers for the live collectors (tests/servers.py) ------------------------------


@pytest.fixture(name="postgres_server", scope="session")
def fixture_postgres_server() -> Iterator[servers.Postgres]:
    """PostgreSQL 15 with pg_stat_statements, roles app_a and app_b and database ``shop``."""
    import shutil

    server = servers.Postgres(servers._owned_dir("mysetlist-pg-"), servers.free_port())
    try:
        server.start()
        server.setup_roles()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(name="pgbouncer_server", scope="session")
def fixture_pgbouncer_server(postgres_server: servers.Postgres) -> Iterator[servers.PgBouncer]:
    """PgBouncer 1.18 in transaction mode in front of ``postgres_server``."""
    import shutil

    bouncer = servers.PgBouncer(servers._owned_dir("mysetlist-pgb-"), servers.free_port(),
                                postgres_server)
    try:
        bouncer.start()
        yield bouncer
    finally:
        bouncer.stop()
        shutil.rmtree(bouncer.directory, ignore_errors=True)


@pytest.fixture(name="redis_server")
def fixture_redis_server(tmp_path: Path) -> Iterator[servers.Redis]:
    """A fresh Redis server per test (they start in milliseconds), so counters start at 0."""
    server = servers.Redis(tmp_path, servers.free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
