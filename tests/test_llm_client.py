"""The OpenAI-compatible client against a scripted local server: retries, fallbacks, cache,
truncated replies, accounting, and that the API key never leaks."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest

from falconer_core.errors import LLMError, TransientLLMError
from falconer_core.llm import (
    JSONRequest,
    LLMSettings,
    LLMTruncatedError,
    LocalLLM,
    ModelPrice,
    OpenAIClient,
    extract_json,
    make_llm_client,
)
from tests.llm_server import Scripted, ScriptedLLMServer, answer, completion, error, truncated

KEY = "sk-test-SECRET-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "Is the sky blue? Answer as JSON."}]
SCHEMA = {"type": "object", "properties": {"yes": {"type": "boolean"}}, "required": ["yes"]}


@pytest.fixture
def server():
    with ScriptedLLMServer() as running:
        yield running


def make_client(server: ScriptedLLMServer, cache_dir: Path | None = None, **overrides) -> OpenAIClient:
    settings = {
        "base_url": server.url,
        "api_key": KEY,
        "model": "gpt-4o-mini",
        "timeout": 2.0,
        "max_retries": 3,
        "backoff_initial": 0.001,
        "backoff_max": 0.01,
        "cache_dir": cache_dir,
        **overrides,
    }
    return OpenAIClient(LLMSettings(**settings))


def test_success_sends_json_schema_and_counts_usage(server):
    server.push(answer({"yes": True}, prompt_tokens=1000, completion_tokens=500))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    request = server.requests[0]
    assert request["model"] == "gpt-4o-mini"
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == SCHEMA
    usage = client.usage
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens, usage.cache_hits) == (1, 1000, 500, 0)
    assert usage.cost_usd == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)


def test_rate_limit_then_success(server):
    server.push(error(429, "slow down"), answer({"yes": True}))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert server.calls == 2
    assert client.usage.retries == 1 and client.usage.calls == 1


def test_timeout_then_success(server):
    server.push(Scripted(body="{}", delay=1.0), answer({"yes": False}))
    client = make_client(server, timeout=0.2)
    started = time.perf_counter()
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": False}
    assert time.perf_counter() - started < 5
    assert client.usage.retries == 1


def test_server_error_then_success(server):
    server.push(error(500, "boom"), error(502), answer({"yes": True}))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert server.calls == 3


def test_exhausted_retries_raise_llm_error(server):
    server.push(*[error(503, "overloaded")] * 4)
    client = make_client(server, max_retries=3)
    with pytest.raises(TransientLLMError, match="4 attempts"):
        client.complete_json(MESSAGES, SCHEMA)
    assert server.calls == 4


def test_client_error_is_not_retried(server):
    server.push(error(401, "bad key"))
    client = make_client(server)
    with pytest.raises(LLMError, match="OPENAI_API_KEY") as failure:
        client.complete_json(MESSAGES, SCHEMA)
    assert server.calls == 1
    assert not isinstance(failure.value, TransientLLMError)  # a bad key does not pass on its own


def test_malformed_json_then_valid(server):
    server.push(completion("Sure! The answer is yes."), answer({"yes": True}))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    corrective = server.requests[1]["messages"]
    assert corrective[-2] == {"role": "assistant", "content": "Sure! The answer is yes."}
    assert "could not be used" in corrective[-1]["content"]
    assert client.usage.calls == 2 and client.usage.retries == 1


def test_json_in_prose_and_fences_is_extracted(server):
    server.push(completion('Here you go:\n```json\n{"yes": true,}\n```'))
    assert make_client(server).complete_json(MESSAGES, SCHEMA) == {"yes": True}


def test_malformed_json_every_time_raises(server):
    server.push(*[completion("no json here")] * 3)
    client = make_client(server, json_retries=2)
    with pytest.raises(LLMError, match="no usable JSON in 3 attempts"):
        client.complete_json(MESSAGES, SCHEMA)
    assert server.calls == 3


def test_validator_rejection_is_retried(server):
    server.push(answer({"maybe": 1}), answer({"yes": True}))

    def validate(value):
        if "yes" not in value:
            raise ValueError("missing 'yes'")
        return value

    assert make_client(server).complete_json(MESSAGES, SCHEMA, validate=validate) == {"yes": True}
    assert "missing 'yes'" in server.requests[1]["messages"][-1]["content"]


def test_falls_back_when_server_rejects_response_format_for_that_request_only(server):
    server.push(error(400, "response_format json_schema unsupported"), answer({"yes": True}), answer({"yes": False}))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert server.requests[1]["response_format"] == {"type": "json_object"}
    assert "JSON schema" in server.requests[1]["messages"][0]["content"]
    # the step down held for that request only: the next one asks for json_schema again
    assert client.complete_json([{"role": "user", "content": "again"}], SCHEMA) == {"yes": False}
    assert server.requests[2]["response_format"]["type"] == "json_schema"
    assert client.first_mode == "json_schema"


def test_falls_back_to_plain_prompt(server):
    server.push(error(400, "Unknown field response_format"), error(422, "json_object is not supported"),
                completion('{"yes": true}'))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert "response_format" not in server.requests[2]


def test_a_400_that_is_not_about_the_format_does_not_step_down(server):
    server.push(error(400, "This model's maximum context length is 128000 tokens"), answer({"yes": True}))
    client = make_client(server)
    with pytest.raises(LLMError, match="maximum context length"):
        client.complete_json(MESSAGES, SCHEMA)
    assert server.calls == 1 and client.first_mode == "json_schema"
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert server.requests[1]["response_format"]["type"] == "json_schema"


def test_a_reply_cut_at_the_token_limit_is_neither_repaired_nor_cached(server, tmp_path):
    cut = {"answers": [{"id": 1, "spans": ["Alice"]}, {"id": 2, "spans": ["Bob", "Carol Smith"]}]}
    server.push(truncated(cut, 60), answer(cut))
    client = make_client(server, cache_dir=tmp_path, max_tokens=64)
    with pytest.raises(LLMTruncatedError, match="FALCONER_LLM_MAX_TOKENS \\(now 64\\)"):
        client.complete_json(MESSAGES)
    assert server.calls == 1  # no corrective retry: the same request would be cut the same way
    assert not [p for p in tmp_path.rglob("*.json")]
    assert client.complete_json(MESSAGES) == cut  # asked again, not served a repaired half
    assert server.calls == 2


def test_cut_off_json_is_never_closed_by_the_parser(server):
    server.push(completion('{"answers": [{"id": 1, "spans": ["Alice"]}, {"id": 2, "spans": ["Bob", "Carol Sm'),
                answer({"yes": True}))
    client = make_client(server)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert "cut off" in server.requests[1]["messages"][-1]["content"]


def test_backoff_is_jittered_and_bounded(server):
    from tenacity import RetryCallState, Retrying, wait_random_exponential

    client = make_client(server, backoff_initial=0.5, backoff_max=30.0)
    assert isinstance(client.backoff, wait_random_exponential)
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 3
    waits = [client._wait(state) for _ in range(50)]
    assert all(0 <= w <= 0.5 * 2**2 for w in waits)
    assert len(set(waits)) > 40  # drawn at random, not one fixed schedule for every client


def test_observed_waits_between_retries_vary(server, monkeypatch):
    import types

    import tenacity.nap

    slept: list[float] = []
    monkeypatch.setattr(tenacity.nap, "time", types.SimpleNamespace(sleep=slept.append))  # tenacity's naps only
    for _ in range(3):
        server.push(error(503), error(503), answer({"yes": True}))
        assert make_client(server, backoff_initial=0.2, backoff_max=5.0).complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert len(slept) == 6 and len(set(slept)) == 6


def test_fixed_format_does_not_fall_back(server):
    server.push(error(400, "nope"))
    client = make_client(server, structured_output="json_schema")
    with pytest.raises(LLMError, match="400"):
        client.complete_json(MESSAGES, SCHEMA)


def test_cache_second_run_makes_no_http_call(server, tmp_path):
    server.push(answer({"yes": True}))
    first = make_client(server, cache_dir=tmp_path)
    assert first.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    again = make_client(server, cache_dir=tmp_path)
    assert again.complete_json(MESSAGES, SCHEMA) == {"yes": True}
    assert server.calls == 1
    assert again.usage.cache_hits == 1 and again.usage.calls == 0 and again.usage.cost_usd == 0
    # a different schema or model is a different request
    server.push(answer({"yes": False}))
    assert make_client(server, cache_dir=tmp_path, model="gpt-4.1").complete_json(MESSAGES, SCHEMA) == {"yes": False}
    assert server.calls == 2


def test_cache_is_keyed_by_endpoint(server, tmp_path):
    """Two servers serving one model name may hold different weights: they never share answers."""
    server.push(answer({"yes": True}))
    assert make_client(server, cache_dir=tmp_path).complete_json(MESSAGES, SCHEMA) == {"yes": True}
    with ScriptedLLMServer() as other:
        other.push(answer({"yes": False}))
        assert make_client(other, cache_dir=tmp_path).complete_json(MESSAGES, SCHEMA) == {"yes": False}
        assert other.calls == 1


def test_failed_answers_are_not_cached(server, tmp_path):
    server.push(*[completion("garbage")] * 3, answer({"yes": True}))
    client = make_client(server, cache_dir=tmp_path)
    with pytest.raises(LLMError):
        client.complete_json(MESSAGES, SCHEMA)
    assert client.complete_json(MESSAGES, SCHEMA) == {"yes": True}


def test_prices_are_overridable_and_unknown_models_reported(server):
    server.push(answer({"yes": True}, prompt_tokens=2_000_000, completion_tokens=1_000_000))
    client = make_client(server, model="my-vllm-model", prices={"my-vllm": ModelPrice(input=1.0, output=2.0)})
    client.complete_json(MESSAGES, SCHEMA)
    assert client.usage.cost_usd == pytest.approx(4.0)
    server.push(answer({"yes": True}))
    unknown = make_client(server, model="mystery")
    unknown.complete_json(MESSAGES, SCHEMA)
    assert unknown.usage.cost_usd == 0 and unknown.usage.as_dict()["unpriced_models"] == ["mystery"]


def test_batch_runs_concurrently_within_the_bound(server):
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(body):
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return answer({"echo": body["messages"][-1]["content"]})

    server.handler = handler
    client = make_client(server, max_concurrency=3)
    requests = [JSONRequest([{"role": "user", "content": f"n{i}"}]) for i in range(9)]
    results = client.complete_json_many(requests)
    assert [r["echo"] for r in results] == [f"n{i}" for i in range(9)]
    assert 1 < state["peak"] <= 3


def test_batch_failure_raises_after_caching_the_rest(server, tmp_path):
    def handler(body):
        content = body["messages"][-1]["content"]
        return error(400, "bad") if content == "n1" else answer({"echo": content})

    server.handler = handler
    client = make_client(server, cache_dir=tmp_path, structured_output="json_object")
    requests = [JSONRequest([{"role": "user", "content": f"n{i}"}]) for i in range(4)]
    with pytest.raises(LLMError):
        client.complete_json_many(requests)
    calls = server.calls
    client.complete_json_many([requests[0], requests[2], requests[3]])
    assert server.calls == calls
    # or each failure in its place, for a caller that handles it (the annotator splits cut batches)
    results = client.complete_json_many(requests, errors="return")
    assert isinstance(results[1], LLMError) and [r["echo"] for r in results[::2]] == ["n0", "n2"]


def test_api_key_never_leaks(server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    server.push(answer({"yes": True}), error(500, f"internal: got key {KEY}"), error(401, f"Incorrect API key {KEY}"))
    client = make_client(server, cache_dir=tmp_path, max_retries=1)
    client.complete_json(MESSAGES, SCHEMA)
    with pytest.raises(LLMError) as failure:
        client.complete_json([{"role": "user", "content": "second"}], SCHEMA)
    # the key was really used ...
    assert server.headers[0]["authorization"] == f"Bearer {KEY}"
    # ... and appears nowhere we produce
    assert KEY not in str(failure.value) and failure.value.__cause__ is None
    assert KEY not in repr(client) and KEY not in repr(client.settings) and KEY not in str(client.settings)
    assert KEY not in caplog.text
    assert "internal: got key ***" in caplog.text
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(KEY.encode() not in p.read_bytes() for p in files)


def test_settings_read_the_openai_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("FALCONER_LLM_MODEL", "llama3")
    settings = LLMSettings()
    assert settings.base_url == "http://127.0.0.1:9/v1" and settings.model == "llama3"
    assert settings.api_key.get_secret_value() == KEY and KEY not in repr(settings)
    assert isinstance(make_llm_client(settings), OpenAIClient)
    monkeypatch.delenv("OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_API_KEY")
    assert isinstance(make_llm_client(LLMSettings()), LocalLLM)  # loads nothing until used


def test_unreachable_server_is_retried_then_fails():
    with ScriptedLLMServer() as gone:
        url = gone.url
    client = OpenAIClient(LLMSettings(base_url=url, api_key=KEY, max_retries=1, backoff_initial=0.001,
                                      cache_dir=None, timeout=1))
    with pytest.raises(LLMError, match="2 attempts"):
        client.complete_json(MESSAGES, SCHEMA)
    assert client.usage.retries == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('prose {"a": [1, 2,],} more prose', {"a": [1, 2]}),
        ('```json\n{"a": "x"}\n```', {"a": "x"}),
        ("{not json} then [1, 2]", [1, 2]),
    ],
)
def test_extract_json(text, expected):
    assert extract_json(text) == expected


@pytest.mark.parametrize("text", ['{"a": {"b": "cut off', '{"a": 1, "b":', '{"answers": [{"id": 1}, {"id": 2, "x": ["y'])
def test_extract_json_never_closes_a_cut_off_value(text):
    with pytest.raises(ValueError, match="cut off"):
        extract_json(text)


def test_extract_json_without_json_raises():
    with pytest.raises(ValueError, match="no JSON"):
        extract_json("I cannot help with that.")


def test_cache_files_hold_only_the_answer(server, tmp_path):
    server.push(answer({"yes": True}))
    make_client(server, cache_dir=tmp_path).complete_json(MESSAGES, SCHEMA)
    (entry,) = [json.loads(p.read_text()) for p in tmp_path.rglob("*.json")]
    assert set(entry) == {"model", "value", "prompt_tokens", "completion_tokens"}


def test_cached_answer_is_validated_again(server, tmp_path):
    server.push(answer({"maybe": 1}), answer({"yes": True}))
    make_client(server, cache_dir=tmp_path).complete_json(MESSAGES, SCHEMA)

    def validate(value):
        if "yes" not in value:
            raise ValueError("missing 'yes'")
        return value

    strict = make_client(server, cache_dir=tmp_path)
    assert strict.complete_json(MESSAGES, SCHEMA, validate=validate) == {"yes": True}
    assert server.calls == 2 and strict.usage.cache_hits == 0
