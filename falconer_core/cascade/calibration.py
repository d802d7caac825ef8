"""The calibration sample: a uniform random draw of the corpus that both the proxy and the LLM
answer, from which every cascaded step gets its thresholds.

The draw is uniform over the corpus (not the annotation sample, which is stratified by the
zero-shot model and was used to fit and early-stop the proxy), so the bounds in `thresholds`
apply to the corpus the run covers. The LLM's answers on these texts are kept: the run writes
them as the outputs of those texts, so calibration labels are never paid for twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.annotation import build_annotator
from falconer_core.cascade.scores import ScoredProxy, cascaded_steps, step_score, text_f1
from falconer_core.cascade.settings import CascadeSettings
from falconer_core.cascade.thresholds import StepThreshold, label_threshold, span_threshold
from falconer_core.corpus import CorpusSnapshot
from falconer_core.errors import ConfigError
from falconer_core.execution.interpreter import OutputRecord, execute_plan
from falconer_core.metamodel.precision import REFERENCE_PRECISION, Precision
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.plan import Plan
from falconer_core.types import Runner

#: Fewest calibration texts a cascade accepts (the bounds need some data to certify anything).
MIN_CALIBRATION = 10
#: The first calibration stage: a proxy that already meets the target is certified on this many.
FIRST_STAGE = 200


class Calibration(BaseModel):
    """Thresholds per cascaded step, and the LLM's answers on the calibration texts."""

    model_config = ConfigDict(frozen=True)

    thresholds: list[StepThreshold]
    positions: list[int] = Field(description="Corpus rows of the calibration texts the LLM labelled, in draw order.")
    ids: list[str] = Field(description="Their ids, aligned with `positions`.")
    stages: list[int] = Field(default_factory=list, description="Sample sizes tested, the last one used.")
    llm_records: dict[str, OutputRecord] = Field(description="The LLM's record of each calibration text, by id.")
    usage: dict[str, Any] = Field(default_factory=dict, description="LLM calls, tokens and cost of calibration.")
    seconds: float = 0.0

    @property
    def n_texts(self) -> int:
        return len(self.positions)


def calibration_positions(n_texts: int, size: int, seed: int) -> list[int]:
    """A seeded uniform draw of `size` corpus rows, in draw order (so every prefix of it is a
    uniform draw too: the stages of `calibrate` take prefixes)."""
    return random.Random(f"cascade-calibration:{seed}").sample(range(n_texts), min(size, n_texts))


def calibration_stages(size: int) -> list[int]:
    """Sample sizes calibration may stop at: 200, 400, 800, ... up to `size`."""
    stages, n = [], min(FIRST_STAGE, size)
    while n < size:
        stages.append(n)
        n *= 2
    return stages + [size]


def calibrate_corpus(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: CascadeSettings, *, cache_dir: Path | None = None,
    precision: Precision = REFERENCE_PRECISION,
) -> Calibration:
    """Draw the calibration texts from the snapshot, have the proxy and the LLM answer them, and
    set every cascaded step's thresholds. The draw is capped by the LLM budget. The proxy runs at
    the shards' `precision`, so thresholds are set on the confidences they are applied to."""
    size = settings.calibration_for(corpus.n_texts)
    if settings.llm_budget is not None:
        size = min(size, settings.llm_budget)
    if size < MIN_CALIBRATION:
        why = (f"the corpus has only {corpus.n_texts} texts" if corpus.n_texts < MIN_CALIBRATION
               else f"the LLM budget of {settings.llm_budget} texts allows only {size}")
        raise ConfigError(
            f"a cascade needs at least {MIN_CALIBRATION} calibration texts to set thresholds, but {why}; "
            "raise --llm-budget, or let the LLM answer a corpus this small outright"
        )
    positions = calibration_positions(corpus.n_texts, size, settings.seed)
    rows = corpus.rows_at(positions)
    llm, client = build_annotator(settings.llm, plan, None, cache_dir=cache_dir)
    proxy = ScoredProxy(open_metamodel(model, precision=precision))
    return calibrate(
        plan, settings, rows["id"].astype(str).tolist(), rows["text"].tolist(), proxy, llm,
        positions=positions, usage=client.usage, n_corpus=corpus.n_texts,
    )


