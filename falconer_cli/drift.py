"""`drift`: does a corpus still look like the texts a registered model was gated on? Runs the
model on a seeded sample of the corpus and compares its confidences with the version's drift
reference, without LLM calls."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from falconer_cli.app import app, guarded
from falconer_cli.pipeline import IdColumnOpt, TextColumnOpt
from falconer_cli.render import console, print_note, table


@app.command("drift")
@guarded
def drift(
    model: Annotated[str, typer.Argument(help="Registered model: NAME, NAME@alias or NAME/version.")],
    corpus: Annotated[Path, typer.Option("--corpus", help="CSV, TSV, JSONL or Parquet file, or a folder of .txt files.")],
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    sample: Annotated[int, typer.Option("--sample", min=1, help="Texts to run the model on (a seeded random draw).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the draw.")] = 0,
) -> None:
    """Compare the model's confidences on a corpus sample with those on its held-out texts: per
    step the share judged true, the share in the uncertain band, a KS test, and the agreement
    with the LLM estimated from the confidences. Prints "no drift" or "drift detected"."""
    from falconer_core.corpus import load_corpus
    from falconer_core.drift import drift_report, measure_confidences
    from falconer_core.drift.reference import DriftSettings
    from falconer_core.errors import ConfigError
    from falconer_core.metamodel.model import Metamodel
    from falconer_core.registry import Registry
    from falconer_core.registry.drift import read_reference

    registry = Registry.from_settings()
    version = registry.resolve(model)
    reference = read_reference(registry, version)
    if reference is None:
        raise ConfigError(f"{version} has no drift reference (registered before drift existed); re-register it to record one")
    plan = registry.plan_of(version)
    if plan.hash != reference.plan_hash:
        raise ConfigError(f"the drift reference of {version} was measured for another plan ({reference.plan_hash}, "
                          f"not {plan.hash}); re-register it to record one")
    frame = load_corpus(corpus, text_column, id_column)
    texts = sample_texts(list(frame["text"]), sample, seed)
    print_note(f"running {version} on {len(texts):,} of {len(frame):,} texts of {corpus.name}")
    measured, _ = measure_confidences(Metamodel.load(registry.fetch(version).path), plan, texts)
    settings = DriftSettings(**{**reference.settings.model_dump(), "sample": sample, "seed": seed})
    report = drift_report(reference, measured, settings)
    console.print(table(report.rows(), title=f"{version} on {report.n_texts:,} texts against its "
                                             f"{reference.n_texts} held-out texts"))
    console.print(f"filter pass rate: {report.pass_rate_reference:.3f} (reference) -> {report.pass_rate:.3f}; "
                  f"KS threshold p < {report.threshold:.3g} (alpha {report.alpha} over {len(report.steps)} steps)")
    console.print(f"{version}: {report.verdict}")


def sample_texts(texts: list[str], n: int, seed: int) -> list[str]:
    """A seeded draw of `n` texts (all of them, in order, when there are no more)."""
    import random

    if len(texts) <= n:
        return texts
    return [texts[i] for i in sorted(random.Random(seed).sample(range(len(texts)), n))]
