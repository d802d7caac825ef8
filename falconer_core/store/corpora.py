"""Corpora in the store: a snapshotted corpus is a row pointing at its Parquet snapshot; a
corpus given as a frame keeps its texts inline. Either way its id is a hash of ids and texts,
so a known id means the texts are already there."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from falconer_core.clock import now as _now
from falconer_core.corpus import CorpusSchema, CorpusSnapshot, corpus_id, validate_frame
from falconer_core.errors import StoreError
from falconer_core.store.connection import Connection, sql_text
from falconer_core.store.schemas import CorporaSchema


class CorpusRecords:
    """The `corpora` and `corpus_texts` tables, and the `texts` view over every corpus."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def upsert_corpus(self, corpus: pd.DataFrame, *, name: str | None = None, source: str | None = None) -> str:
        """Register a loaded corpus and its texts; returns its `corpus_id`.

        The id is a hash of the ids and texts, so a known id means the texts are already
        stored: re-registering only updates name/source and repeated runs share one record.
        """
        corpus = validate_frame(CorpusSchema, corpus, what="corpus", error=StoreError)
        cid = corpus_id(corpus)
        texts = pd.DataFrame({"corpus_id": cid, "id": corpus["id"], "text": corpus["text"]})
        with self.db.transaction():
            if self.db.exists("corpora", "corpus_id", cid):
                self.db.execute(
                    "UPDATE corpora SET name = coalesce(?, name), source = coalesce(?, source) WHERE corpus_id = ?",
                    [name, source, cid],
                )
            else:
                self.db.execute(
                    "INSERT INTO corpora (corpus_id, name, n_texts, source, created_at) VALUES (?, ?, ?, ?, ?)",
                    [cid, name, len(corpus), source, _now()],
                )
                self.db.insert_frame("corpus_texts", texts)
        return cid

    def register_corpus(self, snapshot: CorpusSnapshot) -> str:
        """Record a snapshotted corpus (its id, size and where its Parquet snapshot is); the
        texts stay in the snapshot, so a corpus version costs a row here, not a copy."""
        with self.db.transaction():
            if self.db.exists("corpora", "corpus_id", snapshot.corpus_id):
                self.db.execute(
                    "UPDATE corpora SET name = coalesce(?, name), source = coalesce(?, source), snapshot = ? "
                    "WHERE corpus_id = ?",
                    [snapshot.name, snapshot.source, snapshot.path, snapshot.corpus_id],
                )
            else:
                self.db.execute(
                    "INSERT INTO corpora (corpus_id, name, n_texts, source, created_at, snapshot) VALUES (?, ?, ?, ?, ?, ?)",
                    [snapshot.corpus_id, snapshot.name, snapshot.n_texts, snapshot.source, _now(), snapshot.path],
                )
        return snapshot.corpus_id

    def texts_view(self) -> str:
        """(Re)create the temporary view `texts` (corpus_id, id, text) over every corpus: the
        snapshots still on disk and the texts stored inline; returns its name for joins."""
        snapshots = self.db.execute("SELECT corpus_id, snapshot FROM corpora WHERE snapshot IS NOT NULL")
        parts = ["SELECT corpus_id, id, text FROM corpus_texts"]
        for cid, path in snapshots:
            if Path(path).is_file():
                parts.append(f"SELECT '{sql_text(cid)}' AS corpus_id, id, text FROM read_parquet('{sql_text(path)}')")
        self.db.execute("CREATE OR REPLACE TEMP VIEW texts AS " + " UNION ALL ".join(parts))
        return "texts"

    def corpora(self) -> pd.DataFrame:
        """Every registered corpus, newest first."""
        return self.db.read(CorporaSchema, "SELECT * FROM corpora ORDER BY created_at DESC", [], "corpora")

    def corpus_texts(self, corpus_id: str) -> pd.DataFrame:
        """The `id`/`text` frame of a registered corpus, in its original order."""
        if not self.db.exists("corpora", "corpus_id", corpus_id):
            raise StoreError(f"no corpus {corpus_id!r} in {self.db.path}; register it with upsert_corpus")
        return self.db.read(
            CorpusSchema, "SELECT id, text FROM corpus_texts WHERE corpus_id = ? ORDER BY rowid", [corpus_id],
            f"corpus {corpus_id}",
        )


__all__ = ["CorpusRecords"]
