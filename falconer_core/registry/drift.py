"""A version's drift reference, kept with its run as `drift/reference.json`.

Registration writes it (`record_drift_reference`); `falconer drift` reads it back
(`read_reference`). A version registered before it existed has none: re-register it.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.drift.reference import DriftReference, DriftSettings, build_reference
from falconer_core.registry.refs import ModelVersionRef

if TYPE_CHECKING:
    from falconer_core.registry.client import Registry

#: The run artifact folder and file holding a version's drift reference.
DRIFT_FOLDER = "drift"
REFERENCE_FILE = "reference.json"


def log_reference(registry: Registry, ref: str | ModelVersionRef, reference: DriftReference) -> None:
    """Keep `reference` with the run of the version `ref` names (confidences and figures only: no text)."""
    version = registry.resolve(ref)
    if not version.run_id:
        return
    with tempfile.TemporaryDirectory(prefix="falconer-drift-") as tmp:
        path = Path(tmp) / REFERENCE_FILE
        path.write_text(reference.model_dump_json(), "utf-8")
        registry.client.log_artifact(version.run_id, str(path), DRIFT_FOLDER)


def read_reference(registry: Registry, ref: str | ModelVersionRef) -> DriftReference | None:
    """The drift reference of a version, or None when its run has none (registered before it existed)."""
    from mlflow.exceptions import MlflowException

    version = registry.resolve(ref)
    if not version.run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="falconer-drift-") as tmp:
        try:
            path = registry.client.download_artifacts(version.run_id, f"{DRIFT_FOLDER}/{REFERENCE_FILE}", dst_path=tmp)
        except (MlflowException, OSError):
            return None
        return DriftReference.model_validate(json.loads(Path(path).read_text("utf-8")))


def record_drift_reference(
    registry: Registry, ref: str | ModelVersionRef, model: Any, annotations: AnnotationSet,
    heldout_ids: Collection[str], settings: DriftSettings | None = None,
) -> DriftReference:
    """What registration calls once the version exists: measure `model` (the loaded checkpoint)
    on its held-out texts and keep the reference with its run."""
    reference = build_reference(model, annotations, list(heldout_ids), settings)
    log_reference(registry, ref, reference)
    return reference


__all__ = ["DRIFT_FOLDER", "REFERENCE_FILE", "log_reference", "read_reference", "record_drift_reference"]
