"""Checks across a plan's parts that a field-by-field schema cannot express: names that refer
to steps, for_each chains, placeholders, unused steps; and pydantic's errors turned into one
`PlanError` that lists every problem, so a planner's repair loop can fix them in one go.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from falconer_core.errors import PlanError
from falconer_core.plan.conditions import Condition, condition_steps

if TYPE_CHECKING:
    from falconer_core.plan.model import OutputField, Plan, Step

#: What a step or output name may look like (also in the JSON schema, for LLMs).
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)

SEMANTIC_MARK = "plan-problems:"


def semantic_problems(plan: Plan) -> list[str]:
    """Every cross-reference problem at once, so a planner's repair loop fixes them in one go."""
    if not plan.steps:
        return ["steps: a plan needs at least one step"]
    steps: dict[str, Step] = {}
    for step in plan.steps:
        steps.setdefault(step.name, step)
    problems = _step_problems(plan, steps)
    if plan.filter is not None:
        problems += _filter_problems(plan.filter, steps)
    if plan.outputs is not None:
        problems += _output_problems(plan.outputs, steps)
        problems += _unused_step_problems(plan, steps)
    return problems


def _step_problems(plan: Plan, steps: Mapping[str, Step]) -> list[str]:
    """Names, for_each references and placeholders of each step."""
    problems: list[str] = []
    position: dict[str, int] = {}
    for i, step in enumerate(plan.steps):
        if not _NAME_RE.match(step.name):
            problems.append(
                f"steps[{i}].name {step.name!r}: use a letter or '_' then letters, digits or '_' "
                "(at most 64 characters)"
            )
        if step.name in position:
            problems.append(
                f"steps[{i}].name {step.name!r}: duplicate step name (also steps[{position[step.name]}])"
            )
        else:
            position[step.name] = i
    for i, step in enumerate(plan.steps):
        where = f"steps[{i}] ({step.name})"
        if step.for_each is not None:
            problem = _for_each_problem(step, i, steps, position)
            if problem:
                problems.append(f"{where}: {problem}")
            if step.for_each not in steps:
                continue  # placeholders cannot be checked against a missing step
        problems += _placeholder_problems(where, step, steps)
    return problems


def _for_each_problem(step: Step, i: int, steps: Mapping[str, Step], position: Mapping[str, int]) -> str:
    """What is wrong with a step's for_each reference ('' if nothing)."""
    target = steps.get(step.for_each or "")
    if step.for_each == step.name:
        return "for_each refers to the step itself (a cycle)"
    if target is None:
        return f"for_each {step.for_each!r} is not a step; known: {sorted(steps)}"
    if target.op != "span":
        return f"for_each {step.for_each!r} must be a span step, it is a label step"
    if position[target.name] > i:
        cycle = _for_each_cycle(step.name, steps)
        return f"for_each {step.for_each!r} is defined later; steps run in order" + (
            f" (cycle: {' -> '.join(cycle)})" if cycle else ", move it earlier"
        )
    return ""


def _filter_problems(condition: Condition, steps: Mapping[str, Step]) -> list[str]:
    """The filter may read only label steps that answer once per text."""
    labels = sorted(s.name for s in steps.values() if s.op == "label" and s.for_each is None)
    problems: list[str] = []
    for name in condition_steps(condition):
        target = steps.get(name)
        if target is None:
            problems.append(f"filter: {name!r} is not a step; label steps: {labels}")
        elif target.op != "label":
            problems.append(f"filter: {name!r} is a span step; the filter reads label steps: {labels}")
        elif target.for_each is not None:
            problems.append(f"filter: {name!r} runs per span, so it has no single answer per text")
    return problems


def _output_problems(outputs: list[OutputField], steps: Mapping[str, Step]) -> list[str]:
    """Output fields need identifier names, no repeats, and an existing step."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, out in enumerate(outputs):
        if not _NAME_RE.match(out.name):
            problems.append(f"outputs[{i}].name {out.name!r}: not an identifier")
        if out.name in seen:
            problems.append(f"outputs[{i}].name {out.name!r}: duplicate output field")
        seen.add(out.name)
        if out.step not in steps:
            problems.append(f"outputs[{i}].step {out.step!r} is not a step; known: {sorted(steps)}")
    return problems


def _placeholder_problems(where: str, step: Step, steps: Mapping[str, Step]) -> list[str]:
    try:
        fields = step.placeholders()
    except ValueError as exc:
        return [f"{where}: malformed braces in instruction ({exc}); write literal braces as {{{{ and }}}}"]
    if step.for_each is None:
        return (
            [f"{where}: placeholders {sorted(set(fields))} need for_each; only per-span steps use them"]
            if fields
            else []
        )
    bound = set(_bound_names(step, steps))
    problems = [
        f"{where}: placeholder {{{f}}} is not allowed; use the for_each step's name {{{step.for_each}}}"
        + (f" or an enclosing one {sorted(bound - {step.for_each})}" if len(bound) > 1 else "")
        for f in dict.fromkeys(fields)
        if f not in bound
    ]
    if step.for_each not in fields:
        problems.append(
            f"{where}: runs for each {step.for_each!r}, so its instruction must mention {{{step.for_each}}}"
        )
    return problems


def _bound_names(step: Step, steps: Mapping[str, Step]) -> Iterator[str]:
    """Names bound while a per-span step runs: its for_each step and that step's own chain."""
    seen: set[str] = set()
    name = step.for_each
    while name is not None and name in steps and name not in seen:
        seen.add(name)
        yield name
        name = steps[name].for_each


def _for_each_cycle(start: str, steps: Mapping[str, Step]) -> list[str]:
    path = [start]
    name = steps[start].for_each
    while name is not None and name in steps:
        path.append(name)
        if name == start:
            return path
        if name in path[:-1]:
            return []
        name = steps[name].for_each
    return []


def _unused_step_problems(plan: Plan, steps: Mapping[str, Step]) -> list[str]:
    """A step that feeds no output, filter or later step is wasted work (often a typo)."""
    used = set(condition_steps(plan.filter)) if plan.filter is not None else set()
    used |= {o.step for o in plan.outputs or []}
    for name in list(used):
        if name in steps:
            used |= set(_bound_names(steps[name], steps))
    return [
        f"step {s.name!r} is not used by the filter, the outputs or any per-span step; add it to "
        "outputs or remove it"
        for s in plan.steps
        if s.name not in used
    ]


def plan_error(exc: ValidationError) -> PlanError:
    """Turn pydantic's errors into one PlanError whose message lists every problem."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        message = str(err.get("ctx", {}).get("error", "")) or err["msg"]
        if message.startswith(SEMANTIC_MARK):
            problems += json.loads(message[len(SEMANTIC_MARK):])
            continue
        loc = _format_loc(err["loc"])
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{loc}: {message}" if loc and not message.startswith(loc) else message)
    return PlanError("invalid plan:\n" + "\n".join(f"  - {p}" for p in problems), problems=problems)


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


__all__ = ["NAME_PATTERN", "SEMANTIC_MARK", "plan_error", "semantic_problems"]
