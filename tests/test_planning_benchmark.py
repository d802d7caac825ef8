"""The planning benchmark's cases and scorer (the scorer decides what 'a correct plan' means,
so it is tested like library code)."""

from __future__ import annotations

from collections import Counter

from benchmarks.planning import KINDS, compare_plans, load_cases, run_case, select
from falconer_core.llm import LLMSettings, OpenAIClient
from falconer_core.plan import Plan
from tests.llm_server import ScriptedLLMServer, answer

REF = Plan.from_dict({
    "steps": [
        {"name": "is_sports", "op": "label", "instruction": "Is this tweet about sports?"},
        {"name": "is_politics", "op": "label", "instruction": "Is this tweet about politics?"},
        {"name": "person", "op": "span", "instruction": "Extract the names of people."},
        {"name": "role", "op": "span", "for_each": "person", "instruction": "What is {person}'s role?"},
    ],
    "filter": {"not": {"or": ["is_sports", "is_politics"]}},
    "outputs": ["role"],
})


def variant(**changes) -> Plan:
    data = REF.to_dict()
    data.update(changes)
    return Plan.from_dict(data)


def test_cases_cover_every_kind_and_domain():
    cases = load_cases()
    assert len(cases) >= 20
    kinds = Counter(c.kind for c in cases)
    assert set(kinds) == set(KINDS) and min(kinds.values()) >= 5
    assert {c.domain for c in cases} == {"reviews", "ted", "sms", "tweets", "biomedical"}
    assert len({c.id for c in cases}) == len(cases)
    assert all(compare_plans(c.plan, c.plan).match for c in cases)
    assert [c.kind for c in select(cases, 1, None)] == list(KINDS)


def test_renamed_reworded_reordered_plan_matches():
    pred = Plan.from_dict({
        "steps": [
            {"name": "politics", "op": "label", "instruction": "Does the tweet discuss politics?"},
            {"name": "sport", "op": "label", "instruction": "Is it a sports tweet?"},
            {"name": "people", "op": "span", "instruction": "Extract every person name."},
            {"name": "job", "op": "span", "for_each": "people", "instruction": "Which role does {people} have?"},
        ],
        # De Morgan: the same function as not(or(...))
        "filter": {"and": [{"not": "sport"}, {"not": "politics"}]},
        "outputs": ["people", "job"],
    })
    comparison = compare_plans(pred, REF)
    assert comparison.match, comparison.reasons
    assert comparison.pairing["sport"] == "is_sports"


def test_different_logic_does_not_match():
    result = compare_plans(variant(filter={"or": ["is_sports", "is_politics"]}), REF)
    assert not result.match and "filter" in result.reasons[0]


def test_flat_step_instead_of_per_span_does_not_match():
    steps = REF.to_dict()["steps"][:3] + [{"name": "role", "op": "span", "instruction": "Extract the roles."}]
    result = compare_plans(variant(steps=steps, outputs=["person", "role"]), REF)
    assert not result.match and "differ" in result.reasons[0]


def test_unrelated_instruction_does_not_match():
    steps = REF.to_dict()["steps"]
    steps[0] = {**steps[0], "instruction": "Is this tweet written in French?"}
    result = compare_plans(variant(steps=steps), REF)
    assert not result.match and "French" in result.reasons[0]


def test_missing_output_does_not_match():
    result = compare_plans(REF, variant(outputs=["person", "role"]))
    assert result.reasons == ["outputs do not include ['person']"]


def test_run_case_against_a_scripted_endpoint():
    case = load_cases()[0]
    with ScriptedLLMServer() as server:
        server.push(answer(case.plan.to_dict()))
        client = OpenAIClient(LLMSettings(base_url=server.url, api_key="sk-test", cache_dir=None))
        outcome = run_case(case, client, max_repairs=0)
    assert outcome.status == "match" and outcome.plan is not None
