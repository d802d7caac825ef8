"""A response cache on disk so that re-running a plan or an annotation costs nothing.

One JSON file per request, named by the SHA-256 of what determines the answer (endpoint,
model, messages, schema, generation parameters): two servers that serve one model name with
different weights never share answers. Files are written atomically, so concurrent threads
or processes at worst compute the same answer twice. Only the parsed answer and its token
counts are stored: never headers, base URLs (they enter the key only hashed) or keys.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def cache_key(model: str, messages: list[dict[str, Any]], schema: Mapping[str, Any] | None,
              params: Mapping[str, Any] | None = None, *, endpoint: str) -> str:
    """SHA-256 hex digest of a canonical JSON of the request's content and where it is sent."""
    payload = {
        "endpoint": endpoint, "model": model, "messages": messages, "schema": schema, "params": dict(params or {}),
    }
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class ResponseCache:
    """Parsed LLM answers on disk, one file per key under `folder/ab/abcdef….json`."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"ResponseCache({str(self.folder)!r})"

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored entry, or None when absent or unreadable (a torn file is a miss)."""
        path = self._path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return entry if isinstance(entry, dict) and "value" in entry else None

    def put(self, key: str, value: Any, *, model: str, prompt_tokens: int = 0,
            completion_tokens: int = 0) -> None:
        """Store a parsed answer atomically (write a temp file, then rename)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "model": model,
            "value": value,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle, ensure_ascii=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
