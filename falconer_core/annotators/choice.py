"""Choosing who labels the sample, as a flow parameter: human labels from corpus columns, or an
LLM (never its key: see `LLMChoice`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from falconer_core.llm.choice import LLMChoice

AnnotatorName = Literal["gold", "openai", "local"]
#: The annotator recorded in lineage when labels come from people.
HUMAN = "human"


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


__all__ = ["HUMAN", "AnnotatorChoice", "AnnotatorName"]
