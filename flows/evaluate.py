"""`evaluate`: score a registered metamodel against an annotator (human labels from the corpus,
or an LLM) on a random sample of a corpus, step by step and end to end, with intervals. The
sample is random on purpose: a sample stratified by the scored model's own scores would pick
the texts it is sure of and hide the ones it misses."""

from __future__ import annotations

from prefect import flow
from pydantic import Field

import tasks
from falconer_core.annotators import AnnotatorChoice
from falconer_core.corpus import CorpusSource
from falconer_core.plan import Plan
from falconer_core.reporting import EvaluationResult
from falconer_core.sampling import SamplingSettings
from flows import parameters as p
from flows.artifacts import publish_sample, publish_scores
from flows.plans import plan_for_model


@flow(name="evaluate", validate_parameters=True)
def evaluate(
    model: str = p.model("score"),
    corpus: CorpusSource = p.corpus(),
    plan: Plan | str | None = p.plan("default: the plan the model was trained for"),
    annotator: AnnotatorChoice = p.annotator(),
    sampling: SamplingSettings = Field(SamplingSettings(), description="How many texts of the corpus to annotate and score on (drawn at random)."),
) -> EvaluationResult:
    """Annotate a random sample of `corpus` with `annotator` and score `model` against it."""
    source = tasks.fetch_model(model)
    chosen = plan_for_model(plan, source.version)
    snapshot = tasks.snapshot(corpus)
    picked = tasks.sample(corpus=snapshot, plan=chosen, settings=sampling, scorer=None)
    annotations = tasks.annotate(plan=chosen, corpus=snapshot, sample=picked, annotator=annotator)
    publish_sample(annotations)
    evaluation = tasks.evaluate(model=source, annotations=annotations, ids=None, weights=picked.weights())
    publish_scores(evaluation, f"{source.version} vs {annotations.annotator} on {evaluation.n_texts} texts")
    return EvaluationResult(
        model_version=source.version, annotator=annotations.annotator,
        annotation_set_hash=annotations.hash, evaluation=evaluation,
    )
