"""Splitting the LLM budget over shards, so shards can run in any order, on any worker, and
be resumed, and still never spend more than the run was given.

Calibration spends first; what is left is shared in proportion to shard size (shard k gets
floor(left * end_k / N) - floor(left * start_k / N), which sums to what is left exactly). A
shard whose band is bigger than its share sends its least confident texts and keeps the proxy's
answer on the rest; the run reports how many. Shares are fixed before any shard runs, so the
same run always splits the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from falconer_core.cascade.calibration import Calibration
from falconer_core.cascade.routing import ShardCascade
from falconer_core.cascade.settings import CascadeSettings
from falconer_core.hashing import content_hash

if TYPE_CHECKING:  # execution's ShardResult carries cascade counts: no import cycle at run time
    from falconer_core.execution.shards import Shard


def budget_left(calibration: Calibration, settings: CascadeSettings) -> int | None:
    """LLM texts left for the shards after calibration (None: no budget)."""
    if settings.llm_budget is None:
        return None
    return max(settings.llm_budget - calibration.n_texts, 0)


def shard_cascades(
    calibration: Calibration, settings: CascadeSettings, shards: Sequence[Shard], n_texts: int,
    cache_dir: Path | str | None = None,
) -> dict[int, ShardCascade]:
    """Each shard's routing: the thresholds, its share of the budget, and the LLM's records of
    the calibration texts that fall in it."""
    left = budget_left(calibration, settings)
    known_at = list(zip(calibration.positions, calibration.ids))
    plans: dict[int, ShardCascade] = {}
    for shard in shards:
        allowance = None if left is None else left * shard.end // n_texts - left * shard.start // n_texts
        ids = [i for p, i in known_at if shard.start <= p < shard.end]
        plans[shard.index] = ShardCascade(
            thresholds=calibration.thresholds, llm=settings.llm, cache_dir=str(cache_dir) if cache_dir else None,
            allowance=allowance, known={i: calibration.llm_records[i] for i in ids},
        )
    return plans


def cascade_work_keys(base: dict[int, str], plans: dict[int, ShardCascade], settings: CascadeSettings) -> dict[int, str]:
    """Shard work keys for a cascade: the proxy's key plus what routes the shard (thresholds,
    LLM, allowance, the calibration texts in it), so only identical routing is reused."""
    return {
        index: content_hash(
            "cascade-work", key, settings.identity(), [t.model_dump() for t in plans[index].thresholds],
            plans[index].allowance, sorted(plans[index].known),
        )
        for index, key in base.items()
    }


__all__ = ["budget_left", "cascade_work_keys", "shard_cascades"]
