"""Writing to the DuckDB store: the corpus, the annotations, run records and output shards.

Each task opens the store for its write and closes it, and retries only when the file is held
by another process or the disk hiccups; shard writes are idempotent, so a retried or repeated
write never duplicates rows.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core.annotators import AnnotationSet
from falconer_core.corpus import CorpusSource
from falconer_core.execution import ShardResult
from falconer_core.plan import Plan
from falconer_core.settings import Settings
from falconer_core.store import sessions
from tasks.policies import RETRY_DELAYS, retry_transient

_IO = {"cache_policy": NO_CACHE, "retries": 3, "retry_delay_seconds": RETRY_DELAYS, "retry_condition_fn": retry_transient}


@task(name="store-corpus", **_IO)
def store_corpus(corpus: pd.DataFrame, source: CorpusSource) -> str:
    """Register the corpus in the store; returns its content id."""
    return sessions.record_corpus(Settings().store_path, corpus, name=source.name, source=source.path)


@task(name="store-annotations", **_IO)
def store_annotations(annotations: AnnotationSet) -> int:
    """Store the plan and the annotation set; returns rows written."""
    return sessions.record_annotations(Settings().store_path, annotations)


@task(name="start-run", **_IO)
def start_run(
    run_id: str, kind: str, plan: Plan, model_version: str, corpus_id: str, params: dict[str, Any]
) -> list[int]:
    """Record the run as running; returns the shards an earlier attempt already committed."""
    done = sessions.start_run(
        Settings().store_path, run_id, kind=kind, plan=plan, model_version=model_version,
        corpus_id=corpus_id, params=params,
    )
    if done:
        get_run_logger().info("run %s resumes: shards %s are already stored", run_id, done)
    return done


@task(name="store-shard", task_run_name="store-shard-{result.shard.index}", **_IO)
def store_shard(run_id: str, result: ShardResult) -> int:
    """Replace the shard's rows and mark it complete in one transaction; returns rows written."""
    return sessions.write_shard(Settings().store_path, run_id, result.shard.index, result.rows)


@task(name="finish-run", **_IO)
def finish_run(run_id: str, status: str = "completed") -> dict[str, Any]:
    """Mark the run completed (or failed); returns its record with row and shard counts."""
    return sessions.finish_run(Settings().store_path, run_id, status)
