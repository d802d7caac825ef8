"""Replay: a re-tune from a parent rehearses every earlier task's annotations, so the child keeps
what the parent knew instead of forgetting it.

This module picks the replay *pool*: per earlier task, a seeded sample of at most `replay_cap`
examples. The fine-tune (`loop.py`) then draws a fresh subset of the pool every epoch, within a
budget of `replay_share` of the new task's tokens: the cost of an epoch is bounded whatever the
earlier tasks' text lengths, and over the epochs the child rehearses far more distinct examples
than one fixed sample of that size would give (experience replay).

An earlier task is one plan in the parent's lineage with the annotation set it was trained on
and the texts it held out. Those held-out texts never replay: they are what that task's gate
scores the child on (`registry.promotion`), and a child trained on them would look better than
it is. The sample is a pure function of the sets, the held-out texts, the settings and the size
of the new task, so the checkpoint's content key (`replay_key`) names what was replayed.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.hashing import content_hash
from falconer_core.training.examples import flatten, step_examples
from falconer_core.training.settings import TrainingSettings
from falconer_core.types import Example


class EarlierTask(BaseModel):
    """One task a parent learned: its annotations and the texts its gate scores on."""

    model_config = ConfigDict(frozen=True)

    version: str = Field(description="The registered version (NAME/N) that learned it.")
    annotations: AnnotationSet = Field(description="The annotation set it was trained and held out on.")
    heldout_ids: list[str] = Field(description="Its held-out texts: never replayed, scored by its gate.")

    @property
    def plan_hash(self) -> str:
        """The task (its plan's hash)."""
        return self.annotations.plan.hash

    @property
    def train_ids(self) -> list[str]:
        """Its annotated texts that may replay (not held out), sorted."""
        held = set(map(str, self.heldout_ids))
        return sorted(str(i) for i in self.annotations.ids if str(i) not in held)


def replay_key(earlier: Sequence[EarlierTask]) -> str | None:
    """What the replayed examples are drawn from (None: nothing): each set and its held-out texts."""
    if not earlier:
        return None
    return content_hash("replay", sorted((t.annotations.hash, sorted(map(str, t.heldout_ids))) for t in earlier))


def replay_examples(
    earlier: Sequence[EarlierTask], training: TrainingSettings, never: Collection[str] = ()
) -> tuple[list[Example], dict[str, int]]:
    """The replay pool and how many examples came from each task (by plan hash): `sample_replay`
    over the examples of each task's texts that were not held out, nor among `never` (the new
    task's held-out texts: a re-tune of the same task on an overlapping corpus must not train on
    what it is scored on)."""
    pools: dict[str, list[Example]] = {}
    excluded = set(never)
    for task in sorted(earlier, key=lambda t: (t.plan_hash, t.annotations.hash)):
        examples = flatten(step_examples(task.annotations, task.train_ids))
        pools.setdefault(task.plan_hash, []).extend(e for e in examples if e.text not in excluded)
    return sample_replay(pools, training)


def sample_replay(
    pools: Mapping[str, Sequence[Example]], training: TrainingSettings
) -> tuple[list[Example], dict[str, int]]:
    """From each named pool (one per earlier task, in name order), a sample seeded by
    `training.seed` and the name, of at most `replay_cap` examples, kept in pool order."""
    chosen: list[Example] = []
    counts: dict[str, int] = {}
    per_task = training.replay_cap if training.replay else 0
    if per_task == 0:
        return chosen, counts
    for name in sorted(pools):
        pool = pools[name]
        rng = random.Random(content_hash("replay", training.seed, name))
        picked = sorted(rng.sample(range(len(pool)), min(per_task, len(pool))))
        chosen += [pool[k] for k in picked]
        counts[name] = len(picked)
    return chosen, counts


__all__ = ["EarlierTask", "replay_examples", "replay_key", "sample_replay"]
