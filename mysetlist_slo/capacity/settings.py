"""Server settings in force for the pool plan: as the collectors read them from the running
PgBouncer and PostgreSQL where the store has them, else as the configuration assumes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pandas as pd

from mysetlist_slo.config import PgBouncerConfig

# (system, name as the server calls it) -> the PgBouncerConfig field that assumes it.
SETTINGS = (
    ("pgbouncer", "default_pool_size", "default_pool_size"),
    ("pgbouncer", "max_client_conn", "max_client_conn"),
    ("postgres", "max_connections", "postgres_max_connections"),
    ("postgres", "superuser_reserved_connections", "reserve_connections"),
)

# The latest value of each setting collected at or before ``at`` (a setting stays in force
# until it is read again: no lower bound). Names are bound, never formatted in.
_LATEST = """
SELECT system, name, arg_max(value, ts) AS value, max(ts) AS collected_at
FROM server_settings
WHERE ts <= ? AND list_contains(?, system || '.' || name)
GROUP BY system, name
"""


@dataclass(frozen=True)
class ServerSetting:
    """One setting the pool plan uses: the value in force, the configured assumption, and
    when it was collected (None: the configured value is used, nothing was collected)."""

    system: str  # pgbouncer | postgres
    name: str  # as the server names it
    value: int
    configured: int
    collected_at: datetime | None

    @property
    def source(self) -> str:
        """Return ``collected`` or ``configured``: which value the plan used."""
        return "configured" if self.collected_at is None else "collected"

    def describe(self) -> str:
        """Return the setting as a verdict shows it, e.g. ``default_pool_size 4 (collected
        2026-11-20 10:00 UTC; configured 25)`` or ``max_client_conn 100 (configured)``."""
        if self.collected_at is None:
            return f"{self.name} {self.value:,} (configured)"
        return (f"{self.name} {self.value:,} (collected {self.collected_at:%Y-%m-%d %H:%M} UTC"
                f"; configured {self.configured:,})")


@dataclass(frozen=True)
class PoolSettings:
    """The settings the pool plan uses, each collected or configured."""

    default_pool_size: ServerSetting
    max_client_conn: ServerSetting
    postgres_max_connections: ServerSetting
    reserve_connections: ServerSetting

    @property
    def all(self) -> tuple[ServerSetting, ...]:
        """Return the four settings in the order the verdict names them."""
        return (self.default_pool_size, self.max_client_conn, self.postgres_max_connections,
                self.reserve_connections)

    def frame(self) -> pd.DataFrame:
        """Return one row per setting: system, name, value, source, configured, collected_at."""
        return pd.DataFrame([{"system": s.system, "name": s.name, "value": s.value,
                              "source": s.source, "configured": s.configured,
                              "collected_at": s.collected_at} for s in self.all])


def pool_settings(con: duckdb.DuckDBPyConnection, config: PgBouncerConfig,
                  at: datetime) -> PoolSettings:
    """Return the PoolSettings in force at ``at``: each setting's latest value collected at or
    before ``at`` (``collect pgbouncer`` / ``collect postgres``), else the configured one.

    A collected value that is not a whole number, or 0 for a pool size or a limit (unset to
    PgBouncer), is not used: the configured value stays, marked configured.
    """
    keys = [f"{system}.{name}" for system, name, _ in SETTINGS]
    rows = con.execute(_LATEST, [at, keys]).fetchall()
    collected: dict[tuple[str, str], tuple[int, datetime]] = {}
    for system, name, value, collected_at in rows:
        text = str(value).strip()
        # Only a reserve may be 0; a pool or a limit of 0 means "unset" to PgBouncer.
        if text.isdigit() and (int(text) > 0 or name == "superuser_reserved_connections"):
            collected[(system, name)] = (int(text), collected_at.astimezone(UTC))
    found = {}
    for system, name, field in SETTINGS:
        configured = int(getattr(config, field))
        value, when = collected.get((system, name), (configured, None))
        found[field] = ServerSetting(system, name, value, configured, when)
    return PoolSettings(**found)
