"""What makes two corpora the same: their ids and the content hashes of their texts, in order.

The same definition serves an in-memory frame (`corpus_id`) and a streamed snapshot, so a
sample's cache key and a run's corpus id agree on what "the same texts" means.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def text_hash(text: str) -> str:
    """The content hash of one text, as the snapshot stores it."""
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class CorpusIdentity:
    """Builds a `corpus_id` from (id, text hash) pairs in order, incrementally."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    def update(self, ids: Sequence[str], hashes: Sequence[str]) -> None:
        for value in (part for pair in zip(ids, hashes, strict=True) for part in pair):
            data = value.encode("utf-8")
            self._digest.update(len(data).to_bytes(8, "little"))
            self._digest.update(data)

    def hexdigest(self) -> str:
        return self._digest.hexdigest()[:16]


__all__ = ["CorpusIdentity", "text_hash"]
