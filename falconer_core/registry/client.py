"""`Registry`: every fine-tune as an MLflow run plus a registered model version whose tags record
where it came from, with aliases that pick what `execute` runs.

MLflow is imported when a `Registry` is built, not when this module is, so the CLI stays quick.
Only `MlflowClient` calls with this registry's own URIs are used: MLflow's fluent API and its
`models:/` URIs fall back to the process-global tracking URI (see `_register`, `download`)."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconer_core.errors import ConfigError, ModelError
from falconer_core.metamodel.source import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry import redaction
from falconer_core.registry import tags as T
from falconer_core.registry.inputs import log_run_lineage
from falconer_core.registry.promotion import (
    PromotionDecision,
    against_champion,
    candidate_alias,
    champion_alias,
    check_gate,
    task_of_alias,
)
from falconer_core.registry.refs import CHAMPION, LATEST, ModelVersionRef, RegistryError, parse_ref
from falconer_core.settings import Settings

if TYPE_CHECKING:
    from falconer_core.evaluation.comparison import Comparison

#: The artifact of a fine-tune run that holds the plan it was trained for.
PLAN_ARTIFACT = "plan.yaml"
#: The artifact that holds the fine-tune's `TrainingSummary`.
SUMMARY_ARTIFACT = "training_summary.json"

DEFAULT_EXPERIMENT = "falconer"
#: The checkpoint's own config file (`falconer_core.metamodel.model.CONFIG_FILE`), named here so
#: that this module does not import torch.
CHECKPOINT_CONFIG = "falconer.json"
CHECKPOINT_ARTIFACT = "checkpoint"
#: Serving hook (issue 21): new versions' source, the run's MLflow model folder (`falconer_core.serving`).
MODEL_ARTIFACT = "model"

_MLFLOW_KEY = re.compile(r"[^\w.\- /]")
_BAD_NAME_CHARS = ("/", ":", "@", "'", '"')
_BATCH = 100


class Registry:
    """MLflow tracking + model registry for Falconer checkpoints.

    `Registry()` is the embedded default: a sqlite database `HOME/mlflow.db` with artifacts
    under `HOME/mlartifacts` (HOME from `Settings`), unless `MLFLOW_TRACKING_URI` is set. A sqlite URI given here
    keeps its artifacts in a `mlartifacts` folder beside the database.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_root: str | os.PathLike | None = None,
        *,
        experiment: str = DEFAULT_EXPERIMENT,
    ) -> None:
        from mlflow import MlflowClient

        home = Settings().home
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or _sqlite_uri(home / "mlflow.db")
        db_path = _sqlite_path(uri)
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        if artifact_root is not None:
            root = str(artifact_root)
            self.artifact_location: str | None = root if "://" in root else Path(root).resolve().as_uri()
        elif db_path is not None:
            self.artifact_location = (db_path.parent / "mlartifacts").resolve().as_uri()
        else:  # a tracking server decides where artifacts go
            self.artifact_location = None
        local_root = Path(self.artifact_location[len("file://"):]) if self.artifact_location and self.artifact_location.startswith("file://") else None
        #: Where `download(ref)` without `dst` keeps checkpoints, one folder per version.
        self.cache_dir = (local_root.parent if local_root else home.resolve()) / "checkpoints"
        self.tracking_uri = uri
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self._experiment_id: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        """The registry the settings point at (`FALCONER_MLFLOW_*`, else the embedded default)."""
        settings = settings or Settings()
        return cls(settings.mlflow_tracking_uri, settings.mlflow_artifact_location)

    def __repr__(self) -> str:
        return f"Registry(tracking_uri={self.tracking_uri!r}, artifact_location={self.artifact_location!r})"

    @property
    def ui_command(self) -> str:
        """The command that opens the MLflow UI on this registry."""
        return f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {self.tracking_uri} --workers 1"

    @property
    def experiment_id(self) -> str:
        """The Falconer experiment, created on first use with an explicit artifact location so a
        local registry keeps its artifacts in its own folder (not `./mlruns`)."""
        if self._experiment_id is None:
            from mlflow.exceptions import MlflowException

            found = self.client.get_experiment_by_name(self.experiment_name)
            if found is None:
                try:
                    self._experiment_id = self.client.create_experiment(
                        self.experiment_name, artifact_location=self.artifact_location
                    )
                except MlflowException:  # created by another process meanwhile
                    found = self.client.get_experiment_by_name(self.experiment_name)
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self._experiment_id = found.experiment_id
        return self._experiment_id

    # ------------------------------------------------------------------ logging a fine-tune
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
        folder = Path(metamodel_dir)
        if not (folder / CHECKPOINT_CONFIG).is_file():
            raise ModelError(f"{folder} is not a Falconer checkpoint (no {CHECKPOINT_CONFIG}); write one with Metamodel.save")
        _check_model_name(model_name)
        plan = _as_plan(plan)
        parent_ref = self.resolve(parent) if parent is not None else None
        if base_model is None:
            base_model = json.loads((folder / CHECKPOINT_CONFIG).read_text()).get("base_model") or "unknown"
        if parent_ref is not None and base_model in (None, "unknown"):
            base_model = self._tags(parent_ref).get(T.BASE_MODEL, "unknown")
        secrets = redaction.env_secrets()
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

        lineage = {
            T.PARENT_VERSION: str(parent_ref) if parent_ref else T.NONE,
            T.BASE_MODEL: base_model,
            T.PLAN_HASH: plan.hash,
            T.ANNOTATION_SET_HASH: annotation_set_hash,
            T.N_ANNOTATIONS: str(int(n_annotations)),
            T.ANNOTATOR: annotator,
            T.CORPUS_ID: corpus_id,
            T.FLOW_RUN_ID: flow_run_id or T.NONE,
        }
        key_metrics = _numbers(metrics, "metrics")
        params = {**redaction.flatten(settings), "base_model": base_model, "parent_version": lineage[T.PARENT_VERSION]}
        params = {_mlflow_key(k): v for k, v in redaction.clean_strings(params, secrets.values()).items()}
        lineage = redaction.clean_strings(lineage, secrets.values())

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{model_name}-fine-tune",
            tags={**lineage, "mlflow.note.content": _describe(model_name, lineage)},
        )
        run_id = run.info.run_id
        try:
            self._log_run(run_id, params, key_metrics, summary, plan, folder, annotations_path, secrets.values())
            parent_model = self._tags(parent_ref).get(T.LOGGED_MODEL_ID) if parent_ref else None
            logged_model = log_run_lineage(
                self.client, self.experiment_id, run_id, model_name, lineage, annotations_path, heldout_ids, parent_model,
                checkpoint_artifact=f"{MODEL_ARTIFACT}/artifacts/{CHECKPOINT_ARTIFACT}",  # serving hook (issue 21)
            )
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id, "FINISHED")

        all_tags = {
            **dict(version_tags or {}),
            **lineage,
            T.MLFLOW_RUN_ID: run_id,
            T.LOGGED_MODEL_ID: logged_model,
            **{T.METRIC_PREFIX + _mlflow_key(k): repr(v) for k, v in key_metrics.items()},
        }
        version = self._register(model_name, run_id, all_tags, _describe(model_name, lineage))
        self.client.set_tag(run_id, T.MODEL_VERSION, str(version))
        return version

    def log_cascade_audit(
        self, model_ref: str | ModelVersionRef, execution_run: str, metrics: Mapping[str, float],
        params: Mapping[str, Any],
    ) -> str:
        """One MLflow run per audited cascade run, tagged with the model version it executed, so
        the registry shows what agreement a checkpoint delivered; returns the MLflow run id."""
        mv = self._model_version(model_ref)
        secrets = redaction.env_secrets()
        clean = {_mlflow_key(k): v for k, v in redaction.clean_strings(redaction.flatten(params), secrets.values()).items()}
        run = self.client.create_run(
            self.experiment_id, run_name=f"{mv.name}-cascade-audit",
            tags={T.MODEL_VERSION: str(_ref(mv)), "falconer.execution_run": execution_run},
        )
        now = int(time.time() * 1000)
        from mlflow.entities import Metric, Param

        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(_mlflow_key(k), float(v), now, 0) for k, v in _numbers(metrics, "metrics").items()],
            params=[Param(k, str(v)[:6000]) for k, v in clean.items()],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def _log_run(self, run_id, params, metrics, summary, plan, folder, annotations_path, secrets) -> None:
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run_id, params=items[i : i + _BATCH])
        rows = [Metric(_mlflow_key(k), v, now, 0) for k, v in metrics.items()]
        if summary is not None:
            summary = redaction.clean_object(summary, secrets)
            rows += _summary_metrics(summary, now)
        for i in range(0, len(rows), _BATCH * 10):
            self.client.log_batch(run_id, metrics=rows[i : i + _BATCH * 10])
        with tempfile.TemporaryDirectory(prefix="falconer-mlflow-") as tmp:
            (Path(tmp) / PLAN_ARTIFACT).write_text(redaction.redact(plan.to_yaml(), secrets), "utf-8")
            if summary is not None:
                (Path(tmp) / SUMMARY_ARTIFACT).write_text(json.dumps(summary, indent=2), "utf-8")
            self.client.log_artifacts(run_id, tmp)
            # --- serving hook (issue 21): the checkpoint is logged as an MLflow pyfunc model
            from falconer_core.serving.pyfunc import log_pyfunc

            log_pyfunc(self.client, run_id, folder, Path(tmp) / PLAN_ARTIFACT)
            # --- end serving hook
        if annotations_path is not None:
            path = Path(annotations_path)
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), "annotations")
            else:
                self.client.log_artifact(run_id, str(path), "annotations")

    def _register(self, model_name: str, run_id: str, tags: dict[str, str], description: str) -> ModelVersionRef:
        """A new version whose source is the run's checkpoint folder. The source is a `runs:/`
        URI: MLflow 3.17's sqlite registry resolves `models:/m-…` (LoggedModel) sources through
        the process-global client, which points at another database here."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(model_name, description="Falconer metamodel checkpoints")
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self.client.create_model_version(
            model_name,
            source=f"runs:/{run_id}/{MODEL_ARTIFACT}",  # serving hook (issue 21): the pyfunc model
            run_id=run_id,
            tags=tags,
            description=description,
        )
        return _ref(mv)

    # ------------------------------------------------------------------ aliases and lookup
    def set_alias(self, model_name: str, alias: str, version: int | str) -> ModelVersionRef:
        """Point `model_name@alias` at `version` (moving it if it pointed elsewhere)."""
        if alias.lower() == LATEST:
            raise ConfigError("'latest' is reserved: it always means the highest version")
        ref = self.resolve(f"{model_name}/{int(version)}")
        self.client.set_registered_model_alias(model_name, alias, str(ref.version))
        return self.resolve(ref)

    def promote(
        self,
        model_name: str,
        version: int | str,
        metrics: Mapping[str, float] | None,
        gate: Mapping[str, float],
        comparison: Comparison | None = None,
    ) -> PromotionDecision:
        """Make `version` its task's candidate (`candidate-<plan_hash>`), and its task's
        champion (`champion-<plan_hash>`) only if every gated metric is at least its threshold
        and, when the task has a champion already, `comparison` (the paired bootstrap against
        that champion on this version's held-out texts) says it is not worse beyond the noise.
        Without a comparison a task's champion is never replaced. `metrics=None` reads the
        run's metrics. The decision, its task and its reasons are tagged on the version."""
        ref = self.resolve(f"{model_name}/{int(version)}")
        if metrics is None:
            metrics = self._run_metrics(ref.run_id)
        task = self._tags(ref).get(T.PLAN_HASH)
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
        for key, value in {
            T.PROMOTION: CHAMPION if passed else "rejected",
            T.PROMOTION_TASK: task,
            T.PROMOTION_GATE: json.dumps(dict(gate), sort_keys=True),
            T.PROMOTION_REASONS: "; ".join(reasons),
            T.PROMOTION_COMPARISON: comparison.model_dump_json() if comparison is not None else T.NONE,
        }.items():
            self.client.set_model_version_tag(model_name, str(ref.version), key, value)
        return PromotionDecision(model_name, ref.version, passed, tuple(reasons), previous, task)

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
        return self.resolve(f"{model_name}/{aliases[alias]}") if alias in aliases else None

    def find_version(self, model_name: str, tag: str, value: str) -> ModelVersionRef | None:
        """The lowest version of `model_name` tagged `tag=value`, or None (what makes a retried
        registration find the version an earlier attempt created)."""
        if "'" in value or "`" in tag:
            raise ConfigError(f"cannot search for tag {tag!r} = {value!r}: quotes are not allowed")
        found = self.client.search_model_versions(f"name = '{model_name}' and tags.`{tag}` = '{value}'")
        return _ref(min(found, key=lambda mv: int(mv.version))) if found else None

    def resolve(self, ref: str | ModelVersionRef) -> ModelVersionRef:
        """The version a ref names: `NAME@alias` (e.g. `NAME@champion-<plan_hash>`),
        `NAME/version`, or `NAME` (the newest version that is some task's champion, else the
        latest version)."""
        return _ref(self._model_version(ref))

    def plan_of(self, ref: str | ModelVersionRef) -> Plan:
        """The plan a version was fine-tuned for (its run's `plan.yaml`)."""
        version = self.resolve(ref)
        with tempfile.TemporaryDirectory(prefix="falconer-plan-") as tmp:
            return Plan.load(self.client.download_artifacts(version.run_id, PLAN_ARTIFACT, dst_path=tmp))

    def base_model_of(self, ref: str | ModelVersionRef) -> str:
        """The base encoder at the root of a version's lineage ('unknown' when untagged)."""
        return self._tags(self.resolve(ref)).get(T.BASE_MODEL, "unknown")

    def fetch(self, ref: str | ModelVersionRef) -> ModelSource:
        """A version as a local checkpoint to run or continue from (downloaded once, cached)."""
        version = self.resolve(ref)
        path = self.download(version)
        return ModelSource(path=str(path), base_model=self.base_model_of(version), checkpoint=True, version=str(version))

    def versions(self, model_name: str) -> list[ModelVersionRef]:
        """Every version of a registered model, newest first."""
        self._registered_model(model_name)
        found = self.client.search_model_versions(f"name='{model_name}'")
        return sorted((_ref(mv) for mv in found), key=lambda r: r.version, reverse=True)

    def download(self, ref: str | ModelVersionRef, dst: str | os.PathLike | None = None) -> Path:
        """The checkpoint folder of a version, ready for `Metamodel.load`. Without `dst` it is
        cached under `cache_dir` (versions never change, so a second call reuses it); with
        `dst`, that folder (absent or empty) becomes the checkpoint."""
        mv = self._model_version(ref)
        if dst is None:
            target = self.cache_dir / mv.name / f"v{mv.version}-{(mv.run_id or 'norun')[:12]}"
            if (target / CHECKPOINT_CONFIG).is_file():
                return target
        else:
            target = Path(dst)
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise ConfigError(f"download destination {target} exists and is not an empty folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
            fetched = self._fetch(mv, Path(tmp))
            if not (fetched / CHECKPOINT_CONFIG).is_file():
                raise RegistryError(f"{mv.name}/{mv.version} is not a Falconer checkpoint (no {CHECKPOINT_CONFIG} in {mv.source})")
            if target.is_dir():
                target.rmdir()
            try:
                fetched.rename(target)
            except OSError:  # another process filled the cache first
                if not (target / CHECKPOINT_CONFIG).is_file():
                    raise
        return target

    def _fetch(self, mv, into: Path) -> Path:
        """Download a version's artifacts with this registry's URIs (a `models:/` URI would go
        through MLflow's global tracking URI instead)."""
        uri = self.client.get_model_version_download_uri(mv.name, str(mv.version))
        if uri.startswith("runs:/"):
            run_id, _, path = uri[len("runs:/"):].partition("/")
            # --- serving hook (issue 21): a pyfunc model holds the checkpoint in its artifacts
            from falconer_core.serving.pyfunc import checkpoint_artifact

            path = checkpoint_artifact(self.client, run_id, path)
            # --- end serving hook
            return Path(self.client.download_artifacts(run_id, path, dst_path=str(into)))
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into), tracking_uri=self.tracking_uri))

    # ------------------------------------------------------------------ lineage
    def lineage(self, ref: str | ModelVersionRef) -> list[dict[str, Any]]:
        """The ancestry of a version, newest first: the version, its parent, the parent's parent,
        ..., then the base model. Each entry has kind ("version", "base" or "missing"), ref,
        name, version, aliases, tags, metrics, run_id and created_at (UTC, ISO 8601)."""
        chain: list[dict[str, Any]] = []
        seen: set[str] = set()
        mv = self._model_version(ref)
        while True:
            entry = self._entry(mv)
            chain.append(entry)
            seen.add(entry["ref"])
            parent = entry["tags"].get(T.PARENT_VERSION, T.NONE)
            if parent in (T.NONE, "") or parent in seen:
                break
            try:
                mv = self._model_version(parent)
            except RegistryError:
                chain.append(_other("missing", parent))
                return chain
        chain.append(_other("base", entry["tags"].get(T.BASE_MODEL, "unknown")))
        return chain

    def _entry(self, mv) -> dict[str, Any]:
        return {
            "kind": "version",
            "ref": f"{mv.name}/{mv.version}",
            "name": mv.name,
            "version": int(mv.version),
            "aliases": sorted(mv.aliases or ()),
            "tags": dict(mv.tags or {}),
            "metrics": self._run_metrics(mv.run_id),
            "run_id": mv.run_id,
            "source": mv.source,
            "created_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds"),
        }

    # ------------------------------------------------------------------ MLflow lookups
    def _registered_model(self, name: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(name)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            known = sorted(m.name for m in self.client.search_registered_models())
            hint = ", ".join(known[:10]) or "none yet; register one with a fine-tune"
            raise RegistryError(f"no registered model named {name!r} in {self.tracking_uri} (registered: {hint})") from None

    def _model_version(self, ref: str | ModelVersionRef):
        """The MLflow `ModelVersion` a ref names."""
        from mlflow.exceptions import MlflowException

        name, version, alias = parse_ref(ref)
        model = self._registered_model(name)
        if version is None:
            aliases = dict(model.aliases or {})
            champions = [int(v) for a, v in aliases.items() if a == CHAMPION or task_of_alias(a)]
            if alias is None and champions:
                version = max(champions)
            elif alias is None or alias.lower() == LATEST:
                found = self.client.search_model_versions(f"name='{name}'")
                if not found:
                    raise RegistryError(f"{name!r} has no versions yet")
                version = max(int(mv.version) for mv in found)
            elif alias in aliases:
                version = int(aliases[alias])
            else:
                hint = (" Champions are per task: NAME@champion-<plan_hash> (see `falconer lineage NAME`)"
                        if alias == CHAMPION else "")
                raise RegistryError(
                    f"{name!r} has no alias {alias!r} (aliases: {', '.join(sorted(aliases)) or 'none'}).{hint}"
                )
        try:
            return self.client.get_model_version(name, str(version))
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise RegistryError(f"{name!r} has no version {version}") from None

    def _tags(self, ref: ModelVersionRef) -> dict[str, str]:
        return dict(self._model_version(ref).tags or {})

    def _run_metrics(self, run_id: str | None) -> dict[str, float]:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return {}
        try:
            return dict(self.client.get_run(run_id).data.metrics)
        except MlflowException:
            return {}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def _sqlite_uri(path: Path) -> str:
    return "sqlite:///" + str(path.resolve())


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative or absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


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


def _numbers(values: Mapping[str, Any], what: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in (values or {}).items():
        if isinstance(value, (int, float)):
            out[str(key)] = float(value)
        else:
            raise ConfigError(f"{what}[{key!r}] must be a number, got {value!r}")
    return out


def _summary_metrics(summary: Any, now: int) -> list:
    """Scalar summary fields as `train.<field>`; per-epoch lists as one step per epoch."""
    from mlflow.entities import Metric

    rows = []
    if not isinstance(summary, Mapping):
        return rows
    for key, value in summary.items():
        name = "train." + _mlflow_key(str(key))
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            rows.append(Metric(name, float(value), now, 0))
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            rows += [Metric(name, float(v), now, step) for step, v in enumerate(value, 1)]
    return rows


def _mlflow_key(key: str) -> str:
    """A key MLflow accepts (letters, digits, `_ - . / space`), at most 250 characters."""
    return _MLFLOW_KEY.sub("_", key)[:250]


def _describe(model_name: str, lineage: Mapping[str, str]) -> str:
    parent = lineage[T.PARENT_VERSION]
    start = f"retuned from {parent}" if parent != T.NONE else f"fine-tuned from {lineage[T.BASE_MODEL]}"
    return (
        f"{model_name}: {start} on {lineage[T.N_ANNOTATIONS]} annotations by "
        f"{lineage[T.ANNOTATOR]} (plan {lineage[T.PLAN_HASH]}, corpus {lineage[T.CORPUS_ID]})"
    )


def _ref(mv) -> ModelVersionRef:
    return ModelVersionRef(mv.name, int(mv.version), mv.run_id, tuple(sorted(mv.aliases or ())))


def _other(kind: str, name: str) -> dict[str, Any]:
    """A lineage entry that is not a registered version: the base encoder, or a missing parent."""
    return {"kind": kind, "ref": name, "name": name, "version": None, "aliases": [], "tags": {},
            "metrics": {}, "run_id": None, "source": None, "created_at": None}
