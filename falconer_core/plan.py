"""A `Plan` is the program the planner writes, kept as data rather than code.

Named steps call one of the two primitives (`label`, `span`); a boolean `filter` over label
steps decides which texts go on; a step may run once per span found by an earlier span step,
with that span's text templated into its instruction; `outputs` names the record's fields.
Keeping the plan as validated data (never `exec`'d) makes it safe to take from an LLM, easy to
edit by hand, hashable for lineage, and the same object the annotator, trainer and executor read.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from falconer_core.errors import PlanError

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)
_OPERATORS = ("and", "or", "not")


# --- the boolean filter --------------------------------------------------------------------------


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


# --- steps and outputs ---------------------------------------------------------------------------


class Step(BaseModel):
    """One call of a primitive: `label` answers yes/no per text, `span` extracts spans."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(
        description="Identifier other steps, the filter and outputs refer to.",
        json_schema_extra={"pattern": NAME_PATTERN},
    )
    op: Literal["label", "span"] = Field(description="Which primitive: get_label or get_span.")
    instruction: str = Field(
        min_length=1,
        description="The question or extraction request; per-span steps use {step} placeholders.",
    )
    for_each: str | None = Field(
        default=None,
        description="Run once per span extracted by this earlier span step, on the same text.",
    )

    def placeholders(self) -> list[str]:
        """Names in `{...}` placeholders (raises ValueError on malformed braces)."""
        return [f for _, f, _, _ in string.Formatter().parse(self.instruction) if f is not None]

    def render_instruction(self, bindings: Mapping[str, str]) -> str:
        """Fill placeholders with span texts by plain concatenation: values are never
        reinterpreted, so a span containing braces cannot change the template."""
        parts: list[str] = []
        for literal, field, _, _ in string.Formatter().parse(self.instruction):
            parts.append(literal)
            if field is not None:
                parts.append(bindings[field])
        return "".join(parts)


