"""Plans: the program an LLM writes for an instruction, kept as validated data.

`model` holds the schema (`Plan`, `Step`, `OutputField`), `conditions` the boolean filter
algebra, `checks` the cross-reference checks, `planner` the LLM loop that writes a plan.
"""

from falconer_core.plan.conditions import (
    And,
    Condition,
    Not,
    Or,
    condition_score,
    condition_steps,
    evaluate_condition,
    render_condition,
)
from falconer_core.plan.model import PLAN_JSON_SCHEMA, OutputField, Plan, Step
from falconer_core.plan.planner import plan_instruction

__all__ = [
    "PLAN_JSON_SCHEMA",
    "And",
    "Condition",
    "Not",
    "Or",
    "OutputField",
    "Plan",
    "Step",
    "condition_score",
    "condition_steps",
    "evaluate_condition",
    "plan_instruction",
    "render_condition",
]
