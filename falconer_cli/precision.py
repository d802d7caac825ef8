"""`precision`: run the precision quality gate on a registered model version on demand, print
the verdict per precision, and tag the version with it (what `--precision auto` then obeys)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Optional

import typer

from falconer_cli.app import app, guarded
from falconer_cli.render import console, print_note, table


@app.command("precision")
@guarded
def precision(
    model: Annotated[str, typer.Argument(help="Registered model: NAME, NAME@alias or NAME/version.")],
    max_texts: Annotated[int, typer.Option("--max-texts", min=2, help="Most annotated texts to run (a seeded random subset).")] = 200,
    only: Annotated[Optional[list[str]], typer.Option("--only", help="Gate only this precision (bf16, int8); repeatable. Default: every faster one this machine runs.")] = None,
    tag: Annotated[bool, typer.Option("--tag/--no-tag", help="Record the verdicts as tags on the version.")] = True,
    store: Annotated[Optional[Path], typer.Option("--store", help="DuckDB file holding the corpus (default: FALCONER_HOME/falconer.duckdb).")] = None,
) -> None:
    """Gate the faster precisions of a registered model: each against fp32's outputs on the texts
    it was annotated on, by a paired bootstrap (cost at most 0.005 mean F1)."""
    from falconer_core.errors import ConfigError
    from falconer_core.evaluation.precision_gate import gate_metamodel, offered_precisions
    from falconer_core.metamodel.model import Metamodel
    from falconer_core.metamodel.precision import detect_capabilities
    from falconer_core.registry import Registry
    from falconer_core.registry.precision_gate import annotated_ids, record_precision_gate
    from falconer_core.settings import Settings
    from falconer_core.store import Store

    registry = Registry.from_settings()
    version = registry.resolve(model)
    ids, corpus_id = annotated_ids(registry, version)
    if not ids or corpus_id is None:
        raise ConfigError(f"{version} has no recorded annotations or corpus to run the gate on")
    with Store(store or Settings().store_path) as db:
        view = db.texts_view()
        frame = db.query(f"SELECT id, text FROM {view} WHERE corpus_id = ?", [corpus_id])
    texts = {str(i): t for i, t in zip(frame["id"], frame["text"]) if str(i) in set(ids)}
    if len(texts) < 2:
        raise ConfigError(f"the texts of {version} (corpus {corpus_id}) are not in the store; run from the home that trained it")
    chosen = sorted(texts) if len(texts) <= max_texts else sorted(random.Random(0).sample(sorted(texts), max_texts))
    caps = detect_capabilities()
    precisions = list(only) if only else offered_precisions(caps)
    print_note(f"gating {', '.join(precisions)} of {version} on {len(chosen)} texts; {caps.describe()}")
    fp32 = Metamodel.load(registry.fetch(version).path)
    gate = gate_metamodel(fp32, ids=chosen, texts={i: texts[i] for i in chosen}, plan=registry.plan_of(version),
                          precisions=precisions)
    rows = [{"precision": "fp32", "mean F1": 1.0, "delta [95% interval]": "reference",
             "s/text": f"{gate.fp32_seconds_per_text:.4f}", "verdict": "ok"}]
    rows += [{"precision": v.precision, "mean F1": round(v.f1, 4), "delta [95% interval]": f"{v.delta:+.4f} [{v.lo:+.4f}, {v.hi:+.4f}]",
              "s/text": f"{v.seconds_per_text:.4f}", "verdict": "ok" if v.passed else "refused"} for v in gate.verdicts]
    console.print(table(rows, title=f"{version}: each precision against fp32's outputs on {gate.n_texts} texts"))
    for v in gate.verdicts:
        console.print(f"{v.precision}: {v.reason}")
    if tag:
        record_precision_gate(registry, version, gate)
        print_note(f"tagged {version} with falconer.precision.<precision> = ok | refused")
