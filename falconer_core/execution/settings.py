"""How the fine-tuned proxy runs over a corpus: shard size, batches, where it runs (one process,
a process pool, a Dask cluster) and where workers leave their output parts."""

from __future__ import annotations

import math
import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from falconer_core.errors import ConfigError
from falconer_core.metamodel.precision import DEFAULT_PRECISION_CHOICE, PRECISION_DESCRIPTION, PrecisionChoice
from falconer_core.settings import Settings

RunnerName = Literal["sequential", "processes", "dask"]

#: Bounds of the automatic shard size: coarse enough that a million texts are ~60 task runs
#: (Prefect servers strain at thousands), fine enough that a crash loses little work.
MIN_AUTO_SHARD, MAX_AUTO_SHARD = 1024, 16384


class ExecutionSettings(BaseModel):
    """How the fine-tuned proxy runs over the corpus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    shard_size: int | None = Field(
        None, ge=1, description="Texts per shard, the unit of resumption and of parallel work (default: a "
        "power of two from 1024 to 16384 that gives ~64 shards; stable when a corpus grows a little, "
        "so appended texts reuse earlier shards).",
    )
    batch_size: int | None = Field(
        None, ge=1, description="Windows per forward pass of the metamodel (default: 64 on CPU, 256 on a GPU).",
    )
    precision: PrecisionChoice = Field(DEFAULT_PRECISION_CHOICE, description=PRECISION_DESCRIPTION)
    runner: RunnerName = Field(
        "sequential", description="Where shards run: 'sequential' (this process), 'processes' (a local "
        "process pool, model loaded once per process) or 'dask' (a Dask cluster via prefect-dask).",
    )
    workers: int | None = Field(
        None, ge=1, description="Processes or Dask workers (default: the machine's cores; ignored by "
        "'sequential' and by an existing Dask cluster).",
    )
    threads_per_worker: int | None = Field(
        None, ge=1, description="torch threads per worker (default: cores / workers, so the two multiply to the cores).",
    )
    dask_address: str | None = Field(
        None, description="An existing Dask scheduler, e.g. tcp://host:8786 (default: a LocalCluster for the run).",
    )
    run_folder: str | None = Field(
        None, description="Where workers write each shard's Parquet part before the flow commits it: a "
        "folder or any fsspec URL every worker can reach (default: HOME/runs).",
    )
    run_id: str | None = Field(
        None, description="Output run id (default: derived from model, plan, corpus and shard size, "
        "so re-running resumes where the last run stopped)."
    )
    reuse: bool = Field(
        True, description="Copy the rows of shards another run already did with the same model, plan and "
        "texts instead of executing them again (what makes runs over a grown corpus incremental).",
    )
    progress: bool = Field(False, description="Show a progress bar over shards (the CLI turns it on).")

    @model_validator(mode="after")
    def _check_address(self) -> ExecutionSettings:
        if self.dask_address is not None and self.runner != "dask":
            raise ConfigError(f"dask_address is set but runner is {self.runner!r}; use runner='dask' (--runner dask)")
        if self.dask_address is not None and "://" not in self.dask_address:
            raise ConfigError(f"dask_address {self.dask_address!r} needs a scheme, e.g. tcp://{self.dask_address}")
        return self

    def shard_size_for(self, n_texts: int) -> int:
        """The shard size for a corpus of `n_texts`: the one set, or the automatic one."""
        if self.shard_size is not None:
            return self.shard_size
        wanted = max(n_texts / 64, 1)
        return min(MAX_AUTO_SHARD, max(MIN_AUTO_SHARD, 2 ** round(math.log2(wanted))))

    def resolved_run_folder(self) -> str:
        """Where this run's parts go: `run_folder`, or the runs folder of the settings (HOME/runs)."""
        return self.run_folder or str(Settings().runs_dir)

    def worker_count(self) -> int:
        """How many processes or Dask workers a local runner starts."""
        if self.runner == "sequential":
            return 1
        return self.workers or usable_cores()

    def threads(self) -> int:
        """torch threads each worker uses: the cores this process may run on (its CPU affinity,
        which a container or `taskset` narrows), shared among the workers."""
        if self.threads_per_worker:
            return self.threads_per_worker
        return max(1, usable_cores() // self.worker_count())

    def max_in_flight(self) -> int:
        """Shards submitted to the task runner at any time: enough to keep every worker busy,
        few enough that a million texts in a thousand shards do not hold a thousand pending
        submissions (and their parameters) in memory at once."""
        if self.runner == "dask" and self.workers is None:
            return 256  # an existing cluster's size is unknown here
        return 2 * self.worker_count()


def usable_cores() -> int:
    """The cores this process may run on (`os.sched_getaffinity`), else the machine's."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


__all__ = ["MAX_AUTO_SHARD", "MIN_AUTO_SHARD", "ExecutionSettings", "RunnerName", "usable_cores"]
