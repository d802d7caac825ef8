"""Where a registry keeps things: the tracking database, the artifact root, the checkpoint cache,
and the MLflow experiment its runs go in."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Location:
    """A registry's tracking URI, artifact location (None: a tracking server decides) and the
    folder where downloaded checkpoints are cached."""

    tracking_uri: str
    artifact_location: str | None
    cache_dir: Path

    @classmethod
    def resolve(
        cls, tracking_uri: str | None, artifact_root: str | os.PathLike | None, home: Path
    ) -> Location:
        """The given URI, else `MLFLOW_TRACKING_URI`, else `HOME/mlflow.db`; artifacts in the given
        root, else a `mlartifacts` folder beside a sqlite database. Creates the database's folder."""
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or _sqlite_uri(home / "mlflow.db")
        db_path = _sqlite_path(uri)
        if db_path is not None:
            db_path.parent.mkdir(parents=True, exist_ok=True)
        if artifact_root is not None:
            root = str(artifact_root)
            artifacts: str | None = root if "://" in root else Path(root).resolve().as_uri()
        elif db_path is not None:
            artifacts = (db_path.parent / "mlartifacts").resolve().as_uri()
        else:  # a tracking server decides where artifacts go
            artifacts = None
        local_root = Path(artifacts[len("file://"):]) if artifacts and artifacts.startswith("file://") else None
        cache_dir = (local_root.parent if local_root else home.resolve()) / "checkpoints"
        return cls(tracking_uri=uri, artifact_location=artifacts, cache_dir=cache_dir)


class Experiment:
    """The MLflow experiment a registry logs its runs in, created on first use."""

    def __init__(self, client: Any, name: str, artifact_location: str | None) -> None:
        self.client = client
        self.name = name
        self.artifact_location = artifact_location
        self._id: str | None = None

    @property
    def id(self) -> str:
        """The experiment's id, created with an explicit artifact location so a local registry
        keeps its artifacts in its own folder (not `./mlruns`); a deleted one is restored."""
        if self._id is None:
            from mlflow.exceptions import MlflowException

            found = self.client.get_experiment_by_name(self.name)
            if found is None:
                try:
                    self._id = self.client.create_experiment(self.name, artifact_location=self.artifact_location)
                except MlflowException:  # created by another process meanwhile
                    found = self.client.get_experiment_by_name(self.name)
                    if found is None:
                        raise
            if found is not None:
                if found.lifecycle_stage == "deleted":
                    self.client.restore_experiment(found.experiment_id)
                self._id = found.experiment_id
        return self._id


def _sqlite_uri(path: Path) -> str:
    return "sqlite:///" + str(path.resolve())


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative or absolute), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///"):].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


__all__ = ["Experiment", "Location"]
