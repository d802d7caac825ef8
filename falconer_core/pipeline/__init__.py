"""The pipeline's stages as plain functions: what the Prefect tasks in `tasks/` call, usable from
plain Python too. Nothing here imports Prefect.

annotate the sample (`annotation`) → training examples per step (`examples`) → split by text
(`split`) → fine-tune a checkpoint (`finetune`) → score it per step (`scores`) → register it
(`registration`) → execute shards (`shards`) into output rows (`outputs`) → store (`records`);
plus the cost comparison (`costs`), what runs show (`report`) and where state lives (`settings`).
"""

from falconer_core.pipeline.annotation import (
    AnnotationSet,
    annotate_sample,
    annotation_rows,
    annotator_fingerprint,
    build_annotator,
    gold_rows,
)
from falconer_core.pipeline.config import (
    HUMAN,
    AnnotatorChoice,
    CorpusSource,
    ExecutionSettings,
    HoldoutSettings,
    LLMChoice,
)
from falconer_core.pipeline.costs import CostRow, compare_costs
from falconer_core.pipeline.examples import flatten, step_examples
from falconer_core.pipeline.models import ModelSource, open_metamodel
from falconer_core.pipeline.outputs import FILTER_FIELD, output_rows
from falconer_core.pipeline.results import EvaluationResult, ExecutionResult, IncubationResult, MineResult
from falconer_core.pipeline.scores import Evaluation, StepScore, evaluate_model, score_runner
from falconer_core.pipeline.settings import Settings
from falconer_core.pipeline.shards import Shard, ShardResult, execute_shard, execution_run_id, pending_shards
from falconer_core.pipeline.split import split_ids

__all__ = [
    "FILTER_FIELD",
    "HUMAN",
    "AnnotationSet",
    "AnnotatorChoice",
    "CorpusSource",
    "CostRow",
    "Evaluation",
    "EvaluationResult",
    "ExecutionResult",
    "ExecutionSettings",
    "HoldoutSettings",
    "IncubationResult",
    "LLMChoice",
    "MineResult",
    "ModelSource",
    "Settings",
    "Shard",
    "ShardResult",
    "StepScore",
    "annotate_sample",
    "annotation_rows",
    "annotator_fingerprint",
    "build_annotator",
    "compare_costs",
    "evaluate_model",
    "execute_shard",
    "execution_run_id",
    "flatten",
    "gold_rows",
    "open_metamodel",
    "output_rows",
    "pending_shards",
    "score_runner",
    "split_ids",
    "step_examples",
]