class OutputField(BaseModel):
    """One field of the output record, taken from one step's result."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(
        description="Field name in the output record.", json_schema_extra={"pattern": NAME_PATTERN}
    )
    step: str = Field(description="Name of the step whose result fills the field.")


# --- the plan ------------------------------------------------------------------------------------


class Plan(BaseModel):
    """A knowledge-mining program over `get_label` / `get_span`, validated on construction.

    Execution order: the label steps the filter reads run on every text; the filter keeps the
    texts that pass; every other step runs, in order, on the passing texts (per-span steps once
    per span of their `for_each` step). Build one from a dict, YAML or JSON; any problem raises
    `PlanError` listing them all.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    instruction: str | None = Field(
        default=None, description="The user's original request (metadata, not part of the hash)."
    )
    steps: list[Step] = Field(description="The steps, in execution order.")
    filter: Condition | None = Field(
        default=None,
        description="Which texts go on: a label step name or nested {and|or|not} over them.",
    )
    outputs: list[OutputField] | None = Field(
        default=None,
        description="Record fields; default: every step the filter does not read.",
    )

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _plan_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Plan:
        """Pydantic's validation, raising `PlanError` like every other constructor."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise _plan_error(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Plan:
        """Pydantic's JSON validation, raising `PlanError` like every other constructor."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise _plan_error(exc) from None

    # -- validation ------------------------------------------------------------------------------

    @field_validator("filter", mode="before")
    @classmethod
    def _check_filter_shape(cls, value: Any) -> Any:
        problems = condition_problems(value) if value is not None else []
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("outputs", mode="before")
    @classmethod
    def _expand_output_shorthand(cls, value: Any) -> Any:
        """`outputs: [speaker]` is short for `[{name: speaker, step: speaker}]`."""
        if isinstance(value, list):
            return [{"name": v, "step": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _check_semantics(self) -> Plan:
        problems = _semantic_problems(self)
        if problems:
            raise ValueError(_SEMANTIC_MARK + json.dumps(problems))
        if self.outputs is None:
            reads = set(self.filter_steps)
            defaults = [OutputField(name=s.name, step=s.name) for s in self.steps if s.name not in reads]
            object.__setattr__(self, "outputs", defaults)
        return self

    # -- queries ---------------------------------------------------------------------------------

    def step(self, name: str) -> Step:
        """The step called `name` (KeyError if none)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def filter_steps(self) -> list[str]:
        """Label steps the filter reads; they run on every text."""
        return condition_steps(self.filter) if self.filter is not None else []

    @property
    def label_steps(self) -> list[Step]:
        """Every `label` step, in order."""
        return [s for s in self.steps if s.op == "label"]

    @property
    def span_steps(self) -> list[Step]:
        """Every `span` step, in order."""
        return [s for s in self.steps if s.op == "span"]

    def chain(self, name: str) -> list[Step]:
        """The `for_each` ancestors of a step, outermost first (empty for a top-level step)."""
        chain: list[Step] = []
        step = self.step(name)
        while step.for_each is not None:
            step = self.step(step.for_each)
            chain.insert(0, step)
        return chain

    @property
    def hash(self) -> str:
        """Short sha256 of the canonical JSON program (steps, filter, outputs): stable across key
        order and formatting; the free-text `instruction` is left out so that two requests
        planned to the same program share annotations and checkpoints."""
        program = {k: v for k, v in self.to_dict().items() if k != "instruction"}
        canonical = json.dumps(program, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    # -- serialisation ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (filter operators under their `and`/`or`/`not` keys)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    @classmethod
    def from_dict(cls, data: Any) -> Plan:
        """Validate a parsed dict; raises `PlanError` listing every problem."""
        if not isinstance(data, Mapping):
            raise PlanError(f"a plan must be a mapping with a 'steps' list, got {type(data).__name__}")
        return cls(**dict(data))

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of the plan."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        """Parse and validate JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise PlanError(f"plan is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        """YAML text of the plan, fields in their natural order."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    @classmethod
    def from_yaml(cls, text: str) -> Plan:
        """Parse and validate YAML text (JSON is accepted too, being YAML)."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PlanError(f"plan is not valid YAML: {exc}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        """Write to `.json`, or YAML for any other suffix."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json() + "\n" if path.suffix == ".json" else self.to_yaml(), "utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read a plan file (`.json`, `.yaml`, `.yml`)."""
        path = Path(path)
        if not path.is_file():
            raise PlanError(f"plan file not found: {path}")
        text = path.read_text("utf-8")
        return cls.from_json(text) if path.suffix == ".json" else cls.from_yaml(text)

    def render(self) -> str:
        """A readable multi-line description for logs, the CLI and review before a run."""
        lines = [f"Plan {self.hash}" + (f": {self.instruction}" if self.instruction else "")]
        reads = set(self.filter_steps)
        width = max(len(s.name) for s in self.steps)
        for i, step in enumerate(self.steps, 1):
            if step.for_each is not None:
                scope = f"for each {step.for_each}"
            elif step.name in reads or self.filter is None:
                scope = "every text"
            else:
                scope = "texts passing the filter"
            instruction = json.dumps(step.instruction, ensure_ascii=False)
            lines.append(f"  {i}. {step.name:<{width}}  {step.op:<5}  {instruction}  [{scope}]")
        condition = render_condition(self.filter) if self.filter is not None else "(none: every text)"
        lines.append(f"  filter: {condition}")
        outputs = self.outputs or []
        shown = [o.name if o.name == o.step else f"{o.name} <- {o.step}" for o in outputs]
        lines.append(f"  outputs: {', '.join(shown) if shown else '(none: ids of passing texts)'}")
        return "\n".join(lines)


_SEMANTIC_MARK = "plan-problems:"


def _semantic_problems(plan: Plan) -> list[str]:
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


def _plan_error(exc: ValidationError) -> PlanError:
    """Turn pydantic's errors into one PlanError whose message lists every problem."""
    problems: list[str] = []
    for err in exc.errors(include_url=False):
        message = str(err.get("ctx", {}).get("error", "")) or err["msg"]
        if message.startswith(_SEMANTIC_MARK):
            problems += json.loads(message[len(_SEMANTIC_MARK):])
            continue
        loc = _format_loc(err["loc"])
        if err["type"] == "missing":
            message = "required field is missing"
        elif err["type"] == "extra_forbidden":
            message = "unknown field"
        problems.append(f"{loc}: {message}" if loc and not message.startswith(loc) else message)
    error = PlanError("invalid plan:\n" + "\n".join(f"  - {p}" for p in problems))
    error.problems = problems  # type: ignore[attr-defined]  # for the planner's repair loop
    return error


def _format_loc(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


PLAN_JSON_SCHEMA: dict[str, Any] = Plan.model_json_schema()
"""The plan's JSON schema, for LLM structured output and for validating plan files elsewhere."""

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
    "render_condition",
]
