"""Logging one fine-tune: an MLflow run holding its params, metrics, checkpoint, plan, training
summary and annotation file, linked in MLflow's terms to its dataset and parent (`inputs`), then
a registered version of it tagged with its lineage (`versions`). Nothing is written until every
input has been checked, and no credential reaches MLflow (`redaction`)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconer_core.errors import ConfigError, ModelError
from falconer_core.plan import Plan
from falconer_core.registry import redaction
from falconer_core.registry import tags as T
from falconer_core.registry.artifacts import CHECKPOINT_CONFIG, MODEL_CHECKPOINT, PLAN_ARTIFACT, SUMMARY_ARTIFACT
from falconer_core.registry.inputs import log_run_lineage
from falconer_core.registry.refs import ModelVersionRef
from falconer_core.registry.runlog import clean_params, log_metrics, log_params, metric_rows, numbers, open_run
from falconer_core.registry.versions import create_version, describe, version_tags

if TYPE_CHECKING:
    from falconer_core.registry.location import Experiment
    from falconer_core.registry.lookup import VersionLookup

_BAD_NAME_CHARS = ("/", ":", "@", "'", '"')


@dataclass(frozen=True)
class FineTune:
    """What a fine-tune logs beside its checkpoint (the fields of `Registry.log_fine_tune`)."""

    model_name: str
    parent: str | ModelVersionRef | None
    base_model: str | None
    plan: Plan | str | Mapping[str, Any]
    annotation_set_hash: str
    n_annotations: int
    annotator: str
    corpus_id: str
    settings: Mapping[str, Any] | Any
    metrics: Mapping[str, float]
    summary: Mapping[str, Any] | Any | None = None
    flow_run_id: str | None = None
    annotations_path: str | os.PathLike | None = None
    version_tags: Mapping[str, str] | None = None
    heldout_ids: Sequence[str] | None = None


class FineTuneLogger:
    """Logs fine-tunes as runs and versions of one registry."""

    def __init__(self, lookup: VersionLookup, experiment: Experiment) -> None:
        self.lookup = lookup
        self.client = lookup.client
        self.experiment = experiment

    def log(self, metamodel_dir: str | os.PathLike, tune: FineTune) -> ModelVersionRef:
        """Check the inputs, log the run, register its version; returns the version."""
        # 1. Everything is checked before anything is written.
        folder = _checkpoint_folder(metamodel_dir)
        _check_model_name(tune.model_name)
        plan = _as_plan(tune.plan)
        parent = self.lookup.model_version(tune.parent) if tune.parent is not None else None
        base_model = _base_model(folder, tune.base_model, parent)
        secrets = redaction.env_secrets()
        _refuse_leaked_secrets(folder, tune.annotations_path, secrets)

        # 2. What the run and the version record, cleaned of credentials.
        lineage = _lineage(tune, plan, parent, base_model)
        metrics = numbers(tune.metrics, "metrics")
        params = {**redaction.flatten(tune.settings), "base_model": base_model, "parent_version": lineage[T.PARENT_VERSION]}
        params = clean_params(params, secrets.values())
        lineage = redaction.clean_strings(lineage, secrets.values())

        # 3. The run, then the version whose source is the run's checkpoint.
        run_id, logged_model = self._log_run(folder, tune, plan, lineage, params, metrics, parent, secrets.values())
        tags = version_tags(lineage, run_id=run_id, logged_model=logged_model, metrics=metrics, extra=tune.version_tags)
        return create_version(self.client, tune.model_name, run_id, tags, describe(tune.model_name, lineage))

    def _log_run(
        self, folder: Path, tune: FineTune, plan: Plan, lineage: dict[str, str], params: dict[str, str],
        metrics: dict[str, float], parent: Any, secrets: Iterable[str],
    ) -> tuple[str, str]:
        """The fine-tune run (FAILED if any part fails); returns its id and its LoggedModel's."""
        tags = {**lineage, "mlflow.note.content": describe(tune.model_name, lineage)}
        with open_run(self.client, self.experiment.id, f"{tune.model_name}-fine-tune", tags) as run_id:
            summary = redaction.clean_object(tune.summary, secrets) if tune.summary is not None else None
            log_params(self.client, run_id, params)
            log_metrics(self.client, run_id, metric_rows(metrics, summary))
            self._log_artifacts(run_id, folder, plan, summary, tune.annotations_path, secrets)
            parent_model = (parent.tags or {}).get(T.LOGGED_MODEL_ID) if parent is not None else None
            logged_model = log_run_lineage(
                self.client, self.experiment.id, run_id, tune.model_name, lineage, tune.annotations_path,
                tune.heldout_ids, parent_model, checkpoint_artifact=MODEL_CHECKPOINT,
            )
        return run_id, logged_model

    def _log_artifacts(
        self, run_id: str, folder: Path, plan: Plan, summary: Any, annotations_path: str | os.PathLike | None,
        secrets: Iterable[str],
    ) -> None:
        """The checkpoint as an MLflow pyfunc model (with the plan inside), `plan.yaml` (redacted),
        the training summary and the annotations."""
        from falconer_core.serving.pyfunc import log_pyfunc

        with tempfile.TemporaryDirectory(prefix="falconer-mlflow-") as tmp:
            (Path(tmp) / PLAN_ARTIFACT).write_text(redaction.redact(plan.to_yaml(), secrets), "utf-8")
            if summary is not None:
                (Path(tmp) / SUMMARY_ARTIFACT).write_text(json.dumps(summary, indent=2), "utf-8")
            self.client.log_artifacts(run_id, tmp)
            log_pyfunc(self.client, run_id, folder, Path(tmp) / PLAN_ARTIFACT)
        if annotations_path is not None:
            path = Path(annotations_path)
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), "annotations")
            else:
                self.client.log_artifact(run_id, str(path), "annotations")


