"""What every JSON-answering client shares: the contract, the cache, the parse-and-retry loop.

The HTTP client and the embedded local model differ only in how one reply is produced
(`_generate`); caching, accounting and recovering from unusable replies live here once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from falconer_core.errors import LLMError
from falconer_core.llm.cache import ResponseCache, cache_key
from falconer_core.llm.jsontext import extract_json
from falconer_core.llm.settings import LLMSettings
from falconer_core.llm.usage import DEFAULT_PRICES, Usage

log = logging.getLogger("falconer_core.llm")

Message = Mapping[str, str]
Validator = Callable[[Any], Any]


@dataclass(frozen=True)
class JSONRequest:
    """One call of a batch: chat messages, the JSON schema of the answer, and a checker.

    `validate` receives the parsed JSON and returns it (possibly normalised) or raises
    ValueError; a ValueError counts as an unusable reply and triggers a corrective retry.
    """

    messages: Sequence[Message]
    schema: Mapping[str, Any] | None = None
    schema_name: str = "answer"
    validate: Validator | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Reply:
    """The raw text of one model reply and what it consumed."""

    content: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@runtime_checkable
class JSONClient(Protocol):
    """The contract annotators and the planner rely on; OpenAIClient and LocalLLM satisfy it."""

    model: str
    usage: Usage

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        validate: Validator | None = None,
    ) -> Any: ...

    def complete_json_many(self, requests: Sequence[JSONRequest]) -> list[Any]: ...


def schema_instruction(schema: Mapping[str, Any] | None) -> str:
    """The text that asks for JSON when the server cannot be told the schema directly."""
    if schema is None:
        return "Reply with one JSON value only, no prose and no code fences."
    return (
        "Reply with one JSON value only, no prose and no code fences. It must match this JSON "
        "schema:\n" + json.dumps(schema, separators=(",", ":"))
    )


def with_schema_instruction(messages: Sequence[Message], schema: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """Append the JSON instruction to the system message (adding one if there is none)."""
    out = [dict(message) for message in messages]
    note = schema_instruction(schema)
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0]['content']}\n\n{note}"
    else:
        out.insert(0, {"role": "system", "content": note})
    return out


class CachedJSONClient:
    """Base of the clients: cache lookup, one generation, parse, validate, bounded repair."""

    model: str
    usage: Usage

    def __init__(self, settings: LLMSettings, model: str) -> None:
        self.settings = settings
        self.model = model
        self.usage = Usage(prices={**DEFAULT_PRICES, **settings.prices})
        self._cache = ResponseCache(settings.cache_dir) if settings.cache_dir is not None else None

    # Subclasses produce one reply; `attempt` lets them vary sampling on repeats.
    def _generate(
        self, messages: list[dict[str, str]], schema: Mapping[str, Any] | None, schema_name: str, attempt: int
    ) -> Reply:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        """Generation parameters that change the answer, hence part of the cache key."""
        return {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens}

    def _schema_note(self, schema: Mapping[str, Any] | None) -> str:
        """How to ask for the schema in words (a local model gets a shorter note)."""
        return schema_instruction(schema)

    def _scrub(self, text: str) -> str:
        """Hook for clients holding a secret: remove it from any text leaving the client."""
        return text

    def complete_json(
        self,
        messages: Sequence[Message],
        schema: Mapping[str, Any] | None = None,
        *,
        schema_name: str = "answer",
        validate: Validator | None = None,
    ) -> Any:
        """Ask for a JSON answer; serve it from the cache when this exact request was answered.

        An unparsable or invalid reply is sent back with the problem named, at most
        `settings.json_retries` times, then LLMError is raised.
        """
        base = [dict(message) for message in messages]
        schema_dict = dict(schema) if schema is not None else None
        key = cache_key(self.model, base, schema_dict, self._params())
        if self._cache is not None:
            entry = self._cache.get(key)
            if entry is not None:
                try:
                    value = validate(entry["value"]) if validate is not None else entry["value"]
                except ValueError:
                    pass  # cached under a laxer check: ask again
                else:
                    self.usage.add_cache_hit()
                    return value
        conversation = base
        problem = "no attempt made"
        for attempt in range(self.settings.json_retries + 1):
            if attempt:
                self.usage.add_retry()
            reply = self._generate(conversation, schema_dict, schema_name, attempt)
            try:
                parsed = extract_json(reply.content)
                value = validate(parsed) if validate is not None else parsed
            except ValueError as exc:
                problem = self._scrub(str(exc))
                log.warning("%s: unusable reply (attempt %d): %s", self.model, attempt + 1, problem)
                conversation = base + [
                    {"role": "assistant", "content": reply.content},
                    {
                        "role": "user",
                        "content": f"That reply could not be used: {problem}\n{self._schema_note(schema_dict)}",
                    },
                ]
                continue
            if self._cache is not None:  # the parsed reply; validators run again on a hit
                self._cache.put(
                    key, parsed, model=self.model,
                    prompt_tokens=reply.prompt_tokens, completion_tokens=reply.completion_tokens,
                )
            return value
        raise LLMError(
            f"{self.model} gave no usable JSON in {self.settings.json_retries + 1} attempts; last "
            f"problem: {problem}. Use a stronger model or raise FALCONER_LLM_JSON_RETRIES."
        )

    def complete_json_many(self, requests: Sequence[JSONRequest]) -> list[Any]:
        """Answer several requests in order; the base runs them one after another."""
        return [
            self.complete_json(r.messages, r.schema, schema_name=r.schema_name, validate=r.validate)
            for r in requests
        ]
