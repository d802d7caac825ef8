"""LLM clients that answer in JSON: any OpenAI-compatible endpoint, or the embedded LocalLLM.

Importing this package imports neither `openai` nor `transformers`; each client loads its
dependency on first use.
"""

from __future__ import annotations

from falconer_core.llm.base import JSONClient, JSONRequest, LLMTruncatedError
from falconer_core.llm.cache import ResponseCache, cache_key
from falconer_core.llm.choice import LLMChoice
from falconer_core.llm.client import OpenAIClient
from falconer_core.llm.jsontext import extract_json
from falconer_core.llm.local import LocalLLM
from falconer_core.llm.settings import LLMSettings, ModelPrice
from falconer_core.llm.usage import DEFAULT_PRICES, Usage


def make_llm_client(settings: LLMSettings | None = None) -> OpenAIClient | LocalLLM:
    """The client the settings name: an endpoint when one is configured, else LocalLLM."""
    settings = settings or LLMSettings()
    if settings.resolved_backend() == "openai":
        return OpenAIClient(settings)
    return LocalLLM(settings)


__all__ = [
    "DEFAULT_PRICES",
    "JSONClient",
    "JSONRequest",
    "LLMChoice",
    "LLMSettings",
    "LLMTruncatedError",
    "LocalLLM",
    "ModelPrice",
    "OpenAIClient",
    "ResponseCache",
    "Usage",
    "cache_key",
    "extract_json",
    "make_llm_client",
]
