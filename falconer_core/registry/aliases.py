"""Moving aliases: a task's `candidate-<plan_hash>` and `champion-<plan_hash>` (behind the rule in
`promotion`), with the decision tagged on the version, and any alias a user sets by hand."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from falconer_core.errors import ConfigError
from falconer_core.registry import tags as T
from falconer_core.registry.promotion import (
    PromotionDecision,
    against_champion,
    candidate_alias,
    champion_alias,
    check_gate,
)
from falconer_core.registry.refs import CHAMPION, LATEST, ModelVersionRef, RegistryError

if TYPE_CHECKING:
    from falconer_core.evaluation.comparison import Comparison
    from falconer_core.registry.lookup import VersionLookup


class Aliases:
    """The aliases of one registry's models."""

    def __init__(self, lookup: VersionLookup) -> None:
        self.lookup = lookup
        self.client = lookup.client

    def set(self, model_name: str, alias: str, version: int | str) -> ModelVersionRef:
        """Point `model_name@alias` at `version` (moving it if it pointed elsewhere)."""
        if alias.lower() == LATEST:
            raise ConfigError("'latest' is reserved: it always means the highest version")
        ref = self.lookup.resolve(f"{model_name}/{int(version)}")
        self.client.set_registered_model_alias(model_name, alias, str(ref.version))
        return self.lookup.resolve(ref)

    def promote(
        self, model_name: str, version: int | str, metrics: Mapping[str, float] | None, gate: Mapping[str, float],
        comparison: Comparison | None = None,
    ) -> PromotionDecision:
        """Make `version` its task's candidate, and its champion if it passes `gate` and is not
        worse than the current champion (see `Registry.promote`); tag the decision on it."""
        ref = self.lookup.resolve(f"{model_name}/{int(version)}")
        if metrics is None:
            metrics = self.lookup.run_metrics(ref.run_id)
        task = self.lookup.tags(ref).get(T.PLAN_HASH)
        if not task:
            raise RegistryError(f"{ref} has no {T.PLAN_HASH} tag, so no task to be champion of; register it with log_fine_tune")
        passed, reasons = check_gate(metrics, gate)
        aliases = self.client.get_registered_model(model_name).aliases
        previous = int(aliases[champion_alias(task)]) if champion_alias(task) in aliases else None
        relative, why = against_champion(model_name, ref.version, previous, comparison)
        reasons.append(why)
        passed = passed and relative
        self.client.set_registered_model_alias(model_name, candidate_alias(task), str(ref.version))
        if passed:
            self.client.set_registered_model_alias(model_name, champion_alias(task), str(ref.version))
        decision = PromotionDecision(model_name, ref.version, passed, tuple(reasons), previous, task)
        self._tag_decision(decision, gate, comparison)
        return decision

    def _tag_decision(self, decision: PromotionDecision, gate: Mapping[str, float], comparison: Comparison | None) -> None:
        """Record on the version what was decided, for which task, against which gate, and why."""
        for key, value in {
            T.PROMOTION: CHAMPION if decision.champion else "rejected",
            T.PROMOTION_TASK: decision.task,
            T.PROMOTION_GATE: json.dumps(dict(gate), sort_keys=True),
            T.PROMOTION_REASONS: "; ".join(decision.reasons),
            T.PROMOTION_COMPARISON: comparison.model_dump_json() if comparison is not None else T.NONE,
        }.items():
            self.client.set_model_version_tag(decision.model_name, str(decision.version), key, value)

    def champion_of(self, model_name: str, plan_hash: str) -> ModelVersionRef | None:
        """The champion of one task (plan hash), or None when the task (or the model) has none."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = dict(self.client.get_registered_model(model_name).aliases or {})
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            return None
        alias = champion_alias(plan_hash)
        return self.lookup.resolve(f"{model_name}/{aliases[alias]}") if alias in aliases else None


__all__ = ["Aliases"]
