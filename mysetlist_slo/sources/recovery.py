"""Backup job records and recovery-drill records, each turned into rows with located rejects.

Three shapes:

- a backup job log, JSON Lines: ``job, kind (database | system | archive), started, finished,
  status, bytes, destination`` (``finished`` and ``bytes`` may be null for a failed job);
- the exit lines of the plan's own cron commands, as a wrapper logs them, one per job::

      <started> <finished> exit=<code> [bytes=<size>] <command>

  where the command is ``pg_dump … > backup_YYYYMMDD.sql`` (database), ``tar -czf
  system_backup_… …`` (system) or ``aws s3 sync … s3://…`` (archive);
- drill records, JSON Lines: ``drill (database_restore | application_failover |
  full_recovery), started, recovered, status, data_verified``.

Times are ISO 8601 with a zone. Status ``success``/``succeeded``/``ok`` is a success and
``failed``/``failure``/``error`` a failure; anything else is refused.
"""

from __future__ import annotations

import re
import shlex
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.sources._checks import load_json, parse_iso
from mysetlist_slo.sources._lines import BadField, checked_rows, json_records, text_lines
from mysetlist_slo.sources.loadtests import _number
from mysetlist_slo.sources.types import PythonChecked, Reject

BACKUP_KINDS = ("database", "system", "archive")
DRILL_KINDS = ("database_restore", "application_failover", "full_recovery")
_STATUS = {"success": "success", "succeeded": "success", "ok": "success", "completed": "success",
           "failed": "failed", "failure": "failed", "error": "failed"}

BACKUP_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("job", pa.string()),
    ("kind", pa.string()), ("started", pa.timestamp("us", tz="UTC")),
    ("finished", pa.timestamp("us", tz="UTC")), ("status", pa.string()), ("bytes", pa.int64()),
    ("destination", pa.string()),
])
DRILL_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("drill", pa.string()),
    ("started", pa.timestamp("us", tz="UTC")), ("recovered", pa.timestamp("us", tz="UTC")),
    ("status", pa.string()), ("data_verified", pa.bool_()),
])

CRON_LINE = re.compile(r"^(?P<started>\S+) (?P<finished>\S+) exit=(?P<exit>-?\d+)"
                       r"(?: bytes=(?P<bytes>\S+))? (?P<command>\S.*)$")


def _time(record: dict[str, Any], name: str, required: bool = True) -> datetime | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise BadField(name, "missing")
        return None
    try:
        return parse_iso(str(value))
    except ValueError as exc:
        raise BadField(name, str(exc)) from None


def _status(value: Any) -> str:
    status = _STATUS.get(str(value).strip().lower()) if isinstance(value, str) else None
    if status is None:
        raise BadField("status", f"not success or failed: {value!r}")
    return status


