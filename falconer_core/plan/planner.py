"""The planner: an LLM turns a natural-language instruction into a validated `Plan`.

The LLM sees the plan language, one worked example per task kind (the paper reports that
in-context examples lift planning accuracy most on multi-step tasks), and the request. Its
JSON answer is validated as a `Plan`; when that fails, the validation problems go back to the
LLM, at most `max_repairs` times, and then `PlanError` carries the last problems. The answer
is only ever parsed as data: nothing the LLM writes is executed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from falconer_core.errors import ConfigError, PlanError
from falconer_core.llm.base import JSONClient
from falconer_core.plan.model import PLAN_JSON_SCHEMA, Plan

log = logging.getLogger("falconer_core.plan.planner")

OutputSpec = str | Sequence[str] | None


@dataclass(frozen=True)
class PlanExample:
    """One in-context example: a request and the plan a careful engineer writes for it."""

    kind: str
    instruction: str
    plan: Mapping[str, Any]
    output_spec: OutputSpec = None


SYSTEM_PROMPT = """\
You turn a knowledge-mining request over a corpus of texts into a plan: a small JSON program \
over two primitives that a small model runs on every text.

- A step is {"name": ..., "op": "label" | "span", "instruction": ...}. A "label" step answers a \
yes/no question about one text ("Is this review positive?"). A "span" step extracts pieces of \
the text ("Extract the price.").
- "filter" keeps the texts the request is about: the name of a label step, or a nested JSON \
object {"and": [...]}, {"or": [...]}, {"not": ...} over label step names. Split a combined \
condition into one label step per idea and combine them in the filter. Omit "filter" when \
every text is wanted.
- A step with "for_each": "<span step>" runs once per span that earlier step extracted, and its \
instruction names that step in braces: "What is {speaker}'s profession?". Use it when the \
question depends on a value found in the text. Only such steps may contain braces.
- "outputs" lists the fields of the result record as {"name": ..., "step": ...}; every step must \
feed the filter, an output or a for_each step.
- Names are short snake_case identifiers. Instructions are one plain sentence each.

Reply with the plan as one JSON object and nothing else."""


DEFAULT_EXAMPLES: tuple[PlanExample, ...] = (
    PlanExample(
        kind="basic",
        instruction="Extract the price of every laptop mentioned in positive Amazon reviews.",
        plan={
            "steps": [
                {"name": "is_positive_laptop_review", "op": "label",
                 "instruction": "Is this a positive review of a laptop?"},
                {"name": "price", "op": "span", "instruction": "Extract the price of the laptop."},
            ],
            "filter": "is_positive_laptop_review",
            "outputs": [{"name": "price", "step": "price"}],
        },
    ),
    PlanExample(
        kind="query-based",
        instruction="Retrieve the talks that are mainly about medicine and extract what the speaker will talk about.",
        plan={
            "steps": [
                {"name": "is_medicine", "op": "label", "instruction": "Is this talk mainly about medicine?"},
                {"name": "talk_subject", "op": "span",
                 "instruction": "Extract what the speaker will talk about."},
            ],
            "filter": "is_medicine",
            "outputs": [{"name": "talk_subject", "step": "talk_subject"}],
        },
    ),
    PlanExample(
        kind="multi-entity",
        instruction="Retrieve all talks about both health and the brain, but not about music, then extract their lecturers.",
        output_spec=["lecturer"],
        plan={
            "steps": [
                {"name": "is_health", "op": "label", "instruction": "Is this talk about health?"},
                {"name": "is_brain", "op": "label", "instruction": "Is this talk about the brain?"},
                {"name": "is_music", "op": "label", "instruction": "Is this talk about music?"},
                {"name": "lecturer", "op": "span", "instruction": "Extract the name of the lecturer."},
            ],
            "filter": {"and": ["is_health", "is_brain", {"not": "is_music"}]},
            "outputs": [{"name": "lecturer", "step": "lecturer"}],
        },
    ),
    PlanExample(
        kind="multi-step",
        instruction="For each talk given by a scientist or an engineer, find the speaker and what the speaker's profession is.",
        plan={
            "steps": [
                {"name": "by_scientist", "op": "label", "instruction": "Is the speaker a scientist?"},
                {"name": "by_engineer", "op": "label", "instruction": "Is the speaker an engineer?"},
                {"name": "speaker", "op": "span", "instruction": "Extract the name of the speaker."},
                {"name": "profession", "op": "span", "for_each": "speaker",
                 "instruction": "What is {speaker}'s profession?"},
            ],
            "filter": {"or": ["by_scientist", "by_engineer"]},
            "outputs": [{"name": "speaker", "step": "speaker"}, {"name": "profession", "step": "profession"}],
        },
    ),
)


def _request_text(instruction: str, output_spec: OutputSpec) -> str:
    text = f"Request: {instruction}"
    if isinstance(output_spec, str) and output_spec.strip():
        text += f"\nOutput: {output_spec.strip()}"
    elif output_spec:
        text += f"\nThe output record must have exactly these fields: {', '.join(output_spec)}"
    return text


def planning_messages(instruction: str, output_spec: OutputSpec = None,
                      examples: Sequence[PlanExample] = DEFAULT_EXAMPLES) -> list[dict[str, str]]:
    """System prompt, then each example as a user/assistant turn, then the request."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for example in examples:
        messages.append({"role": "user", "content": _request_text(example.instruction, example.output_spec)})
        messages.append({"role": "assistant", "content": json.dumps(dict(example.plan), ensure_ascii=False)})
    messages.append({"role": "user", "content": _request_text(instruction, output_spec)})
    return messages


