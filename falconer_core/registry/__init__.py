"""MLflow lineage for metamodel checkpoints: one run per fine-tune, one registered version per
checkpoint tagged with its parent, base model, plan, annotation set, annotator and corpus, and
`candidate`/`champion` aliases behind a quality gate.

Importing this package does not import MLflow; building a `Registry` does.
"""

from falconer_core.registry.client import DEFAULT_EXPERIMENT, PLAN_ARTIFACT, SUMMARY_ARTIFACT, Registry
from falconer_core.registry.lineage import render_lineage
from falconer_core.registry.promotion import PromotionDecision, check_gate
from falconer_core.registry.refs import CANDIDATE, CHAMPION, ModelVersionRef, RegistryError, parse_ref
from falconer_core.registry.registration import DEFAULT_GATE, Registration, register_checkpoint

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_GATE",
    "ModelVersionRef",
    "PLAN_ARTIFACT",
    "SUMMARY_ARTIFACT",
    "PromotionDecision",
    "Registration",
    "Registry",
    "RegistryError",
    "check_gate",
    "parse_ref",
    "register_checkpoint",
    "render_lineage",
]
