"""Reading the registry: which version a ref names, a version's tags, its run's metrics and plan,
and a model's versions. Every other part of the registry finds versions through here.

Only `MlflowClient` calls with this registry's own URIs are used: MLflow's fluent API and its
`models:/` URIs fall back to the process-global tracking URI."""

from __future__ import annotations

import tempfile
from typing import Any

from falconer_core.errors import ConfigError
from falconer_core.plan import Plan
from falconer_core.registry import tags as T
from falconer_core.registry.artifacts import PLAN_ARTIFACT
from falconer_core.registry.promotion import task_of_alias
from falconer_core.registry.refs import CHAMPION, LATEST, ModelVersionRef, RegistryError, parse_ref


class VersionLookup:
    """Finds registered models and versions through one `MlflowClient`."""

    def __init__(self, client: Any, tracking_uri: str) -> None:
        self.client = client
        self.tracking_uri = tracking_uri

    def resolve(self, ref: str | ModelVersionRef) -> ModelVersionRef:
        """The version a ref names (see `model_version`)."""
        return ModelVersionRef.of(self.model_version(ref))

    def model_version(self, ref: str | ModelVersionRef) -> Any:
        """The MLflow `ModelVersion` a ref names: `NAME@alias`, `NAME/version`, or `NAME` (the
        newest version that is some task's champion, else the latest version)."""
        from mlflow.exceptions import MlflowException

        name, version, alias = parse_ref(ref)
        aliases = dict(self.registered_model(name).aliases or {})
        if version is None:
            version = self._aliased_version(name, aliases, alias)
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise RegistryError(f"{name!r} has no version {version}") from None

    def _aliased_version(self, name: str, aliases: dict[str, str], alias: str | None) -> int:
        """The version number `NAME@alias` (or a bare `NAME`) stands for, given the model's aliases."""
        champions = [int(v) for a, v in aliases.items() if a == CHAMPION or task_of_alias(a)]
        if alias is None and champions:
            return max(champions)
        if alias is None or alias.lower() == LATEST:
            found = self.client.search_model_versions(f"name='{name}'")
            if not found:
                raise RegistryError(f"{name!r} has no versions yet")
            return max(int(mv.version) for mv in found)
        if alias in aliases:
            return int(aliases[alias])
        hint = (" Champions are per task: NAME@champion-<plan_hash> (see `falconer lineage NAME`)"
                if alias == CHAMPION else "")
        raise RegistryError(f"{name!r} has no alias {alias!r} (aliases: {', '.join(sorted(aliases)) or 'none'}).{hint}")

    def registered_model(self, name: str) -> Any:
        """The MLflow `RegisteredModel`; a missing one is a `RegistryError` naming those there are."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            known = sorted(m.name for m in self.client.search_registered_models())
            hint = ", ".join(known[:10]) or "none yet; register one with a fine-tune"
            raise RegistryError(f"no registered model named {name!r} in {self.tracking_uri} (registered: {hint})") from None

    def tags(self, ref: str | ModelVersionRef) -> dict[str, str]:
        """A version's tags (its lineage, its promotion)."""
        return dict(self.model_version(ref).tags or {})

    def run_metrics(self, run_id: str | None) -> dict[str, float]:
        """The metrics of a run; empty when there is no run or it is gone."""
        from mlflow.exceptions import MlflowException

        if not run_id:
            return {}
        try:
            return dict(self.client.get_run(run_id).data.metrics)
        except MlflowException:
            return {}

    def versions(self, model_name: str) -> list[ModelVersionRef]:
        """Every version of a registered model, newest first."""
        self.registered_model(model_name)
        found = self.client.search_model_versions(f"name='{model_name}'")
        return sorted((ModelVersionRef.of(mv) for mv in found), key=lambda r: r.version, reverse=True)

    def find_version(self, model_name: str, tag: str, value: str) -> ModelVersionRef | None:
        """The lowest version of `model_name` tagged `tag=value`, or None."""
        if "'" in value or "`" in tag:
            raise ConfigError(f"cannot search for tag {tag!r} = {value!r}: quotes are not allowed")
        found = self.client.search_model_versions(f"name = '{model_name}' and tags.`{tag}` = '{value}'")
        return ModelVersionRef.of(min(found, key=lambda mv: int(mv.version))) if found else None

    def plan_of(self, ref: str | ModelVersionRef) -> Plan:
        """The plan a version was fine-tuned for (its run's `plan.yaml`)."""
        version = self.resolve(ref)
        with tempfile.TemporaryDirectory(prefix="falconer-plan-") as tmp:
            return Plan.load(self.client.download_artifacts(version.run_id, PLAN_ARTIFACT, dst_path=tmp))

    def base_model_of(self, ref: str | ModelVersionRef) -> str:
        """The base encoder at the root of a version's lineage ('unknown' when untagged)."""
        return self.tags(ref).get(T.BASE_MODEL, "unknown")


__all__ = ["VersionLookup"]
