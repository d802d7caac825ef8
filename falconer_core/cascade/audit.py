"""Auditing a finished cascade run: a fresh random sample, never used to calibrate, that the LLM
labels, compared with what the run stored for those texts.

It measures what was delivered (the rows in the store, budget shortfalls included), not what
calibration promised, and reports the filter verdict's agreement with an exact interval, and
for span fields the mean word F1 per text where both keep the text.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from falconer_core.cascade.bounds import binomial_interval
from falconer_core.cascade.scores import text_f1
from falconer_core.execution.interpreter import OutputRecord
from falconer_core.execution.outputs import FILTER_FIELD
from falconer_core.plan import Plan
from falconer_core.types import Span


class AuditResult(BaseModel):
    """Agreement between a run's stored outputs and the LLM on a fresh random sample."""

    model_config = ConfigDict(frozen=True)

    n_texts: int
    agreement: float = Field(description="Share of audited texts whose stored filter verdict matches the LLM's.")
    low: float = Field(description="Lower end of its 95% Clopper-Pearson interval.")
    high: float = Field(description="Upper end of its 95% Clopper-Pearson interval.")
    span_f1: dict[str, float] = Field(
        default_factory=dict, description="Span output -> mean word F1 per text against the LLM, where both keep the text."
    )
    usage: dict[str, Any] = Field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow."""
        return {
            "audit.n_texts": self.n_texts, "audit.agreement": self.agreement, "audit.agreement_lo": self.low,
            "audit.agreement_hi": self.high, **{f"audit.span_f1.{k}": v for k, v in self.span_f1.items()},
        }


def audit_positions(n_texts: int, size: int, seed: int, exclude: Sequence[int]) -> list[int]:
    """A seeded uniform draw of `size` rows outside the calibration sample."""
    skip = set(exclude)
    pool = [p for p in range(n_texts) if p not in skip]
    return sorted(random.Random(f"cascade-audit:{seed}").sample(pool, min(size, len(pool))))


def audit_agreement(
    plan: Plan, texts: Sequence[str], stored: pd.DataFrame, llm_records: Sequence[OutputRecord], usage: Any = None
) -> AuditResult:
    """Compare the stored rows of the audited texts (`Store.outputs` rows) with the LLM's records."""
    by_text = {str(text_id): rows for text_id, rows in stored.groupby("text_id")}
    agree = 0
    f1: dict[str, list[float]] = {}
    span_outputs = [o for o in plan.outputs or [] if plan.step(o.step).op == "span" and plan.step(o.step).for_each is None]
    for record, text in zip(llm_records, texts):
        rows = by_text.get(str(record.id))
        if rows is None:
            continue  # not stored: counts as a disagreement below
        verdict = rows.loc[rows["field"] == FILTER_FIELD, "value"].iloc[0] == "true"
        agree += verdict == record.passed
        if verdict and record.passed:
            for output in span_outputs:
                mine = rows[(rows["field"] == output.name) & rows["span_start"].notna()]
                spans = [Span(v, int(s), int(e)) for v, s, e in zip(mine["value"], mine["span_start"], mine["span_end"])]
                f1.setdefault(output.name, []).append(text_f1(spans, record.steps[output.step].result, text))
    n = len(llm_records)
    low, high = binomial_interval(agree, n)
    return AuditResult(
        n_texts=n, agreement=round(agree / n, 6) if n else 0.0, low=round(low, 6), high=round(high, 6),
        span_f1={k: round(sum(v) / len(v), 6) for k, v in f1.items() if v},
        usage=usage.as_dict() if usage is not None else {},
    )


__all__ = ["AuditResult", "audit_agreement", "audit_positions"]
