"""Deploy and release events, from a deploy log or a vendor's API response, as rows with
located rejects.

One kind, ``deploys``, told apart by content:

- a deploy log, JSON Lines or CSV: ``timestamp, service, version[, environment, commit]``;
- Vercel's ``GET /v6/deployments`` response: ``{"deployments": [{uid, name, url, created,
  ready, state, target, meta: {githubCommitSha}}], "pagination": {...}}`` (times in Unix ms);
- GitHub's ``GET /repos/{owner}/{repo}/deployments`` response (a list of ``{id, sha, ref,
  environment, created_at, ...}``) and ``.../deployments/{id}/statuses`` responses (a list of
  ``{state, environment, created_at, deployment_url}``): a deployment goes live with its
  first ``success`` status, and one whose statuses hold no success never went live;
- Sentry's ``GET /api/0/organizations/{org}/releases/`` response (a list of ``{version,
  dateCreated, dateReleased, projects: [{slug}], lastCommit: {id}, lastDeploy}``): one row
  per release and project, dated when it was released (``dateReleased``, else created).

A JSON document's records are numbered from 1 in the order they appear: that number is the
``line`` of their rejects, and the field is named by its path (``deployments[3].created``).
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from mysetlist_slo.errors import IngestError
from mysetlist_slo.sources._checks import from_epoch, load_json, parse_iso
from mysetlist_slo.sources._lines import (
    BOM,
    BadField,
    CsvRecords,
    Record,
    checked_rows,
    json_records,
    open_maybe_gzip,
    text_lines,
)
from mysetlist_slo.sources.types import PythonChecked, Reject

DEPLOY_SCHEMA = pa.schema([
    ("line", pa.int64()), ("ts", pa.timestamp("us", tz="UTC")), ("source", pa.string()),
    ("deploy_id", pa.string()), ("service", pa.string()), ("version", pa.string()),
    ("environment", pa.string()), ("commit", pa.string()), ("state", pa.string()),
    ("url", pa.string()),
])
# Names, versions and commits longer than this are no deploy record we know of.
MAX_TEXT = 256
# A whole JSON response is read at once: far larger than any page of these APIs (100 items).
MAX_DOCUMENT_BYTES = 64 << 20
# A deploy log is read whole (deploys are few): a file larger than this is refused, not cut.
MAX_FILE_BYTES = 256 << 20
_LOG_COLUMNS = ("timestamp", "service", "version")
# GitHub deployment states (REST API "deployment statuses"); only success means it went live.
GITHUB_STATES = ("error", "failure", "inactive", "in_progress", "queued", "pending", "success")
_DEPLOYMENT_ID = re.compile(r"/deployments/(\d+)/?$")


def _text(record: dict[str, Any], name: str, field: str | None = None,
          required: bool = False) -> str | None:
    """Return a short text field (None when absent); raise BadField when it is not text."""
    value = record.get(name)
    field = field or name
    if value is None or value == "":
        if required:
            raise BadField(field, "missing")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadField(field, f"not text: {str(value)[:60]!r}")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise BadField(field, f"longer than {MAX_TEXT} characters")
    return text


def _iso(record: dict[str, Any], name: str, field: str, required: bool = True) -> datetime | None:
    value = record.get(name)
    if value is None or value == "":
        if required:
            raise BadField(field, "missing")
        return None
    if not isinstance(value, str):
        raise BadField(field, f"not an ISO 8601 time: {str(value)[:60]!r}")
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise BadField(field, str(exc)) from None


def _epoch_ms(record: dict[str, Any], name: str, field: str) -> datetime | None:
    value = record.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadField(field, f"not a Unix time in milliseconds: {str(value)[:60]!r}")
    try:
        return from_epoch(value / 1000)
    except ValueError as exc:
        raise BadField(field, str(exc)) from None


def _row(ts: datetime, source: str, **values: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"ts": ts, "source": source}
    for name in ("deploy_id", "service", "version", "environment", "commit", "state", "url"):
        row[name] = values.get(name)
    return row


def log_row(record: dict[str, Any]) -> dict[str, Any]:
    """Return the row of one deploy log record (JSON Lines or CSV)."""
    ts = _iso(record, "timestamp", "timestamp")
    assert ts is not None
    return _row(ts, "log", service=_text(record, "service", required=True),
                version=_text(record, "version", required=True),
                environment=_text(record, "environment"), commit=_text(record, "commit"))


def vercel_row(record: dict[str, Any], at: str) -> dict[str, Any]:
    """Return the row of one deployment of Vercel's v6 list (``at``: its path, for errors)."""
    created = _epoch_ms(record, "created", f"{at}.created")
    ready = _epoch_ms(record, "ready", f"{at}.ready")
    ts = ready or created
    if ts is None:
        raise BadField(f"{at}.created", "missing")
    meta = record.get("meta") or {}
    if not isinstance(meta, dict):
        raise BadField(f"{at}.meta", "not an object")
    state = _text(record, "state", f"{at}.state") or _text(record, "readyState",
                                                           f"{at}.readyState")
    commit = _text(meta, "githubCommitSha", f"{at}.meta.githubCommitSha")
    # Vercel's target: "production" or null (a preview deployment).
    environment = _text(record, "target", f"{at}.target") or "preview"
    return _row(ts, "vercel", deploy_id=_text(record, "uid", f"{at}.uid", required=True),
                service=_text(record, "name", f"{at}.name"),
                version=_text(meta, "githubCommitRef", f"{at}.meta.githubCommitRef")
                or (commit[:7] if commit else None),
                environment=environment, commit=commit, state=state and state.upper(),
                url=_text(record, "url", f"{at}.url"))


