"""Choosing each step's thresholds on the proxy's confidence, with a finite-sample guarantee.

The LLM labels a uniform random sample of the corpus (the calibration texts). For a label step
with proxy score p = P(true), the proxy's answer is kept when p >= upper (true) or p <= lower
(false); texts in between go to the LLM, whose answer then agrees with itself. For each
candidate pair, from the most cautious (everything to the LLM) to the boldest (nothing), the
loss the kept answers would cause on the whole corpus is bounded from the sample:

- accuracy:  P(kept and wrong) <= 1 - target           (Clopper-Pearson upper bound)
- precision: 1 - P(kept true and wrong) / P(output true) >= target   (upper / lower bound, delta/2 each)
- recall:    1 - P(kept false and truly true) / P(true) >= target    (upper / lower bound, delta/2 each)
- span_f1:   mean over texts both pass of (1 - word F1) on kept answers <= 1 - target
             (empirical Bernstein over the lower bound of that share)

Candidates are tested in that fixed order and the last one that passes before the first that
fails is chosen (fixed-sequence testing): the chance that any accepted threshold misses its
target is at most the level of one test, so no correction for the number of candidates is
needed. Steps share delta (Bonferroni), so all targets hold together with probability 1 - delta.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from falconer_core.cascade.bounds import bernstein_upper, binomial_lower, binomial_upper

#: Candidate confidence levels, from "keep nothing" to "keep everything": 0.5 + 0.5 (1 - 10^(-k/50)),
#: fine enough that the chosen level sits close to the target (fixed-sequence testing pays nothing
#: for more candidates).
LEVELS: tuple[float, ...] = (1.01,) + tuple(0.5 + 0.5 * (1 - 10 ** (-k / 50)) for k in range(200, -1, -1))
#: Thresholds that keep no proxy answer (every text in the band).
ROUTE_ALL = (-0.01, 1.01)


class StepThreshold(BaseModel):
    """Where one step keeps the proxy's answer, and what the calibration certified."""

    model_config = ConfigDict(frozen=True)

    step: str
    op: str = Field(description="'label' or 'span'.")
    metric: str
    target: float
    lower: float = Field(description="Label steps: keep the proxy's 'false' when P(true) <= lower.")
    upper: float = Field(description="Keep the proxy's 'true' when P(true) >= upper (span steps: confidence >= upper).")
    delta: float = Field(description="This step's share of the failure probability.")
    n: int = Field(description="Calibration texts the step was scored on.")
    certified: float = Field(description="The lower confidence bound on the metric at these thresholds.")
    observed: float = Field(description="The metric on the calibration texts at these thresholds.")
    band_share: float = Field(description="Share of calibration texts inside the band (sent to the LLM).")

    def in_band(self, score: float) -> bool:
        """Whether a text with this score goes to the LLM."""
        if self.op == "span":
            return score < self.upper
        kept_true, kept_false = kept_answers(np.asarray([score]), self.lower, self.upper)
        return not (kept_true[0] or kept_false[0])


def label_threshold(
    step: str, metric: str, target: float, p: Sequence[float], truth: Sequence[bool], delta: float
) -> StepThreshold:
    """Thresholds for a label step from proxy scores `p` and the LLM's answers `truth`."""
    p, y = np.asarray(p, dtype=float), np.asarray(truth, dtype=bool)
    n = len(p)
    check = {"accuracy": _accuracy, "precision": _precision, "recall": _recall}[metric]
    candidates = [ROUTE_ALL] + [_pair(metric, level) for level in LEVELS[1:]]
    return _choose(step, "label", metric, target, delta, n, candidates, lambda lo, hi: check(p, y, lo, hi, delta), p)


