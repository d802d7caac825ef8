"""Fine-tuning the metamodel on an annotation set: split, build examples, train, save.

The checkpoint folder is named by a content key (annotation set, starting weights, training
and split settings), so the same inputs always land in the same place and a finished
checkpoint is never trained twice.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.corpus import CorpusSnapshot
from falconer_core.hashing import content_hash
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.training.examples import flatten, step_examples
from falconer_core.training.replay import EarlierTask, replay_examples, replay_key
from falconer_core.training.settings import TrainingSettings
from falconer_core.training.split import HoldoutSettings, split_ids
from falconer_core.training.unlabeled import unannotated_texts


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
    n_examples: int = Field(description="Training examples over all steps, the replay pool included.")
    n_unlabeled: int = Field(0, description="Unannotated corpus texts given to self-training (0: none).")
    replayed: dict[str, int] = Field(
        default_factory=dict, description="Replay pool examples from each earlier task (plan hash -> count; {}: none); each "
        "epoch draws from the pool within `replay_share` of the new task's tokens.",
    )
    training: dict = Field(description="The training settings used.")
    summary: dict = Field(description="What the fine-tune did (the metamodel's `TrainingSummary`).")

    @property
    def source(self) -> ModelSource:
        """This checkpoint as something to run or continue from."""
        return ModelSource(path=self.path, base_model=self.base_model, checkpoint=True)


def fine_tune_key(
    annotation_set_hash: str, start: ModelSource, training: TrainingSettings, holdout: HoldoutSettings,
    corpus_id: str | None = None, heldout_from: Sequence[str] | None = None,
    earlier: Sequence[EarlierTask] | None = None,
) -> str:
    """What determines the weights: the annotations, the starting weights and the settings
    (the progress bar does not), the corpus when its unannotated texts are used, the texts
    the held-out ones are drawn from when that is not all of them, and the earlier tasks'
    annotations when they replay (`replay.replay_key`)."""
    parts = [annotation_set_hash, start.identity, training.model_dump(exclude={"progress"}), holdout.model_dump()]
    if corpus_id is not None and training.unlabeled:
        parts.append(corpus_id)
    if heldout_from is not None:
        parts.append(sorted(str(i) for i in heldout_from))
    replayed = replay_key(earlier or ()) if training.replay else None
    if replayed is not None:
        parts.append(replayed)
    return content_hash(*parts)


def fine_tune_checkpoint(
    annotations: AnnotationSet,
    start: ModelSource,
    training: TrainingSettings,
    holdout: HoldoutSettings,
    checkpoints_dir: str | Path,
    corpus: CorpusSnapshot | None = None,
    heldout_from: Sequence[str] | None = None,
    earlier: Sequence[EarlierTask] | None = None,
) -> Checkpoint:
    """Train from `start` on the training side of the split and save under `checkpoints_dir`;
    with `corpus` (and `training.unlabeled`), also learn from its unannotated texts. With
    `heldout_from` (the randomly drawn first round of an active sample), held-out texts come
    only from those, and every other annotated text trains. With `earlier` (the tasks of the
    parent's lineage) and `training.replay`, a capped pool of their examples is rehearsed too."""
    key = fine_tune_key(annotations.hash, start, training, holdout, corpus.corpus_id if corpus else None, heldout_from,
                        earlier)
    train_ids, heldout_ids = split_ids(annotations.ids if heldout_from is None else list(heldout_from), holdout)
    if heldout_from is not None:
        held = set(heldout_ids)
        train_ids = [i for i in annotations.ids if i not in held]
    examples = flatten(step_examples(annotations, train_ids))
    text_of = annotations.text_of()
    replayed, counts = replay_examples(earlier or (), training, never={text_of[i] for i in heldout_ids})
    unlabeled = None
    if corpus is not None and training.unlabeled:
        unlabeled = unannotated_texts(corpus, annotations.ids, training.max_unlabeled, training.seed) or None
    model = open_metamodel(start, fresh=True)
    summary = model.fine_tune(examples, training, unlabeled_texts=unlabeled, replay=replayed)
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
        heldout_ids=heldout_ids, n_examples=len(examples) + len(replayed), n_unlabeled=len(unlabeled or ()),
        replayed=counts, training=training.model_dump(),
        summary=asdict(summary),
    )


__all__ = ["Checkpoint", "fine_tune_checkpoint", "fine_tune_key"]
