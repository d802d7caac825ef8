"""A fine-tune's lineage in MLflow's own terms, beside the tags: the run's inputs are the
annotation set (an `mlflow.data` dataset whose digest is the set's hash, context `training`),
the held-out texts among it (context `evaluation`) and the parent checkpoint's LoggedModel; its
output is a LoggedModel standing for this checkpoint. The registered version's source stays
the run's `runs:/…/checkpoint` folder (see `versions.create_version`); the LoggedModel is the node
MLflow's UI and search link runs through."""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from falconer_core.hashing import content_hash
from falconer_core.registry import tags as T
from falconer_core.registry.artifacts import CHECKPOINT_ARTIFACT

#: Where the checkpoint of a LoggedModel lives (a run artifact folder).
CHECKPOINT_URI_TAG = "falconer.checkpoint_uri"


def log_run_lineage(
    client: Any,
    experiment_id: str,
    run_id: str,
    model_name: str,
    lineage: Mapping[str, str],
    annotations_path: str | os.PathLike | None,
    heldout_ids: Sequence[str] | None,
    parent_model: str | None,
    checkpoint_artifact: str = CHECKPOINT_ARTIFACT,
) -> str:
    """Log the run's dataset and model inputs and its LoggedModel output; returns the
    LoggedModel's id. `annotations_path` is the JSONL file logged under `annotations/`."""
    from mlflow.entities import DatasetInput, InputTag, LoggedModelInput, LoggedModelOutput

    model = client.create_logged_model(
        experiment_id, name=model_name, source_run_id=run_id, model_type="falconer-metamodel",
        tags={k: v for k, v in lineage.items() if k != T.FLOW_RUN_ID},
    )
    client.set_logged_model_tags(model.model_id, {CHECKPOINT_URI_TAG: f"runs:/{run_id}/{checkpoint_artifact}"})
    client.finalize_logged_model(model.model_id, "READY")
    client.log_outputs(run_id, [LoggedModelOutput(model.model_id, 0)])
    datasets = []
    path = Path(annotations_path) if annotations_path is not None else None
    if path is not None and path.is_file():
        digest = lineage[T.ANNOTATION_SET_HASH]
        rows = _jsonl_frame(path)
        source = f"{client.get_run(run_id).info.artifact_uri}/annotations/{path.name}"
        datasets.append(_dataset(rows, source, f"annotations-{digest}", digest, "training"))
        held = {str(i) for i in heldout_ids or ()}
        if held and "text_id" in rows:
            subset = rows[rows["text_id"].isin(held)]
            datasets.append(_dataset(subset, source, f"heldout-{digest}", content_hash(digest, sorted(held))[:16], "evaluation"))
    models = [LoggedModelInput(parent_model)] if parent_model else []
    if datasets or models:
        client.log_inputs(
            run_id, datasets=[DatasetInput(d, [InputTag("mlflow.data.context", c)]) for d, c in datasets], models=models
        )
    return model.model_id


def _jsonl_frame(path: Path):
    """The annotation rows, every cell as text (the profile and schema MLflow records)."""
    import pandas as pd

    lines = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return pd.DataFrame(lines).astype(str) if lines else pd.DataFrame({"text_id": pd.Series([], dtype=str)})


def _dataset(frame: Any, source: str, name: str, digest: str, context: str) -> tuple[Any, str]:
    """An `mlflow.data` dataset entity (name, digest, source, schema, profile) and its context.
    MLflow's client API takes the entity, which only the dataset's own converter builds."""
    import mlflow.data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a local artifact URI matches two source resolvers; either is right
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest)
    return dataset._to_mlflow_entity(), context


__all__ = ["CHECKPOINT_URI_TAG", "log_run_lineage"]
