"""A run plan: everything an `execute` run decides before any shard runs, decided in one place.

The run id, the shards, each shard's work key (what reuse matches on) and, with a cascade, each
shard's routing (thresholds, its share of the LLM budget, the calibration texts it holds) follow
from the model, plan, corpus and settings; `plan_run` derives them, the flow only carries the
result. `next_pass` is the crash-retry rule: which shards run again, and when to give up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.cascade.budget import cascade_work_keys, shard_cascades
from falconer_core.cascade.calibration import Calibration
from falconer_core.cascade.routing import ShardCascade
from falconer_core.cascade.settings import CascadeSettings
from falconer_core.corpus import CorpusSnapshot, CorpusSource
from falconer_core.errors import ConfigError
from falconer_core.execution.settings import ExecutionSettings
from falconer_core.execution.shards import Shard, execution_run_id, make_shards, work_keys
from falconer_core.plan import Plan

#: Passes over the shards a run makes: the first, and one on a fresh runner for crashed workers.
MAX_PASSES = 2


class RunPlan(BaseModel):
    """What one execution run will do, fixed before its first shard."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="Derived from model, plan, corpus, shard size, precision and cascade (or set).")
    kind: str = Field("execute", description="The run record's kind.")
    model_version: str = Field(description="The registered model version that runs.")
    plan_hash: str
    corpus_id: str
    n_texts: int
    shard_size: int
    shards: list[Shard]
    work_keys: dict[int, str] = Field(description="Each shard's work key: identical work is reused, not redone.")
    routes: dict[int, ShardCascade] = Field(
        default_factory=dict, description="Each shard's cascade routing (empty: proxy only)."
    )
    run_folder: str = Field(description="Where workers leave parts (resolved: never the unset default).")
    reuse: bool = Field(description="Whether shards other runs did on the same texts are copied.")
    params: dict[str, Any] = Field(description="What the run record keeps of the request (no secrets).")

    @property
    def reuse_keys(self) -> dict[int, str] | None:
        """The work keys to look up in other runs, or None when reuse is off."""
        return self.work_keys if self.reuse else None

    def pending(self, done: Sequence[int]) -> list[Shard]:
        """The shards not yet complete."""
        skip = set(done)
        return [shard for shard in self.shards if shard.index not in skip]

    def for_shard(self, shard: Shard) -> RunPlan:
        """This plan narrowed to one shard (its key and route only): what a worker is sent, so a
        process pool or Dask cluster is not handed every shard's calibration records."""
        keep = shard.index
        return self.model_copy(update={
            "shards": [shard], "work_keys": {k: v for k, v in self.work_keys.items() if k == keep},
            "routes": {k: v for k, v in self.routes.items() if k == keep},
        })


def run_params(
    *, model: str, corpus: CorpusSource, execution: ExecutionSettings, shard_size: int,
    cascade: CascadeSettings | None = None,
) -> dict[str, Any]:
    """The request as the run record keeps it."""
    params: dict[str, Any] = {
        "model": model, "corpus": corpus.model_dump(), "execution": execution.model_dump(), "shard_size": shard_size,
    }
    if cascade is not None:
        params["cascade"] = cascade.identity()
    return params


def plan_run(
    *, model: str, model_version: str, plan: Plan, corpus: CorpusSource, snapshot: CorpusSnapshot, corpus_id: str,
    execution: ExecutionSettings, cascade: CascadeSettings | None = None, calibration: Calibration | None = None,
    llm_cache_dir: Path | str | None = None,
) -> RunPlan:
    """Decide the run: shard size and shards, run id, work keys, the cascade's per-shard routes
    (from `calibration`, which a cascade needs) and the run folder. `model` is the name the
    request gave, `model_version` the version it resolved to."""
    if (cascade is None) != (calibration is None):
        raise ConfigError("a cascade run needs its calibration, and only a cascade run has one")
    size = execution.shard_size_for(snapshot.n_texts)
    shards = make_shards(snapshot.n_texts, size)
    identity = cascade.identity() if cascade is not None else None
    run_id = execution.run_id or execution_run_id(model_version, plan, corpus_id, size, execution.precision, identity)
    keys = work_keys(model_version, plan, snapshot, size, execution.precision)
    routes: dict[int, ShardCascade] = {}
    if cascade is not None and calibration is not None:
        routes = shard_cascades(calibration, cascade, shards, snapshot.n_texts, llm_cache_dir)
        keys = cascade_work_keys(keys, routes, cascade)
    return RunPlan(
        run_id=run_id, model_version=model_version, plan_hash=plan.hash, corpus_id=corpus_id,
        n_texts=snapshot.n_texts, shard_size=size, shards=shards, work_keys=keys, routes=routes,
        run_folder=execution.resolved_run_folder(), reuse=execution.reuse,
        params=run_params(model=model, corpus=corpus, execution=execution, shard_size=size, cascade=cascade),
    )


def next_pass(pending: Sequence[Shard], crashed: Mapping[int, str], passes_done: int) -> list[Shard]:
    """The shards to run on a fresh runner after `passes_done` passes: those of `pending` whose
    worker crashed (a Falconer error is never retried: it is raised, not listed in `crashed`).
    After the last pass, any left is a failure: raised with each shard's error."""
    again = [shard for shard in pending if shard.index in crashed]
    if again and passes_done >= MAX_PASSES:
        raise RuntimeError(f"shard(s) {[s.index for s in again]} failed twice: {dict(crashed)}")
    return again


__all__ = ["MAX_PASSES", "RunPlan", "next_pass", "plan_run", "run_params"]
