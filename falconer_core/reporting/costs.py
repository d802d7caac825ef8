"""What the proxy saved: the annotator doing the whole corpus against Falconer's route (annotate
a sample, fine-tune, run the metamodel), from times and token costs measured in this run.

The annotator's per-text time and cost come from annotating the sample; the proxy's per-text
time from running it (the executed shards, or the held-out texts when nothing ran yet). Both
are extrapolated linearly to the corpus size; each row says whether it was measured or
extrapolated. Answers served from the LLM response cache cost no time or tokens, so a re-run's
annotator row says so instead of pretending the LLM is free.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from falconer_core.annotators.choice import HUMAN


class CostRow(BaseModel):
    """One way of getting the job done, or one part of it."""

    route: str = Field(description="What ran.")
    texts: int = Field(description="Texts it covers.")
    seconds: float | None = Field(description="Wall time (None: unknown, e.g. human labelling).")
    seconds_per_text: float | None
    tokens: int | None = Field(None, description="LLM tokens (prompt + completion).")
    cost_usd: float | None = Field(None, description="LLM cost at list prices (None: unknown).")
    basis: str = Field(description="'measured' or 'extrapolated', and from what.")


def compare_costs(
    corpus_size: int,
    *,
    annotator: str,
    n_annotated: int,
    annotation_seconds: float,
    usage: Mapping[str, Any],
    fine_tune_seconds: float,
    proxy_seconds: float,
    proxy_texts: int,
) -> list[CostRow]:
    """Rows: annotator on the sample, annotator on the corpus, fine-tune, proxy on the corpus,
    and Falconer's total (sample + fine-tune + proxy). `usage` is the LLM client's
    `Usage.as_dict()` during annotation (empty for human labels)."""
    n_sample = max(n_annotated, 1)
    human = annotator == HUMAN
    cached = bool(usage.get("cache_hits")) and not usage.get("calls")
    tokens = None if human else int(usage.get("total_tokens", 0))
    cost = None if human or usage.get("unpriced_models") else float(usage.get("cost_usd", 0.0))
    llm_seconds = None if human or cached else annotation_seconds
    note = ""
    if cached:
        note = " (every answer came from the response cache: no LLM time or tokens to show)"
    elif usage.get("cache_hits"):
        note = " (some answers came from the response cache: time and tokens understate the LLM's)"

    def per_text(value: float | None, n: int) -> float | None:
        return None if value is None else value / max(n, 1)

    def scale(value: float | None, factor: float) -> float | None:
        return None if value is None else round(value * factor, 6)

    factor = corpus_size / n_sample
    proxy_per_text = per_text(proxy_seconds, proxy_texts)
    proxy_corpus = round(proxy_per_text * corpus_size, 4) if proxy_per_text is not None else None
    sample_row = CostRow(
        route=f"annotator ({annotator}) on the sample", texts=n_annotated, seconds=llm_seconds,
        seconds_per_text=per_text(llm_seconds, n_sample), tokens=tokens, cost_usd=cost, basis="measured" + note,
    )
    rows = [
        sample_row,
        CostRow(
            route=f"annotator ({annotator}) on the whole corpus", texts=corpus_size,
            seconds=scale(llm_seconds, factor), seconds_per_text=sample_row.seconds_per_text,
            tokens=None if tokens is None else round(tokens * factor), cost_usd=scale(cost, factor),
            basis=f"extrapolated from {n_annotated} annotated texts",
        ),
        CostRow(route="fine-tune the metamodel", texts=n_annotated, seconds=round(fine_tune_seconds, 4),
                seconds_per_text=None, tokens=0, cost_usd=0.0, basis="measured"),
        CostRow(
            route="metamodel on the whole corpus", texts=corpus_size, seconds=proxy_corpus,
            seconds_per_text=proxy_per_text, tokens=0, cost_usd=0.0,
            basis="measured" if proxy_texts >= corpus_size else f"extrapolated from {proxy_texts} texts",
        ),
    ]
    total_seconds = None if llm_seconds is None or proxy_corpus is None else (
        llm_seconds + fine_tune_seconds + proxy_corpus
    )
    rows.append(CostRow(
        route="Falconer total (sample + fine-tune + metamodel)", texts=corpus_size,
        seconds=None if total_seconds is None else round(total_seconds, 4),
        seconds_per_text=per_text(total_seconds, corpus_size), tokens=tokens, cost_usd=cost,
        basis="sum of the rows above",
    ))
    return rows


__all__ = ["CostRow", "compare_costs"]