def github_deployment_row(record: dict[str, Any], at: str) -> dict[str, Any]:
    """Return the row of one deployment of GitHub's list (dated at its creation; a success
    status, when loaded, dates it later)."""
    ts = _iso(record, "created_at", f"{at}.created_at")
    assert ts is not None
    repository = _text(record, "repository_url", f"{at}.repository_url")
    return _row(ts, "github", deploy_id=_text(record, "id", f"{at}.id", required=True),
                service=repository.rsplit("/", 1)[-1] if repository else None,
                version=_text(record, "ref", f"{at}.ref"),
                environment=_text(record, "environment", f"{at}.environment"),
                commit=_text(record, "sha", f"{at}.sha"),
                url=_text(record, "url", f"{at}.url"))


def github_status_row(record: dict[str, Any], at: str) -> dict[str, Any]:
    """Return the row of one GitHub deployment status, naming its deployment's id."""
    ts = _iso(record, "created_at", f"{at}.created_at")
    assert ts is not None
    url = _text(record, "deployment_url", f"{at}.deployment_url", required=True)
    assert url is not None
    match = _DEPLOYMENT_ID.search(url)
    if match is None:
        raise BadField(f"{at}.deployment_url", "does not end in /deployments/<id>")
    state = _text(record, "state", f"{at}.state", required=True)
    if state not in GITHUB_STATES:
        raise BadField(f"{at}.state", f"not one of {', '.join(GITHUB_STATES)}: {state!r}")
    return _row(ts, "github-status", deploy_id=match[1], state=state,
                environment=_text(record, "environment", f"{at}.environment"))


def sentry_rows(record: dict[str, Any], at: str) -> list[dict[str, Any]]:
    """Return the rows of one Sentry release: one per project it belongs to."""
    version = _text(record, "version", f"{at}.version", required=True)
    ts = (_iso(record, "dateReleased", f"{at}.dateReleased", required=False)
          or _iso(record, "dateCreated", f"{at}.dateCreated"))
    assert ts is not None
    last_commit = record.get("lastCommit") or {}
    last_deploy = record.get("lastDeploy") or {}
    for name, value in (("lastCommit", last_commit), ("lastDeploy", last_deploy)):
        if not isinstance(value, dict):
            raise BadField(f"{at}.{name}", "not an object")
    commit = _text(last_commit, "id", f"{at}.lastCommit.id") or _text(record, "ref",
                                                                       f"{at}.ref")
    environment = _text(last_deploy, "environment", f"{at}.lastDeploy.environment")
    projects = record.get("projects") or [{}]
    if not isinstance(projects, list):
        raise BadField(f"{at}.projects", "not a list")
    rows = []
    for index, project in enumerate(projects):
        if not isinstance(project, dict):
            raise BadField(f"{at}.projects[{index}]", "not an object")
        rows.append(_row(ts, "sentry", deploy_id=_text(record, "id", f"{at}.id"),
                         service=_text(project, "slug", f"{at}.projects[{index}].slug"),
                         version=version, environment=environment, commit=commit,
                         url=_text(record, "url", f"{at}.url")))
    return rows


