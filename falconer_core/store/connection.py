"""The store's one DuckDB connection, shared by its collaborators (corpora, annotations,
outputs, runs): the lock that serialises them, transactions, and the query helpers.

A `Connection` is safe to share between threads (every call takes its reentrant lock) but
serialised; for parallel work open one `Store` per thread on the same path. DuckDB lets only one
*process* open a file for writing: a second process gets a `StoreBusyError` saying so.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow

from falconer_core.corpus import validate_frame
from falconer_core.errors import StoreBusyError, StoreError

_NULLABLE_TYPES = {
    pyarrow.int32(): pd.Int64Dtype(),
    pyarrow.int64(): pd.Int64Dtype(),
    pyarrow.bool_(): pd.BooleanDtype(),
}




class Connection:
    """One open DuckDB file and the lock every statement on it takes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise StoreBusyError(
                f"cannot open the store {path}: {exc}. If another Falconer process (a "
                "flow, a worker, a notebook) has it open, stop it or point this one at another "
                "file"
            ) from None
        self.lock = threading.RLock()

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self.lock:
            self._con.close()

    def execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows. The result is always drained: DuckDB refuses
        further work on a connection that still holds an unfinished result."""
        with self.lock:
            return self._con.execute(sql, params or []).fetchall()

    def one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def fetch(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """A query's result as a frame, through Arrow rather than `.df()`: nullable ints and
        bools stay nullable (not float/NaN)."""
        with self.lock:
            table = self._con.sql(sql, params=params or []).to_arrow_table()
        return table.to_pandas(types_mapper=_NULLABLE_TYPES.get)

    def read(self, schema: pa.DataFrameSchema, sql: str, params: list[Any], what: str) -> pd.DataFrame:
        """A query's result, validated against a table's schema."""
        return validate_frame(schema, self.fetch(sql, params), what=what, error=StoreError)

    def exists(self, table: str, key: str, value: str) -> bool:
        """Whether `table` has a row whose `key` is `value`."""
        return self.one(f"SELECT 1 FROM {table} WHERE {key} = ? LIMIT 1", [value]) is not None

    @contextmanager
    def registered(self, name: str, data: Any) -> Iterator[str]:
        """A frame or Arrow table visible to SQL as `name` for the block: DuckDB reads its
        columns directly (no per-row Python), which keeps big inserts cheap."""
        with self.lock:
            self._con.register(name, data)
            try:
                yield name
            finally:
                self._con.unregister(name)

    def insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        """Insert a frame's rows into `table` (columns by name)."""
        with self.registered(f"_falconer_{table}_frame", frame) as name:
            cols = quoted(frame.columns)
            self.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All of the block lands, or none of it: a crash mid-shard leaves the previous state."""
        with self.lock:
            self._con.begin()
            try:
                yield
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise


def quoted(columns: Iterable[str]) -> str:
    """Column names as a quoted SQL list."""
    return ", ".join(f'"{c}"' for c in columns)


def sql_text(value: str) -> str:
    """A value for a single-quoted SQL literal (paths and ids we wrote ourselves)."""
    return str(value).replace("'", "''")


def where(filters: Mapping[str, object]) -> tuple[str, list[Any]]:
    """A WHERE clause over the filters that are set, and its parameters."""
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f'"{k}" = ?' for k in used), list(used.values())


def shard_number(shard: object) -> int:
    """A shard number as a plain int, refused when it is not a non-negative integer."""
    if isinstance(shard, bool) or not isinstance(shard, numbers.Integral) or shard < 0:
        raise StoreError(f"shard must be a non-negative int, got {shard!r}")
    return int(shard)


__all__ = ["Connection", "quoted", "shard_number", "sql_text", "where"]
