"""What a cascade shard routed: texts in a band, texts the LLM answered, band texts the budget
left to the proxy, and the LLM's usage. It lives in execution, not in the cascade, because a
`ShardResult` carries it and the cascade package already imports execution (routing fills it)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ShardCounts(BaseModel):
    """One shard's routing counts (or their totals over a run's shards)."""

    model_config = ConfigDict(frozen=True)

    band_texts: int = Field(0, description="Texts inside some step's uncertain band.")
    llm_texts: int = Field(0, description="Texts the LLM answered (calibration texts in the shard included).")
    over_budget: int = Field(0, description="Band texts that kept the proxy's answer because the budget ran out.")
    llm_usage: dict[str, Any] = Field(default_factory=dict, description="The LLM's calls, tokens and cost.")

    @classmethod
    def total(cls, shards: Iterable[ShardCounts]) -> ShardCounts:
        """The sum over shards; usage adds its numeric entries only (counts, tokens, cost)."""
        band = llm = over = 0
        usage: dict[str, Any] = {}
        for counts in shards:
            band, llm, over = band + counts.band_texts, llm + counts.llm_texts, over + counts.over_budget
            for key, value in counts.llm_usage.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    usage[key] = usage.get(key, 0) + value
        return cls(band_texts=band, llm_texts=llm, over_budget=over, llm_usage=usage)


__all__ = ["ShardCounts"]
