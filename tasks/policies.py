"""What the tasks share: where cached results live, and which failures are worth a retry.

Results go to `Settings().results_dir`, looked up when a result is read or written rather than
when this module is imported, so a CLI option or a test that moves `FALCONER_HOME` after
import still gets its own cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from falconer_core.errors import TransientError
from falconer_core.settings import Settings


class ResultsDir(type(Path())):  # the concrete PosixPath/WindowsPath class
    """A path that means `Settings().results_dir` at the moment it is used.

    Prefect takes task result storage as a `Path` (or a block saved on the server) and turns
    it into a local file system when a task runs; reading the setting then, not at import,
    lets `FALCONER_HOME` change after `tasks` was imported (CLI options, tests).
    """

    def __str__(self) -> str:
        return str(Settings().results_dir.expanduser().resolve())

    __fspath__ = __str__

    def __repr__(self) -> str:
        return f"ResultsDir({str(self)!r})"


#: The result storage of every cached task.
RESULTS = ResultsDir("falconer-results")

#: Waits between retries of an I/O or LLM task, in seconds.
RETRY_DELAYS = [2, 10, 30]


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass on its own: a dropped connection or timeout, an LLM endpoint that
    stayed down through the client's own retries, a store file another process holds."""
    return isinstance(exc, (ConnectionError, TimeoutError, TransientError))


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only transient failures; a wrong plan, a missing
    column or a bug fails at once."""
    exc = state.result(raise_on_failure=False)  # the task's exception, not raised here
    return isinstance(exc, BaseException) and is_transient(exc)


__all__ = ["RESULTS", "RETRY_DELAYS", "ResultsDir", "is_transient", "retry_transient"]
