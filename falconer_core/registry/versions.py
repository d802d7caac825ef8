"""Registering a fine-tune run as a new version of a model: the version's source (the run's
checkpoint folder), its tags (lineage, run, LoggedModel, key metrics) and its description."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from falconer_core.registry import tags as T
from falconer_core.registry.artifacts import MODEL_ARTIFACT
from falconer_core.registry.refs import ModelVersionRef
from falconer_core.registry.runlog import mlflow_key


def version_tags(
    lineage: Mapping[str, str], *, run_id: str, logged_model: str, metrics: Mapping[str, float],
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """A version's tags: the caller's `extra`, then the lineage, its run and LoggedModel, and each
    key metric as `falconer.metric.<name>`."""
    return {
        **dict(extra or {}),
        **lineage,
        T.MLFLOW_RUN_ID: run_id,
        T.LOGGED_MODEL_ID: logged_model,
        **{T.METRIC_PREFIX + mlflow_key(k): repr(v) for k, v in metrics.items()},
    }


def describe(model_name: str, lineage: Mapping[str, str]) -> str:
    """One sentence for the run's note and the version's description: where it came from."""
    parent = lineage[T.PARENT_VERSION]
    start = f"retuned from {parent}" if parent != T.NONE else f"fine-tuned from {lineage[T.BASE_MODEL]}"
    return (
        f"{model_name}: {start} on {lineage[T.N_ANNOTATIONS]} annotations by "
        f"{lineage[T.ANNOTATOR]} (plan {lineage[T.PLAN_HASH]}, corpus {lineage[T.CORPUS_ID]})"
    )


def create_version(client: Any, model_name: str, run_id: str, tags: dict[str, str], description: str) -> ModelVersionRef:
    """A new version of `model_name` (registered on first use) whose source is the run's
    checkpoint folder; the run is tagged with the version. The source is a `runs:/` URI: MLflow
    3.17's sqlite registry resolves `models:/m-…` (LoggedModel) sources through the
    process-global client, which points at another database here."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(model_name, description="Falconer metamodel checkpoints")
    except MlflowException as err:
        if err.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    mv = client.create_model_version(
        model_name, source=f"runs:/{run_id}/{MODEL_ARTIFACT}", run_id=run_id, tags=tags, description=description,
    )
    version = ModelVersionRef.of(mv)
    client.set_tag(run_id, T.MODEL_VERSION, str(version))
    return version


__all__ = ["create_version", "describe", "version_tags"]
