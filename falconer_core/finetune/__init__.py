"""Fine-tuning a checkpoint for a plan: annotations become examples per step (`examples`), the
sample splits by text into train and held-out (`split`), and the trained metamodel is saved
under a content key (`checkpoint`), with the corpus's unannotated texts for self-training
(`unlabeled`)."""

from falconer_core.finetune.checkpoint import Checkpoint, fine_tune_checkpoint, fine_tune_key
from falconer_core.finetune.examples import ExamplesByStep, flatten, step_examples
from falconer_core.finetune.split import HoldoutSettings, split_ids
from falconer_core.finetune.unlabeled import unannotated_texts

__all__ = [
    "Checkpoint",
    "ExamplesByStep",
    "HoldoutSettings",
    "fine_tune_checkpoint",
    "fine_tune_key",
    "flatten",
    "split_ids",
    "step_examples",
    "unannotated_texts",
]
