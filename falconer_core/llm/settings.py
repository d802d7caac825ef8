"""Runtime settings of the LLM client, read from the environment so that no key lives in code.

`OPENAI_BASE_URL` and `OPENAI_API_KEY` follow the convention every OpenAI-compatible server
(OpenAI, vLLM, Ollama, llama.cpp server) documents; the rest use the `FALCONER_LLM_` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from falconer_core.settings import Settings

StructuredOutput = Literal["auto", "json_schema", "json_object", "prompt"]


class ModelPrice(BaseModel):
    """What one model costs, in USD per one million tokens."""

    model_config = {"frozen": True}

    input: float = Field(ge=0, description="USD per 1M prompt tokens.")
    output: float = Field(ge=0, description="USD per 1M completion tokens.")


class LLMSettings(BaseSettings):
    """Where the LLM lives and how hard to try; one instance configures one client."""

    model_config = SettingsConfigDict(
        env_prefix="FALCONER_LLM_",
        validate_by_name=True,
        validate_by_alias=True,
        extra="ignore",
    )

    backend: Literal["auto", "openai", "local"] = Field(
        "auto",
        description="'openai' for any OpenAI-compatible endpoint, 'local' for the embedded "
        "SmolLM2; 'auto' picks openai when a base URL or key is set, else local.",
    )
    base_url: str | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "FALCONER_LLM_BASE_URL"),
        description="Endpoint root, e.g. http://localhost:8000/v1; None means api.openai.com.",
    )
    api_key: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "FALCONER_LLM_API_KEY"),
        description="Bearer key; kept secret in reprs, logs, errors and the cache.",
    )
    model: str = Field("gpt-4.1-mini", description="Model name the endpoint serves.")
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one HTTP response.")
    max_concurrency: int = Field(4, ge=1, description="Requests in flight at once in a batch.")
    max_retries: int = Field(
        4, ge=0, description="Retries after a timeout, a connection error, 429 or 5xx."
    )
    backoff_initial: float = Field(
        0.5, ge=0, description="Scale of the wait between retries in seconds: the n-th wait is drawn "
        "at random below backoff_initial * 2**(n-1) (full jitter)."
    )
    backoff_max: float = Field(30.0, ge=0, description="Longest wait between two retries.")
    json_retries: int = Field(
        2, ge=0, description="Extra calls when the reply is not valid JSON for the schema."
    )
    temperature: float = Field(0.0, ge=0, description="Sampling temperature; 0 for repeatable runs.")
    max_tokens: int | None = Field(
        2048, ge=1, description="Cap on completion tokens per call; a reply cut off there is split "
        "into smaller batches, never repaired or cached."
    )
    structured_output: StructuredOutput = Field(
        "auto",
        description="How to ask for JSON: json_schema, json_object, prompt only, or 'auto' "
        "(json_schema first, falling back when the server rejects it).",
    )
    max_ungrounded: float = Field(
        0.2, ge=0, le=1, description="Largest share of an annotation step's spans that may be missing "
        "from their text (paraphrased or invented); above it the step fails and shows examples."
    )
    cache_dir: Path | None = Field(
        default_factory=lambda: Settings().llm_cache_dir,
        description="Folder of cached responses so a re-run makes no call (default: the Falconer "
        "home's llm-cache); None disables it.",
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Per-model prices that override or extend the built-in table.",
    )

    @field_validator("base_url")
    @classmethod
    def _strip_base_url(cls, value: str | None) -> str | None:
        """An empty OPENAI_BASE_URL means 'not set', as the SDK itself treats it."""
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")

    def resolved_backend(self) -> Literal["openai", "local"]:
        """The backend 'auto' stands for: an endpoint when one is configured, else offline."""
        if self.backend != "auto":
            return self.backend
        return "openai" if (self.base_url or self.api_key) else "local"
