"""The metamodel: one instruction-following encoder for `get_label` and `get_span`."""

from falconer_core.metamodel.model import Metamodel
from falconer_core.metamodel.training import TrainingReport, TrainingSettings

__all__ = ["Metamodel", "TrainingReport", "TrainingSettings"]
