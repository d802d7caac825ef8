"""Sharded, resumable, incremental execution of a plan over a corpus snapshot.

A run is cut into shards of consecutive texts. A worker reads only its shard's rows from the
snapshot, runs the metamodel and writes the rows as a Parquet part; the flow commits each part
and marks the shard complete in one transaction, so after a crash the shards still to do are
exactly the ones the store does not list. The run id is derived from everything that
determines the rows (model, plan, corpus, shard size), so running the same job again resumes
it; each shard's work key is derived from (model, plan, its ids and text hashes), so a run over
a grown corpus reuses every shard whose texts another run has already done.
"""

from __future__ import annotations

import os
import time
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.corpus import CorpusSnapshot
from falconer_core.execution.counts import ShardCounts
from falconer_core.execution.interpreter import execute_plan
from falconer_core.execution.outputs import output_rows
from falconer_core.execution.parts import write_part
from falconer_core.hashing import content_hash
from falconer_core.metamodel.precision import REFERENCE_PRECISION, Precision, inference_batch_size, precision_key
from falconer_core.metamodel.source import LOADS, ModelSource, open_metamodel
from falconer_core.plan import Plan


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
    """One executed shard: where its rows wait to be committed, and what it cost."""

    model_config = ConfigDict(frozen=True)

    shard: Shard
    part: str = Field(description="URL of the Parquet part holding the shard's output rows.")
    n_rows: int = Field(description="Output rows in the part.")
    n_texts: int
    n_passed: int = Field(description="Texts that passed the plan's filter.")
    seconds: float = Field(description="Metamodel time for the shard.")
    pid: int = Field(description="The worker process that ran it.")
    model_loads: int = Field(description="Times that process has loaded this model (1: loaded once, then reused).")
    cascade: ShardCounts | None = Field(None, description="What a cascade shard routed (None: proxy only).")


class Cascade(Protocol):
    """What `execute_shard` asks of a cascade (`falconer_core.cascade.ShardCascade`): wrap the
    proxy so it keeps its confidences, then route the shard's records."""

    def wrap(self, runner: Any) -> Any: ...

    def route(self, plan: Plan, ids: list[str], texts: list[str], records: list, proxy: Any) -> Any: ...


def execution_run_id(
    model_version: str, plan: Plan, corpus_id: str, shard_size: int, precision: Precision = REFERENCE_PRECISION,
    cascade: dict[str, Any] | None = None,
) -> str:
    """A stable id for 'this model runs this plan over this corpus in these shards' (at this
    precision: int8 rows differ a little from fp32 ones, so they are another run; with this
    cascade's settings: a cascade run is never the proxy-only run)."""
    parts = (model_version, plan.hash, corpus_id, shard_size) + precision_key(precision)
    if cascade is not None:
        return "cascade-" + content_hash(*parts, cascade)
    return "exec-" + content_hash(*parts)


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


def work_keys(
    model_version: str, plan: Plan, corpus: CorpusSnapshot, shard_size: int, precision: Precision = REFERENCE_PRECISION,
    cascade: Any = None,
) -> dict[int, str]:
    """The key of each shard's work: the same model, plan and precision on the same ids and texts
    give the same rows, whichever corpus version or run they come from (with a cascade: the
    same thresholds, LLM and allowance too)."""
    extra = precision_key(precision) + (() if cascade is None else (cascade,))
    return {
        index: content_hash("shard-work", model_version, plan.hash, digest, *extra)
        for index, digest in enumerate(corpus.shard_digests(shard_size))
    }


def use_threads(threads: int | None) -> None:
    """Run this thread's torch ops on `threads` threads. Called by every shard, not once per
    process: torch keeps the count per calling thread, and a task runner may run the next shard
    on a fresh thread (one that still has OMP_NUM_THREADS, often 1). A no-op when already set."""
    if threads:
        import torch

        if torch.get_num_threads() != int(threads):
            torch.set_num_threads(int(threads))


def execute_shard(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, shard: Shard, *, model_version: str, run_id: str,
    run_folder: str, batch_size: int | None = None, threads: int | None = None, precision: Precision = REFERENCE_PRECISION,
    cascade: Cascade | None = None,
) -> ShardResult:
    """Run `plan` with the metamodel on one shard's rows of the snapshot and write its part;
    with a `cascade`, the texts the proxy is unsure of are answered by the LLM instead."""
    use_threads(threads)
    part = corpus.read_rows(shard.start, shard.end)
    ids, texts = part["id"].astype(str).tolist(), part["text"].tolist()
    runner = open_metamodel(model, precision=precision)
    runner.batch_size = batch_size or inference_batch_size(runner.device.type)
    proxy = cascade.wrap(runner) if cascade is not None else runner
    started = time.perf_counter()
    records = execute_plan(plan, texts, proxy, ids, include_failed=True)
    seconds = time.perf_counter() - started
    counts = None
    if cascade is None:
        rows = output_rows(records, plan, model_version)
    else:
        routed = cascade.route(plan, ids, texts, records, proxy)
        records = routed.records
        rows = output_rows(records, plan, model_version, sources=routed.sources, in_band=routed.in_band)
        counts = routed.counts()
    url = write_part(rows, run_folder, run_id, shard.index)
    return ShardResult(
        shard=shard, part=url, n_rows=len(rows), n_texts=len(part), n_passed=sum(r.passed for r in records),
        seconds=round(seconds, 4), pid=os.getpid(), model_loads=LOADS[model.identity], cascade=counts,
    )


__all__ = [
    "Shard",
    "ShardResult",
    "execute_shard",
    "execution_run_id",
    "make_shards",
    "pending_shards",
    "use_threads",
    "work_keys",
]
