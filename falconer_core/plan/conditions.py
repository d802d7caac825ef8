"""The plan's boolean filter as data: a label step name, or a nested and/or/not object.

JSON that an LLM can emit and a schema can check, so no expression string is ever parsed or
evaluated; these functions read, score and render it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

_OPERATORS = ("and", "or", "not")



class And(BaseModel):
    """True when every operand holds: `{"and": [a, b, ...]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)
    operands: list[Condition] = Field(alias="and", min_length=1)


class Or(BaseModel):
    """True when any operand holds: `{"or": [a, b, ...]}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)
    operands: list[Condition] = Field(alias="or", min_length=1)


class Not(BaseModel):
    """True when its operand does not hold: `{"not": a}`."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)
    operand: Condition = Field(alias="not")


# A label step name, or a nested and/or/not object: JSON that an LLM can emit and a schema can
# check, so no expression string is ever parsed or evaluated.
Condition = Union[str, And, Or, Not]
And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()


def condition_problems(raw: Any, where: str = "filter") -> list[str]:
    """Check the shape of a raw filter before pydantic does, so a malformed one yields one clear
    message instead of a cascade of union-branch errors."""
    if isinstance(raw, str):
        return [] if raw else [f"{where}: a step name must not be empty"]
    if isinstance(raw, (And, Or, Not)):
        return []
    if not isinstance(raw, Mapping) or len(raw) != 1 or next(iter(raw)) not in _OPERATORS:
        return [
            f"{where}: expected a label step name or an object with exactly one key "
            f"'and', 'or' or 'not', got {json.dumps(raw, default=str)}"
        ]
    (op, arg), = raw.items()
    if op == "not":
        return condition_problems(arg, f"{where}.not")
    if not isinstance(arg, list) or not arg:
        return [f"{where}.{op}: expected a non-empty list of conditions"]
    problems: list[str] = []
    for i, item in enumerate(arg):
        problems += condition_problems(item, f"{where}.{op}[{i}]")
    return problems


def condition_steps(condition: Condition) -> list[str]:
    """The step names a condition reads, in first-use order without repeats."""
    if isinstance(condition, str):
        return [condition]
    operands = [condition.operand] if isinstance(condition, Not) else condition.operands
    names: list[str] = []
    for operand in operands:
        names += [n for n in condition_steps(operand) if n not in names]
    return names


def evaluate_condition(condition: Condition, values: Mapping[str, bool]) -> bool:
    """Evaluate a condition given each referenced label step's answer for one text."""
    if isinstance(condition, str):
        return bool(values[condition])
    if isinstance(condition, Not):
        return not evaluate_condition(condition.operand, values)
    results = (evaluate_condition(c, values) for c in condition.operands)
    return all(results) if isinstance(condition, And) else any(results)


def condition_score(condition: Condition, scores: Mapping[str, float]) -> float:
    """Fuzzy truth of a condition from per-step probabilities (min for and, max for or, 1-x for
    not): a cheap estimate of how likely a text passes, used to stratify samples."""
    if isinstance(condition, str):
        return float(scores[condition])
    if isinstance(condition, Not):
        return 1.0 - condition_score(condition.operand, scores)
    values = [condition_score(c, scores) for c in condition.operands]
    return min(values) if isinstance(condition, And) else max(values)


def render_condition(condition: Condition) -> str:
    """Human-readable form, e.g. `is_health AND NOT is_music`."""
    if isinstance(condition, str):
        return condition
    if isinstance(condition, Not):
        inner = render_condition(condition.operand)
        return f"NOT {inner}" if isinstance(condition.operand, (str, Not)) else f"NOT ({inner})"
    joiner = " AND " if isinstance(condition, And) else " OR "
    parts = [
        render_condition(c) if isinstance(c, (str, Not)) else f"({render_condition(c)})"
        for c in condition.operands
    ]
    return joiner.join(parts)


__all__ = [
    "And",
    "Condition",
    "Not",
    "Or",
    "condition_problems",
    "condition_score",
    "condition_steps",
    "evaluate_condition",
    "render_condition",
]
