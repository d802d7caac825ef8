"""Falconer: an LLM plans and annotates, a small instruction-following encoder executes.

One package per stage: `plan`, `corpus` (+ `readers`), `sampling` (drawn, active, and the rounds
an incubation annotates in), `annotators` (+ `llm`), `training` (+ `metamodel`, the model
itself), `evaluation`, `registry`, `execution`, `cascade` (routing to the LLM under a quality
target), `store`, `reporting`; shared pieces are `settings`, `hashing`, `errors` and `types`, and
`data` holds the packaged demo corpus and plan. Nothing here imports Prefect.

Heavy modules (torch, transformers, pandas) load only when their names are first used, so
importing the package and running `falconer --help` stay fast.
"""

from importlib import import_module

from falconer_core.errors import (
    ConfigError,
    CorpusError,
    FalconerError,
    LLMError,
    ModelError,
    PlanError,
    StoreBusyError,
    StoreError,
    TransientError,
    TransientLLMError,
)
from falconer_core.types import LabelExample, LabelResult, Runner, Span, SpanExample

__version__ = "0.1.0"

_LAZY = {
    "Metamodel": "falconer_core.metamodel",
    "TrainingSettings": "falconer_core.training",
    "Plan": "falconer_core.plan",
    "Settings": "falconer_core.settings",
    "execute_plan": "falconer_core.execution",
    "load_corpus": "falconer_core.corpus",
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
    "Plan",
    "PlanError",
    "Runner",
    "Settings",
    "Span",
    "SpanExample",
    "StoreBusyError",
    "StoreError",
    "TrainingSettings",
    "TransientError",
    "TransientLLMError",
    "execute_plan",
    "load_corpus",
]
