"""Running the metamodel over one shard of the corpus, wherever the task runner puts it."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core import execution
from falconer_core.cascade import ShardCascade
from falconer_core.corpus import CorpusSnapshot
from falconer_core.metamodel import ModelSource, Precision
from falconer_core.plan import Plan


@task(name="execute-shard", task_run_name="execute-shard-{shard.index}", cache_policy=NO_CACHE)
def execute_shard(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, shard: execution.Shard, model_version: str, run_id: str,
    run_folder: str, batch_size: int | None = None, threads: int | None = None, precision: Precision = "fp32",
    cascade: ShardCascade | None = None,
) -> execution.ShardResult:
    """Execute the plan on texts `shard.start:shard.end` of the snapshot and leave the rows as a
    Parquet part; committing the part is what makes the shard count as done."""
    result = execution.execute_shard(
        model, plan, corpus, shard, model_version=model_version, run_id=run_id, run_folder=run_folder,
        batch_size=batch_size, threads=threads, precision=precision, cascade=cascade,
    )
    get_run_logger().info(
        "shard %d: %d texts, %d pass the filter, %d rows in %.2f s (process %d, model loads here: %d)",
        shard.index, result.n_texts, result.n_passed, result.n_rows, result.seconds, result.pid, result.model_loads,
    )
    if result.cascade:
        get_run_logger().info(
            "shard %d cascade: %d texts in a band, %d answered by the LLM, %d left to the proxy by the budget",
            shard.index, result.cascade["band_texts"], result.cascade["llm_texts"], result.cascade["over_budget"],
        )
    return result
