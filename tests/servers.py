"""Real servers for the collector tests: PostgreSQL 15 with pg_stat_statements, PgBouncer in
transaction mode in front of it, Redis and Prometheus, each from its Debian package, on a free
loopback port in a temporary directory.

A server that cannot start makes the test fail with the Debian package to install; nothing is
skipped. ``.ci/run`` installs the packages when they are missing.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest


class JsonHandler(BaseHTTPRequestHandler):
    """A request handler of a fake HTTP API: quiet, and answering JSON with ``answer``."""

    def answer(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        """Send ``body`` as JSON with ``status`` and ``headers``."""
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        """Print nothing: the tests assert on what the server records."""


class LocalHttp:
    """A fake HTTP API (a handler class) served on a free loopback port from a thread; the
    test fixture ``local_http`` starts and stops them."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


PG_BIN = Path("/usr/lib/postgresql/15/bin")
SUPERUSER, SUPERUSER_PASSWORD = "postgres", "pg-super-secret-1"
# Two application roles, so that pools and statements are told apart by user.
ROLES = {"app_a": "alpha-secret-7", "app_b": "bravo-secret-9"}
ADMIN, ADMIN_PASSWORD = "pgb_admin", "admin-secret-3"
DATABASE = "shop"
POOL_SIZE = 4  # small, so that 8 concurrent clients must wait for a server connection


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _missing(package: str, what: str, detail: str = "") -> None:
    pytest.fail(f"{what} could not start: install the Debian package '{package}' "
                f"(apt-get install -y {package}){': ' + detail if detail else ''}",
                pytrace=False)


def _wait_port(port: int, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.05)
    return False


