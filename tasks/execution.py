"""Planning an execution run, and running the metamodel over one shard of the corpus, wherever
the task runner puts it."""

from __future__ import annotations

import logging

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

import falconer_core.execution as core
from falconer_core.cascade import Calibration, CascadeSettings
from falconer_core.corpus import CorpusSnapshot, CorpusSource
from falconer_core.execution import ExecutionSettings, Shard, ShardResult, runplan
from falconer_core.execution.runplan import RunPlan
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.settings import Settings


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_run(
    *, model: str, source: ModelSource, plan: Plan, corpus: CorpusSource, snapshot: CorpusSnapshot, corpus_id: str,
    execution: ExecutionSettings, cascade: CascadeSettings | None = None,
    calibration: Calibration | None = None,
) -> RunPlan:
    """Decide the run before any shard: its id, shards, work keys, cascade routes, run folder."""
    run = runplan.plan_run(
        model=model, model_version=source.version, plan=plan, corpus=corpus, snapshot=snapshot, corpus_id=corpus_id,
        execution=execution, cascade=cascade, calibration=calibration, llm_cache_dir=Settings().llm_cache_dir,
    )
    get_run_logger().info("run %s: %d shard(s) of %d texts", run.run_id, len(run.shards), run.shard_size)
    return run


def shard_logger() -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger, or a plain one where the shard runs outside Prefect (a Dask worker
    that cannot reach the flow's API runs the function itself, see flows/cluster.py)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("falconer.execute-shard")


@task(name="execute-shard", task_run_name="execute-shard-{shard.index}", cache_policy=NO_CACHE)
def execute_shard(
    *, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, shard: Shard, run: RunPlan,
    execution: ExecutionSettings,
) -> ShardResult:
    """Execute the plan on texts `shard.start:shard.end` of the snapshot and leave the rows as a
    Parquet part; committing the part is what makes the shard count as done."""
    result = core.execute_shard(
        model, plan, corpus, shard, model_version=model.version or model.path, run_id=run.run_id,
        run_folder=run.run_folder, batch_size=execution.batch_size, threads=execution.threads(),
        precision=execution.precision, cascade=run.routes.get(shard.index),
    )
    logger = shard_logger()
    logger.info(
        "shard %d: %d texts, %d pass the filter, %d rows in %.2f s (process %d, model loads here: %d)",
        shard.index, result.n_texts, result.n_passed, result.n_rows, result.seconds, result.pid, result.model_loads,
    )
    if result.cascade is not None:
        logger.info(
            "shard %d cascade: %d texts in a band, %d answered by the LLM, %d left to the proxy by the budget",
            shard.index, result.cascade.band_texts, result.cascade.llm_texts, result.cascade.over_budget,
        )
    return result
