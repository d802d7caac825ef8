"""Corpora: naming one (`CorpusSource`), reading it into a checked `id`/`text` frame
(`loading`), and snapshotting it once to Parquet so later stages read only what they need
(`snapshot`)."""

from falconer_core.corpus.identity import text_hash
from falconer_core.corpus.loading import (
    ID,
    TEXT,
    CorpusSchema,
    corpus_from_frame,
    corpus_id,
    file_fingerprint,
    load_corpus,
    read_corpus_chunks,
    validate_frame,
)
from falconer_core.corpus.snapshot import ROW, TEXT_HASH, CorpusSnapshot, snapshot_corpus
from falconer_core.corpus.source import CorpusSource

__all__ = [
    "ID",
    "ROW",
    "TEXT",
    "TEXT_HASH",
    "CorpusSchema",
    "CorpusSnapshot",
    "CorpusSource",
    "corpus_from_frame",
    "corpus_id",
    "file_fingerprint",
    "load_corpus",
    "read_corpus_chunks",
    "snapshot_corpus",
    "text_hash",
    "validate_frame",
]
