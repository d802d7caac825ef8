"""`incubate`: plan → sample → annotate → fine-tune → evaluate → register. The result is a
registered metamodel version for the plan, promoted to that plan's champion if it meets the
absolute gate and is not worse than the plan's current champion on the same held-out texts.
The held-out texts come from a sample the starting model may have stratified, so every
estimate weights them by their inverse inclusion probability. With `active.rounds` above one,
the sample grows in rounds (a drawn first batch, then batches chosen by the re-tuned model's
uncertainty) until the held-out score clears the gate with its interval, or the budget is spent;
held-out texts come from the drawn first batch only, and a learning-curve artifact records
each round."""

from __future__ import annotations

from prefect import flow

import tasks
from falconer_core.annotators import AnnotatorChoice
from falconer_core.corpus import CorpusSource
from falconer_core.llm import LLMChoice
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.reporting import IncubationResult
from falconer_core.sampling import SamplingSettings, sample_size
from falconer_core.sampling.active import (
    ActiveSettings,
    batch_sizes,
    first_round_holdout,
    gate_cleared,
    learning_curve_row,
)
from falconer_core.settings import Settings
from falconer_core.training import HoldoutSettings, TrainingSettings
from flows import parameters as p
from flows.artifacts import publish_learning_curve, publish_plan, publish_sample, publish_scores
from flows.plans import choose_plan


@flow(name="incubate", validate_parameters=True)
def incubate(
    corpus: CorpusSource = p.corpus(),
    instruction: str | None = p.instruction(),
    plan: Plan | str | None = p.plan(),
    annotator: AnnotatorChoice = p.annotator(),
    planner: LLMChoice = p.planner(),
    base_model: str | None = p.base_model(),
    parent: str | None = p.parent(),
    model_name: str | None = p.model_name(),
    sampling: SamplingSettings = p.sampling(),
    training: TrainingSettings = p.training(),
    holdout: HoldoutSettings = p.holdout(),
    active: ActiveSettings = p.active(),
    gate: dict[str, float] = p.gate(),
) -> IncubationResult:
    """Grow a metamodel for one task: `plan` (else the planner plans `instruction`), fine-tuned
    from `parent` (else `base_model`), registered under `model_name`; annotated in `active`
    rounds when more than one."""
    settings = Settings()
    snapshot = tasks.snapshot(corpus)
    corpus_id = tasks.store_corpus(snapshot)
    chosen = choose_plan(plan, instruction, planner)
    publish_plan(chosen)
    start = tasks.fetch_model(parent) if parent else ModelSource.base(base_model or settings.base_model)
    sizes = batch_sizes(sample_size(snapshot.n_texts, sampling.fraction, sampling.floor, sampling.cap), active)
    first = sampling if len(sizes) == 1 else sampling.model_copy(update={"floor": sizes[0], "cap": sizes[0]})
    picked = tasks.sample(snapshot, chosen, first, start)
    heldout_from = list(map(str, picked.ids)) if len(sizes) > 1 else None  # held out: random texts only
    split = first_round_holdout(holdout, active)
    unlabeled = snapshot if training.unlabeled else None
    curve: list[dict] = []
    for round_ in range(1, len(sizes) + 1):
        annotations = tasks.annotate(chosen, snapshot, picked, annotator)
        checkpoint = tasks.fine_tune(annotations, start, training, split, unlabeled, heldout_from)
        weights = picked.weights(checkpoint.heldout_ids)
        evaluation = tasks.evaluate(checkpoint.source, annotations, checkpoint.heldout_ids, weights)
        curve.append(learning_curve_row(round_, annotations.size, len(checkpoint.train_ids), evaluation.metrics()))
        if round_ == len(sizes) or gate_cleared(evaluation.metrics(), gate):
            break
        grown = tasks.grow_sample(snapshot, chosen, checkpoint.source, picked, sizes[round_], active, round_ + 1)
        if len(grown.ids) == len(picked.ids):  # nothing left to annotate
            break
        picked = grown
    tasks.store_annotations(annotations)
    publish_sample(annotations)
    publish_scores(evaluation, f"Proxy vs {annotations.annotator} on {evaluation.n_texts} held-out texts")
    if len(sizes) > 1:
        publish_learning_curve(curve, chosen)
    name = model_name or settings.model_name
    champion = tasks.fetch_champion(name, chosen.hash)
    rival = tasks.evaluate(champion, annotations, checkpoint.heldout_ids, weights) if champion else None
    registered = tasks.register(
        checkpoint, annotations, evaluation, corpus_id, gate, name, rival, champion.version if champion else None
    )
    return IncubationResult(
        model_version=registered.version, champion=registered.champion, promotion=registered.reasons,
        checkpoint=checkpoint.path, base_model=checkpoint.base_model, parent=checkpoint.parent, plan=chosen,
        corpus_id=corpus_id, annotator=annotations.annotator, annotation_set_hash=annotations.hash,
        n_annotations=annotations.size, evaluation=evaluation, annotation_seconds=annotations.seconds,
        annotation_usage=annotations.usage, fine_tune_seconds=float(checkpoint.summary["seconds"]),
        learning_curve=curve,
    )
