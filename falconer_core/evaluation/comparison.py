"""Comparing two models on the same held-out texts: a paired bootstrap of their mean F1.

Both evaluations must come from the same annotated texts (the candidate's held-out set). Each
replicate redraws those texts once and scores both models on the draw, so the interval of the
difference leaves out the noise the two share (which texts happened to be held out). A
candidate is *worse beyond the noise* when the whole interval of (candidate - incumbent) lies
below zero; that is what keeps it from replacing the incumbent (`registry.promotion`).
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, Field

from falconer_core.errors import ConfigError
from falconer_core.evaluation.bootstrap import BootstrapSettings, interval, replicate_weights
from falconer_core.evaluation.scoring import Evaluation, mean_f1_replicates


class Comparison(BaseModel):
    """A candidate against the incumbent on the same texts: mean F1 of each and their difference."""

    incumbent: str = Field(description="The version compared against (NAME/VERSION).")
    metric: str = Field("mean_f1", description="What is compared.")
    n_texts: int = Field(description="Held-out texts both were scored on.")
    candidate_value: float
    incumbent_value: float
    difference: float = Field(description="candidate - incumbent.")
    lo: float = Field(description="Lower end of the paired bootstrap interval of the difference.")
    hi: float = Field(description="Upper end of the paired bootstrap interval of the difference.")

    @property
    def worse(self) -> bool:
        """Whether the candidate is worse beyond the noise (the whole interval below zero)."""
        return self.hi < 0

    def describe(self) -> str:
        """One line for the promotion reasons."""
        verdict = "worse beyond the noise" if self.worse else "not worse beyond the noise"
        return (
            f"vs {self.incumbent} on the same {self.n_texts} held-out texts: {self.metric} "
            f"{self.candidate_value:.4g} vs {self.incumbent_value:.4g}, difference {self.difference:+.4g} "
            f"[{self.lo:+.4g}, {self.hi:+.4g}]: {verdict}"
        )


def compare(
    candidate: Evaluation, incumbent: Evaluation, incumbent_version: str, settings: BootstrapSettings | None = None
) -> Comparison:
    """The paired bootstrap of candidate vs incumbent mean F1 on the texts both were scored on."""
    settings = settings or candidate.bootstrap
    ids = [t.id for t in candidate.texts]
    if not ids:
        raise ConfigError("the candidate has no held-out texts to compare on; hold some out (holdout.fraction)")
    if sorted(ids) != sorted(t.id for t in incumbent.texts):
        raise ConfigError("a paired comparison needs both models scored on the same held-out texts")
    if candidate.mean_f1 is None or incumbent.mean_f1 is None:
        raise ConfigError("a paired comparison needs a mean F1 on both sides; no step had anything to score")
    position = {text_id: k for k, text_id in enumerate(ids)}
    aligned = incumbent.model_copy(update={"texts": sorted(incumbent.texts, key=lambda t: position[t.id])})
    draws = replicate_weights([t.weight for t in candidate.texts], settings)
    differences = mean_f1_replicates(candidate, settings, draws) - mean_f1_replicates(aligned, settings, draws)
    lo, hi = interval(np.asarray(differences), settings)
    return Comparison(
        incumbent=incumbent_version, n_texts=len(ids), candidate_value=round(candidate.mean_f1, 6),
        incumbent_value=round(incumbent.mean_f1, 6), difference=round(candidate.mean_f1 - incumbent.mean_f1, 6),
        lo=round(lo, 6), hi=round(hi, 6),
    )


__all__ = ["Comparison", "compare"]
