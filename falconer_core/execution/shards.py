"""Sharded, resumable execution of a plan over a corpus with the metamodel.

A run is cut into fixed shards of consecutive texts. The store commits each shard's rows and
marks it complete in one transaction, so after a crash the shards still to do are exactly the
ones `Store.completed_shards` does not list. The run id is derived from everything that
determines the rows (model, plan, corpus, shard size), so running the same job again resumes
it instead of starting a second copy.
"""

from __future__ import annotations

import time

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from falconer_core.execution.interpreter import execute_plan
from falconer_core.execution.outputs import output_rows
from falconer_core.hashing import content_hash
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.plan import Plan


class ExecutionSettings(BaseModel):
    """How the fine-tuned proxy runs over the corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: int = Field(1000, ge=1, description="Texts per shard; a shard is the unit of resumption.")
    batch_size: int = Field(64, ge=1, description="Windows per forward pass of the metamodel.")
    run_id: str | None = Field(
        None, description="Output run id (default: derived from model, plan, corpus and shard size, "
        "so re-running resumes where the last run stopped)."
    )


class Shard(BaseModel):
    """Texts `start` to `end` (exclusive) of the corpus, in corpus order."""

    model_config = ConfigDict(frozen=True)

    index: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


class ShardResult(BaseModel):
    """One executed shard: its output rows and what it cost."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    shard: Shard
    rows: pd.DataFrame = Field(description="Output rows, as `output_rows` builds them.")
    n_texts: int
    n_passed: int = Field(description="Texts that passed the plan's filter.")
    seconds: float = Field(description="Metamodel time for the shard.")


def execution_run_id(model_version: str, plan: Plan, corpus_id: str, shard_size: int) -> str:
    """A stable id for 'this model runs this plan over this corpus in these shards'."""
    return "exec-" + content_hash(model_version, plan.hash, corpus_id, shard_size)


def make_shards(n_texts: int, shard_size: int) -> list[Shard]:
    """Consecutive shards covering `n_texts` texts."""
    return [
        Shard(index=k, start=start, end=min(start + shard_size, n_texts))
        for k, start in enumerate(range(0, n_texts, shard_size))
    ]


def pending_shards(n_texts: int, shard_size: int, completed: set[int] | list[int]) -> list[Shard]:
    """The shards not yet committed."""
    done = set(completed)
    return [shard for shard in make_shards(n_texts, shard_size) if shard.index not in done]


def execute_shard(
    model: ModelSource, plan: Plan, corpus: pd.DataFrame, shard: Shard, *, model_version: str, batch_size: int = 64
) -> ShardResult:
    """Run `plan` with the metamodel on one shard of `corpus` (an `id`/`text` frame)."""
    part = corpus.iloc[shard.start : shard.end]
    runner = open_metamodel(model)
    runner.batch_size = batch_size
    started = time.perf_counter()
    records = execute_plan(plan, part["text"].tolist(), runner, part["id"].astype(str).tolist(), include_failed=True)
    seconds = time.perf_counter() - started
    return ShardResult(
        shard=shard, rows=output_rows(records, plan, model_version), n_texts=len(part),
        n_passed=sum(r.passed for r in records), seconds=round(seconds, 4),
    )


__all__ = ["ExecutionSettings", "Shard", "ShardResult", "execute_shard", "execution_run_id", "make_shards", "pending_shards"]
