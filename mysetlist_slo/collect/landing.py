"""Landing snapshots in the store: open it, write one transaction, close it again, so that a
collector holds no lock between pulls and reports can run meanwhile."""

from __future__ import annotations

from pathlib import Path

from mysetlist_slo.errors import IngestError
from mysetlist_slo.store.database import open_store
from mysetlist_slo.store.ingest import IngestResult
from mysetlist_slo.store.snapshots import Snapshot, ingest_snapshot


def land(db: str | Path, snapshot: Snapshot, *, busy_wait_s: float = 10.0) -> IngestResult:
    """Store ``snapshot`` in the store at ``db`` and return what happened.

    A store busy with another writer (or a report reading it) is retried for ``busy_wait_s``
    seconds before StoreBusyError is raised; IngestError when the snapshot holds bad values.
    """
    con = open_store(db, wait=busy_wait_s)
    try:
        return ingest_snapshot(con, snapshot)
    finally:
        con.close()


class Backlog:
    """Snapshots taken while the store was busy (a report reading it, another writer), kept in
    memory and landed oldest first with the next pull, so a busy minute is late, not lost.

    At most ``limit`` snapshots are kept; beyond that the oldest is dropped (a gap: no rows).
    """

    def __init__(self, db: str | Path, limit: int = 120, busy_wait_s: float = 10.0) -> None:
        self.db = db
        self.limit = limit
        self.busy_wait_s = busy_wait_s
        self.waiting: list[Snapshot] = []
        self.dropped = 0

    def land(self, snapshot: Snapshot) -> list[IngestResult]:
        """Land the waiting snapshots and then ``snapshot``; return their results.

        Raises StoreBusyError (keeping what is not landed yet for the next call) when the
        store stays busy, and IngestError for a snapshot with bad values (that one is dropped:
        it would never land).
        """
        self.waiting.append(snapshot)
        if len(self.waiting) > self.limit:
            self.waiting.pop(0)
            self.dropped += 1
        results = []
        while self.waiting:
            try:
                results.append(land(self.db, self.waiting[0], busy_wait_s=self.busy_wait_s))
            except IngestError:
                self.waiting.pop(0)
                raise
            self.waiting.pop(0)
        return results
