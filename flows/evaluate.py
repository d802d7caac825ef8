"""`evaluate`: score a registered metamodel against an annotator (human labels from the corpus,
or an LLM) on a sample of a corpus, step by step."""

from __future__ import annotations

from prefect import flow

import tasks
from falconer_core.pipeline.config import AnnotatorChoice, CorpusSource
from falconer_core.pipeline.results import EvaluationResult
from falconer_core.plan import Plan
from falconer_core.sampling import SamplingSettings
from flows.artifacts import publish_sample, publish_scores
from flows.common import plan_for_model


@flow(name="evaluate", validate_parameters=True)
def evaluate(
    model: str,
    corpus: CorpusSource,
    plan: Plan | str | None = None,
    annotator: AnnotatorChoice = AnnotatorChoice(),
    sampling: SamplingSettings = SamplingSettings(),
) -> EvaluationResult:
    """Annotate a sample of `corpus` with `annotator` and score `model` (`NAME`, `NAME@alias`,
    `NAME/N`) against it; the plan defaults to the one the model was trained for.

    Args:
        model: The registered metamodel to score: NAME (its champion), NAME@alias or NAME/N.
        corpus: Corpus file (CSV, TSV, JSONL, Parquet) or folder of .txt files, with its text/id columns.
        plan: A plan (object) or plan file; default: the plan the model was trained for.
        annotator: The reference: 'gold' (corpus columns named after the plan steps), 'openai' or 'local'.
        sampling: Which texts of the corpus to annotate and score on.
    """
    source = tasks.fetch_model(model)
    chosen = plan_for_model(plan, source.version)
    frame = tasks.load_corpus(corpus)
    annotations = tasks.annotate(chosen, frame, tasks.sample(frame, chosen, sampling, source), annotator)
    publish_sample(annotations)
    evaluation = tasks.evaluate(source, annotations)
    publish_scores(evaluation.scores, f"{source.version} vs {annotations.annotator} on {evaluation.n_texts} texts")
    return EvaluationResult(
        model_version=source.version, annotator=annotations.annotator,
        annotation_set_hash=annotations.hash, evaluation=evaluation,
    )
