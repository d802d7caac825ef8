"""Registering checkpoints in MLflow and fetching registered ones."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, TASK_SOURCE, CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from falconer_core.pipeline import registration
from falconer_core.pipeline.annotation import AnnotationSet
from falconer_core.pipeline.finetune import Checkpoint
from falconer_core.pipeline.hashing import content_hash
from falconer_core.pipeline.models import ModelSource
from falconer_core.pipeline.registration import Registration
from falconer_core.pipeline.scores import Evaluation
from falconer_core.pipeline.settings import Settings
from falconer_core.plan import Plan
from tasks.policies import RESULTS, RETRY_DELAYS, retry_transient


def _register_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """One registered version per checkpoint, registry and model name: a re-run reuses it."""
    settings = Settings()
    return content_hash(
        "register", parameters["checkpoint"].key, settings.mlflow_tracking_uri, settings.model_name,
        parameters["corpus_id"], parameters["gate"],
    )


@task(
    name="register",
    retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient,
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_register_key) + TASK_SOURCE,
    persist_result=True, result_storage=RESULTS,
)
def register(
    checkpoint: Checkpoint, annotations: AnnotationSet, evaluation: Evaluation, corpus_id: str, gate: dict[str, float]
) -> Registration:
    """Log the fine-tune to MLflow, register the checkpoint with its lineage tags, promote it."""
    result = registration.register_checkpoint(
        Settings(), checkpoint, annotations, evaluation, corpus_id=corpus_id, gate=gate, flow_run_id=flow_run.id
    )
    verdict = "champion" if result.champion else "candidate only"
    get_run_logger().info("registered %s -> %s: %s", result.version, verdict, "; ".join(result.reasons))
    return result


@task(name="fetch-model", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def fetch_model(ref: str) -> ModelSource:
    """Resolve a registered ref (`NAME`, `NAME@alias`, `NAME/N`) and download its checkpoint."""
    source = registration.fetch_model(Settings(), ref)
    get_run_logger().info("using %s (%s)", source.version, source.path)
    return source


@task(name="fetch-plan", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def fetch_plan(version: str) -> Plan:
    """The plan a registered version was trained on (its MLflow run's plan.yaml)."""
    return registration.fetch_plan(Settings(), version)
