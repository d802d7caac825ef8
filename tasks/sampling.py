"""Choosing the texts to annotate."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.corpus import CorpusSnapshot
from falconer_core.hashing import content_hash
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.sampling import AnnotationSample, SamplingSettings, sample_corpus
from tasks.policies import CODE, RESULTS


def _sample_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Corpus content, plan, settings and the scoring model determine the sample."""
    return content_hash(
        "sample", parameters["corpus"].corpus_id, parameters["plan"].hash,
        parameters["settings"].model_dump(mode="json"),
        None if parameters["scorer"] is None else parameters["scorer"].identity,
    )


@task(
    name="sample",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_sample_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def sample(corpus: CorpusSnapshot, plan: Plan, settings: SamplingSettings, scorer: ModelSource | None) -> AnnotationSample:
    """Pick the texts to annotate, stratified by the scorer's zero-shot label scores when it can
    score (see `sample_corpus`), else (or with no scorer) at random."""
    picked = sample_corpus(corpus, plan, settings, scorer)
    get_run_logger().info(picked.summary.describe())
    return picked
