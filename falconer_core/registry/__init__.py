"""MLflow lineage for metamodel checkpoints: one run per fine-tune, one registered version per
checkpoint tagged with its parent, base model, plan, annotation set, annotator and corpus (and
linked in MLflow's own terms: dataset inputs, LoggedModel inputs and outputs), and per-task
`candidate-<plan_hash>`/`champion-<plan_hash>` aliases behind an absolute floor and a paired
comparison with the task's champion.

Importing this package does not import MLflow; building a `Registry` does.
"""

from falconer_core.registry.artifacts import PLAN_ARTIFACT, SUMMARY_ARTIFACT
from falconer_core.registry.client import DEFAULT_EXPERIMENT, Registry
from falconer_core.registry.lineage import render_lineage
from falconer_core.registry.promotion import PromotionDecision, candidate_alias, champion_alias, check_gate
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
    "candidate_alias",
    "champion_alias",
    "check_gate",
    "parse_ref",
    "register_checkpoint",
    "render_lineage",
]
