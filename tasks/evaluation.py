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
    ids, weights = parameters.get("ids"), parameters.get("weights")
    return content_hash(
        "evaluate", parameters["model"].identity, parameters["annotations"].hash, None if ids is None else sorted(ids),
        None if weights is None else sorted(weights.items()),
    )


@task(
    name="evaluate",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_evaluate_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def evaluate(
    model: ModelSource, annotations: AnnotationSet, ids: list[str] | None = None, weights: dict[str, float] | None = None
) -> Evaluation:
    """Per-step and end-to-end F1, with intervals, of the metamodel against the annotator on the
    annotated texts in `ids`, each text weighted by `weights` (1 / inclusion probability)."""
    evaluation = evaluate_model(model, annotations, ids, weights)
    for s in [*evaluation.scores, evaluation.end_to_end]:
        if s is not None:
            shown = "n/a" if s.f1 is None else f"{s.f1:.3f} [{s.f1_lo:.3f}, {s.f1_hi:.3f}]"
            get_run_logger().info("%-20s %-5s n=%-4d F1 %s", s.step, s.op, s.n, shown)
    return evaluation
