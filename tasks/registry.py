"""Registering checkpoints in MLflow and fetching registered ones."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.context import TaskRunContext
from prefect.runtime import flow_run

from falconer_core.annotators import AnnotationSet
from falconer_core.evaluation import Evaluation
from falconer_core.hashing import content_hash
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry import Registration, Registry, register_checkpoint
from falconer_core.registry.continual import earlier_tasks as read_earlier_tasks
from falconer_core.registry.drift import record_drift_reference
from falconer_core.registry.precision_gate import gate_registered_checkpoint
from falconer_core.registry.registration import AncestorScores
from falconer_core.settings import Settings
from falconer_core.training import Checkpoint, EarlierTask
from tasks.policies import CODE, RESULTS, RETRY_DELAYS, retry_transient


def _register_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """One registered version per checkpoint, registry and model name: a re-run reuses it (and
    the promotion decision made when it was first registered)."""
    settings = Settings()
    return content_hash(
        "register", parameters["checkpoint"].key, settings.mlflow_tracking_uri, parameters["model_name"],
        parameters["corpus_id"], parameters["gate"],
    )


@task(
    name="register",
    retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient,
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_register_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def register(
    checkpoint: Checkpoint, annotations: AnnotationSet, evaluation: Evaluation, corpus_id: str,
    gate: dict[str, float], model_name: str, incumbent: Evaluation | None = None, incumbent_version: str | None = None,
    ancestors: list[AncestorScores] | None = None,
) -> Registration:
    """Log the fine-tune to MLflow, register the checkpoint with its lineage tags, promote it
    against the gate and the task's champion `incumbent_version` (scored as `incumbent`), and
    for each ancestor task against that task's champion on its held-out texts; then gate its
    faster precisions on the held-out texts (tags `falconer.precision.*`) and record its drift
    reference on them (`drift/reference.json`)."""
    result = register_checkpoint(
        Settings(), checkpoint, annotations, evaluation, model_name=model_name, corpus_id=corpus_id, gate=gate,
        flow_run_id=flow_run.id, incumbent=incumbent, incumbent_version=incumbent_version, ancestors=ancestors or (),
    )
    from falconer_core.metamodel.model import Metamodel  # here: importing tasks stays free of torch

    registry, model = Registry.from_settings(), Metamodel.load(checkpoint.path)  # one load for both checks
    gated = gate_registered_checkpoint(
        registry, result.version, model, annotations, checkpoint.heldout_ids, fp32_evaluation=evaluation,
    )  # which faster precisions may serve it: `auto` runs only those
    get_run_logger().info("precision gate of %s: %s", result.version, "; ".join(
        f"{v.precision} {'ok' if v.passed else 'refused'} ({v.reason})" for v in gated.verdicts) or "nothing faster here")
    if checkpoint.heldout_ids:  # what an unchanged corpus looks like to it: `falconer drift` compares with it
        drift = record_drift_reference(registry, result.version, model, annotations, checkpoint.heldout_ids)
        get_run_logger().info("drift reference of %s: %d held-out texts, filter pass rate %.3f", result.version,
                              drift.n_texts, drift.pass_rate)
    verdict = "champion of its task" if result.champion else "candidate only"
    get_run_logger().info("registered %s -> %s: %s", result.version, verdict, "; ".join(result.reasons))
    for plan_hash, champion in result.ancestors.items():
        get_run_logger().info("ancestor task %s -> %s: %s", plan_hash, "champion" if champion else "not promoted",
                              "; ".join(result.ancestor_reasons[plan_hash]))
    return result


@task(name="earlier-tasks", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def earlier_tasks(parent: str, plan_hash: str) -> list[EarlierTask]:
    """The tasks in `parent`'s lineage, with their annotations and held-out texts: what a re-tune
    replays, and (all but `plan_hash`, the task being re-tuned) is gated on. The same task's
    earlier set replays too: a re-tune on a drifted corpus keeps what the champion knew."""
    found = read_earlier_tasks(Registry.from_settings(), parent)
    get_run_logger().info("earlier tasks of %s: %s", parent, [f"{t.version} ({t.plan_hash})" for t in found.tasks] or "none")
    if found.missing:
        get_run_logger().warning("no stored annotations for %s (registered before they were kept): their tasks are "
                                 "neither replayed nor gated", ", ".join(found.missing))
    return found.tasks


@task(name="fetch-model", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def fetch_model(ref: str, plan_hash: str | None = None) -> ModelSource:
    """Resolve a registered ref (`NAME`, `NAME@alias`, `NAME/N`) and download its checkpoint; a
    bare `NAME` with `plan_hash` is that task's champion, when it has one."""
    registry = Registry.from_settings()
    source = registry.fetch(registry.for_task(ref, plan_hash) if plan_hash else ref)
    get_run_logger().info("using %s (%s)", source.version, source.path)
    return source


@task(name="fetch-champion", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def fetch_champion(model_name: str, plan_hash: str) -> ModelSource | None:
    """The current champion of one task (plan), downloaded, or None when the task has none."""
    registry = Registry.from_settings()
    found = registry.champion_of(model_name, plan_hash)
    get_run_logger().info("champion of task %s: %s", plan_hash, found or "none yet")
    return None if found is None else registry.fetch(found)


@task(name="find-champion", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def find_champion(model_name: str, plan_hash: str) -> str | None:
    """The current champion of one task (NAME/N), not downloaded, or None when it has none."""
    found = Registry.from_settings().champion_of(model_name, plan_hash)
    get_run_logger().info("champion of task %s: %s", plan_hash, found or "none yet")
    return None if found is None else str(found)


@task(name="fetch-plan", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient)
def fetch_plan(version: str) -> Plan:
    """The plan a registered version was trained on."""
    return Registry.from_settings().plan_of(version)
