"""The metamodel: one instruction-following encoder for `get_label` and `get_span`.

`Metamodel` (torch, transformers) loads when first named; settings and model sources do not
need it, so flows and tasks can import this package without the model stack.
"""

from importlib import import_module

from falconer_core.metamodel.precision import (
    AUTO,
    DEFAULT_PRECISION_CHOICE,
    PRECISION_DESCRIPTION,
    PRECISIONS,
    REFERENCE_PRECISION,
    Precision,
    PrecisionChoice,
    resolve_precision,
)
from falconer_core.metamodel.source import DEFAULT_BASE, LOADS, ModelSource, has_trained_head, open_metamodel

_LAZY = {"Metamodel": "falconer_core.metamodel.model"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'falconer_core.metamodel' has no attribute {name!r}")


__all__ = [
    "AUTO",
    "DEFAULT_BASE",
    "DEFAULT_PRECISION_CHOICE",
    "LOADS",
    "Metamodel",
    "ModelSource",
    "PRECISIONS",
    "PRECISION_DESCRIPTION",
    "Precision",
    "PrecisionChoice",
    "REFERENCE_PRECISION",
    "has_trained_head",
    "open_metamodel",
    "resolve_precision",
]
