"""`incubate`: plan → sample → annotate → fine-tune → evaluate → register. The result is a
registered metamodel version for the plan, promoted to that plan's champion if it meets the
absolute gate and is not worse than the plan's current champion on the same held-out texts.
The held-out texts come from a sample the starting model may have stratified, so every
estimate weights them by their inverse inclusion probability. With `incubation.active.rounds`
above one, the sample grows in rounds (a drawn first batch, then batches chosen by the
re-tuned model's uncertainty) until the held-out score clears the gate with its interval, or
the budget is spent; held-out texts come from the drawn first batch only, and a learning-curve
artifact records each round. `falconer_core.sampling.rounds.Rounds` decides between rounds.

Started from a parent, the fine-tune also replays a capped sample of every earlier task in the
parent's lineage (`training.replay`), and the new version is gated on each of those tasks too:
it becomes an earlier task's champion unless it is worse there than that task's champion."""

from __future__ import annotations

from typing import NamedTuple

from prefect import flow

import tasks
from falconer_core.annotators import AnnotationSet, AnnotatorChoice
from falconer_core.corpus import CorpusSnapshot, CorpusSource
from falconer_core.evaluation import Evaluation
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry import Registration
from falconer_core.registry.registration import AncestorScores
from falconer_core.reporting import IncubationResult
from falconer_core.sampling import AnnotationSample
from falconer_core.sampling.rounds import Rounds, learning_curve_row
from falconer_core.settings import Settings
from falconer_core.training import Checkpoint, EarlierTask
from flows import parameters as p
from flows.artifacts import publish_learning_curve, publish_plan, publish_sample, publish_scores
from flows.parameters import IncubationSettings, TaskSpec
from flows.plans import choose_plan


class Grown(NamedTuple):
    """What the last annotation round left: its annotations, checkpoint and held-out scores,
    the held-out texts' weights, and one learning-curve row per round."""

    annotations: AnnotationSet
    checkpoint: Checkpoint
    evaluation: Evaluation
    weights: dict[str, float]
    curve: list[dict]


@flow(name="incubate", validate_parameters=True)
def incubate(
    corpus: CorpusSource = p.corpus(),
    task: TaskSpec = p.task(),
    incubation: IncubationSettings = p.incubation(),
) -> IncubationResult:
    """Grow a metamodel for one task: `task.plan` (else the planner plans `task.instruction`),
    fine-tuned from `task.parent` (else `task.base_model`), registered under `task.model_name`;
    annotated in rounds when `incubation.active` asks for more than one."""
    settings = Settings()
    snapshot = tasks.snapshot(corpus)
    corpus_id = tasks.store_corpus(snapshot)
    chosen = choose_plan(task.plan, task.instruction, task.planner)
    publish_plan(chosen)
    start = tasks.fetch_model(task.parent) if task.parent else ModelSource.base(task.base_model or settings.base_model)
    earlier = tasks.earlier_tasks(parent=start.version, plan_hash=chosen.hash) if start.version else []
    rounds = Rounds.plan(n_texts=snapshot.n_texts, sampling=incubation.sampling, active=incubation.active)
    first = tasks.sample(corpus=snapshot, plan=chosen, settings=rounds.first_sampling(incubation.sampling), scorer=start)
    grown = annotate_in_rounds(rounds, snapshot=snapshot, plan=chosen, first=first, start=start, annotator=task.annotator,
                               incubation=incubation, earlier=earlier)
    annotations, checkpoint, evaluation = grown.annotations, grown.checkpoint, grown.evaluation
    tasks.store_annotations(annotations)
    publish_sample(annotations)
    publish_scores(evaluation, f"Proxy vs {annotations.annotator} on {evaluation.n_texts} held-out texts")
    if rounds.several:
        publish_learning_curve(grown.curve, chosen)
    name = task.model_name or settings.model_name
    champion = tasks.fetch_champion(model_name=name, plan_hash=chosen.hash)
    rival = tasks.evaluate(model=champion, annotations=annotations, ids=checkpoint.heldout_ids,
                           weights=grown.weights) if champion else None
    registered = tasks.register(
        checkpoint=checkpoint, annotations=annotations, evaluation=evaluation, corpus_id=corpus_id,
        gate=incubation.gate, model_name=name, incumbent=rival, incumbent_version=champion.version if champion else None,
        ancestors=score_ancestors([t for t in earlier if t.plan_hash != chosen.hash], model=checkpoint.source,
                                  model_name=name),
    )
    return incubation_result(registered, grown, plan=chosen, corpus_id=corpus_id)


