"""The plan schema: the paper's four task kinds, every validation rule, round trips, the hash."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from falconer_core.errors import FalconerError, PlanError
from falconer_core.plan import (
    PLAN_JSON_SCHEMA,
    And,
    Not,
    Or,
    Plan,
    condition_score,
    condition_steps,
    evaluate_condition,
    render_condition,
)

# The paper's four kinds of task, as a careful engineer would plan them.
BASIC = {
    "instruction": "Extract all person names",
    "steps": [{"name": "person", "op": "span", "instruction": "Extract all person names"}],
}
QUERY_BASED = {
    "instruction": "Retrieve texts primarily about medicine and extract what the lecturer will talk about",
    "steps": [
        {"name": "is_medicine", "op": "label", "instruction": "Is this text primarily about medicine?"},
        {"name": "topic", "op": "span", "instruction": "What will the lecturer talk about?"},
    ],
    "filter": "is_medicine",
}
MULTI_ENTITY = {
    "instruction": "Retrieve all talks about both health and the brain, then extract their speakers",
    "steps": [
        {"name": "is_health", "op": "label", "instruction": "Is this talk about health?"},
        {"name": "is_brain", "op": "label", "instruction": "Is this talk about the brain?"},
        {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"},
    ],
    "filter": {"and": ["is_health", "is_brain"]},
    "outputs": ["speaker"],
}
MULTI_STEP = {
    "instruction": "Extract the speakers, then each speaker's profession",
    "steps": [
        {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"},
        {
            "name": "profession",
            "op": "span",
            "instruction": "What is {speaker}'s profession?",
            "for_each": "speaker",
        },
    ],
}
KINDS = {"basic": BASIC, "query_based": QUERY_BASED, "multi_entity": MULTI_ENTITY, "multi_step": MULTI_STEP}


def _step(name: str, op: str = "label", instruction: str | None = None, **extra) -> dict:
    return {"name": name, "op": op, "instruction": instruction or f"Is it {name}?", **extra}


def _problems(data: dict) -> list[str]:
    with pytest.raises(PlanError) as info:
        Plan.from_dict(data)
    return info.value.problems


# --- the four task kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_task_kind_validates_round_trips_and_renders(kind: str) -> None:
    plan = Plan.from_dict(KINDS[kind])
    assert Plan.from_yaml(plan.to_yaml()) == plan
    assert Plan.from_json(plan.to_json()) == plan
    assert Plan.from_yaml(plan.to_yaml()).hash == plan.hash
    rendered = plan.render()
    assert plan.hash in rendered and all(s.name in rendered for s in plan.steps)


def test_query_based_plan_filters_before_extracting() -> None:
    plan = Plan.from_dict(QUERY_BASED)
    assert plan.filter_steps == ["is_medicine"]
    assert [o.name for o in plan.outputs] == ["topic"]  # default: what the filter does not read
    assert "texts passing the filter" in plan.render()


def test_multi_entity_plan_combines_labels_with_boolean_logic() -> None:
    plan = Plan.from_dict(MULTI_ENTITY)
    assert isinstance(plan.filter, And)
    assert plan.filter_steps == ["is_health", "is_brain"]
    assert "filter: is_health AND is_brain" in plan.render()


def test_multi_step_plan_templates_the_intermediate_result() -> None:
    plan = Plan.from_dict(MULTI_STEP)
    profession = plan.step("profession")
    assert [s.name for s in plan.chain("profession")] == ["speaker"]
    assert profession.render_instruction({"speaker": "Jane {Doe}"}) == "What is Jane {Doe}'s profession?"
    assert "for each speaker" in plan.render()


def test_nested_per_span_steps_may_use_enclosing_placeholders() -> None:
    plan = Plan.from_dict(
        {
            "steps": [
                _step("company", "span", "Extract the companies"),
                _step("ceo", "span", "Who is the CEO of {company}?", for_each="company"),
                _step("age", "span", "How old is {ceo}, CEO of {company}?", for_each="ceo"),
            ]
        }
    )
    assert [s.name for s in plan.chain("age")] == ["company", "ceo"]


# --- validation: one test per rule ---------------------------------------------------------------


def test_plan_needs_a_step() -> None:
    assert _problems({"steps": []}) == ["steps: a plan needs at least one step"]
    assert any("steps: required field is missing" in p for p in _problems({}))


def test_structural_errors_are_all_listed() -> None:
    problems = _problems({"steps": [{"name": "a", "op": "classify", "instruction": ""}], "extra": 1})
    assert any(p.startswith("steps[0].op") for p in problems)
    assert any(p.startswith("steps[0].instruction") for p in problems)
    assert "extra: unknown field" in problems


@pytest.mark.parametrize("name", ["1st", "has space", "dash-ed", "", "x" * 65])
def test_step_names_must_be_identifiers(name: str) -> None:
    assert any("name" in p and "letter" in p for p in _problems({"steps": [_step(name)], "outputs": [
        {"name": "out", "step": name}]}))


def test_step_names_must_be_unique() -> None:
    problems = _problems({"steps": [_step("a"), _step("a", "span", "Extract it")]})
    assert any("duplicate step name" in p for p in problems)


def test_filter_must_reference_existing_label_steps() -> None:
    problems = _problems(
        {
            "steps": [
                _step("is_a"),
                _step("thing", "span", "Extract the thing"),
                _step("per", "label", "Is {thing} good?", for_each="thing"),
            ],
            "filter": {"or": ["is_a", "missing", {"not": "thing"}, "per"]},
        }
    )
    assert any("'missing' is not a step" in p for p in problems)
    assert any("'thing' is a span step" in p for p in problems)
    assert any("'per' runs per span" in p for p in problems)


@pytest.mark.parametrize(
    "bad_filter",
    [{"xor": ["a"]}, {"and": []}, {"and": "a"}, {"and": ["a"], "or": ["a"]}, {"not": {"nand": "a"}}, 3, ""],
)
def test_filter_must_be_a_name_or_one_operator_object(bad_filter) -> None:
    problems = _problems({"steps": [_step("a")], "filter": bad_filter})
    assert len(problems) == 1 and problems[0].startswith("filter")


def test_for_each_must_reference_an_earlier_span_step() -> None:
    problems = _problems(
        {
            "steps": [
                _step("is_a"),
                _step("x", "span", "Ask {missing}", for_each="missing"),
                _step("y", "span", "Ask {is_a}", for_each="is_a"),
                _step("z", "span", "Ask {later}", for_each="later"),
                _step("later", "span", "Extract later"),
                _step("self_", "span", "Ask {self_}", for_each="self_"),
            ],
            "filter": "is_a",
        }
    )
    assert any("for_each 'missing' is not a step" in p for p in problems)
    assert any("for_each 'is_a' must be a span step" in p for p in problems)
    assert any("for_each 'later' is defined later" in p for p in problems)
    assert any("refers to the step itself (a cycle)" in p for p in problems)


def test_for_each_cycles_are_named() -> None:
    problems = _problems(
        {
            "steps": [
                _step("a", "span", "Ask {b}", for_each="b"),
                _step("b", "span", "Ask {a}", for_each="a"),
            ]
        }
    )
    assert any("cycle: a -> b -> a" in p for p in problems)


def test_placeholders_need_for_each_and_may_only_name_its_chain() -> None:
    problems = _problems(
        {
            "steps": [
                _step("speaker", "span", "Extract speakers"),
                _step("topic", "span", "Extract the {subject}"),
                _step("job", "span", "What is {speaker}'s job at {topic}?", for_each="speaker"),
                _step("age", "span", "How old is the speaker?", for_each="speaker"),
                _step("bad", "span", "Who is {speaker.name} or {0}?", for_each="speaker"),
                _step("brace", "span", "Who is {speaker", for_each="speaker"),
            ]
        }
    )
    assert any("placeholders ['subject'] need for_each" in p for p in problems)
    assert any("placeholder {topic} is not allowed" in p for p in problems)
    assert any("(age): runs for each 'speaker', so its instruction must mention {speaker}" in p for p in problems)
    assert any("placeholder {speaker.name} is not allowed" in p for p in problems)
    assert any("placeholder {0} is not allowed" in p for p in problems)
    assert any("(brace): malformed braces" in p for p in problems)


def test_literal_braces_are_allowed() -> None:
    plan = Plan.from_dict({"steps": [_step("x", "span", "Extract {{json}} keys")]})
    assert plan.step("x").placeholders() == []


def test_outputs_must_name_existing_steps_and_unique_fields() -> None:
    problems = _problems(
        {"steps": [_step("a", "span", "Extract a")], "outputs": ["a", {"name": "a", "step": "a"}, "nope", "1x"]}
    )
    assert any("outputs[1].name 'a': duplicate output field" in p for p in problems)
    assert any("outputs[2].step 'nope' is not a step" in p for p in problems)
    assert any("outputs[3].name '1x': not an identifier" in p for p in problems)


def test_unused_steps_are_reported() -> None:
    problems = _problems(
        {"steps": [_step("a", "span", "Extract a"), _step("b", "span", "Extract b")], "outputs": ["a"]}
    )
    assert problems == [
        "step 'b' is not used by the filter, the outputs or any per-span step; add it to outputs or remove it"
    ]


def test_intermediate_step_feeding_an_output_is_used() -> None:
    plan = Plan.from_dict({**MULTI_STEP, "outputs": ["profession"]})
    assert [o.step for o in plan.outputs] == ["profession"]


def test_every_semantic_problem_is_listed_in_one_error() -> None:
    with pytest.raises(PlanError) as info:
        Plan.from_dict(
            {"steps": [_step("a"), _step("a"), _step("b", "span", "{x}")], "filter": "zz", "outputs": ["q"]}
        )
    message = str(info.value)
    assert message.startswith("invalid plan:")
    assert len(info.value.problems) >= 4
    assert all(p in message for p in info.value.problems)


def test_plan_error_is_a_value_error_in_the_falconer_family() -> None:
    with pytest.raises(PlanError) as info:
        Plan(steps=[])
    assert isinstance(info.value, ValueError) and isinstance(info.value, FalconerError)


def test_bad_documents_raise_plan_error(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="not valid YAML"):
        Plan.from_yaml("steps: [unclosed")
    with pytest.raises(PlanError, match="not valid JSON"):
        Plan.from_json("{steps:")
    with pytest.raises(PlanError, match="must be a mapping"):
        Plan.from_yaml("- a list")
    with pytest.raises(PlanError, match="not found"):
        Plan.load(tmp_path / "missing.yaml")


# --- serialisation and hash ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load(tmp_path: Path, suffix: str) -> None:
    plan = Plan.from_dict(MULTI_ENTITY)
    path = plan.save(tmp_path / "sub" / f"plan{suffix}")
    assert Plan.load(path) == plan
    if suffix == ".json":
        assert json.loads(path.read_text())["filter"] == {"and": ["is_health", "is_brain"]}


def test_yaml_is_readable_with_operator_keys() -> None:
    text = Plan.from_dict(MULTI_ENTITY).to_yaml()
    assert "filter:\n  and:\n  - is_health\n  - is_brain" in text
    assert "for_each" not in text  # unset optional fields are left out


def test_hash_ignores_key_order_whitespace_and_format() -> None:
    plan = Plan.from_dict(MULTI_ENTITY)
    shuffled = json.dumps({k: MULTI_ENTITY[k] for k in reversed(list(MULTI_ENTITY))}, indent=7)
    assert Plan.from_json(shuffled).hash == plan.hash
    assert Plan.from_yaml(plan.to_yaml()).hash == plan.hash
    assert re.fullmatch(r"[0-9a-f]{16}", plan.hash)


def test_hash_is_sha256_of_canonical_program_json() -> None:
    # Pinned: the hash keys annotations and checkpoints, so it must not drift between releases.
    program = {
        "steps": [{"name": "person", "op": "span", "instruction": "Extract all person names"}],
        "outputs": [{"name": "person", "step": "person"}],
    }
    canonical = json.dumps(program, sort_keys=True, separators=(",", ":"))
    assert Plan.from_dict(BASIC).hash == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert Plan.from_dict(BASIC).hash == "2eda747874b7fc16"


def test_hash_covers_the_program_not_the_request_text() -> None:
    plan = Plan.from_dict(MULTI_ENTITY)
    assert Plan.from_dict({**MULTI_ENTITY, "instruction": "reworded"}).hash == plan.hash
    changed = json.loads(json.dumps(MULTI_ENTITY))
    changed["steps"][0]["instruction"] = "Is this talk about medicine?"
    assert Plan.from_dict(changed).hash != plan.hash
    assert Plan.from_dict({**MULTI_ENTITY, "filter": {"or": ["is_health", "is_brain"]}}).hash != plan.hash


def test_default_outputs_equal_explicit_ones() -> None:
    explicit = {**QUERY_BASED, "outputs": [{"name": "topic", "step": "topic"}]}
    assert Plan.from_dict(explicit).hash == Plan.from_dict(QUERY_BASED).hash
    assert Plan.from_dict({**QUERY_BASED, "outputs": ["topic"]}) == Plan.from_dict(explicit)


def test_retrieval_only_plan_has_no_output_fields() -> None:
    plan = Plan.from_dict({"steps": [_step("is_spam")], "filter": "is_spam", "outputs": []})
    assert plan.outputs == [] and "ids of passing texts" in plan.render()


def test_json_schema_accepts_the_task_kinds() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    assert "steps" in PLAN_JSON_SCHEMA["required"]
    for data in KINDS.values():
        normalised = Plan.from_dict(data).to_dict()
        jsonschema.validate(normalised, PLAN_JSON_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"steps": [{"name": "a", "op": "nope", "instruction": "x"}]}, PLAN_JSON_SCHEMA)


# --- conditions ----------------------------------------------------------------------------------


def test_conditions_evaluate_score_and_render() -> None:
    plan = Plan.from_dict(
        {
            "steps": [_step("a"), _step("b"), _step("c")],
            "filter": {"and": ["a", {"not": {"or": ["b", "c"]}}]},
        }
    )
    condition = plan.filter
    assert isinstance(condition, And) and isinstance(condition.operands[1], Not)
    assert isinstance(condition.operands[1].operand, Or)
    assert condition_steps(condition) == ["a", "b", "c"]
    assert evaluate_condition(condition, {"a": True, "b": False, "c": False})
    assert not evaluate_condition(condition, {"a": True, "b": False, "c": True})
    assert not evaluate_condition(condition, {"a": False, "b": False, "c": False})
    assert condition_score(condition, {"a": 0.9, "b": 0.2, "c": 0.3}) == pytest.approx(0.7)
    assert render_condition(condition) == "a AND NOT (b OR c)"


def test_no_eval_or_exec_anywhere_in_the_library() -> None:
    root = Path(__file__).resolve().parents[1] / "falconer_core"
    sources = sorted(root.rglob("*.py"))
    assert len(sources) > 40 and root / "plan" / "model.py" in sources
    for path in sources:
        assert not re.search(r"(?<![.\w])(eval|exec)\(", path.read_text()), path


def test_pydantic_entry_points_raise_plan_error_too() -> None:
    assert Plan.model_validate(BASIC) == Plan.from_dict(BASIC)
    assert Plan.model_validate_json(json.dumps(BASIC)) == Plan.from_dict(BASIC)
    with pytest.raises(PlanError, match="at least one step"):
        Plan.model_validate({"steps": []})
    with pytest.raises(PlanError, match="at least one step"):
        Plan.model_validate_json('{"steps": []}')
