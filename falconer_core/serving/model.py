"""`FalconerModel`: the `mlflow.pyfunc.PythonModel` that runs a plan with a metamodel checkpoint.
It loads both once, in `load_context`, and answers each `predict` with the rows `execute` stores
(`falconer_core.serving.pyfunc.predict_rows`). Imports MLflow, so only serving code imports it."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

from falconer_core.serving.pyfunc import CHECKPOINT_KEY, PLAN_KEY, predict_rows

#: Windows per forward pass when serving on a CPU (`execute` keeps `CPU_BATCH_SIZE` for bulk runs).
SERVING_CPU_BATCH_SIZE = 16


class FalconerModel(mlflow.pyfunc.PythonModel):
    """A metamodel checkpoint and the plan it was fine-tuned for, as one MLflow model."""

    def load_context(self, context: Any) -> None:
        """Load the checkpoint and the plan, once. The precision is `auto` (the fastest this machine
        runs well, as `execute` picks it), or what `model_config={"precision": ...}` names."""
        from falconer_core.metamodel.model import Metamodel
        from falconer_core.metamodel.precision import inference_batch_size
        from falconer_core.plan import Plan

        self.plan = Plan.load(context.artifacts[PLAN_KEY])
        config = getattr(context, "model_config", None) or {}
        self.runner = Metamodel.load(context.artifacts[CHECKPOINT_KEY], precision=config.get("precision", "auto"))
        # a request holds tens of texts, not thousands: small batches let the length buckets
        # inside one request pad little (64 texts per call on 1 CPU thread, bf16: 97 texts/s at 16
        # windows a batch, 69 at 64); a GPU still wants large ones
        cpu = self.runner.device.type == "cpu"
        self.runner.batch_size = SERVING_CPU_BATCH_SIZE if cpu else inference_batch_size(self.runner.device.type)

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        """`model_input`: a DataFrame with a `text` column and optionally an `id` column (else
        ids are the row positions), or a list of texts. Returns one row per text per field."""
        import pandas as pd

        from falconer_core.errors import ConfigError

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame({"text": list(model_input)})
        if "text" not in frame.columns:
            raise ConfigError(f"the model input needs a 'text' column; it has {list(frame.columns)}")
        texts = frame["text"].tolist()
        if "id" in frame.columns and frame["id"].notna().all():
            ids = frame["id"].astype(str).tolist()
        else:
            ids = [str(i) for i in range(len(texts))]
        return predict_rows(self.runner, self.plan, texts, ids)


__all__ = ["FalconerModel"]
