"""`incubate`: plan → sample → annotate → fine-tune → evaluate → register. The result is a
registered metamodel version for the plan, promoted to champion if it meets the gate."""

from __future__ import annotations

from prefect import flow

import tasks
from falconer_core.metamodel import TrainingSettings
from falconer_core.pipeline.config import AnnotatorChoice, CorpusSource, HoldoutSettings, LLMChoice
from falconer_core.pipeline.models import ModelSource
from falconer_core.pipeline.registration import DEFAULT_GATE
from falconer_core.pipeline.results import IncubationResult
from falconer_core.pipeline.settings import Settings
from falconer_core.plan import Plan
from falconer_core.sampling import SamplingSettings
from flows.artifacts import publish_plan, publish_sample, publish_scores
from flows.common import choose_plan


@flow(name="incubate", validate_parameters=True)
def incubate(
    corpus: CorpusSource,
    instruction: str | None = None,
    plan: Plan | str | None = None,
    annotator: AnnotatorChoice = AnnotatorChoice(),
    planner: LLMChoice = LLMChoice(),
    base_model: str | None = None,
    parent: str | None = None,
    sampling: SamplingSettings = SamplingSettings(),
    training: TrainingSettings = TrainingSettings(progress=False),
    holdout: HoldoutSettings = HoldoutSettings(),
    gate: dict[str, float] = DEFAULT_GATE,
) -> IncubationResult:
    """Grow a metamodel for one task. `plan` is a Plan or a plan file (else the planner plans
    `instruction`); `parent` is a registered ref to continue from (else `base_model`).

    Args:
        corpus: Corpus file (CSV, TSV, JSONL, Parquet) or folder of .txt files, with its text/id columns.
        instruction: What to mine, in plain words; planned by the planner LLM unless a plan is given.
        plan: A plan (object) or the path of a plan file (YAML/JSON); overrides planning.
        annotator: Who labels the sample: 'gold' (corpus columns named after the plan steps), 'openai' or 'local'.
        planner: The LLM that plans the instruction (its key comes from OPENAI_API_KEY only).
        base_model: Base encoder to fine-tune from (default: FALCONER_BASE_MODEL or the packaged MiniLM).
        parent: A registered version to continue from instead (NAME, NAME@alias or NAME/N).
        sampling: How many texts to annotate and how to pick them.
        training: How to fine-tune the metamodel.
        holdout: How many annotated texts to hold out for evaluation.
        gate: Promotion gate: metric -> minimum (e.g. mean_f1) for the new version to become champion.
    """
    frame = tasks.load_corpus(corpus)
    corpus_id = tasks.store_corpus(frame, corpus)
    chosen = choose_plan(plan, instruction, planner)
    publish_plan(chosen)
    start = tasks.fetch_model(parent) if parent else ModelSource.base(base_model or Settings().base_model)
    annotations = tasks.annotate(chosen, frame, tasks.sample(frame, chosen, sampling, start), annotator)
    tasks.store_annotations(annotations)
    publish_sample(annotations)
    checkpoint = tasks.fine_tune(annotations, start, training, holdout)
    evaluation = tasks.evaluate(checkpoint.source, annotations, checkpoint.heldout_ids)
    publish_scores(evaluation.scores, f"Proxy vs {annotations.annotator} on {evaluation.n_texts} held-out texts")
    registered = tasks.register(checkpoint, annotations, evaluation, corpus_id, gate)
    return IncubationResult(
        model_version=registered.version, champion=registered.champion, promotion=registered.reasons,
        checkpoint=checkpoint.path, base_model=checkpoint.base_model, parent=checkpoint.parent, plan=chosen,
        corpus_id=corpus_id, annotator=annotations.annotator, annotation_set_hash=annotations.hash,
        n_annotations=annotations.size, evaluation=evaluation, annotation_seconds=annotations.seconds,
        annotation_usage=annotations.usage,
        fine_tune_seconds=float(checkpoint.report["seconds"]),
    )
