"""The Prefect task runner that `ExecutionSettings.runner` names: where execution shards run.

- `sequential`: one shard at a time in the flow's process.
- `processes`: a local pool (Prefect's `ProcessPoolTaskRunner`); its initializer gives each
  process its share of torch threads, and the metamodel loads once per process (the per-process
  cache of `open_metamodel`; each shard logs how many loads its process made).
- `dask`: prefect-dask's `DaskTaskRunner`, on a `LocalCluster` of single-threaded worker
  processes, or on an existing cluster at `dask_address` (checked before any work), whose
  workers report to the flow's Prefect API (`flows.cluster.ClusterTaskRunner`).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from falconer_core.errors import ConfigError
from falconer_core.execution import ExecutionSettings, use_threads


def task_runner(execution: ExecutionSettings) -> TaskRunner:
    """A fresh task runner for one pass over the shards."""
    if execution.runner == "sequential":
        return ThreadPoolTaskRunner(max_workers=1)
    share_api_with_workers()
    if execution.runner == "processes":
        return ProcessPoolTaskRunner(
            max_workers=execution.worker_count(), initializer=use_threads, initargs=(execution.threads(),)
        )
    from prefect_dask import DaskTaskRunner

    from flows.cluster import ClusterTaskRunner

    if execution.dask_address:
        check_reachable(execution.dask_address)
        return ClusterTaskRunner(address=execution.dask_address, api_url=flow_api_url())
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": execution.worker_count(), "threads_per_worker": 1, "processes": True,
        "dashboard_address": None,
    })


def flow_api_url() -> str | None:
    """The Prefect API this flow reports to: PREFECT_API_URL, or the temporary server's URL."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        url = str(client.api_url).rstrip("/")
    return url if url.startswith("http") else None


def share_api_with_workers() -> None:
    """Point worker processes started from here at this flow's Prefect API. Without it, a
    worker of a flow on the temporary server would start a temporary server of its own (one
    more process per worker, and task runs recorded where nobody looks)."""
    url = flow_api_url()
    if url and not os.environ.get("PREFECT_API_URL"):
        os.environ["PREFECT_API_URL"] = url  # inherited by the processes the runner starts


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds with a clear message when no Dask scheduler answers at `address`."""
    parsed = urlparse(address)
    if not parsed.hostname or not parsed.port:
        raise ConfigError(f"dask address {address!r} needs a host and a port, e.g. tcp://127.0.0.1:8786")
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"no Dask scheduler answers at {address} ({exc}); start one (`dask scheduler`) and its workers, "
            "or leave out --dask-address to run on a LocalCluster"
        ) from None


__all__ = ["check_reachable", "flow_api_url", "task_runner"]
