"""Fine-tuning the metamodel on an annotation set: split, build examples, train, save.

The checkpoint folder is named by a content key (annotation set, starting weights, training
and split settings), so the same inputs always land in the same place and a finished
checkpoint is never trained twice.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.finetune.examples import flatten, step_examples
from falconer_core.finetune.split import HoldoutSettings, split_ids
from falconer_core.hashing import content_hash
from falconer_core.metamodel import TrainingSettings
from falconer_core.metamodel.source import ModelSource, open_metamodel


class Checkpoint(BaseModel):
    """A fine-tuned metamodel on disk and what it was made from."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="The checkpoint folder.")
    key: str = Field(description="Content key of its inputs (also the folder's name).")
    base_model: str = Field(description="The base encoder at the root of its lineage.")
    parent: str | None = Field(None, description="Registered version it continued from (None: the base).")
    plan_hash: str
    annotation_set_hash: str
    annotator: str
    n_annotations: int = Field(description="Annotated texts in the set (train and held out).")
    train_ids: list[str]
    heldout_ids: list[str]
    n_examples: int = Field(description="Training examples over all steps.")
    training: dict = Field(description="The training settings used.")
    summary: dict = Field(description="What the fine-tune did (the metamodel's `TrainingSummary`).")

    @property
    def source(self) -> ModelSource:
        """This checkpoint as something to run or continue from."""
        return ModelSource(path=self.path, base_model=self.base_model, checkpoint=True)


def fine_tune_key(
    annotation_set_hash: str, start: ModelSource, training: TrainingSettings, holdout: HoldoutSettings
) -> str:
    """What determines the weights: the annotations, the starting weights and the settings
    (the progress bar does not)."""
    return content_hash(
        annotation_set_hash, start.identity, training.model_dump(exclude={"progress"}), holdout.model_dump()
    )


def fine_tune_checkpoint(
    annotations: AnnotationSet,
    start: ModelSource,
    training: TrainingSettings,
    holdout: HoldoutSettings,
    checkpoints_dir: str | Path,
) -> Checkpoint:
    """Train from `start` on the training side of the split and save under `checkpoints_dir`."""
    key = fine_tune_key(annotations.hash, start, training, holdout)
    train_ids, heldout_ids = split_ids(annotations.ids, holdout)
    examples = flatten(step_examples(annotations, train_ids))
    model = open_metamodel(start, fresh=True)
    summary = model.fine_tune(examples, training)
    folder = Path(checkpoints_dir) / key
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(partial)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # a crash mid-save never leaves a half checkpoint under the real name
    return Checkpoint(
        path=str(folder), key=key, base_model=start.base_model, parent=start.version,
        plan_hash=annotations.plan.hash, annotation_set_hash=annotations.hash,
        annotator=annotations.annotator, n_annotations=annotations.size, train_ids=train_ids,
        heldout_ids=heldout_ids, n_examples=len(examples), training=training.model_dump(),
        summary=asdict(summary),
    )


__all__ = ["Checkpoint", "fine_tune_checkpoint", "fine_tune_key"]
