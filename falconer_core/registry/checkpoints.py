"""Downloading a registered version's checkpoint to run or continue from: cached once per
version (versions never change), or into a folder the caller names."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconer_core.disk import disk_error, disk_errors, disk_problem
from falconer_core.errors import ConfigError, DiskError
from falconer_core.metamodel.source import ModelSource
from falconer_core.registry.artifacts import CHECKPOINT_CONFIG
from falconer_core.registry.refs import ModelVersionRef, RegistryError
from falconer_core.serving.pyfunc import checkpoint_artifact

if TYPE_CHECKING:
    from falconer_core.registry.lookup import VersionLookup


class Checkpoints:
    """Checkpoints of one registry, cached under `cache_dir`."""

    def __init__(self, lookup: VersionLookup, cache_dir: Path) -> None:
        self.lookup = lookup
        self.client = lookup.client
        self.cache_dir = cache_dir

    def fetch(self, ref: str | ModelVersionRef) -> ModelSource:
        """A version as a local checkpoint to run or continue from (downloaded once, cached)."""
        version = self.lookup.resolve(ref)
        path = self.download(version)
        return ModelSource(path=str(path), base_model=self.lookup.base_model_of(version), checkpoint=True, version=str(version))

    def download(self, ref: str | ModelVersionRef, dst: str | os.PathLike | None = None) -> Path:
        """The checkpoint folder of a version, ready for `Metamodel.load`: cached without `dst`,
        else in `dst` (absent or empty). Written to a temporary folder, then renamed into place;
        a full disk or an unwritable folder is a `DiskError` naming it."""
        mv = self.lookup.model_version(ref)
        if dst is None:
            target = self.cache_dir / mv.name / f"v{mv.version}-{(mv.run_id or 'norun')[:12]}"
            if (target / CHECKPOINT_CONFIG).is_file():
                return target
        else:
            target = Path(dst)
            if target.exists() and (not target.is_dir() or any(target.iterdir())):
                raise ConfigError(f"download destination {target} exists and is not an empty folder")
        with disk_errors(target.parent):
            target.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
                return self._into(mv, Path(tmp), target)

    def _into(self, mv: Any, tmp: Path, target: Path) -> Path:
        """Download into `tmp`, then move the checkpoint to `target`."""
        try:
            fetched = self._artifacts(mv, tmp)
        except Exception as exc:
            # MLflow reports a download that failed for lack of space as a wrong artifact path
            # and drops the OSError: look at the disk before believing it
            found = disk_problem(exc)
            disk = disk_error(found[0], target) if found else _disk_trouble(tmp, target)
            if disk is not None:
                raise disk from exc
            raise
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

    def _artifacts(self, mv: Any, into: Path) -> Path:
        """Download a version's artifacts with this registry's URIs (a `models:/` URI would go
        through MLflow's global tracking URI instead)."""
        uri = self.client.get_model_version_download_uri(mv.name, str(mv.version))
        if uri.startswith("runs:/"):
            # from the run's own artifact store: MLflow's `runs:/` download drops the reason a
            # download failed (a full disk) and blames the path
            run_id, _, path = uri[len("runs:/"):].partition("/")
            path = checkpoint_artifact(self.client, run_id, path)  # a pyfunc model holds it in its artifacts
            uri = f"{self.client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
        import mlflow.artifacts

        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(into), tracking_uri=self.lookup.tracking_uri))


#: Below this much free space a failed download is taken for a full disk.
_LOW_SPACE_BYTES = 16 * 1024 * 1024


def _disk_trouble(tmp: Path, target: Path) -> DiskError | None:
    """Why a download that failed without saying why may have failed: the download folder's
    disk is (nearly) full, or the folder cannot be written."""
    if not os.access(tmp, os.W_OK | os.X_OK):
        return disk_error("permission", tmp)
    try:
        free = shutil.disk_usage(tmp).free
    except OSError:
        return None
    return disk_error("space", target) if free < _LOW_SPACE_BYTES else None


__all__ = ["Checkpoints"]
