"""Execution: the plan interpreter (`interpreter`), walking its traces (`traces`), records as
store rows (`outputs`), sharded, resumable runs over a corpus (`shards`), and what a run decides
before its first shard (`runplan`, imported by its path: it builds on the cascade)."""

from falconer_core.execution.counts import ShardCounts
from falconer_core.execution.interpreter import (
    LabelOutcome,
    OutputRecord,
    PerSpanOutcome,
    StepTrace,
    execute_plan,
)
from falconer_core.execution.outputs import FILTER_FIELD, OUTPUT_ROW_COLUMNS, output_rows
from falconer_core.execution.parts import check_run_folder, read_part, remove_part, write_part
from falconer_core.execution.settings import ExecutionSettings, RunnerName
from falconer_core.execution.shards import (
    Shard,
    ShardResult,
    execute_shard,
    execution_run_id,
    make_shards,
    pending_shards,
    use_threads,
    work_keys,
)
from falconer_core.execution.traces import Answer, answers, context_name

__all__ = [
    "FILTER_FIELD",
    "OUTPUT_ROW_COLUMNS",
    "Answer",
    "ExecutionSettings",
    "LabelOutcome",
    "OutputRecord",
    "PerSpanOutcome",
    "Shard",
    "ShardCounts",
    "ShardResult",
    "StepTrace",
    "answers",
    "context_name",
    "execute_plan",
    "execute_shard",
    "execution_run_id",
    "make_shards",
    "output_rows",
    "pending_shards",
    "RunnerName",
    "check_run_folder",
    "read_part",
    "remove_part",
    "use_threads",
    "work_keys",
    "write_part",
]
