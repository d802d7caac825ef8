"""Annotating the sample with the chosen annotator."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.annotators import (
    AnnotationSet,
    AnnotatorChoice,
    annotate_sample,
    annotator_fingerprint,
    build_annotator,
)
from falconer_core.corpus import CorpusSnapshot, corpus_id
from falconer_core.hashing import content_hash
from falconer_core.plan import Plan
from falconer_core.sampling import AnnotationSample
from falconer_core.settings import Settings
from tasks.policies import CODE, RESULTS, RETRY_DELAYS, retry_transient


def _annotate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The plan, the sampled texts and the annotator (its LLM, or the gold cells) determine the
    annotations."""
    plan: Plan = parameters["plan"]
    rows = parameters["corpus"].rows_by_id(parameters["sample"].ids)
    return content_hash(
        "annotate", plan.hash, corpus_id(rows[["id", "text"]]),
        annotator_fingerprint(parameters["annotator"], plan, rows),
    )


@task(
    name="annotate",
    retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient,
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_annotate_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def annotate(plan: Plan, corpus: CorpusSnapshot, sample: AnnotationSample, annotator: AnnotatorChoice) -> AnnotationSet:
    """Run every step of the plan on the sampled texts with the annotator."""
    rows = corpus.rows_by_id(sample.ids)
    runner, client = build_annotator(annotator, plan, rows, cache_dir=Settings().llm_cache_dir)
    annotations = annotate_sample(
        plan, rows["id"], rows["text"], runner, annotator=annotator.identity(), client=client
    )
    passed = sum(r.passed for r in annotations.records)
    get_run_logger().info(
        "annotated %d texts with %s in %.1f s (%d pass the filter); set %s; usage %s",
        annotations.size, annotations.annotator, annotations.seconds, passed, annotations.hash, annotations.usage,
    )
    return annotations
