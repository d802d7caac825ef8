"""The store's one DuckDB connection, shared by its collaborators (corpora, annotations,
outputs, runs): the lock that serialises them, transactions, and the query helpers.

A `Connection` is safe to share between threads (every call takes its reentrant lock) but
serialised; for parallel work open one `Store` per thread on the same path. DuckDB lets only one
*process* open a file for writing: a second process gets a `StoreBusyError` saying so, or, given
`wait_seconds`, waits that long for the other to let go (writers hold the file for one write).

A full disk or a refused write surfaces as a `DiskError` naming the file, never as the failed
rollback or commit DuckDB reports after it.
"""

from __future__ import annotations

import numbers
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow

from falconer_core.corpus import validate_frame
from falconer_core.disk import as_disk_error, disk_errors
from falconer_core.errors import StoreBusyError, StoreError

_NULLABLE_TYPES = {
    pyarrow.int32(): pd.Int64Dtype(),
    pyarrow.int64(): pd.Int64Dtype(),
    pyarrow.bool_(): pd.BooleanDtype(),
}

#: Pause between two tries to open a store another process holds, in seconds.
_RETRY_PAUSE = 0.25


class Connection:
    """One open DuckDB file and the lock every statement on it takes."""

    def __init__(
        self, path: Path, *, wait_seconds: float = 0.0, on_wait: Callable[[str], None] | None = None
    ) -> None:
        """Open `path`; while another process holds it, retry for up to `wait_seconds`, calling
        `on_wait` once with a line saying so (e.g. for a progress note on stderr)."""
        self.path = path
        self._con = self._open(wait_seconds, on_wait)
        self.lock = threading.RLock()

    def _open(self, wait_seconds: float, on_wait: Callable[[str], None] | None) -> duckdb.DuckDBPyConnection:
        deadline, told = time.monotonic() + max(wait_seconds, 0.0), False
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.Error as exc:
                disk = as_disk_error(exc, self.path)
                if disk is not None:
                    raise disk from exc
                if not isinstance(exc, duckdb.IOException):
                    raise
                if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                    raise StoreBusyError(
                        f"cannot open the store {self.path}: {exc}. If another Falconer process (a "
                        "flow, a worker, a notebook) has it open, stop it or point this one at another "
                        "file"
                    ) from None
                if on_wait is not None and not told:
                    on_wait(f"the store {self.path} is being written by another process; waiting up to "
                            f"{wait_seconds:g} s for it")
                    told = True
                time.sleep(_RETRY_PAUSE)

    def close(self) -> None:
        """Close the connection (idempotent); DuckDB may write its log into the file here."""
        with self.lock, disk_errors(self.path):
            self._con.close()

    def execute(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows. The result is always drained: DuckDB refuses
        further work on a connection that still holds an unfinished result."""
        with self.lock, disk_errors(self.path):
            return self._con.execute(sql, params or []).fetchall()

    def one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        """The first row of a query, or None."""
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def fetch(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """A query's result as a frame, through Arrow rather than `.df()`: nullable ints and
        bools stay nullable (not float/NaN)."""
        with self.lock, disk_errors(self.path):
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
        """All of the block lands, or none of it: a crash mid-shard leaves the previous state.
        When the commit itself fails (a full disk), DuckDB has already ended the transaction:
        the rollback then has nothing to do, and the commit's error is the one raised."""
        with self.lock, disk_errors(self.path):
            self._con.begin()
            try:
                yield
                self._con.commit()
            except BaseException:
                try:
                    self._con.rollback()
                except duckdb.Error:  # "no transaction is active": the failed commit ended it
                    pass
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
