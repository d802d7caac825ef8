"""Writing to the DuckDB store: the corpus, the annotations, run records and output shards.

Each task opens the store for its write and closes it, and retries only when the file is held
by another process or the disk hiccups; shard writes are idempotent, so a retried or repeated
write never duplicates rows.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core.annotators import AnnotationSet
from falconer_core.corpus import CorpusSnapshot
from falconer_core.execution import ShardResult
from falconer_core.execution.runplan import RunPlan
from falconer_core.plan import Plan
from falconer_core.settings import Settings
from falconer_core.store import sessions
from tasks.policies import RETRY_DELAYS, retry_transient

_IO = {"cache_policy": NO_CACHE, "retries": 3, "retry_delay_seconds": RETRY_DELAYS, "retry_condition_fn": retry_transient}


@task(name="store-corpus", **_IO)
def store_corpus(corpus: CorpusSnapshot) -> str:
    """Register the snapshotted corpus in the store; returns its content id."""
    return sessions.record_corpus(Settings().store_path, corpus)


@task(name="store-annotations", **_IO)
def store_annotations(annotations: AnnotationSet) -> int:
    """Store the plan and the annotation set; returns rows written."""
    return sessions.record_annotations(Settings().store_path, annotations)


@task(name="start-run", **_IO)
def start_run(*, run: RunPlan, plan: Plan) -> tuple[list[int], list[int]]:
    """Record the run as running, reuse shards other runs did on the same texts; returns the
    shards already complete (committed by an earlier attempt, or reused now) and those reused."""
    run_id = run.run_id
    done, reused = sessions.start_run(
        Settings().store_path, run_id, kind=run.kind, plan=plan, model_version=run.model_version,
        corpus_id=run.corpus_id, params=run.params, n_shards=len(run.shards), n_texts=run.n_texts,
        work_keys=run.reuse_keys,
    )
    logger = get_run_logger()
    if reused:
        logger.info("run %s reuses %d shard(s) other runs did on the same texts: %s", run_id, len(reused), reused)
    if set(done) - set(reused):
        logger.info("run %s resumes: shards %s are already stored", run_id, sorted(set(done) - set(reused)))
    return done, reused


@task(name="commit-shard", task_run_name="commit-shard-{result.shard.index}", **_IO)
def commit_shard(*, run: RunPlan, result: ShardResult) -> int:
    """Commit a worker's part into the store: rows and completion in one transaction."""
    return sessions.commit_shard(Settings().store_path, run.run_id, result, run.work_keys.get(result.shard.index))


@task(name="finish-run", **_IO)
def finish_run(*, run_id: str, status: str = "completed") -> dict[str, Any]:
    """Mark the run completed (or failed); returns its record with row and shard counts."""
    return sessions.finish_run(Settings().store_path, run_id, status)
