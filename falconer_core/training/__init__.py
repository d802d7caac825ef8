"""Training the metamodel, in one place: annotations become examples per step (`examples`), the
sample splits by text into train and held-out (`split`), the fine-tune loop with its dev split and
early stopping (`loop`), self-training on the corpus's unannotated texts (`unlabeled` draws them,
`selftraining` pseudo-labels and re-trains), and the checkpoint saved under a content key
(`checkpoint`), the torch thread count pinned for a fine-tune (`threads`), a re-tune's rehearsal
of earlier tasks' annotations (`replay`) and its blend back toward the parent (`blend`). How to train is `settings`: plain data, no torch.

`metamodel/` keeps the model itself (encode, decode, heads, precision); `Metamodel.fine_tune`
is the entry point and calls in here.
"""

from falconer_core.training.checkpoint import Checkpoint, fine_tune_checkpoint, fine_tune_key
from falconer_core.training.examples import ExamplesByStep, flatten, step_examples
from falconer_core.training.replay import EarlierTask, replay_examples, replay_key
from falconer_core.training.settings import SelfTrainingSummary, TrainingSettings, TrainingSummary
from falconer_core.training.split import HoldoutSettings, split_ids
from falconer_core.training.unlabeled import unannotated_texts

__all__ = [
    "Checkpoint",
    "EarlierTask",
    "ExamplesByStep",
    "HoldoutSettings",
    "SelfTrainingSummary",
    "TrainingSettings",
    "TrainingSummary",
    "fine_tune_checkpoint",
    "fine_tune_key",
    "flatten",
    "replay_examples",
    "replay_key",
    "split_ids",
    "step_examples",
    "unannotated_texts",
]
