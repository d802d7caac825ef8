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
    task_of_alias,
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
        comparison: Comparison | None = None, *, task: str | None = None,
        incumbent_metrics: Mapping[str, float] | None = None,
    ) -> PromotionDecision:
        """Make `version` a task's champion if it passes `gate` and is not worse than that task's
        current champion (see `Registry.promote`), and tag the decision on it. The task is the
        version's own plan (it also becomes that task's candidate) unless `task` names an
        ancestor task it was scored on (`metrics` and `comparison` on that task's held-out
        texts). Afterwards `champion` points at the version that is champion of most tasks."""
        ref = self.lookup.resolve(f"{model_name}/{int(version)}")
        if metrics is None:
            metrics = self.lookup.run_metrics(ref.run_id)
        own = self.lookup.tags(ref).get(T.PLAN_HASH)
        if not own:
            raise RegistryError(f"{ref} has no {T.PLAN_HASH} tag, so no task to be champion of; register it with log_fine_tune")
        task = task or own
        passed, reasons = check_gate(metrics, gate)
        aliases = self.client.get_registered_model(model_name).aliases
        previous = int(aliases[champion_alias(task)]) if champion_alias(task) in aliases else None
        relative, why = against_champion(model_name, ref.version, previous, comparison)
        reasons.append(why)
        passed = passed and relative
        if task == own:
            self.client.set_registered_model_alias(model_name, candidate_alias(task), str(ref.version))
        if passed:
            self.client.set_registered_model_alias(model_name, champion_alias(task), str(ref.version))
            self.refresh_champion(model_name)
        decision = PromotionDecision(model_name, ref.version, passed, tuple(reasons), previous, task)
        if task == own:
            self._tag_decision(decision, gate, comparison)
        self._tag_task(decision, metrics, comparison, incumbent_metrics)
        return decision

    def refresh_champion(self, model_name: str) -> ModelVersionRef | None:
        """Point `champion` at the version that is champion of the most tasks: the one model
        that serves most of what this name was taught. On a tie it stays where it was (a child
        that won one task and forgot another must not take it from a model serving both), else
        goes to the newest."""
        aliases = dict(self.client.get_registered_model(model_name).aliases or {})
        counts: dict[int, int] = {}
        for alias, version in aliases.items():
            if task_of_alias(alias):
                counts[int(version)] = counts.get(int(version), 0) + 1
        if not counts:
            return None
        leaders = [v for v, n in counts.items() if n == max(counts.values())]
        current = int(aliases[CHAMPION]) if CHAMPION in aliases else None
        best = current if current in leaders else max(leaders)
        if aliases.get(CHAMPION) != str(best):
            self.client.set_registered_model_alias(model_name, CHAMPION, str(best))
        return self.lookup.resolve(f"{model_name}/{best}")

    def _tag_task(
        self, decision: PromotionDecision, metrics: Mapping[str, float], comparison: Comparison | None,
        incumbent_metrics: Mapping[str, float] | None,
    ) -> None:
        """Record the decision for one task with the version's score and the champion's, each
        with its interval, for `falconer lineage`."""
        def score(found: Mapping[str, float] | None) -> dict[str, float | None]:
            found = found or {}
            return {k: found.get(f"mean_f1{s}") for k, s in (("mean_f1", ""), ("lo", "_lo"), ("hi", "_hi"))}

        body = {
            "champion": decision.champion, "reasons": list(decision.reasons), "score": score(metrics),
            "incumbent": comparison.incumbent if comparison is not None else (
                f"{decision.model_name}/{decision.previous_champion}" if decision.previous_champion else None),
            "incumbent_score": score(incumbent_metrics) if incumbent_metrics is not None else (
                {"mean_f1": comparison.incumbent_value, "lo": None, "hi": None} if comparison is not None else None),
        }
        self.client.set_model_version_tag(
            decision.model_name, str(decision.version), T.PROMOTION_FOR_PREFIX + str(decision.task), json.dumps(body)
        )

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
