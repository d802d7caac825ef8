"""The planner's prompt, validation and repair loop, against the scripted HTTP server."""

from __future__ import annotations

import json

import pytest

from falconer_core.errors import ConfigError, LLMError, PlanError
from falconer_core.llm import LLMSettings, OpenAIClient
from falconer_core.plan import PLAN_JSON_SCHEMA, Plan
from falconer_core.plan.planner import DEFAULT_EXAMPLES, plan_instruction, planning_messages
from tests.llm_server import ScriptedLLMServer, answer, completion

INSTRUCTION = "Find tweets that mention a football club and extract the club names."
GOOD = {
    "steps": [
        {"name": "mentions_club", "op": "label", "instruction": "Does this tweet mention a football club?"},
        {"name": "club", "op": "span", "instruction": "Extract the names of football clubs."},
    ],
    "filter": "mentions_club",
    "outputs": [{"name": "club", "step": "club"}],
}
# Two mistakes LLMs make: a span step in the filter, and a for_each on a step that does not exist.
BAD_FILTER = {**GOOD, "filter": "club"}
BAD_FOR_EACH = {**GOOD, "steps": [*GOOD["steps"], {"name": "x", "op": "span", "instruction": "What about {y}?", "for_each": "y"}]}


@pytest.fixture
def server():
    with ScriptedLLMServer() as running:
        yield running


def client_for(server: ScriptedLLMServer) -> OpenAIClient:
    return OpenAIClient(LLMSettings(base_url=server.url, api_key="sk-test", cache_dir=None, backoff_initial=0.001))


def test_examples_are_valid_plans_one_per_kind():
    assert [e.kind for e in DEFAULT_EXAMPLES] == ["basic", "query-based", "multi-entity", "multi-step"]
    for example in DEFAULT_EXAMPLES:
        Plan.from_dict(dict(example.plan))
    assert any(s.get("for_each") for s in DEFAULT_EXAMPLES[-1].plan["steps"])


def test_prompt_has_examples_as_turns_then_the_request():
    messages = planning_messages(INSTRUCTION, ["club"])
    assert messages[0]["role"] == "system"
    assert len(messages) == 2 + 2 * len(DEFAULT_EXAMPLES)
    assert messages[-1]["content"].startswith(f"Request: {INSTRUCTION}")
    assert "exactly these fields: club" in messages[-1]["content"]


def test_valid_plan_first_time(server):
    server.push(answer(GOOD))
    plan = plan_instruction(INSTRUCTION, client_for(server))
    assert plan.instruction == INSTRUCTION and plan.filter == "mentions_club"
    assert server.requests[0]["response_format"]["json_schema"]["schema"] == PLAN_JSON_SCHEMA


def test_plan_that_fails_validation_twice_then_passes(server):
    server.push(answer(BAD_FILTER), answer(BAD_FOR_EACH), answer({"plan": GOOD}))
    plan = plan_instruction(INSTRUCTION, client_for(server), max_repairs=2)
    assert plan.hash == Plan.from_dict(GOOD).hash
    assert server.calls == 3
    first_repair = server.requests[1]["messages"]
    assert first_repair[-2] == {"role": "assistant", "content": json.dumps(BAD_FILTER)}
    assert "That plan is invalid" in first_repair[-1]["content"]
    assert "'club' is a span step" in first_repair[-1]["content"]
    second_repair = server.requests[2]["messages"][-1]["content"]
    assert "for_each 'y' is not a step" in second_repair


def test_plan_that_always_fails_raises_plan_error(server):
    server.push(*[answer(BAD_FILTER)] * 3)
    with pytest.raises(PlanError) as failure:
        plan_instruction(INSTRUCTION, client_for(server), max_repairs=2)
    assert server.calls == 3
    assert "no valid plan after 3 attempts" in str(failure.value)
    assert any("span step" in p for p in failure.value.problems)


def test_requested_outputs_are_enforced(server):
    server.push(answer(GOOD), answer({**GOOD, "outputs": [{"name": "club_name", "step": "club"}]}))
    plan = plan_instruction(INSTRUCTION, client_for(server), output_spec=["club_name"])
    assert [o.name for o in plan.outputs] == ["club_name"]
    assert "exactly ['club_name']" in server.requests[1]["messages"][-1]["content"]


def test_non_object_reply_is_repaired(server):
    server.push(answer(["not", "a", "plan"]), answer(GOOD))
    assert plan_instruction(INSTRUCTION, client_for(server)).filter == "mentions_club"


def test_no_json_at_all_is_an_llm_error(server):
    server.push(*[completion("I would use a classifier.")] * 3)
    with pytest.raises(LLMError):
        plan_instruction(INSTRUCTION, client_for(server))


def test_bad_arguments(server):
    with pytest.raises(ConfigError):
        plan_instruction("  ", client_for(server))
    with pytest.raises(ConfigError):
        plan_instruction(INSTRUCTION, client_for(server), max_repairs=-1)
