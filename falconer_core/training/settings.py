"""How to fine-tune the metamodel, and what a fine-tune did: plain data with no torch import, so
flows can take training settings as a parameter without loading the model stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Most epochs when `TrainingSettings.epochs` is unset and `min_steps` needs fewer.
DEFAULT_EPOCHS = 20


class TrainingSettings(BaseModel):
    """How to fine-tune; recorded in the checkpoint and in MLflow."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epochs: int | None = Field(
        None, ge=1, description="Most epochs to run; None runs up to 20, or more when `min_steps` needs them. "
        "Early stopping usually ends sooner.",
    )
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate.")
    shape_lr_scale: float = Field(
        10.0, gt=0, description="Learning-rate multiplier for the shape (casing) embedding, which starts at zero.",
    )
    batch_size: int = Field(16, ge=1, description="Windows per optimisation step.")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Share of steps with a linear warm-up.")
    dev_fraction: float = Field(0.1, ge=0, lt=1, description="Share of examples held out to pick the best epoch.")
    min_dev_examples: int = Field(
        20, ge=1, description="Smallest dev split worth early stopping on; below it, train without one."
    )
    patience: int = Field(3, ge=1, description="Epochs without dev improvement before stopping.")
    dev_smoothing: int = Field(
        2, ge=1, description="Choose the epoch (and stop early) on the mean dev score of this many latest "
        "epochs: on a dev split of a few dozen examples one epoch's score is mostly noise. 1: the raw score.",
    )
    min_epochs: int = Field(4, ge=1, description="Epochs to run before early stopping may end training.")
    min_steps: int = Field(
        200, ge=0, description="With `epochs` unset: optimiser steps to run before early stopping may end "
        "training, adding epochs on small data (64 examples are 4 steps an epoch).",
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm.")
    seed: int = Field(0, description="Seeds the split, the shuffling and dropout.")
    subtoken_labels: bool = Field(
        True, description="Also supervise a word's later sub-tokens (I inside a span, else O), not just its first."
    )
    calibrate_threshold: bool = Field(
        True, description="Pick the span threshold that maximises word-level F1 on the dev split (needs one)."
    )
    unlabeled: bool = Field(
        True, description="Learn from unlabeled texts too (self-training, `selftraining.py`) when fine_tune is "
        "given some; the flows give it the corpus's unannotated texts. False: the annotations only.",
    )
    max_unlabeled: int = Field(
        2000, ge=0, description="Most unlabeled texts the teacher labels (a random pool drawn by `seed`); "
        "bounds the extra time.",
    )
    self_training_rounds: int = Field(
        1, ge=1, description="Rounds of pseudo-labelling and re-training; each round's model is the next teacher.",
    )
    pseudo_confidence: float = Field(
        0.9, gt=0.5, le=1, description="Keep a pseudo-label only when the teacher is this sure of it (of every "
        "word's in-or-out decision, for spans).",
    )
    pseudo_unit: Literal["text", "word"] = Field(
        "word", description="What must be sure in a span pseudo-label: 'word' keeps texts with at least half "
        "their words at `pseudo_confidence` and ignores the others in the loss; 'text' keeps only texts whose "
        "every word is (mostly easy ones: on BC2GM at 512 it gained nothing, 'word' +0.008 F1).",
    )
    self_training_epochs: int = Field(
        2, ge=1, description="Epochs per self-training round over annotations plus pseudo-labels (fixed: "
        "the weights of the best one on dev are kept, if better than the teacher's).",
    )
    self_training_lr_scale: float = Field(
        0.5, gt=0, description="Peak learning rate of a self-training round, as a share of `learning_rate` "
        "(it continues from a trained teacher).",
    )
    replay: bool = Field(
        True, description="When re-tuning from a parent, also rehearse a capped, seeded sample of every earlier "
        "task's annotations in its lineage (`replay.py`), so the child keeps what the parent knew.",
    )
    replay_cap: int = Field(
        2048, ge=0, description="Most examples per earlier task in the replay pool, a seeded sample (its held-out "
        "texts never replay). Each epoch draws afresh from the pool, so a larger pool rehearses more "
        "distinct examples at the same cost.",
    )
    replay_share: float = Field(
        0.4, gt=0, description="Replayed tokens per epoch, as a share of the new task's training tokens: an epoch "
        "costs at most 1 + share of one without replay, whatever the earlier tasks' text lengths.",
    )
    replay_lr_scale: float = Field(
        0.5, gt=0, description="Peak learning rate of a re-tune that replays, as a share of `learning_rate` "
        "(the parent already knows the earlier tasks; a gentler step keeps more of them: after BC2GM genes -> BTC "
        "persons -> SMS spam, seed 0, 0.5 kept 0.995 of the genes specialist's F1 where 1.0 kept 0.969).",
    )
    replay_max_cost: float = Field(
        1.5, gt=1, description="A replaying re-tune trains at most this many times the tokens the new task alone "
        "trains at least (its minimum epochs): it caps the epochs, so replay never costs more than this.",
    )
    replay_distill: float = Field(
        1.0, ge=0, description="Weight of a distillation loss on replayed windows: the child's tag probabilities "
        "at their supervised positions are pulled toward the parent's (KL), so it keeps the parent's answers and "
        "their calibration, not only the gold tags (`distill.py`). It costs one parent forward pass per distinct "
        "replayed window, which the epoch cap counts. 0: gold tags only.",
    )
    replay_blend: tuple[float, ...] = Field(
        (), description="After a replaying re-tune, blends of its weights with the parent's to try (share of the "
        "re-tuned weights, the rest the parent's, e.g. 0.9 0.8), from the child's end: each is kept while the "
        "new-task dev score stays within `replay_blend_tolerance` of the re-tuned weights', and the first that "
        "falls below stops the walk (`blend.py`). Off by default: on the continual benchmark (0.9, 0.8) kept more "
        "of BTC persons (0.968 vs 0.954 of its specialist) but a 50-text dev split could not see what the blends "
        "cost the new task (the demo plan kept 0.988 vs 1.061; -10% on one seed).",
    )
    replay_blend_tolerance: float = Field(
        0.02, ge=0, lt=1, description="How much of the re-tuned weights' new-task dev score a blend with the "
        "parent may give up (relative).",
    )
    threads: int | None = Field(
        None, ge=1, description="torch threads while fine-tuning. Sums split over threads add up in another "
        "order, so another count gives other weights from the same job; the count is pinned for the whole "
        "fine-tune (whatever an earlier stage set in this process) and recorded in the summary. None: "
        "OMP_NUM_THREADS when set, else the machine's cores (`training_threads`). Set it to train the same "
        "weights on machines with different core counts.",
    )
    progress: bool = Field(True, description="Show a progress bar.")


@dataclass
class SelfTrainingSummary:
    """What self-training did: the pool's size, each round's pseudo-labels and dev scores."""

    pool: int = 0
    rounds: list[dict] = field(default_factory=list)
    kept_rounds: int = 0
    seconds: float = 0.0


@dataclass
class TrainingSummary:
    """What a fine-tune did: sizes, the dev score per epoch, the epoch kept, and its cost."""

    n_train: int
    n_dev: int
    epochs_run: int = 0
    best_epoch: int = 0
    best_dev_score: float | None = None  # smoothed over `dev_smoothing` epochs, as it was chosen
    dev_scores: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    span_threshold: float | None = None
    span_thresholds: dict[str, float] = field(default_factory=dict)  # per instruction, where dev had enough
    threads: int = 0  # torch threads it ran with (see `TrainingSettings.threads`)
    n_replay: int = 0  # replay pool examples in the train split (see `replay.py`)
    replayed_windows: int = 0  # replay windows trained on, summed over the epochs
    distilled_windows: int = 0  # replay windows given the parent's probabilities (see `distill.py`)
    blend: dict | None = None  # the blend with the parent a replaying re-tune kept (see `blend.py`)
    self_training: SelfTrainingSummary | None = None  # when unlabeled texts were used


__all__ = ["DEFAULT_EPOCHS", "SelfTrainingSummary", "TrainingSettings", "TrainingSummary"]
