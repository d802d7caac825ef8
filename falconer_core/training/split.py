"""Splitting the annotated sample into texts to fine-tune on and texts to evaluate on.

The split is by text (all of a text's steps go to the same side, so no answer about a held-out
text leaks into training) and by a seeded hash of each id, so it does not depend on sample
order and a grown sample keeps most earlier assignments.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class HoldoutSettings(BaseModel):
    """How the annotated sample is split between fine-tuning and evaluation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    fraction: float = Field(0.2, ge=0, lt=1, description="Share of annotated texts held out for evaluation.")
    min_heldout: int = Field(10, ge=0, description="Hold out at least this many texts when the sample allows.")
    seed: int = Field(0, description="Seeds the split (the same sample always splits the same way).")


def split_ids(ids: Sequence[str], settings: HoldoutSettings | None = None) -> tuple[list[str], list[str]]:
    """(train ids, held-out ids), each in input order. At least one text is always kept for
    training; `min_heldout` applies only when the sample can spare it."""
    settings = settings or HoldoutSettings()
    ids = [str(i) for i in ids]
    if settings.fraction == 0 or len(ids) < 2:
        return ids, []
    wanted = max(round(settings.fraction * len(ids)), min(settings.min_heldout, len(ids) // 2))
    wanted = min(wanted, len(ids) - 1)
    ranked = sorted(ids, key=lambda i: hashlib.sha256(f"{settings.seed}:{i}".encode()).hexdigest())
    heldout = set(ranked[:wanted])
    return [i for i in ids if i not in heldout], [i for i in ids if i in heldout]


__all__ = ["HoldoutSettings", "split_ids"]
