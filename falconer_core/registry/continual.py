"""The tasks a version learned, kept with it so its children can replay them and be gated on them.

At registration the run gets one artifact, `continual/task.json`: the annotation set it was
trained on (texts and answers) and its held-out text ids. A re-tune reads it back for every
version in the parent's lineage (`earlier_tasks`): the newest set of each plan, the new task's
own plan left out. A version registered before this artifact existed has none; its task is then
neither replayed nor gated (`missing` names it), which is what happened before.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.errors import ConfigError
from falconer_core.registry import redaction
from falconer_core.registry import tags as T
from falconer_core.training.replay import EarlierTask

if TYPE_CHECKING:
    from falconer_core.registry.client import Registry

#: The run artifact folder and file holding a version's task.
TASK_FOLDER = "continual"
TASK_FILE = "task.json"


class EarlierTasks(NamedTuple):
    """The earlier tasks of a lineage that could be read, and the versions whose could not."""

    tasks: list[EarlierTask]
    missing: list[str]


def log_task(registry: Registry, run_id: str, annotations: AnnotationSet, heldout_ids: Sequence[str]) -> None:
    """Keep the annotation set and held-out ids with the run (refusing one that holds a secret)."""
    secrets = redaction.env_secrets()
    with tempfile.TemporaryDirectory(prefix="falconer-task-") as tmp:
        path = Path(tmp) / TASK_FILE
        body = {"annotations": annotations.model_dump(mode="json"), "heldout_ids": [str(i) for i in heldout_ids]}
        path.write_text(json.dumps(body), "utf-8")
        leaked = redaction.find_secret_in_files([path], secrets)
        if leaked:
            raise ConfigError(f"the annotation set holds the value of ${leaked[1]}; refusing to log it to MLflow")
        registry.client.log_artifact(run_id, str(path), TASK_FOLDER)


def read_task(registry: Registry, version: str, run_id: str | None) -> EarlierTask | None:
    """The task a version learned, or None when its run has no task artifact (older versions)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="falconer-task-") as tmp:
        try:
            path = registry.client.download_artifacts(run_id, f"{TASK_FOLDER}/{TASK_FILE}", dst_path=tmp)
        except (MlflowException, OSError):
            return None
        body = json.loads(Path(path).read_text("utf-8"))
    return EarlierTask(version=version, annotations=AnnotationSet.model_validate(body["annotations"]),
                       heldout_ids=body["heldout_ids"])


def earlier_tasks(registry: Registry, parent: str, exclude_plans: Iterable[str] = ()) -> EarlierTasks:
    """Every task in `parent`'s lineage (parent first), the newest version's set per plan, the
    plans in `exclude_plans` (the new task's) left out."""
    seen = set(exclude_plans)
    found: list[EarlierTask] = []
    missing: list[str] = []
    for entry in registry.lineage(parent):
        plan_hash = entry["tags"].get(T.PLAN_HASH)
        if entry["kind"] != "version" or not plan_hash or plan_hash in seen:
            continue
        task = read_task(registry, entry["ref"], entry["run_id"])
        if task is None:
            missing.append(entry["ref"])
            continue
        seen.add(plan_hash)
        found.append(task)
    return EarlierTasks(found, missing)


__all__ = ["TASK_FILE", "TASK_FOLDER", "EarlierTasks", "earlier_tasks", "log_task", "read_task"]
