"""A cascade run's report: the thresholds calibration set and what it cost, the budget, what the
shards routed (totals over them), and the audit when there was one. The store keeps it as the
run's `report` JSON (`model_dump`), so every reader goes through this model."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.cascade.audit import AuditResult
from falconer_core.cascade.budget import budget_left
from falconer_core.cascade.calibration import Calibration
from falconer_core.cascade.settings import CascadeSettings
from falconer_core.cascade.thresholds import StepThreshold
from falconer_core.execution.counts import ShardCounts


class CascadeReport(BaseModel):
    """What a cascade run found and spent."""

    model_config = ConfigDict(frozen=True)

    thresholds: list[StepThreshold] = Field(default_factory=list, description="Each cascaded step's thresholds.")
    calibration_texts: int = Field(0, description="Texts the LLM labelled to calibrate.")
    calibration_stages: list[int] = Field(default_factory=list, description="Calibration sample sizes tested.")
    calibration_usage: dict[str, Any] = Field(default_factory=dict, description="LLM usage of calibration.")
    llm_budget: int | None = Field(None, description="Most texts the LLM could see (None: no limit).")
    budget_left_for_shards: int | None = Field(None, description="What calibration left of the budget.")
    band_texts: int = Field(0, description="Texts inside a band, over every committed shard.")
    llm_texts: int = Field(0, description="Texts the LLM answered in the shards.")
    over_budget: int = Field(0, description="Band texts that kept the proxy's answer for lack of budget.")
    llm_usage: dict[str, Any] = Field(default_factory=dict, description="LLM usage of the shards.")
    audit: AuditResult | None = Field(None, description="Agreement on a fresh sample, when audited.")

    @classmethod
    def from_calibration(cls, calibration: Calibration, settings: CascadeSettings) -> CascadeReport:
        """The report before any shard counts: thresholds, calibration cost, budget."""
        return cls(
            thresholds=calibration.thresholds, calibration_texts=calibration.n_texts,
            calibration_stages=calibration.stages, calibration_usage=calibration.usage,
            llm_budget=settings.llm_budget, budget_left_for_shards=budget_left(calibration, settings),
        )

    def with_counts(self, counts: ShardCounts) -> CascadeReport:
        """This report with the shards' totals."""
        return self.model_copy(update={
            "band_texts": counts.band_texts, "llm_texts": counts.llm_texts, "over_budget": counts.over_budget,
            "llm_usage": counts.llm_usage,
        })

    def merged_into(self, stored: dict[str, Any] | None) -> dict[str, Any]:
        """The JSON to store over `stored` (the run's earlier report): every field of this one
        replaces the stored one, but an audit is kept until a new audit replaces it."""
        dumped = self.model_dump(mode="json")
        if self.audit is None:
            dumped.pop("audit")
        return {**(stored or {}), **dumped}


__all__ = ["CascadeReport"]