def annotate_in_rounds(
    rounds: Rounds, *, snapshot: CorpusSnapshot, plan: Plan, first: AnnotationSample, start: ModelSource,
    annotator: AnnotatorChoice, incubation: IncubationSettings, earlier: list[EarlierTask] | None = None,
) -> Grown:
    """Annotate, fine-tune from `start` (replaying the `earlier` tasks) and evaluate, round
    after round, each later round adding the texts the last checkpoint is least sure of, until
    `rounds` says stop."""
    picked, curve = first, []
    for round_ in rounds.numbers:
        annotations = tasks.annotate(plan=plan, corpus=snapshot, sample=picked, annotator=annotator)
        checkpoint = tasks.fine_tune(
            annotations=annotations, start=start, training=incubation.training,
            holdout=rounds.holdout(incubation.holdout), corpus=snapshot if incubation.training.unlabeled else None, heldout_from=rounds.heldout_from(first),
            earlier=earlier if incubation.training.replay and earlier else None,
        )
        weights = picked.weights(checkpoint.heldout_ids)
        evaluation = tasks.evaluate(model=checkpoint.source, annotations=annotations, ids=checkpoint.heldout_ids,
                                    weights=weights)
        curve.append(learning_curve_row(round_, annotations.size, len(checkpoint.train_ids), evaluation.metrics()))
        if rounds.stop_after(round_, evaluation.metrics(), incubation.gate):
            break
        grown = tasks.grow_sample(corpus=snapshot, plan=plan, model=checkpoint.source, sample=picked,
                                  n=rounds.next_size(round_), settings=incubation.active, round_=round_ + 1)
        if rounds.added_nothing(picked, grown):
            break
        picked = grown
    return Grown(annotations, checkpoint, evaluation, weights, curve)


def score_ancestors(earlier: list[EarlierTask], *, model: ModelSource, model_name: str) -> list[AncestorScores]:
    """The new version and each earlier task's champion, scored on that task's held-out texts
    (unweighted: its sample's weights are not kept), for the gate over every task."""
    scored = []
    for task in earlier:
        if not task.heldout_ids:
            continue
        champion = tasks.fetch_champion(model_name=model_name, plan_hash=task.plan_hash)
        child = tasks.evaluate(model=model, annotations=task.annotations, ids=task.heldout_ids)
        rival = tasks.evaluate(model=champion, annotations=task.annotations, ids=task.heldout_ids) if champion else None
        scored.append(AncestorScores(plan_hash=task.plan_hash, evaluation=child, incumbent=rival,
                                     incumbent_version=champion.version if champion else None))
    return scored


def incubation_result(registered: Registration, grown: Grown, *, plan: Plan, corpus_id: str) -> IncubationResult:
    """The flow's result: the registered version, what it was trained and scored on."""
    annotations, checkpoint = grown.annotations, grown.checkpoint
    return IncubationResult(
        model_version=registered.version, champion=registered.champion, promotion=registered.reasons,
        checkpoint=checkpoint.path, base_model=checkpoint.base_model, parent=checkpoint.parent, plan=plan,
        corpus_id=corpus_id, annotator=annotations.annotator, annotation_set_hash=annotations.hash,
        n_annotations=annotations.size, evaluation=grown.evaluation, annotation_seconds=annotations.seconds,
        annotation_usage=annotations.usage, fine_tune_seconds=float(checkpoint.summary["seconds"]),
        learning_curve=grown.curve,
    )
