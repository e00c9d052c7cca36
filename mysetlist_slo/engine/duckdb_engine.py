"""The rollup definition executed by embedded DuckDB (the default engine)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from mysetlist_slo.engine.definition import DUCKDB, LAKE_COLUMNS, Dialect, Query
from mysetlist_slo.errors import RollupError


class DuckDBExecutor:
    """Runs the rollup queries in an in-memory DuckDB database over the lake's Parquet files."""

    dialect: Dialect = DUCKDB

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self._files: list[str] = []

    def register_lake(self, files: list[str]) -> None:
        """Make ``files`` (the lake's committed request files) readable as ``lake_requests``."""
        self._files = files
        columns = ", ".join(LAKE_COLUMNS)
        # hive_partitioning off: the files' own columns only (the date is the ts's anyway).
        try:
            self.con.execute(f"CREATE TEMP VIEW lake_requests AS SELECT {columns} FROM "
                             f"read_parquet({_list_literal(files)}, hive_partitioning = false)")
        except duckdb.Error as exc:  # a committed file deleted or damaged since (it names it)
            raise RollupError(", ".join(files[:3]), "the lake's files cannot be read: "
                              f"{str(exc).splitlines()[0]}") from None

    def materialise(self, name: str, query: Query) -> None:
        """Compute ``query`` into the temp table ``name``."""
        try:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query.sql}",
                             query.params or None)
        except duckdb.Error as exc:
            raise RollupError(", ".join(self._files[:3]),
                              f"cannot be rolled up: {str(exc).splitlines()[0]}") from None

    def fetch(self, query: Query) -> pa.Table:
        """Return the result of ``query`` as an Arrow table."""
        return self.con.sql(query.sql, params=query.params or None).to_arrow_table()

    def write(self, query: Query, folder: str) -> None:
        """Write ``query``'s rows under ``folder``, Hive-partitioned by ``date``."""
        self.materialise("output", query)
        self.con.execute(f"COPY output TO {_literal(folder)} (FORMAT parquet, "
                         "PARTITION_BY (date), FILENAME_PATTERN 'part-{i}')")
        self.con.execute("DROP TABLE output")

    def close(self) -> None:
        """Close the in-memory database."""
        self.con.close()


def _literal(text: str) -> str:
    """Return ``text`` as a SQL string literal (COPY's target cannot be a parameter)."""
    return "'" + text.replace("'", "''") + "'"


def _list_literal(items: list[str]) -> str:
    return "[" + ", ".join(_literal(item) for item in items) + "]"
