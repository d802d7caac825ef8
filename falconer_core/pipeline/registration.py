"""Registering a fine-tuned checkpoint with its lineage, promoting it behind the quality gate,
and fetching a registered version to run or to continue from."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field

from falconer_core.pipeline.annotation import AnnotationSet, annotation_rows
from falconer_core.pipeline.finetune import Checkpoint
from falconer_core.pipeline.models import ModelSource
from falconer_core.pipeline.scores import Evaluation
from falconer_core.pipeline.settings import Settings
from falconer_core.plan import Plan

#: Default promotion rule: the proxy must reach this mean F1 against its annotator.
DEFAULT_GATE: dict[str, float] = {"mean_f1": 0.5}


class Registration(BaseModel):
    """A registered checkpoint and the promotion decision."""

    version: str = Field(description="NAME/VERSION in the registry.")
    run_id: str | None = Field(description="The MLflow run of the fine-tune.")
    champion: bool = Field(description="Whether it passed the gate and became the champion.")
    reasons: list[str] = Field(description="Why, one line per gated metric.")


def open_registry(settings: Settings):
    """The MLflow registry the settings point at."""
    from falconer_core.registry import Registry

    return Registry(settings.mlflow_tracking_uri, settings.mlflow_artifact_location)


def register_checkpoint(
    settings: Settings,
    checkpoint: Checkpoint,
    annotations: AnnotationSet,
    evaluation: Evaluation,
    *,
    corpus_id: str,
    gate: Mapping[str, float],
    flow_run_id: str | None,
) -> Registration:
    """Log the fine-tune to MLflow (run, checkpoint, plan, annotations), register a version with
    every lineage tag, then make it the candidate and, if it meets `gate`, the champion."""
    registry = open_registry(settings)
    metrics = evaluation.metrics()
    with tempfile.TemporaryDirectory(prefix="falconer-annotations-") as tmp:
        path = Path(tmp) / "annotations.jsonl"
        rows = annotation_rows(annotations).astype(object).where(lambda f: f.notna(), None)
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows.to_dict("records")), "utf-8")
        ref = registry.log_fine_tune(
            checkpoint.path, model_name=settings.model_name, parent=checkpoint.parent,
            base_model=checkpoint.base_model, plan=annotations.plan,
            annotation_set_hash=annotations.hash, n_annotations=annotations.size,
            annotator=annotations.annotator, corpus_id=corpus_id,
            settings={"training": checkpoint.training, "n_examples": checkpoint.n_examples,
                      "n_train_texts": len(checkpoint.train_ids), "n_heldout_texts": len(checkpoint.heldout_ids)},
            metrics=metrics, report=checkpoint.report, flow_run_id=flow_run_id, annotations_path=path,
        )
    decision = registry.promote(ref.name, ref.version, metrics, dict(gate))
    return Registration(version=str(ref), run_id=ref.run_id, champion=decision.champion, reasons=list(decision.reasons))


def fetch_model(settings: Settings, ref: str) -> ModelSource:
    """A registered version (`NAME`, `NAME@alias`, `NAME/N`) as a local checkpoint to run."""
    from falconer_core.registry import tags

    registry = open_registry(settings)
    version = registry.resolve(ref)
    base = registry.client.get_model_version(version.name, str(version.version)).tags.get(tags.BASE_MODEL, "unknown")
    path = registry.download(version)
    return ModelSource(path=str(path), base_model=base, checkpoint=True, version=str(version))


def fetch_plan(settings: Settings, ref: str) -> Plan:
    """The plan a registered version was fine-tuned for (its MLflow run's `plan.yaml`)."""
    registry = open_registry(settings)
    version = registry.resolve(ref)
    with tempfile.TemporaryDirectory(prefix="falconer-plan-") as tmp:
        path = registry.client.download_artifacts(version.run_id, "plan.yaml", dst_path=tmp)
        return Plan.load(path)


__all__ = ["DEFAULT_GATE", "Registration", "fetch_model", "fetch_plan", "open_registry", "register_checkpoint"]
