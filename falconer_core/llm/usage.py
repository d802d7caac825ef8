"""Token and cost accounting shared by every client, so a caller can see what a run cost."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from falconer_core.llm.settings import ModelPrice

# USD per 1M tokens (input, output), public list prices when this table was written. Override
# or extend through `LLMSettings.prices`; a model missing here is counted at zero cost and
# reported in `Usage.unpriced_models`.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "gpt-4.1": ModelPrice(input=2.00, output=8.00),
    "gpt-4.1-mini": ModelPrice(input=0.40, output=1.60),
    "gpt-4.1-nano": ModelPrice(input=0.10, output=0.40),
    "gpt-4o": ModelPrice(input=2.50, output=10.00),
    "gpt-4o-mini": ModelPrice(input=0.15, output=0.60),
    "o4-mini": ModelPrice(input=1.10, output=4.40),
}


def price_for(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice | None:
    """The price of `model`: an exact entry, else the longest entry that prefixes it.

    Prefix matching makes dated snapshots ("gpt-4o-2024-08-06") cost what their family costs.
    """
    if model in prices:
        return prices[model]
    candidates = [name for name in prices if model.startswith(name)]
    return prices[max(candidates, key=len)] if candidates else None


@dataclass
class Usage:
    """Running totals for one client; safe to update from the threads of a batch."""

    prices: Mapping[str, ModelPrice] = field(default_factory=lambda: dict(DEFAULT_PRICES), repr=False)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    cost_usd: float = 0.0
    unpriced_models: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens over every call that reached the model."""
        return self.prompt_tokens + self.completion_tokens

    def add_call(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """Count one answered call and its cost."""
        price = price_for(model, self.prices)
        with self._lock:
            self.calls += 1
            self.prompt_tokens += prompt_tokens
            self.completion_tokens += completion_tokens
            if price is None:
                self.unpriced_models.add(model)
            else:
                self.cost_usd += (prompt_tokens * price.input + completion_tokens * price.output) / 1e6

    def add_cache_hit(self) -> None:
        """Count an answer served from the cache (no call, no cost)."""
        with self._lock:
            self.cache_hits += 1

    def add_retry(self) -> None:
        """Count one repeated call (transient error or unparsable reply)."""
        with self._lock:
            self.retries += 1

    def as_dict(self) -> dict[str, object]:
        """A plain snapshot, e.g. for logging to MLflow or printing after a run."""
        with self._lock:
            return {
                "calls": self.calls,
                "cache_hits": self.cache_hits,
                "retries": self.retries,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
                "cost_usd": round(self.cost_usd, 6),
                "unpriced_models": sorted(self.unpriced_models),
            }
