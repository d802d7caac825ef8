"""Content hashes: the identities that cache keys, run ids and lineage tags are built from."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(*parts: Any, length: int = 16) -> str:
    """Short sha256 of the canonical JSON of `parts` (key order and formatting do not count)."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]


__all__ = ["content_hash"]
