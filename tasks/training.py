"""Fine-tuning the metamodel on the annotations."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.annotators import AnnotationSet
from falconer_core.corpus import CorpusSnapshot
from falconer_core.metamodel import ModelSource
from falconer_core.settings import Settings
from falconer_core.training import (
    Checkpoint,
    EarlierTask,
    HoldoutSettings,
    TrainingSettings,
    fine_tune_checkpoint,
    fine_tune_key,
)
from tasks.policies import CODE, RESULTS


def _fine_tune_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """Annotation set, starting weights (base or parent version), settings and, when its
    unannotated texts are used, the corpus determine the weights; so do the earlier tasks'
    annotations when they replay."""
    corpus = parameters.get("corpus")
    return fine_tune_key(
        parameters["annotations"].hash, parameters["start"], parameters["training"], parameters["holdout"],
        corpus.corpus_id if corpus is not None else None, parameters.get("heldout_from"), parameters.get("earlier"),
    )


@task(
    name="fine-tune",
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_fine_tune_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def fine_tune(
    annotations: AnnotationSet, start: ModelSource, training: TrainingSettings, holdout: HoldoutSettings,
    corpus: CorpusSnapshot | None = None, heldout_from: list[str] | None = None,
    earlier: list[EarlierTask] | None = None,
) -> Checkpoint:
    """Fine-tune from `start` on the training side of the annotations (and, with `corpus`, its
    unannotated texts); held-out texts come from `heldout_from` when given (an active sample's
    random first round); `earlier` tasks replay a capped sample of their annotations. Returns the checkpoint folder (never the model itself, which would not
    belong in a cached result)."""
    checkpoint = fine_tune_checkpoint(
        annotations, start, training, holdout, Settings().checkpoints_dir.resolve(), corpus, heldout_from, earlier
    )
    summary = checkpoint.summary
    get_run_logger().info(
        "fine-tuned %s on %d examples (%d texts) and %d unannotated texts in %.1f s: %d epochs, kept %d, dev %s -> %s",
        start.identity, checkpoint.n_examples, len(checkpoint.train_ids), checkpoint.n_unlabeled, summary["seconds"],
        summary["epochs_run"], summary["best_epoch"], summary["best_dev_score"], checkpoint.path,
    )
    if checkpoint.replayed:
        get_run_logger().info("replayed earlier tasks' examples: %s", checkpoint.replayed)
    for number, round_ in enumerate((summary.get("self_training") or {}).get("rounds", []), 1):
        get_run_logger().info(
            "self-training round %d: %d pseudo-labels, dev %s then %s by epoch (%s)", number,
            round_["pseudo_labels"], round_.get("dev_before"), round_.get("dev_scores"),
            "kept" if round_.get("kept") else "teacher kept",
        )
    return checkpoint
