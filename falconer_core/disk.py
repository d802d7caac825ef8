"""A full disk or a refused write under Falconer's state, wherever it happens (the DuckDB store,
MLflow, a checkpoint, a corpus snapshot, shard parts), as one `DiskError` line that names the
path, the space left on its disk and the fix, instead of whatever the library in between made
of it (a failed rollback, "database or disk is full", an artifact "path" that looks wrong).

Libraries wrap the `OSError` differently: some chain it, some only keep its text (DuckDB's
`Could not write file "…": No space left on device`). `as_disk_error` looks at both, through the
whole chain of causes.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from falconer_core.errors import DiskError, FalconerError

Problem = Literal["space", "permission"]

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_NO_SPACE_TEXT = ("no space left on device", "database or disk is full", "disk quota exceeded")
_DENIED_TEXT = ("permission denied", "read-only file system")
_QUOTED_PATH = re.compile(r"[\"']((?:/|[A-Za-z]:\\)[^\"']+)[\"']")


def as_disk_error(
    exc: BaseException, path: str | os.PathLike | None = None, *, within: str | os.PathLike | None = None,
) -> DiskError | None:
    """`exc` as a `DiskError` when it (or anything in its chain of causes) is a full disk or a
    refused write; `path` names the place when the error itself does not. With `within`, an
    error that names a path outside that folder (a corpus file that cannot be read) is not one.
    None otherwise."""
    for link in _chain(exc):
        if isinstance(link, DiskError):
            return link
    found = disk_problem(exc)
    if found is None:
        return None
    problem, where = found
    if where and within is not None and not _is_within(where, within):
        return None
    return disk_error(problem, where or path)


def disk_problem(exc: BaseException) -> tuple[Problem, str | None] | None:
    """Whether `exc` or a cause of it is a full disk or a refused write, and the path it names."""
    for link in _chain(exc):
        found = _problem(link)
        if found is not None:
            return found
    return None


def disk_error(problem: Problem, path: str | os.PathLike | None) -> DiskError:
    """The one-line error for `problem` at `path`: the path, its disk's free space, the fix."""
    where = Path(path) if path is not None else _home()
    move = "move Falconer's state elsewhere (--home / FALCONER_HOME)"
    resume = "then run the same command again: it resumes where it stopped"
    if problem == "space":
        return DiskError(
            f"no space left on device writing {where} ({free_space(where)} free there); free space on that "
            f"disk or {move}, {resume}"
        )
    return DiskError(f"permission denied writing {where}; make it writable for this user or {move}, {resume}")


@contextmanager
def disk_errors(path: str | os.PathLike | None = None, *, within: str | os.PathLike | None = None) -> Iterator[None]:
    """Turn a full disk or a refused write inside the block into a `DiskError` about `path`
    (or the path the error names; `within` as in `as_disk_error`); every other error, and
    Falconer's own, pass unchanged."""
    try:
        yield
    except FalconerError:
        raise
    except Exception as exc:
        found = as_disk_error(exc, path, within=within)
        if found is None:
            raise
        raise found from exc


def free_space(path: str | os.PathLike) -> str:
    """Free space on the disk holding `path` (or its nearest existing folder), readable."""
    where = Path(path).expanduser().absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return "unknown space"
    for unit in ("bytes", "KB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    return f"{free:.1f} TB"  # pragma: no cover (the loop returns at GB)


def _problem(exc: BaseException) -> tuple[Problem, str | None] | None:
    """Whether one exception is a full disk or a refused write, and the path it names."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE | _DENIED:
        problem: Problem = "space" if exc.errno in _NO_SPACE else "permission"
        return problem, os.fsdecode(exc.filename) if exc.filename else _quoted_path(str(exc))
    text = str(exc).lower()
    if any(t in text for t in _NO_SPACE_TEXT):
        return "space", _quoted_path(str(exc))
    # "permission denied" from an HTTP server is not a disk: only trust it from file I/O
    if any(t in text for t in _DENIED_TEXT) and (isinstance(exc, OSError) or "io error" in text or "[errno" in text):
        return "permission", _quoted_path(str(exc))
    return None


def _is_within(path: str, folder: str | os.PathLike) -> bool:
    return Path(path).absolute().is_relative_to(Path(folder).absolute())


def _quoted_path(text: str) -> str | None:
    found = _QUOTED_PATH.search(text)
    return found.group(1) if found else None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its causes and contexts, each once."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        link = todo.pop(0)
        if id(link) in seen:
            continue
        seen.add(id(link))
        yield link
        todo += [e for e in (link.__cause__, link.__context__) if e is not None]


def _home() -> Path:
    from falconer_core.settings import Settings

    return Settings().home


__all__ = ["as_disk_error", "disk_error", "disk_errors", "disk_problem", "free_space"]
