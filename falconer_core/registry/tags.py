"""The tag names that make a checkpoint's lineage auditable; one place so every layer agrees."""

PREFIX = "falconer."
PARENT_VERSION = "falconer.parent_version"
BASE_MODEL = "falconer.base_model"
PLAN_HASH = "falconer.plan_hash"
ANNOTATION_SET_HASH = "falconer.annotation_set_hash"
N_ANNOTATIONS = "falconer.n_annotations"
ANNOTATOR = "falconer.annotator"
CORPUS_ID = "falconer.corpus_id"
FLOW_RUN_ID = "falconer.prefect_flow_run_id"
MLFLOW_RUN_ID = "falconer.mlflow_run_id"
#: Each key metric is tagged as `falconer.metric.<name>`.
METRIC_PREFIX = "falconer.metric."
#: Set on the run once its version exists: `NAME/VERSION`.
MODEL_VERSION = "falconer.model_version"
PROMOTION = "falconer.promotion"
PROMOTION_GATE = "falconer.promotion.gate"
PROMOTION_REASONS = "falconer.promotion.reasons"

#: Written when a value is absent (no parent, no Prefect flow run).
NONE = "none"

#: Every version `log_fine_tune` registers carries these.
LINEAGE_TAGS = (
    PARENT_VERSION,
    BASE_MODEL,
    PLAN_HASH,
    ANNOTATION_SET_HASH,
    N_ANNOTATIONS,
    ANNOTATOR,
    CORPUS_ID,
    FLOW_RUN_ID,
    MLFLOW_RUN_ID,
)
#: The task (plan hash) a promotion decision was made for.
PROMOTION_TASK = "falconer.promotion.task"
#: The paired comparison with the task's champion, as JSON (absent when there was none).
PROMOTION_COMPARISON = "falconer.promotion.comparison"
#: The MLflow LoggedModel that stands for this checkpoint (output of its run, input of its children's).
LOGGED_MODEL_ID = "falconer.logged_model_id"
#: Each task a promotion decided (the version's own and every ancestor task it was gated on) is
#: tagged `falconer.promotion.for.<plan_hash>`: JSON with the verdict, reasons and both scores.
PROMOTION_FOR_PREFIX = "falconer.promotion.for."
