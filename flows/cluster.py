"""The task runner for an existing Dask cluster: its workers report to the flow's Prefect API,
or, where they cannot reach it, run shards as plain Dask work; none starts a Prefect server."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any
from uuid import uuid4

from prefect.logging import get_logger
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED, temporary_settings
from prefect_dask import DaskTaskRunner
from prefect_dask.task_runners import PrefectDaskFuture


class ClusterTaskRunner(DaskTaskRunner):
    """prefect-dask's runner on an existing cluster, whose workers inherit nothing from the flow's
    process: what reaches a worker is the settings each task carries. prefect-dask sends the
    flow's settings, where a flow on the temporary server has no API URL, so each worker would
    start a temporary server of its own (its task runs recorded there, its `uvicorn` orphaned
    when the worker is killed). Here every task carries the flow's API URL with temporary
    servers turned off; when some worker cannot reach that API (a flow on its temporary server,
    which listens on 127.0.0.1, and workers on other machines), the tasks run as plain Dask work
    instead: same results, no task runs recorded, no server started."""

    def __init__(self, *, address: str, api_url: str | None) -> None:
        super().__init__(address=address)
        self.api_url = api_url
        self._reachable: bool | None = None  # asked of the workers at the first submit

    def duplicate(self) -> ClusterTaskRunner:
        return type(self)(address=self.address, api_url=self.api_url)

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Any = None, dependencies: Any = None) -> Any:
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        if self._reachable is None:
            self._reachable = self._workers_reach_api()
        if not self._reachable:
            return self._submit_without_api(task, parameters, wait_for)
        with temporary_settings(updates={PREFECT_API_URL: self.api_url, PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
            return super().submit(task, parameters, wait_for=wait_for, dependencies=dependencies)

    def _workers_reach_api(self) -> bool:
        """Whether every worker now in the cluster gets an answer from the flow's API."""
        logger = get_logger("falconer.runners")
        if not self.api_url:
            logger.warning("no Prefect API URL to give the Dask workers; shards run without task runs")
            return False
        answers = self.client.run(api_answers, self.api_url)
        deaf = sorted(worker for worker, answered in answers.items() if not answered)
        if deaf:
            logger.warning(
                "Dask worker(s) %s cannot reach the flow's Prefect API at %s; shards run as plain Dask "
                "work (no task runs recorded). Run a `prefect server` every worker can reach and set "
                "PREFECT_API_URL to it (docs/scaling-out.md).", ", ".join(deaf), self.api_url,
            )
        return not deaf

    def _submit_without_api(self, task: Any, parameters: dict[str, Any], wait_for: Any) -> PrefectDaskFuture:
        future = self.client.submit(
            run_without_api, task.fn, self._optimize_futures(parameters),
            self._optimize_futures(wait_for) if wait_for else None,
            key=f"{task.name}-{uuid4().hex}", pure=False,
        )
        return PrefectDaskFuture(wrapped_future=future, task_run_id=uuid4())


def api_answers(url: str, timeout: float = 5.0) -> bool:
    """On a worker: whether the Prefect API at `url` answers (any HTTP status counts)."""
    try:
        urllib.request.urlopen(f"{url}/health", timeout=timeout).close()  # noqa: S310 (http(s) URL of the flow's API)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


def run_without_api(fn: Any, parameters: dict[str, Any], _wait_for: Any = None) -> Any:
    """On a worker: a task's function, outside Prefect, with temporary servers turned off (so
    nothing it calls can start one)."""
    with temporary_settings(updates={PREFECT_SERVER_EPHEMERAL_ENABLED: False}):
        return fn(**parameters)


__all__ = ["ClusterTaskRunner", "api_answers", "run_without_api"]
