"""Naming a corpus: the file or folder, and which columns hold the texts and ids. Flows take it
as a parameter, so the Prefect UI renders it as a form."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


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


__all__ = ["CorpusSource"]
