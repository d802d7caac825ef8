"""What every JSON-answering client shares: the contract, the cache, the parse-and-retry loop.

The HTTP client and the embedded local model differ only in how one reply is produced
(`_generate`); caching, accounting and recovering from unusable replies live here once.
A reply cut off at the token limit is never repaired, parsed or cached: the client raises
`LLMTruncatedError`, and a caller that batched several texts splits the batch and asks again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from falconer_core.errors import LLMError
from falconer_core.llm.cache import ResponseCache, cache_key
from falconer_core.llm.jsontext import extract_json
from falconer_core.llm.settings import LLMSettings
from falconer_core.llm.usage import DEFAULT_PRICES, Usage

log = logging.getLogger("falconer_core.llm")

Message = Mapping[str, str]
Validator = Callable[[Any], Any]
#: What `complete_json_many` does with a request that failed: raise it, or return it in place.
OnError = Literal["raise", "return"]


class LLMTruncatedError(LLMError):
    """The model stopped at its token limit before the answer was complete (OpenAI's
    `finish_reason == "length"`, or LocalLLM reaching `max_new_tokens`). Asking again gives the
    same cut; a smaller request or a higher limit does not."""


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
    truncated: bool = False  # stopped at the token limit, so `content` is incomplete


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

    def complete_json_many(self, requests: Sequence[JSONRequest], *, errors: OnError = "raise") -> list[Any]: ...


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

    def _endpoint(self) -> str:
        """Where answers come from, part of the cache key: two servers can serve one model
        name with different weights."""
        raise NotImplementedError

    def _token_limit_hint(self) -> str:
        """What to raise when a reply is cut off at the token limit."""
        return f"raise FALCONER_LLM_MAX_TOKENS (now {self.settings.max_tokens})"

    def _truncated(self) -> LLMTruncatedError:
        return LLMTruncatedError(
            f"{self.model} stopped at its token limit before the JSON answer was complete; "
            f"{self._token_limit_hint()} or send fewer texts per call (the annotator's batch_size)."
        )

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
        `settings.json_retries` times, then LLMError is raised. A reply cut off at the token
        limit raises LLMTruncatedError at once and is not cached.
        """
        base = [dict(message) for message in messages]
        schema_dict = dict(schema) if schema is not None else None
        key = cache_key(self.model, base, schema_dict, self._params(), endpoint=self._endpoint())
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
            if reply.truncated:  # never repaired: closing the cut JSON would drop answers
                log.warning("%s: reply cut off at the token limit (attempt %d)", self.model, attempt + 1)
                raise self._truncated()
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

    def _one(self, request: JSONRequest) -> Any:
        return self.complete_json(
            request.messages, request.schema, schema_name=request.schema_name, validate=request.validate
        )

    def complete_json_many(self, requests: Sequence[JSONRequest], *, errors: OnError = "raise") -> list[Any]:
        """Answer several requests in order; the base runs them one after another.

        Every request runs even when one fails, so finished answers reach the cache. With
        `errors="return"` a failed request's LLMError takes its place in the list (a caller can
        split a truncated batch); with "raise" the first one is raised after all have run.
        """
        results: list[Any] = []
        for request in requests:
            try:
                results.append(self._one(request))
            except LLMError as exc:
                results.append(exc)
        return settle(results, errors)


def settle(results: list[Any], errors: OnError) -> list[Any]:
    """Raise the first LLMError among `results` (errors="raise"), or return them as they are."""
    if errors == "raise":
        failure = next((r for r in results if isinstance(r, LLMError)), None)
        if failure is not None:
            raise failure
    return results
