"""A `Plan` is the program the planner writes, kept as data rather than code.

Named steps call one of the two primitives (`label`, `span`); a boolean `filter` over label
steps decides which texts go on; a step may run once per span found by an earlier span step,
with that span's text templated into its instruction; `outputs` names the record's fields.
Keeping the plan as validated data (never `exec`'d) makes it safe to take from an LLM, easy to
edit by hand, hashable for lineage, and the same object the annotator, trainer and executor read.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from falconer_core.errors import PlanError
from falconer_core.hashing import canonical_hash
from falconer_core.plan.checks import NAME_PATTERN, SEMANTIC_MARK, plan_error, semantic_problems
from falconer_core.plan.conditions import Condition, condition_problems, condition_steps, render_condition

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
            raise plan_error(exc) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any) -> Plan:
        """Pydantic's validation, raising `PlanError` like every other constructor."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise plan_error(exc) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **kwargs: Any) -> Plan:
        """Pydantic's JSON validation, raising `PlanError` like every other constructor."""
        try:
            return super().model_validate_json(json_data, **kwargs)
        except ValidationError as exc:
            raise plan_error(exc) from None

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
        problems = semantic_problems(self)
        if problems:
            raise ValueError(SEMANTIC_MARK + json.dumps(problems))
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
        return canonical_hash(program)

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



PLAN_JSON_SCHEMA: dict[str, Any] = Plan.model_json_schema()
"""The plan's JSON schema, for LLM structured output and for validating plan files elsewhere."""

__all__ = ["PLAN_JSON_SCHEMA", "OutputField", "Plan", "Step"]