def span_threshold(
    step: str, target: float, q: Sequence[float], f1: Sequence[float], both_pass: Sequence[bool], delta: float
) -> StepThreshold:
    """Thresholds for a span step from per-text confidences `q` and word F1 against the LLM,
    over calibration texts where `both_pass` (the proxy and the LLM both reach the step)."""
    q, f1, both = np.asarray(q, dtype=float), np.asarray(f1, dtype=float), np.asarray(both_pass, dtype=bool)
    n = len(q)

    def check(lo: float, hi: float) -> tuple[float, float]:
        kept = both & (q >= hi)
        losses = np.where(kept, 1.0 - f1, 0.0)
        share_lo = binomial_lower(int(both.sum()), n, delta / 2)
        bound = bernstein_upper(losses.tolist(), delta / 2) / share_lo if share_lo > 0 else 1.0
        observed = 1.0 - losses.sum() / both.sum() if both.any() else 1.0
        return 1.0 - bound, observed

    candidates = [ROUTE_ALL] + [(-0.01, level) for level in LEVELS[1:]]
    return _choose(step, "span", "span_f1", target, delta, n, candidates, check, q)


def _pair(metric: str, level: float) -> tuple[float, float]:
    """(lower, upper) at a confidence level: both sides for accuracy, one side otherwise."""
    if metric == "accuracy":
        return 1.0 - level, level
    if metric == "precision":
        return 0.5, level
    return 1.0 - level, 0.5


def _choose(step, op, metric, target, delta, n, candidates, check: Callable, scores) -> StepThreshold:
    """Fixed-sequence testing: walk from the most cautious candidate, keep the last that passes."""
    chosen, (certified, observed) = candidates[0], (1.0, 1.0)
    for lo, hi in candidates[1:]:
        bound, seen = check(lo, hi)
        if bound < target:
            break
        chosen, certified, observed = (lo, hi), bound, seen
    lo, hi = chosen
    scores = np.asarray(scores, dtype=float)
    if op == "span":
        band = scores < hi
    else:
        kept_true, kept_false = kept_answers(scores, lo, hi)
        band = ~(kept_true | kept_false)
    return StepThreshold(
        step=step, op=op, metric=metric, target=target, lower=round(lo, 6), upper=round(hi, 6), delta=delta, n=n,
        certified=round(float(certified), 6), observed=round(float(observed), 6),
        band_share=round(float(band.mean()), 6) if n else 1.0,
    )


def kept_answers(p: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """(the proxy's 'true' kept, its 'false' kept) under thresholds (lo, hi); the proxy says
    true at p >= 0.5, so a kept answer is always the proxy's own."""
    return (p >= 0.5) & (p >= hi), (p < 0.5) & (p <= lo)


def _accuracy(p, y, lo, hi, delta) -> tuple[float, float]:
    kept_true, kept_false = kept_answers(p, lo, hi)
    wrong = int((kept_true & ~y).sum() + (kept_false & y).sum())
    return 1.0 - binomial_upper(wrong, len(p), delta), 1.0 - wrong / len(p)


def _precision(p, y, lo, hi, delta) -> tuple[float, float]:
    kept_true, kept_false = kept_answers(p, lo, hi)
    band = ~kept_true & ~kept_false
    false_pos = int((kept_true & ~y).sum())
    out_pos = int(kept_true.sum() + (band & y).sum())
    lower = binomial_lower(out_pos, len(p), delta / 2)
    bound = 1.0 - binomial_upper(false_pos, len(p), delta / 2) / lower if lower > 0 else 0.0
    return bound, 1.0 - false_pos / out_pos if out_pos else 1.0


def _recall(p, y, lo, hi, delta) -> tuple[float, float]:
    _, kept_false = kept_answers(p, lo, hi)
    false_neg, positives = int((kept_false & y).sum()), int(y.sum())
    lower = binomial_lower(positives, len(p), delta / 2)
    bound = 1.0 - binomial_upper(false_neg, len(p), delta / 2) / lower if lower > 0 else 0.0
    return bound, 1.0 - false_neg / positives if positives else 1.0


__all__ = ["LEVELS", "ROUTE_ALL", "StepThreshold", "kept_answers", "label_threshold", "span_threshold"]