def calibrate(
    plan: Plan, settings: CascadeSettings, ids: Sequence[str], texts: Sequence[str], proxy: ScoredProxy,
    llm: Runner, *, positions: Sequence[int] | None = None, usage: Any = None,
    proxy_records: Sequence[OutputRecord] | None = None, n_corpus: int | None = None,
) -> Calibration:
    """Both runners answer the calibration texts; each cascaded step gets its thresholds.

    The LLM labels the draw in stages (200, 400, 800, ... texts: `calibration_stages`), and
    calibration stops at the first stage where the band it leaves on the corpus (`n_corpus`
    texts) is smaller than the next stage's extra labels: a proxy that already meets the target
    costs 200 labels, not the whole draw. Every stage is tested at delta / stages, so whichever
    stage it stops at, the guarantee holds (union bound). `proxy_records`: the proxy's records
    of these texts when it has already run on them."""
    steps = cascaded_steps(plan, settings.target)
    if not steps:
        raise ConfigError(
            f"the cascade targets {sorted(settings.target)} but plan {plan.name!r} has no top-level step of "
            "that kind: label targets (accuracy/precision/recall) need a label step, span_f1 a span step"
        )
    ids, texts = [str(i) for i in ids], list(texts)
    positions = list(positions if positions is not None else range(len(ids)))
    started = time.perf_counter()
    mine = list(proxy_records) if proxy_records is not None else execute_plan(plan, texts, proxy, ids, include_failed=True)
    stages = calibration_stages(len(ids))
    delta = settings.delta / (len(steps) * len(stages))
    theirs: list[OutputRecord] = []
    for k, n in enumerate(stages):
        done = len(theirs)
        theirs += execute_plan(plan, texts[done:n], llm, ids[done:n], include_failed=True)
        thresholds = [_threshold(step, plan, settings, texts[:n], mine[:n], theirs, proxy, delta) for step in steps]
        band = min(1.0, sum(t.band_share for t in thresholds))
        if k + 1 == len(stages) or band * ((n_corpus or len(ids)) - n) < stages[k + 1] - n:
            break
    return Calibration(
        thresholds=thresholds, positions=positions[:n], ids=ids[:n], stages=stages[: k + 1],
        llm_records={str(r.id): r for r in theirs},
        usage=usage.as_dict() if usage is not None else {}, seconds=round(time.perf_counter() - started, 3),
    )


def _threshold(step, plan, settings, texts, mine, theirs, proxy, delta) -> StepThreshold:
    filtered = step.name not in plan.filter_steps
    if step.op == "label":
        pairs = [
            (step_score(step, m, t, proxy), o.steps[step.name].result.value)
            for m, o, t in zip(mine, theirs, texts)
            if step.name in m.steps and step.name in o.steps and (not filtered or (m.passed and o.passed))
        ]
        return label_threshold(
            step.name, settings.label_metric, settings.target[settings.label_metric],
            [s for s, _ in pairs], [y for _, y in pairs], delta,
        )
    scores, f1, both = [], [], []
    for m, o, t in zip(mine, theirs, texts):
        reached = step.name in m.steps and step.name in o.steps
        scores.append(step_score(step, m, t, proxy) if reached else 1.0)
        f1.append(text_f1(m.steps[step.name].result, o.steps[step.name].result, t) if reached else 1.0)
        both.append(reached)
    return span_threshold(step.name, settings.target["span_f1"], scores, f1, both, delta)


__all__ = [
    "FIRST_STAGE", "MIN_CALIBRATION", "Calibration", "calibrate", "calibrate_corpus", "calibration_positions",
    "calibration_stages",
]
