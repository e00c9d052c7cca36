"""PgBouncer collector: SHOW STATS, SHOW POOLS and the pool settings of SHOW CONFIG from the
admin console, in one connection."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa

from mysetlist_slo.collect._secrets import dsn_secrets, safe_dsn, scrub
from mysetlist_slo.collect.postgres import SETTINGS, connect
from mysetlist_slo.errors import CollectError
from mysetlist_slo.sources.capacity import POOLS_SCHEMA, STATS_SCHEMA
from mysetlist_slo.store.snapshots import Snapshot

# The same columns the psql --csv file sources fill (without their line numbers).
STATS = STATS_SCHEMA.remove(STATS_SCHEMA.get_field_index("line"))
POOLS = POOLS_SCHEMA.remove(POOLS_SCHEMA.get_field_index("line"))
CONFIG_KEYS = ("default_pool_size", "max_client_conn", "pool_mode", "reserve_pool_size",
               "max_db_connections", "max_user_connections", "min_pool_size")


def _show(con: psycopg.Connection[Any], command: str) -> list[dict[str, Any]]:
    cursor = con.execute(command)
    names = [d.name for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _pick(rows: list[dict[str, Any]], schema: pa.Schema, ts: datetime) -> pa.Table:
    """Keep the columns of ``schema``; SHOW STATS prints counters as numerics: made integers."""
    picked = []
    for row in rows:
        record: dict[str, Any] = {"ts": ts}
        for name in schema.names[1:]:
            value = row.get(name)
            record[name] = int(value) if pa.types.is_integer(schema.field(name).type) \
                and value is not None else value
        picked.append(record)
    return pa.Table.from_pylist(picked, schema)


def collect_pgbouncer(dsn: str, *, timeout_s: float = 5.0) -> Snapshot:
    """Return one snapshot of PgBouncer's admin console (``dbname=pgbouncer``): SHOW STATS
    (table pgbouncer_stats), SHOW POOLS (pgbouncer_pools) and the pool settings of SHOW CONFIG
    (server_settings).

    Raises CollectError when PgBouncer cannot be reached, refuses the credentials, or the user
    is not an admin or stats user.
    """
    source = safe_dsn(dsn)
    # The admin console speaks only the simple query protocol: no prepared statements.
    con = connect(dsn, timeout_s, prepare_threshold=None,
                  cursor_factory=psycopg.ClientCursor)
    try:
        ts = datetime.now(UTC)
        stats = _show(con, "SHOW STATS")
        pools = _show(con, "SHOW POOLS")
        config = _show(con, "SHOW CONFIG")
    except psycopg.Error as exc:
        raise CollectError(source, scrub(str(exc), dsn_secrets(dsn))) from None
    finally:
        con.close()
    settings = [{"ts": ts, "system": "pgbouncer", "name": row["key"], "value": str(row["value"])}
                for row in config if row.get("key") in CONFIG_KEYS]
    return Snapshot("collect-pgbouncer", source, {
        "pgbouncer_stats": _pick(stats, STATS, ts),
        "pgbouncer_pools": _pick(pools, POOLS, ts),
        "server_settings": pa.Table.from_pylist(settings, SETTINGS),
    })
