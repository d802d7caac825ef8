"""The typer application every command module registers on, and the guard that turns
Falconer's own errors into one clean line and exit code 2 instead of a traceback."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The temporary Prefect server a flow starts can take longer than Prefect's default 20 s on a
# busy two-core machine; waiting longer beats failing the whole run.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
# Falconer runs offline by default: telemetry would only fail and print errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Fine-tuning reports each epoch on this logger; Prefect shows it beside the task logs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "falconer_core")
# ... and outside a flow run (e.g. `falconer plan`) those lines stay local, without a warning.
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")

#: Exit code of a command that failed on bad input or state (a FalconerError), as opposed to
#: 1 for a failed run and anything else for a bug.
USER_ERROR = 2

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
    help="Instruction-driven knowledge mining: an LLM plans and annotates a sample, a small "
    "metamodel learns it and mines the whole corpus.",
)

F = TypeVar("F", bound=Callable[..., Any])


def guarded(command: F) -> F:
    """Run `command`; a `FalconerError` (or a rejected parameter model, or a full disk or a
    refused write under the home wherever a library reported it) prints `error: …` on stderr
    and exits with code 2. Anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        from falconer_core.errors import FalconerError

        try:
            return command(*args, **kwargs)
        except FalconerError as exc:
            _fail(str(exc))
        except Exception as exc:
            if _is_validation_error(exc):
                _fail(_validation_message(exc))
            from falconer_core.disk import as_disk_error

            disk = as_disk_error(exc)
            if disk is not None:
                _fail(str(disk))
            raise

    return run  # type: ignore[return-value]


def _fail(message: str) -> None:
    from falconer_cli.render import print_error

    print_error(message)
    raise typer.Exit(USER_ERROR)


def _is_validation_error(exc: Exception) -> bool:
    return type(exc).__name__ == "ValidationError" and type(exc).__module__.startswith("pydantic")


def _validation_message(exc: Exception) -> str:
    """pydantic's errors as one line per problem: `field: message`."""
    problems = []
    for error in exc.errors():  # type: ignore[attr-defined]
        where = ".".join(str(p) for p in error.get("loc", ())) or "value"
        problems.append(f"{where}: {error.get('msg')}")
    return "invalid parameters: " + "; ".join(problems)
