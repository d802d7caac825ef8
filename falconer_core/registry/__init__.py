"""MLflow lineage for metamodel checkpoints: one run per fine-tune, one registered version per
checkpoint tagged with its parent, base model, plan, annotation set, annotator and corpus, and
`candidate`/`champion` aliases behind a quality gate.

Importing this package does not import MLflow; building a `Registry` does.
"""

from falconer_core.registry.client import DEFAULT_EXPERIMENT, DEFAULT_HOME, Registry
from falconer_core.registry.lineage import render_lineage
from falconer_core.registry.promotion import PromotionDecision, check_gate
from falconer_core.registry.refs import (
    CANDIDATE,
    CHAMPION,
    ModelVersionRef,
    RegistryError,
    parse_ref,
)

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_HOME",
    "ModelVersionRef",
    "PromotionDecision",
    "Registry",
    "RegistryError",
    "check_gate",
    "parse_ref",
    "render_lineage",
]
