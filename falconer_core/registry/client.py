"""`Registry`: every fine-tune as an MLflow run plus a registered model version whose tags record
where it came from, with aliases that pick what `execute` runs.

The entry point callers use; each concern lives in its own module and `Registry` hands over:
`fine_tune` (logging a run and registering its version), `audit` (a cascade audit run),
`aliases` (champions, candidates and promotion), `lookup` (reading versions), `lineage`
(ancestry) and `checkpoints` (downloads). `location` says where it all is kept.

MLflow is imported when a `Registry` is built, not when this module is, so the CLI stays quick.
Only `MlflowClient` calls with this registry's own URIs are used: MLflow's fluent API and its
`models:/` URIs fall back to the process-global tracking URI."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconer_core.disk import disk_errors
from falconer_core.metamodel.source import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry.aliases import Aliases
from falconer_core.registry.artifacts import CHECKPOINT_ARTIFACT, CHECKPOINT_CONFIG, PLAN_ARTIFACT, SUMMARY_ARTIFACT
from falconer_core.registry.audit import log_execution_figures
from falconer_core.registry.checkpoints import Checkpoints
from falconer_core.registry.fine_tune import FineTune, FineTuneLogger
from falconer_core.registry.lineage import read_lineage
from falconer_core.registry.location import Experiment, Location
from falconer_core.registry.lookup import VersionLookup
from falconer_core.registry.promotion import PromotionDecision
from falconer_core.registry.refs import ModelVersionRef, parse_ref
from falconer_core.settings import Settings

if TYPE_CHECKING:
    from falconer_core.evaluation.comparison import Comparison

DEFAULT_EXPERIMENT = "falconer"


class Registry:
    """MLflow tracking + model registry for Falconer checkpoints.

    `Registry()` is the embedded default: a sqlite database `HOME/mlflow.db` with artifacts
    under `HOME/mlartifacts` (HOME from `Settings`), unless `MLFLOW_TRACKING_URI` is set. A
    sqlite URI given here keeps its artifacts in a `mlartifacts` folder beside the database.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_root: str | os.PathLike | None = None,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
        checkpoints_dir: str | os.PathLike | None = None,
    ) -> None:
        from mlflow import MlflowClient

        location = Location.resolve(tracking_uri, artifact_root, Settings().home)
        self.tracking_uri = location.tracking_uri
        self.artifact_location = location.artifact_location
        #: Where `download(ref)` without `dst` keeps checkpoints, one folder per version: the
        #: given folder (`from_settings`: FALCONER_CHECKPOINTS_DIR, default HOME/checkpoints),
        #: else beside the registry's artifacts.
        self.cache_dir = Path(checkpoints_dir).expanduser().resolve() if checkpoints_dir else location.cache_dir
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.experiment = Experiment(self.client, experiment, self.artifact_location)
        #: Reading versions, their tags, runs and plans.
        self.lookup = VersionLookup(self.client, self.tracking_uri)
        #: Champions, candidates and hand-set aliases.
        self.aliases = Aliases(self.lookup)
        #: Downloaded checkpoints.
        self.checkpoints = Checkpoints(self.lookup, self.cache_dir)
        self._fine_tunes = FineTuneLogger(self.lookup, self.experiment)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        """The registry the settings point at (`FALCONER_MLFLOW_*`, else the embedded default)."""
        settings = settings or Settings()
        return cls(settings.mlflow_tracking_uri, settings.mlflow_artifact_location, checkpoints_dir=settings.checkpoints_dir)

    def __repr__(self) -> str:
        return f"Registry(tracking_uri={self.tracking_uri!r}, artifact_location={self.artifact_location!r})"

    @property
    def ui_command(self) -> str:
        """The command that opens the MLflow UI on this registry."""
        return f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {self.tracking_uri} --workers 1"

    @property
    def experiment_id(self) -> str:
        """The Falconer experiment, created on first use in this registry's artifact folder."""
        return self.experiment.id

    # ------------------------------------------------------------------ logging runs
    def log_fine_tune(
        self,
        metamodel_dir: str | os.PathLike,
        *,
        model_name: str,
        parent: str | ModelVersionRef | None,
        base_model: str | None,
        plan: Plan | str | Mapping[str, Any],
        annotation_set_hash: str,
        n_annotations: int,
        annotator: str,
        corpus_id: str,
        settings: Mapping[str, Any] | Any,
        metrics: Mapping[str, float],
        summary: Mapping[str, Any] | Any | None = None,
        flow_run_id: str | None = None,
        annotations_path: str | os.PathLike | None = None,
        version_tags: Mapping[str, str] | None = None,
        heldout_ids: Sequence[str] | None = None,
    ) -> ModelVersionRef:
        """Record one fine-tune: an MLflow run (params = settings + base/parent, metrics, the
        checkpoint, `plan.yaml`, the training summary and the annotation file as artifacts), then a
        registered version of `model_name` whose source is that checkpoint, tagged with its
        lineage. `parent` is the version it was tuned from (any ref; stored resolved), None when
        tuned from `base_model` (None reads the checkpoint's own `base_model`). `version_tags`
        are set on the version as it is created (so `find_version` sees them at once).

        In MLflow's own lineage terms too: the run's inputs are the annotation set (an
        `mlflow.data` dataset whose digest is the set's hash, context `training`), the held-out
        texts among it (`heldout_ids`, context `evaluation`) and the parent's LoggedModel; its
        output is a LoggedModel standing for the checkpoint (id tagged as `falconer.logged_model_id`)."""
        tune = FineTune(
            model_name=model_name, parent=parent, base_model=base_model, plan=plan,
            annotation_set_hash=annotation_set_hash, n_annotations=n_annotations, annotator=annotator,
            corpus_id=corpus_id, settings=settings, metrics=metrics, summary=summary, flow_run_id=flow_run_id,
            annotations_path=annotations_path, version_tags=version_tags, heldout_ids=heldout_ids,
        )
        with self._writing():
            return self._fine_tunes.log(metamodel_dir, tune)

    def _writing(self) -> AbstractContextManager[None]:
        """A full disk or a refused write while logging is a `DiskError` naming the registry's
        local folder (its artifact root; the home when a tracking server keeps them)."""
        root = self.artifact_location or ""
        return disk_errors(Path(root[len("file://"):]) if root.startswith("file://") else Settings().home)

    def log_cascade_audit(
        self, model_ref: str | ModelVersionRef, execution_run: str, metrics: Mapping[str, float],
        params: Mapping[str, Any],
    ) -> str:
        """One MLflow run per audited cascade run, tagged with the model version it executed, so
        the registry shows what agreement a checkpoint delivered; returns the MLflow run id."""
        with self._writing():
            return log_execution_figures(self.lookup, self.experiment, model_ref, execution_run, metrics, params)

    def log_drift(
        self, model_ref: str | ModelVersionRef, execution_run: str, metrics: Mapping[str, float],
        params: Mapping[str, Any],
    ) -> str:
        """One MLflow run (`NAME-drift`) per drift-checked execution run, tagged with the model
        version it executed, so the registry shows how each version's corpus moved; returns its id."""
        with self._writing():
            return log_execution_figures(self.lookup, self.experiment, model_ref, execution_run, metrics, params, kind="drift")

    # ------------------------------------------------------------------ aliases and promotion
    def set_alias(self, model_name: str, alias: str, version: int | str) -> ModelVersionRef:
        """Point `model_name@alias` at `version` (moving it if it pointed elsewhere)."""
        return self.aliases.set(model_name, alias, version)

    def promote(
        self,
        model_name: str,
        version: int | str,
        metrics: Mapping[str, float] | None,
        gate: Mapping[str, float],
        comparison: Comparison | None = None,
        *,
        task: str | None = None,
        incumbent_metrics: Mapping[str, float] | None = None,
    ) -> PromotionDecision:
        """Make `version` its task's candidate (`candidate-<plan_hash>`), and its task's
        champion (`champion-<plan_hash>`) only if every gated metric is at least its threshold
        and, when the task has a champion already, `comparison` (the paired bootstrap against
        that champion on this version's held-out texts) says it is not worse beyond the noise.
        Without a comparison a task's champion is never replaced. `metrics=None` reads the
        run's metrics. The decision, its task and its reasons are tagged on the version.

        With `task` (an ancestor task's plan hash), the same rule decides whether `version`
        becomes that task's champion, on `metrics` and `comparison` from that task's held-out
        texts; `incumbent_metrics` (the champion's there) is recorded beside them. The alias
        `champion` then names the version that is champion of the most tasks."""
        return self.aliases.promote(
            model_name, version, metrics, gate, comparison, task=task, incumbent_metrics=incumbent_metrics
        )

    def champion_of(self, model_name: str, plan_hash: str) -> ModelVersionRef | None:
        """The champion of one task (plan hash), or None when the task (or the model) has none."""
        return self.aliases.champion_of(model_name, plan_hash)

    # ------------------------------------------------------------------ reading versions
    def resolve(self, ref: str | ModelVersionRef) -> ModelVersionRef:
        """The version a ref names: `NAME@alias` (e.g. `NAME@champion-<plan_hash>`),
        `NAME/version`, or `NAME` (the newest version that is some task's champion, else the
        latest version)."""
        return self.lookup.resolve(ref)

    def for_task(self, ref: str | ModelVersionRef, plan_hash: str) -> str | ModelVersionRef:
        """The ref to run task `plan_hash` with: a bare `NAME` becomes that task's champion
        (`NAME@champion-<plan_hash>`) when it has one; any other ref stays as it is."""
        name, version, alias = parse_ref(ref)
        if version is not None or alias is not None:
            return ref
        found = self.champion_of(name, plan_hash)
        return found if found is not None else ref

    def find_version(self, model_name: str, tag: str, value: str) -> ModelVersionRef | None:
        """The lowest version of `model_name` tagged `tag=value`, or None (what makes a retried
        registration find the version an earlier attempt created)."""
        return self.lookup.find_version(model_name, tag, value)

    def versions(self, model_name: str) -> list[ModelVersionRef]:
        """Every version of a registered model, newest first."""
        return self.lookup.versions(model_name)

    def plan_of(self, ref: str | ModelVersionRef) -> Plan:
        """The plan a version was fine-tuned for (its run's `plan.yaml`)."""
        return self.lookup.plan_of(ref)

    def base_model_of(self, ref: str | ModelVersionRef) -> str:
        """The base encoder at the root of a version's lineage ('unknown' when untagged)."""
        return self.lookup.base_model_of(ref)

    def lineage(self, ref: str | ModelVersionRef) -> list[dict[str, Any]]:
        """The ancestry of a version, newest first, down to its base model (`read_lineage`)."""
        return read_lineage(self.lookup, ref)

    # ------------------------------------------------------------------ checkpoints
    def fetch(self, ref: str | ModelVersionRef) -> ModelSource:
        """A version as a local checkpoint to run or continue from (downloaded once, cached)."""
        return self.checkpoints.fetch(ref)

    def download(self, ref: str | ModelVersionRef, dst: str | os.PathLike | None = None) -> Path:
        """The checkpoint folder of a version, ready for `Metamodel.load`. Without `dst` it is
        cached under `cache_dir` (versions never change, so a second call reuses it); with
        `dst`, that folder (absent or empty) becomes the checkpoint."""
        return self.checkpoints.download(ref, dst)


__all__ = [
    "CHECKPOINT_ARTIFACT", "CHECKPOINT_CONFIG", "DEFAULT_EXPERIMENT", "PLAN_ARTIFACT", "SUMMARY_ARTIFACT", "Registry",
]
