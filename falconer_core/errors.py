"""One small exception family: each says what was wrong and how to fix it.

Details travel in the constructor (`PlanError(message, problems=[...])`), never set on the
exception afterwards. Whether a failure is worth retrying is a matter of type: everything that
may pass on its own derives from `TransientError`, so a retry policy asks `isinstance`, never
what the message says.
"""

from __future__ import annotations

from collections.abc import Sequence


class FalconerError(Exception):
    """Base of every error Falconer raises on purpose."""

    def __init__(self, message: str, *, problems: Sequence[str] = ()) -> None:
        super().__init__(message)
        #: The individual problems behind the message (e.g. every schema violation of a plan).
        self.problems: list[str] = [str(p) for p in problems] or [message]


class TransientError(FalconerError):
    """A failure that may pass on its own (an endpoint down, a file held by another process):
    the only kind a retry policy retries."""


class ConfigError(FalconerError, ValueError):
    """A setting, model path or argument is invalid."""


class CorpusError(FalconerError, ValueError):
    """A corpus cannot be read: missing file or column, empty, duplicate ids, bad bytes."""


class PlanError(FalconerError, ValueError):
    """A plan does not validate against the schema (or an LLM could not produce one that does)."""


class LLMError(FalconerError, RuntimeError):
    """An LLM call failed after its retries, or returned output that does not parse."""


class TransientLLMError(LLMError, TransientError):
    """The endpoint stayed unreachable, rate-limited or failing (timeouts, 429, 5xx) through the
    client's own retries; a later attempt may succeed."""


class ModelError(FalconerError, RuntimeError):
    """A metamodel checkpoint cannot be loaded, trained or run."""


class StoreError(FalconerError, ValueError):
    """The DuckDB store cannot be opened, or a frame does not fit its schema."""


class StoreBusyError(StoreError, TransientError):
    """Another process holds the store file open for writing; it is free again once that ends."""


class DiskError(FalconerError, RuntimeError):
    """A write under Falconer's state failed for lack of space or permission. It does not pass
    on its own (never retried): free space or move the state, then the same command resumes."""


__all__ = [
    "ConfigError",
    "CorpusError",
    "DiskError",
    "FalconerError",
    "LLMError",
    "ModelError",
    "PlanError",
    "StoreBusyError",
    "StoreError",
    "TransientError",
    "TransientLLMError",
]
