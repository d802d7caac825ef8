"""The typed choices a pipeline run is made of: which corpus, which LLM, which annotator, how to
hold out and execute. Flows take these as parameters, so the Prefect UI renders them as forms.

No model here holds a credential: an endpoint's API key is read from `OPENAI_API_KEY` when the
client is built and never becomes a parameter, a log line or an artifact (`extra="forbid"`
rejects an `api_key` passed by mistake).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from falconer_core.llm.settings import LLMSettings

AnnotatorName = Literal["gold", "openai", "local"]
#: The annotator recorded in lineage when labels come from people.
HUMAN = "human"


class CorpusSource(BaseModel):
    """A corpus file (CSV, TSV, JSONL, Parquet) or a folder of .txt files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(description="Path of the corpus file or folder.")
    text_column: str = Field("text", description="Column holding the texts.")
    id_column: str | None = Field(None, description="Column holding unique ids (default: row numbers).")
    name: str | None = Field(None, description="A readable name recorded with the corpus.")

    @model_validator(mode="before")
    @classmethod
    def _from_path(cls, value: Any) -> Any:
        """A bare path is short for `{"path": ...}`."""
        return {"path": str(value)} if isinstance(value, (str, Path)) else value


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


class AnnotatorChoice(BaseModel):
    """Who labels the sample: human labels from corpus columns ('gold') or an LLM."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: AnnotatorName = Field(
        "gold", description="'gold': a corpus column per plan step; 'openai': an endpoint; 'local': SmolLM2."
    )
    model: str | None = Field(None, description="LLM model name (LLM annotators only).")
    base_url: str | None = Field(None, description="Endpoint root (default: OPENAI_BASE_URL).")
    batch_size: int = Field(8, ge=1, description="Texts per LLM call.")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Gold only: plan step -> corpus column (default: the step's name)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        """A bare name ("gold", "openai", "local") is short for `{"name": ...}`."""
        return {"name": value} if isinstance(value, str) else value

    @property
    def llm(self) -> LLMChoice | None:
        """The LLM behind this annotator (None for gold labels)."""
        if self.name == "gold":
            return None
        return LLMChoice(backend=self.name, model=self.model, base_url=self.base_url)

    def identity(self) -> str:
        """The annotator as lineage records it: 'human' or the LLM's identity."""
        return HUMAN if self.llm is None else self.llm.identity()


class HoldoutSettings(BaseModel):
    """How the annotated sample is split between fine-tuning and evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(0.2, ge=0, lt=1, description="Share of annotated texts held out for evaluation.")
    min_heldout: int = Field(10, ge=0, description="Hold out at least this many texts when the sample allows.")
    seed: int = Field(0, description="Seeds the split (the same sample always splits the same way).")


class ExecutionSettings(BaseModel):
    """How the fine-tuned proxy runs over the corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: int = Field(1000, ge=1, description="Texts per shard; a shard is the unit of resumption.")
    batch_size: int = Field(64, ge=1, description="Windows per forward pass of the metamodel.")
    run_id: str | None = Field(
        None, description="Output run id (default: derived from model, plan, corpus and shard size, "
        "so re-running resumes where the last run stopped)."
    )


__all__ = [
    "HUMAN",
    "AnnotatorChoice",
    "AnnotatorName",
    "CorpusSource",
    "ExecutionSettings",
    "HoldoutSettings",
    "LLMChoice",
]
