"""What the tasks share: where cached results live, and which failures are worth a retry.

Results go to `Settings().results_dir`, looked up when a result is read or written rather than
when this module is imported, so a CLI option or a test that moves `FALCONER_HOME` after
import still gets its own cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect.filesystems import LocalFileSystem

from falconer_core.errors import LLMError
from falconer_core.pipeline.settings import Settings
from falconer_core.store import StoreError


class FalconerResults(LocalFileSystem):
    """Prefect result storage in the Falconer home (`FALCONER_HOME/results` by default)."""

    _block_type_name = "Falconer Result Storage"

    def _resolve_path(self, path: str) -> Path:
        if self.basepath:
            return super()._resolve_path(path)
        return LocalFileSystem(basepath=str(Settings().results_dir))._resolve_path(path)


#: The result storage of every cached task.
RESULTS = FalconerResults()

#: Waits between retries of an I/O or LLM task, in seconds.
RETRY_DELAYS = [2, 10, 30]


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass on its own: a dropped connection or timeout, an LLM endpoint that
    stayed down through the client's own retries, a store file another process holds."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    if isinstance(exc, LLMError):
        return "Gave up after" in str(exc)  # the client's wording for exhausted transient retries
    if isinstance(exc, StoreError):
        return str(exc).startswith("cannot open the store")  # locked by another process
    return False


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only transient failures; a wrong plan, a missing
    column or a bug fails at once."""
    try:
        state.result()
    except Exception as exc:  # the task's exception, re-raised by the state
        return is_transient(exc)
    return False


__all__ = ["RESULTS", "RETRY_DELAYS", "FalconerResults", "is_transient", "retry_transient"]
