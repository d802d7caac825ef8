"""Which plan a flow runs: the one given, a plan file, a new plan of the instruction, or the
plan a registered version was trained for."""

from __future__ import annotations

import tasks
from falconer_core.errors import ConfigError
from falconer_core.llm.choice import LLMChoice
from falconer_core.plan import Plan


def choose_plan(plan: Plan | str | None, instruction: str | None, planner: LLMChoice) -> Plan:
    """The given plan, a plan file, or a new plan of the instruction by the planner LLM."""
    if isinstance(plan, Plan):
        return plan
    if plan:
        return tasks.load_plan(plan)
    if not instruction or not instruction.strip():
        raise ConfigError("nothing to run: give an instruction to plan, or a plan (object or file path)")
    return tasks.make_plan(instruction=instruction, planner=planner)


def plan_for_model(plan: Plan | str | None, version: str | None) -> Plan:
    """The given plan, a plan file, or the plan the registered `version` was trained for."""
    if isinstance(plan, Plan):
        return plan
    return tasks.load_plan(plan) if plan else tasks.fetch_plan(version)
