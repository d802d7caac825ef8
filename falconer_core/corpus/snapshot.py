"""A corpus as a reference: one Parquet snapshot per file version, read where the work runs.

A flow never holds a whole corpus. The first time a file is used, it is streamed chunk by chunk
through the same checks as `load_corpus` into `HOME/corpora/<key>.parquet`, with a row number
and a content hash per text; later runs find the snapshot by the file's fingerprint (path,
size, modification time) and read nothing. Stages then ask the snapshot for what they need: a
row range (an execution shard), the rows of some ids (an annotation sample), the ids, or a
digest of each shard's texts (to reuse work already done on the same texts).

`corpus_id` is a hash of the ids and text hashes in order, so the same content under another
name, or a file touched but not changed, is the same corpus; an edited or appended file is a
new corpus version with a new snapshot.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from falconer_core.corpus.identity import CorpusIdentity, text_hash
from falconer_core.corpus.loading import CHUNK_ROWS, ID, TEXT, file_fingerprint, read_corpus_chunks
from falconer_core.corpus.source import CorpusSource
from falconer_core.disk import disk_errors
from falconer_core.errors import CorpusError
from falconer_core.hashing import content_hash

#: Column of the snapshot that numbers the texts 0..n-1 in file order.
ROW = "row"
#: Column of the snapshot that holds each text's content hash (md5 hex of its UTF-8 bytes).
TEXT_HASH = "text_hash"
#: Bumped when the snapshot layout changes, so old snapshots are rebuilt, never misread.
SNAPSHOT_FORMAT = 1
ROW_GROUP_ROWS = 10_000
_SHOW = 5


class CorpusSnapshot(BaseModel):
    """A snapshotted corpus: small and picklable, so it travels to workers instead of texts."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="The Parquet snapshot (columns row, id, text, text_hash, then the source's others).")
    corpus_id: str = Field(description="Content id: hash of ids and text hashes in order.")
    n_texts: int = Field(description="Texts in the corpus.")
    columns: list[str] = Field(default_factory=list, description="The source's other columns (gold labels, metadata).")
    source: str = Field(description="The file or folder it was read from.")
    name: str | None = Field(None, description="A readable name recorded with the corpus.")
    fingerprint: str = Field(description="The source file's fingerprint when it was snapshotted.")

    def read_rows(self, start: int, end: int, columns: Sequence[str] = (ID, TEXT)) -> pd.DataFrame:
        """Texts `start` to `end` (exclusive), reading only the row groups that hold them."""
        file = pq.ParquetFile(self.path)
        tables, first = [], 0
        for group in range(file.num_row_groups):
            rows = file.metadata.row_group(group).num_rows
            if first < end and first + rows > start:
                table = file.read_row_group(group, columns=list(columns))
                tables.append(table.slice(max(start - first, 0), min(end, first + rows) - max(start, first)))
            first += rows
        if not tables:
            return pd.DataFrame({c: pd.Series(dtype="str") for c in columns})
        return pa.concat_tables(tables).to_pandas()

    def rows_at(self, positions: Sequence[int]) -> pd.DataFrame:
        """The id and text of the rows at these corpus positions, in that order (a random
        sample read without loading the corpus)."""
        import duckdb

        wanted = pd.DataFrame({"wanted_row": [int(p) for p in positions], "wanted_pos": range(len(positions))})
        with duckdb.connect() as con:
            con.register("wanted", wanted)
            frame = con.execute(
                f"SELECT s.{ID}, s.{TEXT} FROM read_parquet(?) s JOIN wanted w ON s.{ROW} = w.wanted_row "
                "ORDER BY w.wanted_pos",
                [self.path],
            ).df()
        if len(frame) != len(wanted):
            raise CorpusError(f"positions outside corpus {self.corpus_id} of {self.n_texts} texts were asked for")
        return frame

    def rows_by_id(self, ids: Sequence[str]) -> pd.DataFrame:
        """The rows of `ids`, in that order, with every column (gold labels included)."""
        import duckdb

        wanted = pd.DataFrame({"wanted_id": [str(i) for i in ids], "wanted_pos": range(len(ids))})
        with duckdb.connect() as con:
            con.register("wanted", wanted)
            frame = con.execute(
                "SELECT s.* EXCLUDE (row, text_hash) FROM read_parquet(?) s "
                "JOIN wanted w ON s.id = w.wanted_id ORDER BY w.wanted_pos",
                [self.path],
            ).df()
        missing = sorted(set(wanted["wanted_id"]) - set(frame[ID]))
        if missing:
            raise CorpusError(f"ids {missing[:_SHOW]} are not in corpus {self.corpus_id} ({self.source}); re-run sampling")
        return frame

    def ids(self) -> list[str]:
        """Every id, in corpus order."""
        return pq.read_table(self.path, columns=[ID]).column(ID).to_pylist()

    def texts(self) -> list[str]:
        """Every text, in corpus order (the whole corpus in memory: small corpora and tests only)."""
        return pq.read_table(self.path, columns=[TEXT]).column(TEXT).to_pylist()

    def shard_digests(self, shard_size: int) -> list[str]:
        """One digest per shard of `shard_size` consecutive texts: of its ids and text hashes, so
        a shard whose texts did not change has the same digest in every corpus version.

        The digest is md5 of the shard's `id:text_hash` pairs joined by commas, in corpus order
        (what DuckDB's `md5(string_agg(id || ':' || text_hash, ',' ORDER BY row))` gives, the
        definition stored work keys were made with), streamed one row group at a time so a
        million texts cost one row group of memory, not the whole column."""
        import hashlib

        import pyarrow.compute as pc

        digests: list[str] = []
        current, row = None, 0
        file = pq.ParquetFile(self.path)
        for group in range(file.num_row_groups):  # one row group at a time (iter_batches reads ahead)
            table = file.read_row_group(group, columns=[ID, TEXT_HASH])
            pairs = pc.binary_join_element_wise(table.column(ID), table.column(TEXT_HASH), ":").to_pylist()
            start = 0
            while start < len(pairs):
                if row % shard_size == 0:
                    if current is not None:
                        digests.append(current.hexdigest())
                    current, lead = hashlib.md5(usedforsecurity=False), ""
                else:
                    lead = ","
                take = min(len(pairs) - start, shard_size - row % shard_size)
                current.update((lead + ",".join(pairs[start : start + take])).encode("utf-8"))
                start, row = start + take, row + take
        if current is not None:
            digests.append(current.hexdigest())
        return digests


def snapshot_corpus(source: CorpusSource, folder: str | Path, *, chunk_rows: int = CHUNK_ROWS) -> CorpusSnapshot:
    """The snapshot of `source` under `folder`, made now if this version of the file has none.

    Streams the file (bounded memory at any size), checks every chunk, then checks id
    uniqueness across the whole corpus in DuckDB. Raises `CorpusError` on bad input, leaving
    no partial snapshot behind.
    """
    path = Path(source.path)
    fingerprint = file_fingerprint(path)
    key = content_hash("snapshot", SNAPSHOT_FORMAT, str(path.resolve()), source.text_column, source.id_column, fingerprint)
    folder = Path(folder)
    target, record = folder / f"{key}.parquet", folder / f"{key}.json"
    if target.is_file() and record.is_file():
        return CorpusSnapshot.model_validate_json(record.read_text("utf-8"))
    partial = target.with_name(f".{key}.{os.getpid()}.partial")
    tmp = record.with_name(f".{key}.{os.getpid()}.json")
    # a full disk or a folder we may not write is one clear line; a corpus we cannot read is not ours to name
    with disk_errors(folder, within=folder):
        folder.mkdir(parents=True, exist_ok=True)
        try:
            n_texts, columns, corpus_id = _write(read_corpus_chunks(path, source.text_column, source.id_column, chunk_rows=chunk_rows), partial)
            _check_unique_ids(partial, str(path))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        snapshot = CorpusSnapshot(
            path=str(target.resolve()), corpus_id=corpus_id, n_texts=n_texts, columns=columns,
            source=str(path.resolve()), name=source.name, fingerprint=fingerprint,
        )
        try:
            tmp.write_text(snapshot.model_dump_json(indent=2), "utf-8")
            os.replace(tmp, record)
        finally:
            tmp.unlink(missing_ok=True)
    return snapshot


def _write(chunks: Iterator[pd.DataFrame], path: Path) -> tuple[int, list[str], str]:
    identity, writer, schema, n_texts, columns = CorpusIdentity(), None, None, 0, []
    try:
        for chunk in chunks:
            hashes = [text_hash(t) for t in chunk[TEXT]]
            identity.update(chunk[ID].tolist(), hashes)
            if writer is None:
                columns = [c for c in chunk.columns if c not in (ID, TEXT)]
            table = _as_table(chunk, hashes, n_texts, columns)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(path, schema)
            writer.write_table(table.cast(schema), row_group_size=ROW_GROUP_ROWS)
            n_texts += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return n_texts, columns, identity.hexdigest()


def _as_table(chunk: pd.DataFrame, hashes: list[str], first_row: int, columns: list[str]) -> pa.Table:
    """One chunk as snapshot columns; other columns as text (their first chunk fixes the set)."""
    extra = [c for c in chunk.columns if c not in (ID, TEXT)]
    new = sorted(set(extra) - set(columns))
    if new:
        raise CorpusError(
            f"column(s) {new} first appear at row {first_row}, after the first {first_row} rows; a corpus needs "
            "the same columns on every row (add them, empty, to the first record)"
        )
    data = {
        ROW: pa.array(range(first_row, first_row + len(chunk)), pa.int64()),
        ID: pa.array(chunk[ID].tolist(), pa.string()),
        TEXT: pa.array(chunk[TEXT].tolist(), pa.string()),
        TEXT_HASH: pa.array(hashes, pa.string()),
    }
    for column in columns:
        values = chunk[column] if column in chunk.columns else pd.Series([None] * len(chunk))
        data[column] = pa.array([_cell(v) for v in values], pa.string())
    return pa.table(data)


def _cell(value: object) -> str | None:
    """A cell as text the gold annotator reads back: JSON for lists and dicts."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, dict, tuple)):
        return json.dumps(value, ensure_ascii=False)
    if hasattr(value, "tolist"):  # numpy scalars and arrays from Parquet
        return _cell(value.tolist())
    return str(value)


#: What one DuckDB query over a snapshot may hold in memory before it spills to disk: the id
#: check and shard digests of a million texts would otherwise take hundreds of MB at peak.
DUCKDB_MEMORY = "64MB"


def bounded_duckdb(spill: Path):
    """An in-memory DuckDB connection for whole-snapshot queries, with bounded memory: one
    thread, `DUCKDB_MEMORY`, no insertion order kept, spilling under `spill` (next to the snapshot)."""
    import duckdb

    return duckdb.connect(config={
        "memory_limit": DUCKDB_MEMORY, "threads": 1, "preserve_insertion_order": False,
        "temp_directory": str(spill),
    })


def _check_unique_ids(path: Path, source: str) -> None:
    """No id twice in the whole snapshot: a GROUP BY in DuckDB under a memory cap (a Python set
    of a million ids is ~100 MB; DuckDB spills to disk instead)."""
    with bounded_duckdb(path.parent / ".duckdb-spill") as con:
        found = con.execute(
            f"SELECT {ID}, count(*) AS n FROM read_parquet(?) GROUP BY {ID} HAVING n > 1 ORDER BY min({ROW})",
            [str(path)],
        ).fetchall()
    if found:
        shown = ", ".join(f"'{i}' ×{n}" for i, n in found[:_SHOW])
        raise CorpusError(
            f"corpus {source}: {len(found)} id(s) occur more than once ({shown}"
            f"{', …' if len(found) > _SHOW else ''}); ids must be unique — fix the id "
            "column, or leave out id_column to number the rows"
        )


__all__ = ["ROW", "TEXT_HASH", "CorpusSnapshot", "snapshot_corpus"]
