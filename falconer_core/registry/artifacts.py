"""The artifact names of a fine-tune run, which logging writes and reading and downloading find."""

#: The artifact of a fine-tune run that holds the plan it was trained for.
PLAN_ARTIFACT = "plan.yaml"
#: The artifact that holds the fine-tune's `TrainingSummary`.
SUMMARY_ARTIFACT = "training_summary.json"
#: The run's folder that holds the checkpoint (the registered version's source).
CHECKPOINT_ARTIFACT = "checkpoint"
#: The checkpoint's own config file (`falconer_core.metamodel.model.CONFIG_FILE`), named here so
#: that the registry does not import torch.
CHECKPOINT_CONFIG = "falconer.json"

__all__ = ["CHECKPOINT_ARTIFACT", "CHECKPOINT_CONFIG", "PLAN_ARTIFACT", "SUMMARY_ARTIFACT"]
