"""A log loaded while it was still being written, then again once grown, counts every line once:
the earlier load's last complete line is where the later one reads on, and a last line that had
no newline yet (cut mid-line, or whole but unterminated, loaded or rejected) is read again whole
and its earlier reading withdrawn."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from conftest import table_counts, timed_line

import mysetlist_slo.store.ingest as ingest
from mysetlist_slo import IngestError, ingest_file, ingest_registry
from mysetlist_slo.sources.nginx import NginxSource

# Distinct request times (in ms) so a wrongly kept cut value shows in the duration sum.
TIMES_MS = [100 + 37 * i for i in range(40)]
LINES = [timed_line(time=f"10/Nov/2026:13:{i // 2:02d}:{i % 2 * 30:02d} +0000",
                    rt=f"{ms / 1000:.3f}", urt=f"{ms / 1000:.3f}")
         for i, ms in enumerate(TIMES_MS)]
FULL = "".join(line + "\n" for line in LINES).encode()


def oracle(data: bytes) -> tuple[int, int]:
    """Return (requests, sum of request times in us) of the complete lines of ``data``, read
    with plain string splitting (independent of the package's parser)."""
    lines = [line for line in data.decode().split("\n") if line]
    return len(lines), sum(round(float(line.split(" ")[-2]) * 1_000_000) for line in lines)


def stored(store) -> tuple[int, int]:
    """Return (requests, duration sum in us) as the rollups hold them."""
    ((requests, duration),) = store.execute(
        "SELECT sum(requests), sum(duration_sum_us) FROM request_counts").fetchall()
    return int(requests or 0), int(duration or 0)


def registry_invariant(store) -> None:
    """Every registry row's loaded and rejected equal the rows its ingest id holds."""
    for row in ingest_registry(store).itertuples():
        (requests,) = store.execute("SELECT coalesce(sum(requests), 0) FROM request_counts "
                                    "WHERE ingest_id = ?", [row.id]).fetchall()[0]
        (rejects,) = store.execute("SELECT count(*) FROM rejects WHERE ingest_id = ?",
                                   [row.id]).fetchall()[0]
        assert (requests, rejects) == (row.loaded, row.rejected), row


def cut_mid_line_rejected() -> int:
    """Offset inside line 25's request line: the cut line cannot be read (a reject)."""
    return len("".join(line + "\n" for line in LINES[:24])) + 40


def cut_mid_line_readable() -> int:
    """Offset inside line 25's $upstream_response_time: the cut line still parses, wrongly."""
    return len("".join(line + "\n" for line in LINES[:25])) - 3


def cut_before_newline() -> int:
    """Offset just before line 25's newline: the line is whole but unterminated."""
    return len("".join(line + "\n" for line in LINES[:25])) - 1


def cut_after_newline() -> int:
    """Offset just after line 25's newline: an ordinary prefix."""
    return len("".join(line + "\n" for line in LINES[:25]))


@pytest.mark.parametrize("cut", [cut_mid_line_rejected, cut_mid_line_readable,
                                 cut_before_newline, cut_after_newline])
def test_each_way_a_prefix_can_end(store, tmp_path: Path, cut) -> None:
    """Prefix loaded (bad line absorbed by --max-bad-rows), then the whole log: the store holds
    exactly the whole log's lines and request times, no reject, the registry agrees."""
    log = tmp_path / "access.log"
    prefix = FULL[:cut()]
    log.write_bytes(prefix)
    first = ingest_file(store, log, max_bad_rows=1)
    assert first.loaded + first.rejected == prefix.count(b"\n") + (not prefix.endswith(b"\n"))
    log.write_bytes(FULL)
    second = ingest_file(store, log)
    assert stored(store) == oracle(FULL)
    assert table_counts(store)["rejects"] == 0
    registry_invariant(store)
    assert second.loaded >= len(LINES) - prefix.count(b"\n")
    assert int(ingest_registry(store)["loaded"].sum()) == len(LINES)
    rotated = tmp_path / "access.log.1.gz"
    rotated.write_bytes(gzip.compress(FULL))
    assert ingest_file(store, rotated).skipped
    assert stored(store) == oracle(FULL)


def test_three_loads_each_cut_mid_line(store, tmp_path: Path) -> None:
    """Two successive cuts mid-line, then the whole log: each line counted once."""
    log = tmp_path / "access.log"
    for size in (cut_mid_line_readable() - 200, cut_mid_line_readable(), len(FULL)):
        log.write_bytes(FULL[:size])
        ingest_file(store, log, max_bad_rows=1)
    assert stored(store) == oracle(FULL)
    assert table_counts(store)["rejects"] == 0
    registry_invariant(store)


def test_a_single_unterminated_line_then_more(store, tmp_path: Path) -> None:
    """A log holding only part of its first line, then grown: the first line counts once."""
    log = tmp_path / "access.log"
    log.write_bytes(FULL[: len(LINES[0]) - 2])
    ingest_file(store, log)  # the cut line still parses ($upstream_response_time cut)
    log.write_bytes(FULL[:1000])
    ingest_file(store, log, max_bad_rows=1)
    log.write_bytes(FULL)
    ingest_file(store, log)
    assert stored(store) == oracle(FULL)
    registry_invariant(store)


def test_grown_jsonl_export_and_beacons(store, tmp_path: Path) -> None:
    """JSON Lines request exports and Web Vitals beacons follow the same rule."""
    rows = [{"timestamp": f"2026-11-10T10:{i:02d}:00Z", "path": "/", "status": 200,
             "duration_ms": 100 + i} for i in range(30)]
    export = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path = tmp_path / "requests.jsonl"
    # Cut inside a duration ("duration_ms": 11 of 114): not JSON, absorbed by --max-bad-rows.
    path.write_bytes(export[: export.index(b"114") + 2])
    assert ingest_file(store, path, max_bad_rows=1).loaded == 14
    path.write_bytes(export)
    ingest_file(store, path)
    ((requests, duration),) = store.execute(
        "SELECT sum(requests), sum(duration_sum_us) FROM request_counts").fetchall()
    assert (requests, duration) == (30, sum((100 + i) * 1000 for i in range(30)))

    beacons = [{"name": "LCP", "value": 1000 + i, "id": f"v{i}", "url": "/",
                "timestamp": "2026-11-10T10:00:00Z", "formFactor": "phone"} for i in range(10)]
    text = "".join(json.dumps(b) + "\n" for b in beacons).encode()
    vitals = tmp_path / "vitals.jsonl"
    vitals.write_bytes(text[: text.index(b"1005") + 3])
    ingest_file(store, vitals, max_bad_rows=1)
    vitals.write_bytes(text)
    ingest_file(store, vitals)
    values = [v for (v,) in store.execute("SELECT value FROM vitals ORDER BY value").fetchall()]
    assert values == [1000.0 + i for i in range(10)]
    # Whole but unterminated: loaded, then read again whole and the earlier reading withdrawn.
    more = tmp_path / "more.jsonl"
    renamed = {k: text.replace(b'"id": "v', b'"id": "' + k) for k in (b"w", b"x")}
    more.write_bytes(renamed[b"w"].rstrip(b"\n"))
    assert ingest_file(store, more).loaded == 10
    more.write_bytes(renamed[b"w"] + renamed[b"x"])
    assert ingest_file(store, more).loaded == 10 + 1
    assert store.execute("SELECT count(*) FROM vitals").fetchall() == [(30,)]
    assert table_counts(store)["rejects"] == 0


def test_unterminated_load_without_its_tail_record_is_refused(store, tmp_path: Path) -> None:
    """An earlier load that ended mid-line but kept no separate record of that line (as older
    versions loaded it) cannot be read on safely: refused with the reason, store unchanged."""
    log = tmp_path / "access.log"
    log.write_bytes(FULL[:cut_before_newline()])
    ingest_file(store, log)
    ((tail_id,),) = store.execute("SELECT id FROM ingests WHERE starts_with(sha256, 'tail:')"
                                  ).fetchall()
    store.execute("DELETE FROM ingests WHERE id = ?", [tail_id])
    before = table_counts(store)
    log.write_bytes(FULL)
    with pytest.raises(IngestError, match="ended mid-line and was loaded by an older version"):
        ingest_file(store, log)
    assert table_counts(store) == before


@pytest.mark.parametrize("cut", [cut_after_newline, cut_mid_line_readable])
@pytest.mark.parametrize("whole", [True, False], ids=["whole-file", "by-lines"])
def test_lines_written_while_the_log_is_read(store, tmp_path: Path, monkeypatch, cut,
                                             whole) -> None:
    """nginx writes on after the file's content was hashed and before it is read: the load
    reads only the content it registers, so the next load reads the new lines once."""
    log = tmp_path / "access.log"
    log.write_bytes(FULL[:cut()])
    hashed = ingest.file_digest

    def written_on(path: Path) -> object:
        digest = hashed(path)
        log.write_bytes(FULL[:cut_after_newline() + 300])  # whole lines and half of one
        return digest

    if not whole:
        monkeypatch.setattr(NginxSource, "whole_file", lambda *args: None)
    with monkeypatch.context() as patch:
        patch.setattr(ingest, "file_digest", written_on)
        first = ingest_file(store, log, max_bad_rows=1)
    assert first.loaded + first.rejected == 25  # the lines hashed (the last perhaps cut)
    log.write_bytes(FULL)
    ingest_file(store, log)
    assert stored(store) == oracle(FULL)
    assert table_counts(store)["rejects"] == 0
    registry_invariant(store)


@pytest.mark.parametrize("whole", [True, False], ids=["whole-file", "by-lines"])
def test_a_log_rotated_while_it_is_read(store, tmp_path: Path, monkeypatch, whole) -> None:
    """logrotate renames the log and nginx starts a new one after the content was hashed and
    before it is read: the load is refused (nothing stored, the new file's lines are not
    registered under the old content's hash), and loading both files afterwards counts every
    line once."""
    log, rotated = tmp_path / "access.log", tmp_path / "access.log.1"
    old = "".join(line + "\n" for line in LINES[:10]).encode()
    # The new log's first line is longer: read up to the old size, the new log is cut mid-line.
    new = "".join(line + "\n" for line in [LINES[10].replace("/show/", "/show/123456789/"),
                                           *LINES[11:]]).encode()
    log.write_bytes(old)
    hashed = ingest.file_digest

    def rotated_on(path: Path) -> object:
        digest = hashed(path)
        log.rename(rotated)
        log.write_bytes(new)
        return digest

    if not whole:
        monkeypatch.setattr(NginxSource, "whole_file", lambda *args: None)
    with monkeypatch.context() as patch:
        patch.setattr(ingest, "file_digest", rotated_on)
        with pytest.raises(IngestError, match="replaced or truncated while it was read"):
            ingest_file(store, log)
    assert table_counts(store)["ingests"] == 0
    ingest_file(store, rotated)
    ingest_file(store, log)
    assert stored(store) == oracle(old + new)
    registry_invariant(store)