def _unwrap(data: Any) -> Any:
    """Accept {"plan": {...}}, a common wrapper, as the plan itself."""
    if isinstance(data, Mapping) and set(data) == {"plan"} and isinstance(data["plan"], Mapping):
        return data["plan"]
    return data


def _check(data: Any, instruction: str, output_spec: OutputSpec) -> Plan:
    """The plan, or PlanError listing every problem (schema, references, requested outputs)."""
    data = _unwrap(data)
    if not isinstance(data, Mapping):
        raise PlanError("the reply must be a JSON object with a 'steps' list")
    plan = Plan.from_dict({**data, "instruction": instruction})
    if output_spec and not isinstance(output_spec, str):
        wanted = list(output_spec)
        got = [field.name for field in plan.outputs or []]
        if sorted(got) != sorted(wanted):
            raise PlanError(f"outputs are {got}, the request asks for exactly {wanted}")
    return plan


def plan_instruction(
    instruction: str,
    client: JSONClient,
    output_spec: OutputSpec = None,
    examples: Sequence[PlanExample] = DEFAULT_EXAMPLES,
    max_repairs: int = 2,
) -> Plan:
    """Plan `instruction` with `client`; repair invalid plans up to `max_repairs` times.

    Raises PlanError (with `.problems`) when no valid plan came back, and LLMError when the
    client itself fails (no JSON at all, endpoint down after retries).
    """
    if not isinstance(instruction, str) or not instruction.strip():
        raise ConfigError("the instruction to plan is empty")
    if max_repairs < 0:
        raise ConfigError(f"max_repairs must be 0 or more, got {max_repairs}")
    messages = planning_messages(instruction.strip(), output_spec, examples)
    problems: list[str] = []
    for attempt in range(max_repairs + 1):
        data = client.complete_json(messages, PLAN_JSON_SCHEMA, schema_name="plan")
        try:
            return _check(data, instruction.strip(), output_spec)
        except PlanError as exc:
            problems = exc.problems
        log.warning("plan attempt %d is invalid: %s", attempt + 1, "; ".join(problems))
        listed = "\n".join(f"- {p}" for p in problems)
        messages = messages + [
            {"role": "assistant", "content": json.dumps(data, ensure_ascii=False)},
            {"role": "user", "content": f"That plan is invalid:\n{listed}\nReply with the corrected plan as one JSON object."},
        ]
    raise PlanError(
        f"no valid plan after {max_repairs + 1} attempts for {instruction.strip()!r}; last problems:\n"
        + "\n".join(f"  - {p}" for p in problems)
        + "\nWrite the plan by hand (Plan.from_yaml) or use a stronger LLM.",
        problems=problems,
    )
