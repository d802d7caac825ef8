"""Corpora: naming one (`CorpusSource`) and reading it into a checked `id`/`text` frame."""

from falconer_core.corpus.loading import (
    ID,
    TEXT,
    CorpusSchema,
    corpus_from_frame,
    corpus_id,
    load_corpus,
    validate_frame,
)
from falconer_core.corpus.source import CorpusSource

__all__ = ["ID", "TEXT", "CorpusSchema", "CorpusSource", "corpus_from_frame", "corpus_id", "load_corpus", "validate_frame"]