def _unprivileged() -> list[str]:
    """Return the command prefix that runs a program as the ``postgres`` user.

    initdb, postgres and pgbouncer refuse to run as root; the test suite runs as root in CI, so
    they run as the ``postgres`` user the Debian package creates (runuser needs no password).
    """
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _owned_dir(prefix: str) -> Path:
    """Return a new temporary directory the server user owns (pytest's tmp dirs are 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def _run(command: list[str], package: str, what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        _missing(package, what, (result.stderr or result.stdout).strip()[-400:])


@dataclass
class Postgres:
    """A PostgreSQL 15 cluster with pg_stat_statements, stopped by ``stop()``."""

    directory: Path
    port: int

    @property
    def data(self) -> Path:
        """The cluster's data directory."""
        return self.directory / "data"

    def dsn(self, user: str = SUPERUSER, password: str | None = None,
            database: str = DATABASE) -> str:
        """Return a libpq URI for ``user`` (the role's own password unless given)."""
        secret = password if password is not None else (
            SUPERUSER_PASSWORD if user == SUPERUSER else ROLES[user])
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the cluster (initdb on first start) and wait until it accepts connections."""
        if not (PG_BIN / "initdb").exists():
            _missing("postgresql", "PostgreSQL 15", f"{PG_BIN / 'initdb'} not found")
        if not self.data.exists():
            pwfile = self.directory / "pwfile"
            pwfile.write_text(SUPERUSER_PASSWORD + "\n")
            shutil.chown(pwfile, "postgres") if os.geteuid() == 0 else None
            _run([*_unprivileged(), str(PG_BIN / "initdb"), "-D", str(self.data), "-U",
                  SUPERUSER, "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                  "--no-sync"], "postgresql", "PostgreSQL initdb")
            with open(self.data / "postgresql.conf", "a") as conf:
                conf.write(f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                           f"unix_socket_directories = '{self.directory}'\n"
                           "shared_preload_libraries = 'pg_stat_statements'\n"
                           "pg_stat_statements.track = all\nfsync = off\n"
                           "max_connections = 50\n")
        _run([*_unprivileged(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
              str(self.directory / "log"), "-w", "-t", "60", "start"],
             "postgresql", "PostgreSQL")

    def stop(self) -> None:
        """Stop the cluster quickly (open sessions are ended)."""
        subprocess.run([*_unprivileged(), str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m",
                        "fast", "-w", "stop"], capture_output=True, check=False)

    def setup_roles(self) -> None:
        """Create the application roles, their database and pg_stat_statements."""
        import psycopg

        with psycopg.connect(self.dsn(database="postgres"), autocommit=True) as con:
            for role, secret in ROLES.items():
                con.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{secret}\'')
            con.execute(f'CREATE DATABASE "{DATABASE}"')
        with psycopg.connect(self.dsn(), autocommit=True) as con:
            con.execute("CREATE EXTENSION pg_stat_statements")
            con.execute("CREATE TABLE orders (id int PRIMARY KEY, n bigint NOT NULL)")
            con.execute("INSERT INTO orders SELECT g, 0 FROM generate_series(1, 100) g")
            con.execute("GRANT SELECT, UPDATE ON orders TO app_a, app_b")


@dataclass
class PgBouncer:
    """PgBouncer in transaction mode in front of ``postgres``, with an admin console user."""

    directory: Path
    port: int
    postgres: Postgres
    process: subprocess.Popen[bytes] | None = None

    def dsn(self, user: str, password: str | None = None, database: str = DATABASE) -> str:
        """Return a URI through PgBouncer; ``database='pgbouncer'`` is the admin console."""
        secret = password if password is not None else (
            ADMIN_PASSWORD if user == ADMIN else ROLES[user])
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Write the configuration and start PgBouncer; wait until it listens."""
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        if not Path(binary).exists():
            _missing("pgbouncer", "PgBouncer", "pgbouncer not found")
        users = {**ROLES, ADMIN: ADMIN_PASSWORD}
        (self.directory / "userlist.txt").write_text(
            "".join(f'"{user}" "{secret}"\n' for user, secret in users.items()))
        (self.directory / "pgbouncer.ini").write_text(f"""[databases]
{DATABASE} = host=127.0.0.1 port={self.postgres.port} dbname={DATABASE}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {self.directory / 'userlist.txt'}
admin_users = {ADMIN}
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 100
server_reset_query =
ignore_startup_parameters = extra_float_digits,options
logfile = {self.directory / 'pgbouncer.log'}
""")
        for name in ("userlist.txt", "pgbouncer.ini"):
            if os.geteuid() == 0:
                shutil.chown(self.directory / name, "postgres")
        self.process = subprocess.Popen(
            [*_unprivileged(), binary, str(self.directory / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if not _wait_port(self.port):
            self.stop()
            log = self.directory / "pgbouncer.log"
            _missing("pgbouncer", "PgBouncer", log.read_text()[-400:] if log.exists() else "")

    def stop(self) -> None:
        """Stop PgBouncer (SIGTERM to the runuser wrapper, then to its child)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class Redis:
    """A Redis server with no persistence, a memory limit and the latency monitor on."""

    directory: Path
    port: int
    password: str = "redis-secret-5"  # noqa: S105 - a throwaway test server's password
    maxmemory: int = 64 << 20
    process: subprocess.Popen[bytes] | None = None

    def url(self, password: str | None = None) -> str:
        """Return a ``redis://`` URL with the password (or the one given)."""
        return f"redis://:{password or self.password}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start redis-server and wait until it listens."""
        binary = shutil.which("redis-server")
        if binary is None:
            _missing("redis-server", "Redis", "redis-server not found")
        self.process = subprocess.Popen(
            [str(binary), "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "no", "--requirepass",
             self.password, "--maxmemory", str(self.maxmemory), "--latency-monitor-threshold",
             "1", "--enable-debug-command", "local"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_port(self.port):
            self.stop()
            _missing("redis-server", "Redis")

    def stop(self) -> None:
        """Stop redis-server."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


@dataclass
class Prometheus:
    """A Prometheus server scraping itself and the given targets every second."""

    directory: Path
    port: int
    targets: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Write prometheus.yml and start the server; wait until it is ready."""
        binary = shutil.which("prometheus")
        if binary is None:
            _missing("prometheus", "Prometheus", "prometheus not found")
        jobs = [f"  - job_name: prometheus\n    static_configs:\n"
                f"      - targets: ['127.0.0.1:{self.port}']\n"]
        jobs += [f"  - job_name: exporter{i}\n    static_configs:\n      - targets: ['{t}']\n"
                 for i, t in enumerate(self.targets)]
        (self.directory / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
            + "".join(jobs))
        self.process = subprocess.Popen(
            [str(binary), f"--config.file={self.directory / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.directory / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_port(self.port):
            self.stop()
            _missing("prometheus", "Prometheus")

    def stop(self) -> None:
        """Stop Prometheus."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None
