"""`falconer` commands. Heavy imports (torch, Prefect, MLflow) happen inside each command so
that `falconer --help` answers at once.

Commands live by role: `pipeline` (plan, mine, execute, evaluate, demo), `inspect` (outputs,
lineage), `server` (serve, deploy); importing them here registers them on `app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from falconer_cli import inspect, pipeline, server, serving  # noqa: F401, I001  (registers the commands, in this order)
from falconer_cli.app import app, guarded


@app.callback()
def main_options(
    home: Annotated[Optional[Path], typer.Option("--home", envvar="FALCONER_HOME", help="Folder for Falconer's state: DuckDB store, MLflow registry, checkpoints, caches (default: ./.falconer).")] = None,
) -> None:
    """Instruction-driven knowledge mining: an LLM plans and annotates a sample, a small metamodel learns it and mines the whole corpus."""
    if home is not None:
        os.environ["FALCONER_HOME"] = str(home)


@app.command("metamodel-demo")
@guarded
def metamodel_demo(
    dataset: str = typer.Option("btc-per", help="bc2gm, btc-per, btc-loc or btc-org (from ../shared/data)"),
    train_size: int = typer.Option(256, help="gold sentences to fine-tune on"),
    test_size: int = typer.Option(500, help="held-out sentences to extract from"),
    seed: int = typer.Option(0),
) -> None:
    """Fine-tune the packaged metamodel on a gold sample, extract from held-out text, print F1."""
    import random
    import time

    from falconer_cli.render import console
    from falconer_core.evaluation import word_f1
    from falconer_core.metamodel import Metamodel
    from falconer_core.readers import load_split

    train = load_split(dataset, "train")
    test = load_split(dataset, "test")
    train = random.Random(seed).sample(train, min(train_size, len(train)))
    test = random.Random(seed + 1).sample(test, min(test_size, len(test)))
    instruction = test[0].instruction
    console.print(f"[bold]{dataset}[/]: fine-tuning on {len(train)} sentences — instruction: {instruction!r}")
    model = Metamodel.from_base(seed=seed)
    started = time.perf_counter()
    summary = model.fine_tune(train, seed=seed)
    console.print(f"fine-tuned in {time.perf_counter() - started:.0f} s ({summary.epochs_run} epochs, kept {summary.best_epoch})")
    texts = [e.text for e in test]
    predicted = model.get_span(texts, instruction)
    scores = word_f1(predicted, [list(e.spans) for e in test], texts)
    for text, spans in list(zip(texts, predicted))[:5]:
        console.print(f"  {text[:90]!r} → {[s.text for s in spans]}", markup=False)
    console.print(f"[bold green]word-level F1 on {len(test)} held-out sentences: {scores['f1']:.3f}[/] "
                  f"(P {scores['precision']:.3f}, R {scores['recall']:.3f})")


def main() -> None:
    """Entry point for `python -m falconer_cli.main`."""
    app()


if __name__ == "__main__":
    main()
