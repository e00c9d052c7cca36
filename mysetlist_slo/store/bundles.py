"""Storing Next.js builds (``bundle_builds``, ``bundle_routes``, ``bundle_files``): one
transaction per build, registered like a file so the same build stored twice changes nothing."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from mysetlist_slo.sources.nextjs import NextBuild
from mysetlist_slo.store.database import find_ingest, scalar

KIND = "nextjs-build"


@dataclass(frozen=True)
class StoredBuild:
    """What storing a build did: its ingest id, whether it was there already, and why."""

    ingest_id: int
    skipped: bool
    routes: int
    seconds: float
    message: str


def store_build(con: duckdb.DuckDBPyConnection, build: NextBuild) -> StoredBuild:
    """Store ``build`` and return what happened; a build already stored (same fingerprint)
    is skipped. The build's rows and its registry row land in one transaction."""
    started = time.perf_counter()
    known = find_ingest(con, build.fingerprint)
    if known is not None:
        return StoredBuild(int(str(known["id"])), True, 0, time.perf_counter() - started,
                           f"already stored as ingest #{known['id']}; nothing to do")
    routes = pa.table({
        "route": pa.array([r.route for r in build.routes], pa.string()),
        "router": pa.array([r.router for r in build.routes], pa.string()),
        "file": pa.array([r.file for r in build.routes], pa.string())})
    files = pa.table({
        "file": pa.array([f.file for f in build.files], pa.string()),
        "bytes": pa.array([f.bytes for f in build.files], pa.int64()),
        "gzip_bytes": pa.array([f.gzip_bytes for f in build.files], pa.int64())})
    static = [f for f in build.files if f.file.startswith("static/")]
    con.execute("BEGIN TRANSACTION")
    try:
        ingest_id = int(str(scalar(con, "SELECT nextval('ingest_id_seq')")))
        con.execute("INSERT INTO bundle_builds VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [ingest_id, build.build_id, build.commit, build.built_at,
                     sum(f.bytes for f in static), sum(f.gzip_bytes for f in static),
                     len(static)])
        con.register("build_routes", routes)
        con.register("build_files", files)
        con.execute("""
            INSERT INTO bundle_routes
            SELECT $id, r.route, r.router, r.file, f.bytes, f.gzip_bytes
            FROM build_routes AS r JOIN build_files AS f USING (file)""", {"id": ingest_id})
        con.execute("INSERT INTO bundle_files SELECT $id, file, bytes, gzip_bytes "
                    "FROM build_files", {"id": ingest_id})
        seconds = time.perf_counter() - started
        con.execute(
            "INSERT INTO ingests (id, sha256, kind, file, bytes, loaded, rejected, first_ts, "
            "last_ts, loaded_at, seconds) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)",
            [ingest_id, build.fingerprint, KIND, build.directory,
             sum(f.bytes for f in build.files), len(build.routes), build.built_at,
             build.built_at, datetime.now(UTC), seconds])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ("build_routes", "build_files"):
            with contextlib.suppress(duckdb.Error):
                con.unregister(name)
    return StoredBuild(ingest_id, False, len(build.routes), seconds,
                       f"build {build.build_id} of commit {build.commit}")
