"""`card` (a version's model card) and `export` (a version as a standalone MLflow model folder)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from falconer_cli.app import app, guarded
from falconer_cli.render import console


@app.command("card")
@guarded
def card(
    model: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME/version.")],
) -> None:
    """Print a version's model card (Markdown): task, lineage, scores, promotion, cost, how to load and serve."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download bar before the card
    from falconer_core.registry import Registry
    from falconer_core.registry.card import build_card, card_facts

    registry = Registry.from_settings()
    console.print(build_card(card_facts(registry, model)), markup=False, highlight=False, soft_wrap=True)


@app.command("export")
@guarded
def export(
    model: Annotated[str, typer.Argument(help="NAME, NAME@alias or NAME/version.")],
    folder: Annotated[Path, typer.Argument(help="New (or empty) folder to write the MLflow model to.")],
) -> None:
    """Write a version as an MLflow model folder: `mlflow.pyfunc.load_model(FOLDER)` or
    `mlflow models serve -m FOLDER --env-manager local` run it without Falconer's home."""
    from falconer_core.registry import Registry
    from falconer_core.serving.export import export_model

    path = export_model(Registry.from_settings(), model, folder)
    console.print(f"wrote {model} to {path}: mlflow.pyfunc.load_model({str(path)!r})", markup=False, highlight=False)
