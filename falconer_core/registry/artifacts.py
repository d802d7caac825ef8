"""The artifact names of a fine-tune run, which logging writes and reading and downloading find."""

#: The artifact of a fine-tune run that holds the plan it was trained for.
PLAN_ARTIFACT = "plan.yaml"
#: The artifact that holds the fine-tune's `TrainingSummary`.
SUMMARY_ARTIFACT = "training_summary.json"
#: The run's folder that held the raw checkpoint (the source of versions registered before pyfunc models).
CHECKPOINT_ARTIFACT = "checkpoint"
#: The run's MLflow pyfunc model folder (the source of new versions); the checkpoint is inside it.
MODEL_ARTIFACT = "model"
#: Where the checkpoint lies inside the model folder.
MODEL_CHECKPOINT = f"{MODEL_ARTIFACT}/artifacts/{CHECKPOINT_ARTIFACT}"
#: The checkpoint's own config file (`falconer_core.metamodel.model.CONFIG_FILE`), named here so
#: that the registry does not import torch.
CHECKPOINT_CONFIG = "falconer.json"

__all__ = [
    "CHECKPOINT_ARTIFACT", "CHECKPOINT_CONFIG", "MODEL_ARTIFACT", "MODEL_CHECKPOINT", "PLAN_ARTIFACT", "SUMMARY_ARTIFACT",
]
