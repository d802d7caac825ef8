"""Content hashes: the identities that cache keys, run ids, plan hashes and lineage tags are
built from. One canonical form (sorted keys, no whitespace, UTF-8) for all of them."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_hash(value: Any, length: int = 16) -> str:
    """Short sha256 of the canonical JSON of one value (key order and formatting do not count)."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


def content_hash(*parts: Any, length: int = 16) -> str:
    """Short sha256 of the canonical JSON of `parts`, taken together as one list."""
    return canonical_hash(list(parts), length)


__all__ = ["canonical_hash", "content_hash"]