def _text(record: dict[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadField(name, "missing")
    return value


def _ordered(started: datetime, ended: datetime | None, name: str) -> None:
    if ended is not None and ended < started:
        raise BadField(name, f"before started ({ended.isoformat()} < {started.isoformat()})")


class _JsonLines(PythonChecked):
    """JSON Lines checked in Python, one record a line."""

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per good line; a bad line is a reject naming its field."""
        return checked_rows(json_records(text_lines(path)), self.row)

    def row(self, record: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError


class BackupLogSource(_JsonLines):
    """A backup job log (JSON Lines)."""

    kind = "backups"
    record = "backups"
    schema = BACKUP_SCHEMA

    def row(self, record: dict[str, Any]) -> dict[str, Any]:
        """Return the checked row of one job record."""
        job = _text(record, "job")
        kind = record.get("kind")
        if kind not in BACKUP_KINDS:
            raise BadField("kind", f"not one of {', '.join(BACKUP_KINDS)}: {kind!r}")
        started = _time(record, "started")
        assert started is not None
        status = _status(record.get("status"))
        finished = _time(record, "finished", required=status == "success")
        _ordered(started, finished, "finished")
        size = record.get("bytes")
        if size is None and status == "success":
            raise BadField("bytes", "missing for a successful backup")
        nbytes = None if size is None else int(_number(size, "bytes", integer=True))
        destination = record.get("destination")
        return {"ts": started, "job": job, "kind": kind, "started": started,
                "finished": finished, "status": status, "bytes": nbytes,
                "destination": destination if isinstance(destination, str) else None}


def _cron_job(command: str) -> tuple[str, str, str]:
    """Return (job, kind, destination) of one of the plan's backup commands."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise BadField("command", f"cannot split: {exc}") from None
    if words[:1] == ["pg_dump"] and ">" in words:
        target = words[words.index(">") + 1] if words.index(">") + 1 < len(words) else ""
        return "pg_dump", "database", target
    if words[:1] == ["pg_dump"] and any(w.startswith(">") for w in words):
        return "pg_dump", "database", next(w for w in words if w.startswith(">"))[1:]
    if words[:1] == ["tar"] and "-czf" in words and words.index("-czf") + 1 < len(words):
        return "tar", "system", words[words.index("-czf") + 1]
    if words[:3] == ["aws", "s3", "sync"] and len(words) >= 5:
        return "aws s3 sync", "archive", words[-1]
    raise BadField("command", "not one of the plan's backup commands (pg_dump … > file, "
                   "tar -czf file …, aws s3 sync source destination)")


class CronBackupSource(PythonChecked):
    """The exit lines of the plan's cron backup commands, as logged by a wrapper."""

    kind = "backup-cron"
    record = "backups"
    schema = BACKUP_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per exit line; a bad line is a reject naming its field."""
        return checked_rows(text_lines(path), self._row)

    @staticmethod
    def _row(data: bytes) -> dict[str, Any]:
        try:
            text = data.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            raise BadField("(line)", "not UTF-8") from None
        match = CRON_LINE.match(text)
        if not match:
            raise BadField("(line)", "not '<started> <finished> exit=<code> [bytes=<n>] "
                           "<command>'")
        started = _time(match.groupdict(), "started")
        finished = _time(match.groupdict(), "finished")
        assert started is not None
        _ordered(started, finished, "finished")
        job, kind, destination = _cron_job(match["command"])
        nbytes = (None if match["bytes"] is None
                  else int(_number(match["bytes"], "bytes", integer=True)))
        status = "success" if match["exit"] == "0" else "failed"
        return {"ts": started, "job": job, "kind": kind, "started": started,
                "finished": finished, "status": status, "bytes": nbytes,
                "destination": destination}


class DrillSource(_JsonLines):
    """Recovery drill records (JSON Lines)."""

    kind = "drills"
    record = "drills"
    schema = DRILL_SCHEMA

    def row(self, record: dict[str, Any]) -> dict[str, Any]:
        """Return the checked row of one drill record."""
        drill = record.get("drill")
        if drill not in DRILL_KINDS:
            raise BadField("drill", f"not one of {', '.join(DRILL_KINDS)}: {drill!r}")
        started = _time(record, "started")
        assert started is not None
        status = _status(record.get("status"))
        recovered = _time(record, "recovered", required=status == "success")
        _ordered(started, recovered, "recovered")
        verified = record.get("data_verified")
        if verified is not None and not isinstance(verified, bool):
            raise BadField("data_verified", f"not true or false: {verified!r}")
        return {"ts": started, "drill": drill, "started": started, "recovered": recovered,
                "status": status, "data_verified": verified}


def sniff_recovery(head: str) -> str | None:
    """Return backups, backup-cron or drills when the first line ``head`` is one of those."""
    first = next((line for line in head.splitlines() if line.strip()), "")
    if first.lstrip().startswith("{"):
        try:
            keys = set(load_json(first))
        except (ValueError, TypeError):
            return None
        if {"job", "kind", "status"} <= keys:
            return "backups"
        if "drill" in keys:
            return "drills"
        return None
    return "backup-cron" if CRON_LINE.match(first) else None


RECOVERY_KINDS = {source.kind: source for source in (BackupLogSource, CronBackupSource,
                                                     DrillSource)}
