"""Logging a cascade audit: one MLflow run per audited cascade run, tagged with the model version
it executed, so the registry shows what agreement a checkpoint delivered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from falconer_core.registry import redaction
from falconer_core.registry import tags as T
from falconer_core.registry.refs import ModelVersionRef
from falconer_core.registry.runlog import clean_params, log_metrics, log_params, metric_rows, numbers, open_run

if TYPE_CHECKING:
    from falconer_core.registry.location import Experiment
    from falconer_core.registry.lookup import VersionLookup

#: The run tag naming the cascade (execution) run that was audited.
EXECUTION_RUN = "falconer.execution_run"


def log_execution_figures(
    lookup: VersionLookup, experiment: Experiment, model_ref: str | ModelVersionRef, execution_run: str,
    metrics: Mapping[str, float], params: Mapping[str, Any], *, kind: str = "cascade-audit",
) -> str:
    """One MLflow run of figures measured on `execution_run` (metrics, redacted params), tagged
    with the version it executed; returns its id. `kind` names it (`NAME-cascade-audit`,
    `NAME-drift`)."""
    mv = lookup.model_version(model_ref)
    params = clean_params(redaction.flatten(params), redaction.env_secrets().values())
    tags = {T.MODEL_VERSION: str(ModelVersionRef.of(mv)), EXECUTION_RUN: execution_run}
    with open_run(lookup.client, experiment.id, f"{mv.name}-{kind}", tags) as run_id:
        log_metrics(lookup.client, run_id, metric_rows(numbers(metrics, "metrics")))
        log_params(lookup.client, run_id, params)
    return run_id


__all__ = ["EXECUTION_RUN", "log_execution_figures"]
