"""Shard parts: the Parquet file a worker writes with one shard's output rows, for the flow to
commit into DuckDB. Workers never open the store (DuckDB has one writer); a part appears under
its final name only when complete (written aside, then renamed), so a crash mid-write leaves no
half part. The run folder may be a local path or any fsspec URL all workers can reach.
"""

from __future__ import annotations

import uuid

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from falconer_core.errors import StoreError
from falconer_core.store.schemas import normalise_outputs

#: The Arrow schema of a part: the outputs table's columns but `created_at` (set at commit).
PART_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("shard", pa.int64()), ("text_id", pa.string()), ("field", pa.string()),
    ("value", pa.string()), ("span_start", pa.int64()), ("span_end", pa.int64()), ("confidence", pa.float64()),
    ("model_version", pa.string()), ("plan_hash", pa.string()), ("step", pa.string()), ("source", pa.string()),
    ("in_band", pa.bool_()),
])


def part_url(run_folder: str, run_id: str, shard: int) -> str:
    """Where the part of `shard` lives."""
    return f"{run_folder.rstrip('/')}/{run_id}/part-{shard:06d}.parquet"


def check_run_folder(run_folder: str) -> None:
    """Fail before any work when the run folder cannot take parts (unwritable, not a folder)."""
    try:
        fs, root = fsspec.core.url_to_fs(run_folder)
        fs.makedirs(root, exist_ok=True)
        probe = f"{root.rstrip('/')}/.probe-{uuid.uuid4().hex}"
        with fs.open(probe, "wb") as handle:
            handle.write(b"ok")
        fs.rm(probe)
    except (OSError, ValueError) as exc:
        raise StoreError(
            f"the run folder {run_folder} cannot hold shard parts ({type(exc).__name__}: {exc}); "
            "point --run-folder (FALCONER_HOME) at a writable folder or URL with free space"
        ) from None


def write_part(rows: pd.DataFrame, run_folder: str, run_id: str, shard: int) -> str:
    """Validate one shard's rows and write them as its part, atomically; returns its URL."""
    frame = normalise_outputs(rows, run_id, shard)
    table = pa.Table.from_pandas(frame[[f.name for f in PART_SCHEMA]], schema=PART_SCHEMA, preserve_index=False)
    url = part_url(run_folder, run_id, shard)
    fs, path = fsspec.core.url_to_fs(url)
    aside = f"{path}.{uuid.uuid4().hex}.partial"
    try:
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(aside, "wb") as handle:
            pq.write_table(table, handle)
        fs.mv(aside, path)
    except OSError as exc:
        try:
            fs.rm(aside)
        except OSError:
            pass
        raise StoreError(
            f"cannot write the part of shard {shard} to {url} ({type(exc).__name__}: {exc}); free space "
            "or point the run folder elsewhere, then run again to resume"
        ) from None
    return url


def read_part(url: str) -> pa.Table:
    """A part back as an Arrow table (for the flow to commit)."""
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(path, "rb") as handle:
        return pq.read_table(handle, schema=PART_SCHEMA)


def remove_part(url: str) -> None:
    """Delete a committed part (its rows are in the store now)."""
    fs, path = fsspec.core.url_to_fs(url)
    fs.rm(path)


__all__ = ["PART_SCHEMA", "check_run_folder", "part_url", "read_part", "remove_part", "write_part"]
