"""Routing one shard: the proxy answers every text, the texts inside some step's band go to the
LLM (the least confident first, up to the shard's share of the budget), and the LLM's record
replaces the proxy's for those texts.

A routed text takes the LLM's whole record (filter verdict and fields), so its outputs are
consistent with each other; each text's rows say which answered it (`source`) and whether it
was inside a band (`in_band`), so the texts that kept the proxy's answer only because the
budget ran out are the rows with `in_band` true and `source = 'proxy'`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.annotation import build_annotator
from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.cascade.scores import ScoredProxy, p_true
from falconer_core.cascade.thresholds import StepThreshold
from falconer_core.execution.counts import ShardCounts
from falconer_core.execution.interpreter import OutputRecord, execute_plan
from falconer_core.plan import Plan

PROXY, LLM = "proxy", "llm"


class RoutedShard(BaseModel):
    """A shard's final records with, per text, who answered and whether it was in a band."""

    model_config = ConfigDict(frozen=True)

    records: list[OutputRecord]
    sources: list[str]
    in_band: list[bool]
    usage: dict[str, Any] = Field(default_factory=dict)

    def counts(self) -> ShardCounts:
        """Texts in a band, texts the LLM answered, band texts left to the proxy (budget), LLM usage."""
        over = sum(b and s == PROXY for b, s in zip(self.in_band, self.sources))
        return ShardCounts(
            band_texts=sum(self.in_band), llm_texts=self.sources.count(LLM), over_budget=over, llm_usage=self.usage,
        )


class ShardCascade(BaseModel):
    """What a worker needs to route its shard: small and picklable."""

    model_config = ConfigDict(frozen=True)

    thresholds: list[StepThreshold]
    llm: AnnotatorChoice
    cache_dir: str | None = None
    allowance: int | None = Field(None, description="Most band texts this shard may send to the LLM (None: all).")
    known: dict[str, OutputRecord] = Field(
        default_factory=dict, description="The LLM's records of this shard's calibration texts, already paid for."
    )

    def wrap(self, runner: Any) -> ScoredProxy:
        """The proxy runner, keeping the per-text span confidences routing needs."""
        return runner if isinstance(runner, ScoredProxy) else ScoredProxy(runner)

    def route(
        self, plan: Plan, ids: Sequence[str], texts: Sequence[str], records: list[OutputRecord], proxy: ScoredProxy,
        llm: Any = None,
    ) -> RoutedShard:
        """Send the band's texts to the LLM and merge its records in (`llm`: a runner to use
        instead of building one from `self.llm`)."""
        ids = [str(i) for i in ids]
        margins = [self._margin(plan, r, t, proxy) for r, t in zip(records, texts)]
        in_band = [m is not None for m in margins]
        asked = [i for i, m in enumerate(margins) if m is not None and ids[i] not in self.known]
        asked.sort(key=lambda i: (margins[i], i))
        if self.allowance is not None:
            asked = asked[: self.allowance]
        final, sources = list(records), [PROXY] * len(records)
        for i, text_id in enumerate(ids):
            if text_id in self.known:
                final[i], sources[i] = self.known[text_id], LLM
        usage: dict[str, Any] = {}
        if asked:
            client = None
            if llm is None:
                llm, client = build_annotator(self.llm, plan, None, cache_dir=Path(self.cache_dir) if self.cache_dir else None)
            answered = execute_plan(plan, [texts[i] for i in asked], llm, [ids[i] for i in asked], include_failed=True)
            for i, record in zip(asked, answered):
                final[i], sources[i] = record, LLM
            usage = client.usage.as_dict() if client is not None else {}
        return RoutedShard(records=final, sources=sources, in_band=in_band, usage=usage)

    def _margin(self, plan: Plan, record: OutputRecord, text: str, proxy: ScoredProxy) -> float | None:
        """None when every cascaded step keeps the proxy's answer; else how sure the proxy is on
        its least sure banded step (lower goes to the LLM first)."""
        worst = None
        for threshold in self.thresholds:
            trace = record.steps.get(threshold.step)
            if trace is None:
                continue
            if threshold.op == "label":
                p = p_true(trace.result)
                score, sure = p, max(p, 1.0 - p)
            else:
                score = sure = proxy.span_confidence.get((text, trace.instruction), 1.0)
            if threshold.in_band(score):
                worst = sure if worst is None else min(worst, sure)
        return worst


__all__ = ["LLM", "PROXY", "RoutedShard", "ShardCascade"]
