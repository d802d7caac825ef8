"""Scoring the proxy against the annotator on held-out texts."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.annotators import AnnotationSet
from falconer_core.evaluation import Evaluation, evaluate_model
from falconer_core.hashing import content_hash
from falconer_core.metamodel import ModelSource
from tasks.policies import CODE, RESULTS


def _evaluate_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    ids = parameters.get("ids")
    return content_hash(
        "evaluate", parameters["model"].identity, parameters["annotations"].hash, None if ids is None else sorted(ids)
    )


@task(
    name="evaluate",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_evaluate_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def evaluate(model: ModelSource, annotations: AnnotationSet, ids: list[str] | None = None) -> Evaluation:
    """Per-step F1 of the metamodel against the annotator on the annotated texts in `ids`."""
    evaluation = evaluate_model(model, annotations, ids)
    for s in evaluation.scores:
        get_run_logger().info("%-20s %-5s n=%-4d F1 %s", s.step, s.op, s.n, "n/a" if s.f1 is None else f"{s.f1:.3f}")
    return evaluation
