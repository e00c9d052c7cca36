"""Keeping secrets out of what a collector prints, logs and stores: sources named without their
passwords, error text scrubbed of them."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import psycopg.conninfo


def safe_url(url: str) -> str:
    """Return ``url`` without its user-info password (``redis://:pw@h:1/0`` -> ``redis://h:1/0``)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = (f"{parts.username}@" if parts.username else "") + host + (
        f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def dsn_secrets(dsn: str) -> list[str]:
    """Return the secrets a libpq DSN holds (its password), for scrubbing error text."""
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        return []
    return [str(password)] if password else []


def safe_dsn(dsn: str) -> str:
    """Return a libpq DSN as ``postgresql://user@host:port/dbname``, with no password."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://(unparsable DSN)"
    user = f"{params['user']}@" if params.get("user") else ""
    port = f":{params['port']}" if params.get("port") else ""
    database = f"/{params['dbname']}" if params.get("dbname") else ""
    return f"postgresql://{user}{params.get('host', '')}{port}{database}"


def scrub(text: str, secrets: list[str]) -> str:
    """Return the first line of ``text`` with every secret replaced by ``***``."""
    line = (text.strip().splitlines() or [""])[0]
    for secret in secrets:
        if secret:
            line = line.replace(secret, "***")
    return line


# PostgreSQL 15 does not normalise utility statements in pg_stat_statements: the text of
# ``ALTER ROLE x PASSWORD 'secret'`` or ``CREATE USER MAPPING ... OPTIONS (password 'secret')``
# is kept as typed, and so is a conninfo string with ``password=secret`` passed to dblink.
_PASSWORD_VALUE = re.compile(
    r"""\b(password)(\s*=\s*|\s+)('(?:[^']|'')*'|"(?:[^"]|"")*"|[^\s',)]+)""", re.IGNORECASE)


def redact_statement(text: str | None) -> str | None:
    """Return statement text with every password value replaced by ``'***'``."""
    if text is None:
        return None
    return _PASSWORD_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}'***'", text)
