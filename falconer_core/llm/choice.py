"""Choosing an LLM to plan or annotate with, as a flow parameter.

No field holds a credential: an endpoint's API key is read from `OPENAI_API_KEY` when the
client is built and never becomes a parameter, a log line or an artifact (`extra="forbid"`
rejects an `api_key` passed by mistake).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.llm.settings import LLMSettings


class LLMChoice(BaseModel):
    """An LLM to plan or annotate with: an OpenAI-compatible endpoint or the embedded SmolLM2."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["openai", "local"] = Field(
        "openai", description="'openai': any OpenAI-compatible endpoint (key from OPENAI_API_KEY); "
        "'local': the embedded SmolLM2 (offline, weak)."
    )
    model: str | None = Field(None, description="Model name (default: FALCONER_LLM_MODEL or gpt-4.1-mini).")
    base_url: str | None = Field(None, description="Endpoint root (default: OPENAI_BASE_URL).")

    def llm_settings(self, cache_dir: Path | None = None) -> LLMSettings:
        """Client settings: environment first, then these choices on top (never a key)."""
        overrides: dict[str, Any] = {"backend": self.backend, "cache_dir": cache_dir}
        if self.model:
            overrides["model"] = self.model
        if self.base_url:
            overrides["base_url"] = self.base_url
        return LLMSettings(**overrides)

    def identity(self) -> str:
        """What produced the answers, as lineage records it: `openai:MODEL` or `local:smollm2`."""
        if self.backend == "local":
            return "local:SmolLM2-135M-Instruct"
        return f"openai:{self.llm_settings().model}"

    def cache_identity(self) -> str:
        """`identity` plus the endpoint, because two servers can serve one name with other weights."""
        if self.backend == "local":
            return self.identity()
        return f"{self.identity()}@{self.llm_settings().base_url or 'api.openai.com'}"


__all__ = ["LLMChoice"]
