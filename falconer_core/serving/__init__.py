"""Serving: a registered metamodel as a standard MLflow model (pyfunc flavor) that
`mlflow.pyfunc.load_model` and `mlflow models serve` run anywhere, without a Falconer home,
Prefect or the network (`pyfunc`), and writing one out as a folder (`export`).

Importing this package imports neither MLflow nor torch.
"""

from falconer_core.serving.pyfunc import (
    CHECKPOINT_KEY,
    MODEL_ARTIFACT,
    PLAN_KEY,
    PREDICTION_COLUMNS,
    predict_rows,
    requirements,
    save_pyfunc,
)

__all__ = [
    "CHECKPOINT_KEY",
    "MODEL_ARTIFACT",
    "PLAN_KEY",
    "PREDICTION_COLUMNS",
    "predict_rows",
    "requirements",
    "save_pyfunc",
]
