"""Falconer: an LLM plans and annotates, a small instruction-following encoder executes.

Heavy modules (torch, transformers) load only when their names are first used, so importing
the package and running `falconer --help` stay fast.
"""

from importlib import import_module

from falconer_core.errors import (
    ConfigError,
    CorpusError,
    FalconerError,
    LLMError,
    ModelError,
    PlanError,
)
from falconer_core.types import LabelExample, LabelResult, Runner, Span, SpanExample

__version__ = "0.1.0"

_LAZY = {
    "Metamodel": "falconer_core.metamodel",
    "TrainingSettings": "falconer_core.metamodel",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'falconer_core' has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "CorpusError",
    "FalconerError",
    "LLMError",
    "LabelExample",
    "LabelResult",
    "Metamodel",
    "ModelError",
    "PlanError",
    "Runner",
    "Span",
    "SpanExample",
    "TrainingSettings",
]
