"""What the tasks share: where cached results live, what every cache key includes, and which
failures are worth a retry.

Results go to `Settings().results_dir`, looked up when a result is read or written rather than
when this module is imported, so a CLI option or a test that moves `FALCONER_HOME` after
import still gets its own cache.

A task here is a thin wrapper: the code that decides its result (training, decoding, prompts,
grounding) lives in `falconer_core`. Prefect's `TASK_SOURCE` hashes only the wrapper, so every
cached task also keys on `CODE`, which adds a fingerprint of the whole core library: a fix
there invalidates the checkpoints and annotations made before it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
from pathlib import Path
from typing import Any

from prefect.cache_policies import TASK_SOURCE, CacheKeyFnPolicy

import falconer_core
from falconer_core.errors import TransientError
from falconer_core.hashing import content_hash
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


def source_fingerprint(root: Path) -> str:
    """SHA-256 over every file under `root` (its relative path and bytes), bytecode excluded."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def core_fingerprint() -> str:
    """The installed version and a source hash of `falconer_core`, computed once per process."""
    try:
        version = importlib.metadata.version("falconer")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        version = "unknown"
    return content_hash("falconer_core", version, source_fingerprint(Path(falconer_core.__file__).parent))


def _core_key(context: Any, parameters: dict[str, Any]) -> str:
    return core_fingerprint()


#: What every cached task's key includes besides its inputs: its own source and the core library's.
CODE = TASK_SOURCE + CacheKeyFnPolicy(cache_key_fn=_core_key)


def is_transient(exc: BaseException) -> bool:
    """A failure that may pass on its own: a dropped connection or timeout, an LLM endpoint that
    stayed down through the client's own retries, a store file another process holds."""
    return isinstance(exc, (ConnectionError, TimeoutError, TransientError))


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect `retry_condition_fn`: retry only transient failures; a wrong plan, a missing
    column or a bug fails at once."""
    exc = state.result(raise_on_failure=False)  # the task's exception, not raised here
    return isinstance(exc, BaseException) and is_transient(exc)


__all__ = [
    "CODE",
    "RESULTS",
    "RETRY_DELAYS",
    "ResultsDir",
    "core_fingerprint",
    "is_transient",
    "retry_transient",
    "source_fingerprint",
]
