"""Landing snapshots in the store: open it, write one transaction, close it again, so that a
collector holds no lock between pulls and reports can run meanwhile."""

from __future__ import annotations

import time
from pathlib import Path

from mysetlist_slo.collect.postgres import fit_statements
from mysetlist_slo.errors import StoreBusyError
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.ingest import IngestResult
from mysetlist_slo.store.snapshots import Snapshot, ingest_snapshot


def land(db: str | Path, snapshot: Snapshot, *, busy_wait_s: float = 10.0) -> IngestResult:
    """Store ``snapshot`` in the store at ``db`` and return what happened.

    A store busy with another writer (or a report reading it) is retried for ``busy_wait_s``
    seconds before StoreBusyError is raised; IngestError when the snapshot holds bad values.
    """
    deadline = time.monotonic() + busy_wait_s
    while True:
        try:
            con = open_store(db)
            break
        except StoreBusyError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.25)
    try:
        return ingest_snapshot(con, fit_statements(con, snapshot))
    finally:
        con.close()
