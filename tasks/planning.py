"""Planning tasks: an LLM writes the plan, or a plan file is read."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.hashing import content_hash
from falconer_core.llm import LLMChoice, make_llm_client
from falconer_core.plan import Plan, plan_instruction
from falconer_core.settings import Settings
from tasks.policies import CODE, RESULTS, RETRY_DELAYS, retry_transient


def _plan_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The instruction and the planner (model and endpoint) determine the plan."""
    return content_hash("plan", parameters["instruction"].strip(), parameters["planner"].cache_identity())


@task(
    name="plan",
    retries=3, retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=retry_transient,
    cache_policy=CacheKeyFnPolicy(cache_key_fn=_plan_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def make_plan(instruction: str, planner: LLMChoice) -> Plan:
    """Ask the planner LLM for a validated plan of `instruction`."""
    client = make_llm_client(planner.llm_settings(Settings().llm_cache_dir))
    plan = plan_instruction(instruction, client)
    get_run_logger().info("planned with %s:\n%s", planner.identity(), plan.render())
    return plan


@task(name="load-plan", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=RETRY_DELAYS[:2], retry_condition_fn=retry_transient)
def load_plan(path: str) -> Plan:
    """Read and validate a plan file (YAML or JSON)."""
    plan = Plan.load(path)
    get_run_logger().info("loaded plan %s from %s:\n%s", plan.hash, path, plan.render())
    return plan
