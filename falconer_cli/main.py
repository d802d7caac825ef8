"""`falconer` commands. Heavy imports (torch, Prefect, MLflow) happen inside each command so
that `falconer --help` answers at once.

Commands live by role: `pipeline` (plan, mine, execute, evaluate, demo), `inspect` (outputs,
lineage), `server` (serve, deploy); importing them here registers them on `app`. Measuring the
metamodel itself is the benchmarks' job (benchmarks/fewshot.py), not a command's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from falconer_cli import drift, inspect, pipeline, precision, server, serving  # noqa: F401, I001  (registers the commands, in this order)
from falconer_cli.app import app


@app.callback()
def main_options(
    home: Annotated[Optional[Path], typer.Option("--home", envvar="FALCONER_HOME", help="Folder for Falconer's state: DuckDB store, MLflow registry, checkpoints, caches (default: ./.falconer).")] = None,
) -> None:
    """Instruction-driven knowledge mining: an LLM plans and annotates a sample, a small metamodel learns it and mines the whole corpus."""
    if home is not None:
        os.environ["FALCONER_HOME"] = str(home)


def main() -> None:
    """Entry point for `python -m falconer_cli.main`."""
    app()


if __name__ == "__main__":
    main()
