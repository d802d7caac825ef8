"""`OpenAIClient`: JSON answers from any OpenAI-compatible chat endpoint.

OpenAI, vLLM, Ollama, llama.cpp server and LM Studio all speak `/v1/chat/completions`; they
differ in what structured output they accept. The client asks for a `json_schema` response
format first and steps down to `json_object`, then to a plain prompt, when the server rejects
the format. The step holds for that call only: another 400 (a context too long, a flaky proxy)
must not quietly switch every later request of the client to a weaker mode. Transient failures
(timeouts, connection errors, 429, 5xx) are retried by tenacity with jittered exponential
backoff, so clients that failed together do not retry in lockstep; the SDK's own retries are
off so the policy lives in one place and tests can shrink it to milliseconds. A reply that
stopped at `max_tokens` (`finish_reason == "length"`) is reported as truncated, never parsed.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from falconer_core.errors import ConfigError, LLMError, TransientLLMError
from falconer_core.llm.base import CachedJSONClient, JSONRequest, OnError, Reply, log, settle, with_schema_instruction
from falconer_core.llm.settings import LLMSettings, StructuredOutput

if TYPE_CHECKING:
    import openai

_STEP_DOWN: dict[str, StructuredOutput] = {"json_schema": "json_object", "json_object": "prompt"}
_TRANSIENT_STATUS = {408, 409, 425, 429}
# How servers name the response format when they refuse it (OpenAI sets `param`; vLLM, Ollama
# and llama.cpp only say it in the message).
_FORMAT_WORDS = ("response_format", "response format", "json_schema", "json_object", "structured output")
# Local servers (vLLM, Ollama, llama.cpp) accept any key but the SDK insists on one.
_PLACEHOLDER_KEY = "not-needed"


def _status(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def _is_transient(exc: BaseException) -> bool:
    """Timeouts, dropped connections, rate limits and server errors are worth another try."""
    import openai

    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    status = _status(exc)
    return isinstance(exc, openai.APIStatusError) and status is not None and (
        status in _TRANSIENT_STATUS or status >= 500
    )


def _is_format_rejection(exc: BaseException) -> bool:
    """A 400/422 whose error names the response format: the server cannot do this JSON mode.
    Any other 400/422 (bad model, context too long) is a real error, not a reason to step down."""
    if _status(exc) not in (400, 422):
        return False
    if getattr(exc, "param", None) == "response_format":
        return True
    said = f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}".lower()
    return any(word in said for word in _FORMAT_WORDS)


class OpenAIClient(CachedJSONClient):
    """JSON-answering client over the `openai` SDK; thread-safe, batched, cached, accounted."""

    def __init__(self, settings: LLMSettings | None = None) -> None:
        settings = settings or LLMSettings()
        super().__init__(settings, settings.model)
        #: The JSON mode every call starts in; a format rejection steps down for that call only.
        self.first_mode: StructuredOutput = (
            "json_schema" if settings.structured_output == "auto" else settings.structured_output
        )
        #: Full-jitter exponential backoff between transient failures (before any Retry-After).
        self.backoff = wait_random_exponential(multiplier=settings.backoff_initial, max=settings.backoff_max)
        self._sdk: openai.OpenAI | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"OpenAIClient(model={self.model!r}, base_url={self.settings.base_url!r}, "
            f"structured_output={self.first_mode!r}, cache={self._cache!r})"
        )

    def _endpoint(self) -> str:
        return self.settings.base_url or "https://api.openai.com/v1"

    # -- plumbing ------------------------------------------------------------------------
    def _secret(self) -> str:
        key = self.settings.api_key
        return key.get_secret_value() if key is not None else ""

    def _scrub(self, text: str) -> str:
        secret = self._secret()
        return text.replace(secret, "***") if secret and secret != _PLACEHOLDER_KEY else text

    def _client(self) -> openai.OpenAI:
        """The SDK client, built on first use so importing Falconer does not import openai."""
        with self._lock:
            if self._sdk is None:
                import openai

                key = self._secret()
                if not key:
                    if self.settings.base_url is None:
                        raise ConfigError(
                            "no OpenAI API key: set OPENAI_API_KEY, or set OPENAI_BASE_URL to a "
                            "local OpenAI-compatible server, or use the offline LocalLLM"
                        )
                    key = _PLACEHOLDER_KEY
                self._sdk = openai.OpenAI(
                    api_key=key,
                    base_url=self.settings.base_url,
                    timeout=self.settings.timeout,
                    max_retries=0,
                )
            return self._sdk

    def close(self) -> None:
        """Release the HTTP connection pool."""
        with self._lock:
            if self._sdk is not None:
                self._sdk.close()
                self._sdk = None

    def __enter__(self) -> OpenAIClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- one call ------------------------------------------------------------------------
    def _wait(self, state: RetryCallState) -> float:
        """Jittered exponential backoff; a server's Retry-After wins when longer, capped at backoff_max."""
        settings = self.settings
        wait = float(self.backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        response = getattr(exc, "response", None)
        header = response.headers.get("retry-after") if response is not None else None
        try:
            wait = max(wait, min(float(header), settings.backoff_max)) if header else wait
        except ValueError:
            pass
        return wait

    def _before_sleep(self, state: RetryCallState) -> None:
        self.usage.add_retry()
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "%s: transient failure (attempt %d): %s", self.model, state.attempt_number,
            self._scrub(f"{type(exc).__name__}: {exc}"),
        )

    def _request(self, mode: StructuredOutput, messages: list[dict[str, str]],
                 schema: Mapping[str, Any] | None, schema_name: str) -> dict[str, Any]:
        """The keyword arguments of one chat.completions.create call in a given JSON mode."""
        kwargs: dict[str, Any] = {"model": self.model, "temperature": self.settings.temperature}
        if self.settings.max_tokens is not None:
            kwargs["max_tokens"] = self.settings.max_tokens
        if mode == "json_schema" and schema is not None:
            kwargs["messages"] = messages
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": dict(schema), "strict": False},
            }
            return kwargs
        kwargs["messages"] = with_schema_instruction(messages, schema)
        if mode in ("json_schema", "json_object"):
            kwargs["response_format"] = {"type": "json_object"}
        return kwargs

    def _send(self, kwargs: dict[str, Any]) -> Any:
        """One completion with transient failures retried under the backoff policy."""
        client = self._client()
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=self._wait,
            retry=retry_if_exception(_is_transient),
            before_sleep=self._before_sleep,
            reraise=True,
        )
        return retrying(client.chat.completions.create, **kwargs)

    def _fail(self, exc: Exception) -> LLMError:
        """An LLMError that names the cause and the fix, with the key scrubbed, no chained request."""
        status = _status(exc)
        hint = {
            401: " Check OPENAI_API_KEY.",
            403: " The key may lack access to this model.",
            404: " Check OPENAI_BASE_URL (it usually ends in /v1) and the model name.",
        }.get(status or 0, "")
        if _is_transient(exc):
            hint = f" Gave up after {self.settings.max_retries + 1} attempts.{hint}"
        where = self.settings.base_url or "api.openai.com"
        text = f"LLM call to {where} ({self.model}) failed: {type(exc).__name__}: {exc}.{hint}"
        kind = TransientLLMError if _is_transient(exc) else LLMError
        return kind(self._scrub(text))

    def _generate(self, messages: list[dict[str, str]], schema: Mapping[str, Any] | None,
                  schema_name: str, attempt: int) -> Reply:
        import openai

        mode = self.first_mode  # local: a step down never outlives this call
        while True:
            try:
                response = self._send(self._request(mode, messages, schema, schema_name))
                break
            except openai.APIStatusError as exc:
                can_step = self.settings.structured_output == "auto" and mode in _STEP_DOWN
                if not (can_step and _is_format_rejection(exc)):
                    raise self._fail(exc) from None
                log.info("%s rejected response format %s; trying %s", self.model, mode, _STEP_DOWN[mode])
                mode = _STEP_DOWN[mode]
            except openai.OpenAIError as exc:
                raise self._fail(exc) from None
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self.usage.add_call(self.model, prompt_tokens, completion_tokens)
        choices = getattr(response, "choices", None) or []
        content = choices[0].message.content if choices else None
        truncated = bool(choices) and getattr(choices[0], "finish_reason", None) == "length"
        return Reply(content or "", prompt_tokens, completion_tokens, truncated=truncated)

    # -- batches -------------------------------------------------------------------------
    def complete_json_many(self, requests: Sequence[JSONRequest], *, errors: OnError = "raise") -> list[Any]:
        """Answer requests concurrently (at most `max_concurrency` in flight), in order.

        Every request runs to the end even when one fails, so finished answers reach the cache
        and a re-run repeats only the failures; then the first failure is raised, or (with
        `errors="return"`) each LLMError is returned in its request's place.
        """
        if len(requests) <= 1 or self.settings.max_concurrency == 1:
            return super().complete_json_many(requests, errors=errors)
        workers = min(self.settings.max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="falconer-llm") as pool:
            futures = [pool.submit(self._one, request) for request in requests]
        unexpected = [f.exception() for f in futures if f.exception() is not None
                      and not isinstance(f.exception(), LLMError)]
        if unexpected:
            raise unexpected[0]
        return settle([f.exception() or f.result() for f in futures], errors)
