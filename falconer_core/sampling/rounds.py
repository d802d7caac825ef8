"""The annotation rounds of one incubation, decided up front and between rounds: how many texts
each round adds, how the first round is drawn and held out, and when to stop.

One round is the plain incubation: the whole sample drawn at once. With more, the first round
is a drawn share of the budget (the only texts ever held out, so every estimate stays weighted
by inclusion probabilities), and each later round adds the texts the re-tuned metamodel is
least sure of (`active.next_batch`) until the held-out score clears the gate with its interval,
the budget is spent, or the corpus has nothing left to annotate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.sampling.active import ActiveSettings
from falconer_core.sampling.draw import AnnotationSample, SamplingSettings, sample_size
from falconer_core.training.split import HoldoutSettings


def batch_sizes(budget: int, settings: ActiveSettings) -> list[int]:
    """Texts to annotate per round: the first share, then the rest in equal batches."""
    if settings.rounds == 1 or budget <= 1:
        return [budget]
    first = min(budget, max(1, round(budget * settings.first_share)))
    rest = budget - first
    if rest == 0:
        return [first]
    later = settings.rounds - 1
    size = math.ceil(rest / later)
    sizes = [min(size, rest - k * size) for k in range(later)]
    return [first] + [s for s in sizes if s > 0]


def gate_cleared(metrics: Mapping[str, float], gate: Mapping[str, float]) -> bool:
    """Every gated metric's lower interval end (the value itself when it has none) at or
    above its floor: the held-out evidence says the model is good enough, noise included."""
    for name, floor in gate.items():
        value = metrics.get(f"{name}_lo", metrics.get(name))
        if value is None or value < floor:
            return False
    return bool(gate)


def first_round_holdout(holdout: HoldoutSettings, settings: ActiveSettings) -> HoldoutSettings:
    """The held-out share of the first round that holds out about what one batch would have
    (`holdout.fraction` of the whole budget), at most half of it."""
    if settings.rounds == 1:
        return holdout
    return holdout.model_copy(update={"fraction": min(0.5, holdout.fraction / settings.first_share)})


def learning_curve_row(round_: int, n_annotations: int, n_train: int, metrics: Mapping[str, float]) -> dict:
    """One point of the learning curve: annotations so far, and each held-out score with its
    interval (`metric`, `metric_lo`, `metric_hi`), as `Evaluation.metrics` gives them."""
    return {"round": round_, "annotations": n_annotations, "train_texts": n_train,
            **{k: round(v, 4) for k, v in metrics.items() if k.startswith(("mean_f1", "f1.", "heldout"))}}


class Rounds(BaseModel):
    """The rounds of one incubation: the texts each adds (`sizes`, summing to the budget) and
    the active settings they were planned with. It answers the questions a flow asks between
    tasks, so the flow itself only calls tasks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sizes: tuple[int, ...] = Field(min_length=1, description="Texts each round adds, first round first.")
    active: ActiveSettings = Field(ActiveSettings(), description="The settings the rounds were planned with.")

    @classmethod
    def plan(cls, n_texts: int, sampling: SamplingSettings, active: ActiveSettings) -> Rounds:
        """The rounds for a corpus of `n_texts`: the sample size `sampling` gives is the budget."""
        budget = sample_size(n_texts, sampling.fraction, sampling.floor, sampling.cap)
        return cls(sizes=tuple(batch_sizes(budget, active)), active=active)

    @property
    def several(self) -> bool:
        """More than one round: the sample grows, and a learning curve is worth publishing."""
        return len(self.sizes) > 1

    @property
    def numbers(self) -> range:
        """The round numbers, from 1."""
        return range(1, len(self.sizes) + 1)

    def first_sampling(self, sampling: SamplingSettings) -> SamplingSettings:
        """How the first round is drawn: as `sampling` says, with exactly the first round's size
        when there are later rounds."""
        if not self.several:
            return sampling
        return sampling.model_copy(update={"floor": self.sizes[0], "cap": self.sizes[0]})

    def holdout(self, holdout: HoldoutSettings) -> HoldoutSettings:
        """The held-out share of the first round (`first_round_holdout`)."""
        return first_round_holdout(holdout, self.active)

    def heldout_from(self, first: AnnotationSample) -> list[str] | None:
        """The texts held-out ones may come from: the drawn first round's when later rounds add
        chosen texts (a set picked for being hard would make every score look worse), else any."""
        return [str(i) for i in first.ids] if self.several else None

    def stop_after(self, round_: int, metrics: Mapping[str, float], gate: Mapping[str, float]) -> bool:
        """Whether to stop after round `round_` with these held-out metrics: the last round is
        done, or (unless `active.stop_at_gate` is off) the gate is cleared with the interval's
        lower end."""
        return round_ >= len(self.sizes) or (self.active.stop_at_gate and gate_cleared(metrics, gate))

    def next_size(self, round_: int) -> int:
        """How many texts the round after `round_` adds."""
        return self.sizes[round_]

    @staticmethod
    def added_nothing(before: AnnotationSample, after: AnnotationSample) -> bool:
        """Whether a grown sample has no new text: the corpus has nothing left to annotate."""
        return len(after.ids) == len(before.ids)


__all__ = ["Rounds", "batch_sizes", "first_round_holdout", "gate_cleared", "learning_curve_row"]
