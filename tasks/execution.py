"""Running the metamodel over one shard of the corpus."""

from __future__ import annotations

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core import execution
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan


@task(name="execute-shard", task_run_name="execute-shard-{shard.index}", cache_policy=NO_CACHE)
def execute_shard(
    model: ModelSource, plan: Plan, corpus: pd.DataFrame, shard: execution.Shard, model_version: str, batch_size: int = 64
) -> execution.ShardResult:
    """Execute the plan with the metamodel on texts `shard.start:shard.end`; the rows go to the
    store next, which is what makes the shard count as done (no result is cached here)."""
    result = execution.execute_shard(model, plan, corpus, shard, model_version=model_version, batch_size=batch_size)
    get_run_logger().info(
        "shard %d: %d texts, %d pass the filter, %d rows in %.2f s",
        shard.index, result.n_texts, result.n_passed, len(result.rows), result.seconds,
    )
    return result
