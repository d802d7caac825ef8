"""Writing a registered version out as a standalone MLflow model folder, which
`mlflow.pyfunc.load_model(DIR)` and `mlflow models serve -m DIR` run with no registry and no
Falconer home. A version logged as an MLflow model is copied as it is; an older one, logged as a
raw checkpoint folder, is saved as one from its checkpoint and plan."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from falconer_core.errors import ConfigError
from falconer_core.registry.client import PLAN_ARTIFACT
from falconer_core.serving.pyfunc import save_pyfunc

if TYPE_CHECKING:
    from falconer_core.registry.client import Registry
    from falconer_core.registry.refs import ModelVersionRef


def export_model(registry: Registry, ref: str | ModelVersionRef, dst: str | os.PathLike) -> Path:
    """The version `ref` as an MLflow model folder at `dst` (absent or empty); returns `dst`."""
    target = Path(dst)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(f"export destination {target} exists and is not an empty folder")
    version = registry.resolve(ref)
    mv = registry.client.get_model_version(version.name, str(version.version))
    source = registry.client.get_model_version_download_uri(version.name, str(version.version))
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        run_id, _, path = source.removeprefix("runs:/").partition("/")
        names = {Path(a.path).name for a in registry.client.list_artifacts(run_id, path)} if source.startswith("runs:/") else set()
        if "MLmodel" in names:
            fetched = Path(registry.client.download_artifacts(run_id, path, dst_path=tmp))
        else:  # a version from before serving: build the MLflow model from its checkpoint and plan
            plan_file = Path(registry.client.download_artifacts(mv.run_id, PLAN_ARTIFACT, dst_path=tmp))
            fetched = save_pyfunc(registry.download(version), plan_file, Path(tmp) / "model")
        if target.is_dir():
            target.rmdir()
        shutil.move(str(fetched), str(target))
    return target


__all__ = ["export_model"]
