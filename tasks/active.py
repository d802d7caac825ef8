"""Choosing the next batch to annotate from the current metamodel's uncertainty."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.corpus import CorpusSnapshot
from falconer_core.hashing import content_hash
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.sampling import AnnotationSample
from falconer_core.sampling.active import ActiveSettings, next_batch, with_batch
from tasks.policies import CODE, RESULTS


def _grow_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Corpus, plan, the scoring model, what is annotated already, the batch size, the settings
    and the round determine the batch."""
    return content_hash(
        "grow-sample", parameters["corpus"].corpus_id, parameters["plan"].hash, parameters["model"].identity,
        sorted(map(str, parameters["sample"].ids)), parameters["n"], parameters["settings"].model_dump(mode="json"),
        parameters["round_"],
    )


@task(
    name="grow-sample",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_grow_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def grow_sample(
    corpus: CorpusSnapshot, plan: Plan, model: ModelSource, sample: AnnotationSample, n: int,
    settings: ActiveSettings, round_: int,
) -> AnnotationSample:
    """The sample with `n` more texts, those `model` is least sure of (spread out)."""
    batch = next_batch(corpus, plan, model, sample.ids, n, settings, round_)
    get_run_logger().info("round %d: %d texts chosen by uncertainty (of a pool of up to %d)", round_, len(batch), settings.pool)
    return with_batch(sample, corpus.ids(), batch)
