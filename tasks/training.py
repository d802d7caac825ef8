"""Fine-tuning the metamodel on the annotations."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.annotators import AnnotationSet
from falconer_core.finetune import Checkpoint, HoldoutSettings, fine_tune_checkpoint, fine_tune_key
from falconer_core.metamodel import ModelSource, TrainingSettings
from falconer_core.settings import Settings
from tasks.policies import CODE, RESULTS


def _fine_tune_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Annotation set, starting weights (base or parent version) and settings determine the weights."""
    return fine_tune_key(
        parameters["annotations"].hash, parameters["start"], parameters["training"], parameters["holdout"]
    )


@task(
    name="fine-tune",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_fine_tune_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def fine_tune(
    annotations: AnnotationSet, start: ModelSource, training: TrainingSettings, holdout: HoldoutSettings
) -> Checkpoint:
    """Fine-tune from `start` on the training side of the annotations; returns the checkpoint
    folder (never the model itself, which would not belong in a cached result)."""
    checkpoint = fine_tune_checkpoint(annotations, start, training, holdout, Settings().checkpoints_dir.resolve())
    summary = checkpoint.summary
    get_run_logger().info(
        "fine-tuned %s on %d examples (%d texts) in %.1f s: %d epochs, kept %d, dev %s -> %s",
        start.identity, checkpoint.n_examples, len(checkpoint.train_ids), summary["seconds"],
        summary["epochs_run"], summary["best_epoch"], summary["best_dev_score"], checkpoint.path,
    )
    return checkpoint
