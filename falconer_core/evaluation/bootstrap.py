"""Bootstrap intervals over texts: how far a score measured on a few held-out texts could move.

Every score here is built from per-text counts (tp, fp, fn, tn) of one scoring unit (a plan step,
or the plan end to end), weighted by each text's inverse inclusion probability and summed before
dividing (micro average, as in `metrics`). A replicate redraws the texts with replacement and
recomputes every unit from the same draw, so the mean over steps, and the difference between two
models scored on the same texts (`comparison`), get intervals that keep their correlations.
The interval is the percentile one; with the seed fixed, the same counts give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

#: Column order of a unit's counts.
TP, FP, FN, TN = range(4)


class BootstrapSettings(BaseModel):
    """How many replicates, from which seed, at what confidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resamples: int = Field(1000, ge=100, description="Bootstrap replicates (texts redrawn with replacement).")
    seed: int = Field(0, description="Seeds the redraws: the same counts always give the same interval.")
    confidence: float = Field(0.95, gt=0, lt=1, description="Coverage of the percentile interval.")


def replicate_weights(weights: Sequence[float], settings: BootstrapSettings) -> np.ndarray:
    """[resamples, texts]: how often each text is drawn in each replicate, times its weight."""
    n = len(weights)
    rng = np.random.default_rng(settings.seed)
    draws = rng.multinomial(n, np.full(n, 1.0 / n), size=settings.resamples) if n else np.zeros((settings.resamples, 0))
    return draws * np.asarray(weights, dtype=float)[None, :]


def f1_of(totals: np.ndarray) -> np.ndarray:
    """F1 of summed counts [..., 4]; 1.0 where nothing was predicted or expected (see `metrics`)."""
    tp, fp, fn = totals[..., TP], totals[..., FP], totals[..., FN]
    denominator = 2 * tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / np.where(denominator > 0, denominator, 1), 1.0)


def precision_recall_of(totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Precision and recall of summed counts [..., 4], with the edge cases of `metrics.prf`."""
    tp, fp, fn = totals[..., TP], totals[..., FP], totals[..., FN]
    nothing = (tp + fp + fn) == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.where(tp + fp > 0, tp + fp, 1), 0.0)
        recall = np.where(tp + fn > 0, tp / np.where(tp + fn > 0, tp + fn, 1), 0.0)
    return np.where(nothing, 1.0, precision), np.where(nothing, 1.0, recall)


def accuracy_of(totals: np.ndarray) -> np.ndarray:
    """(tp + tn) / all of summed counts [..., 4]; NaN where there is nothing to count."""
    every = totals.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(every > 0, (totals[..., TP] + totals[..., TN]) / np.where(every > 0, every, 1), np.nan)


def interval(values: np.ndarray, settings: BootstrapSettings) -> tuple[float, float]:
    """The percentile interval of replicate values (NaN replicates dropped)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - settings.confidence) / 2
    lo, hi = np.quantile(finite, [tail, 1 - tail])
    return float(lo), float(hi)


__all__ = [
    "FN",
    "FP",
    "TN",
    "TP",
    "BootstrapSettings",
    "accuracy_of",
    "f1_of",
    "interval",
    "precision_recall_of",
    "replicate_weights",
]