def _checkpoint_folder(metamodel_dir: str | os.PathLike) -> Path:
    folder = Path(metamodel_dir)
    if not (folder / CHECKPOINT_CONFIG).is_file():
        raise ModelError(f"{folder} is not a Falconer checkpoint (no {CHECKPOINT_CONFIG}); write one with Metamodel.save")
    return folder


def _check_model_name(name: str) -> None:
    if not name or not name.strip() or any(c in name for c in _BAD_NAME_CHARS):
        raise ConfigError(f"bad model name {name!r}: use a non-empty name without / : @ or quotes")


def _as_plan(plan: Plan | str | Mapping[str, Any]) -> Plan:
    if isinstance(plan, Plan):
        return plan
    if isinstance(plan, str):
        return Plan.from_yaml(plan)  # JSON is YAML too
    if isinstance(plan, Mapping):
        return Plan.from_dict(plan)
    raise ConfigError(f"plan must be a Plan, its YAML/JSON text or a dict, got {type(plan).__name__}")


def _base_model(folder: Path, given: str | None, parent: Any) -> str:
    """The given base model, else the checkpoint's own, else (when unknown) the parent's."""
    base_model = given
    if base_model is None:
        base_model = json.loads((folder / CHECKPOINT_CONFIG).read_text()).get("base_model") or "unknown"
    if parent is not None and base_model in (None, "unknown"):
        base_model = (parent.tags or {}).get(T.BASE_MODEL, "unknown")
    return base_model


def _refuse_leaked_secrets(folder: Path, annotations_path: str | os.PathLike | None, secrets: dict[str, str]) -> None:
    """Refuse a checkpoint or annotation file that holds the value of a credential variable."""
    files = [folder] + ([Path(annotations_path)] if annotations_path is not None else [])
    for path in files[1:]:
        if not path.exists():
            raise ConfigError(f"annotations file not found: {path}")
    leaked = redaction.find_secret_in_files(files, secrets)
    if leaked:
        raise ConfigError(
            f"{leaked[0]} contains the value of ${leaked[1]}; refusing to log it to MLflow. "
            "Remove the credential from that file and log again."
        )


def _lineage(tune: FineTune, plan: Plan, parent: Any, base_model: str) -> dict[str, str]:
    """The lineage tags of the run and its version."""
    return {
        T.PARENT_VERSION: str(ModelVersionRef.of(parent)) if parent is not None else T.NONE,
        T.BASE_MODEL: base_model,
        T.PLAN_HASH: plan.hash,
        T.ANNOTATION_SET_HASH: tune.annotation_set_hash,
        T.N_ANNOTATIONS: str(int(tune.n_annotations)),
        T.ANNOTATOR: tune.annotator,
        T.CORPUS_ID: tune.corpus_id,
        T.FLOW_RUN_ID: tune.flow_run_id or T.NONE,
    }


__all__ = ["FineTune", "FineTuneLogger"]