def document_shape(document: Any) -> str | None:
    """Return vercel, github, github-status or sentry for a vendor response, else None."""
    if isinstance(document, dict) and isinstance(document.get("deployments"), list):
        return "vercel"
    if not isinstance(document, list) or not document or not isinstance(document[0], dict):
        return None
    first = document[0]
    if "deployment_url" in first:
        return "github-status"
    if "statuses_url" in first or ("sha" in first and "created_at" in first):
        return "github"
    if "version" in first and ("dateCreated" in first or "dateReleased" in first):
        return "sentry"
    return None


def _raw(record: Any) -> bytes:
    return repr(record).encode("utf-8", errors="replace")[:4096]


class DeploySource(PythonChecked):
    """Deploy events: a deploy log (JSON Lines, CSV) or a Vercel, GitHub or Sentry response."""

    kind = "deploys"
    record = "deploys"
    schema = DEPLOY_SCHEMA

    def rows(self, path: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
        """Return one row per deploy record; a bad record is a reject naming its field."""
        stream, raw = open_maybe_gzip(path)
        try:
            data = stream.read(MAX_FILE_BYTES + 1)
        finally:
            stream.close()
            raw.close()
        if len(data) > MAX_FILE_BYTES:  # refused whole, never read in part
            raise IngestError(str(path), f"larger than {MAX_FILE_BYTES:,} bytes: no deploy log "
                              "or response is that large")
        text_bytes = data.removeprefix(BOM)
        head = text_bytes.lstrip()[:1]
        if head == b"[" or (head == b"{" and _whole_document(text_bytes)):
            return self._document(path, text_bytes)
        if head == b"{":
            return checked_rows(json_records(text_lines(path)), log_row)
        with CsvRecords(path, rename=str.strip) as records:
            records.require(_LOG_COLUMNS)
            return checked_rows(records, log_row)

    @staticmethod
    def _document(path: Path, data: bytes) -> tuple[list[dict[str, Any]], list[Reject]]:
        if len(data) > MAX_DOCUMENT_BYTES:
            raise IngestError(str(path), f"a JSON response larger than {MAX_DOCUMENT_BYTES:,} "
                              "bytes is no API page")
        try:
            document = load_json(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise IngestError(str(path), f"not a JSON document: {str(exc)[:80]}") from None
        shape = document_shape(document)
        if shape is None:
            raise IngestError(str(path), "not a deploy response this package reads (Vercel "
                              "v6 deployments, GitHub deployments or statuses, Sentry releases)")
        records = document["deployments"] if shape == "vercel" else document
        prefix = "deployments" if shape == "vercel" else ""
        # A record of a document is numbered by its place (from 1) and named by its path.
        numbered = (Record(number, (f"{prefix}[{number - 1}]", record), _raw(record))
                    for number, record in enumerate(records, 1))
        return checked_rows(numbered, lambda item: _vendor_rows(shape, *item))


def _vendor_rows(shape: str, at: str, record: Any) -> list[dict[str, Any]]:
    """Return the rows of one record of a vendor response of ``shape``, found at path ``at``."""
    if not isinstance(record, dict):
        raise BadField(at, "not an object")
    if shape == "vercel":
        return [vercel_row(record, at)]
    if shape == "github":
        return [github_deployment_row(record, at)]
    if shape == "github-status":
        return [github_status_row(record, at)]
    return sentry_rows(record, at)


def _whole_document(data: bytes) -> bool:
    """Return True when ``data`` starting with ``{`` is one JSON document (Vercel's response),
    not JSON Lines: its first line does not parse alone, or it holds ``deployments``."""
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        record = load_json(first.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return True
    return isinstance(record, dict) and isinstance(record.get("deployments"), list)


def sniff_deploys(head: str) -> bool:
    """Return True when the opening text ``head`` of a file is a deploy log or response."""
    stripped = head.lstrip("\ufeff").lstrip()
    first = next((line for line in stripped.splitlines() if line.strip()), "")
    if stripped.startswith("["):
        return any(mark in head for mark in ('"statuses_url"', '"deployment_url"',
                                             '"dateReleased"'))
    if stripped.startswith("{"):
        if '"deployments"' in head and ('"uid"' in head or '"pagination"' in head):
            return True
        try:
            keys = set(load_json(first))
        except (ValueError, TypeError):
            return False
        return set(_LOG_COLUMNS) <= keys
    try:
        header = {name.strip() for name in next(csv.reader([first]))}
    except (csv.Error, StopIteration):
        return False
    return set(_LOG_COLUMNS) <= header and "status" not in header
