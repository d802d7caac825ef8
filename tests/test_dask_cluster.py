"""Execution on an external Dask cluster (`dask scheduler` and two `dask worker` processes on
127.0.0.1, started here) with the flow on its temporary Prefect server, as the CLI runs it: the
workers record their task runs on the flow's server and start no server of their own; when they
cannot reach the flow's API they run the shards as plain Dask work; a worker killed with SIGKILL
leaves no process behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from falconer_core.corpus import CorpusSource
from falconer_core.execution import FILTER_FIELD, ExecutionSettings
from falconer_core.settings import Settings
from falconer_core.store import Store
from tests.mining_corpus import register_untrained, tweets

REPO = Path(__file__).resolve().parents[1]
SHARDS = 5  # 100 texts in shards of 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """A Falconer home, and no Prefect API URL: the flow runs on a temporary server, as the CLI
    does (the session's test server when another module started it, else one of its own, which
    is stopped here rather than at exit)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    folder = tmp_path_factory.mktemp("falconer-cluster")
    before = SubprocessASGIServer._instances.get(None)
    api_url = os.environ.get("PREFECT_API_URL")
    with pytest.MonkeyPatch.context() as patch, temporary_settings(restore_defaults={PREFECT_API_URL}):
        patch.setenv("FALCONER_HOME", str(folder))
        patch.delenv("PREFECT_API_URL", raising=False)
        yield folder
    # the runner exports the flow's API URL for the workers it starts: put back what was there,
    # or later tests' subprocesses would call this module's server after it stopped
    if api_url is None:
        os.environ.pop("PREFECT_API_URL", None)
    else:
        os.environ["PREFECT_API_URL"] = api_url
    started = SubprocessASGIServer._instances.get(None)
    if started is not None and started is not before:
        started.stop()


@pytest.fixture(scope="module")
def model(home, tiny_encoder_path) -> str:
    return register_untrained(home, tiny_encoder_path, "cluster-model")


@pytest.fixture(scope="module")
def cluster(home):
    """A scheduler and two single-threaded workers without nannies (so each worker is the process
    started here), sharing nothing with this process but the environment a user would give them
    (FALCONER_HOME, the code on PYTHONPATH; no PREFECT_API_URL). Every process is stopped by PID."""
    from distributed import Client

    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    env.update(FALCONER_HOME=str(home), PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = (home / "cluster.log").open("w")
    started: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        process = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(process)
        return process

    try:
        start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
              "--no-dashboard")
        workers = [
            start("distributed.cli.dask_worker", address, "--no-nanny", "--nthreads", "1", "--no-dashboard",
                  "--host", "127.0.0.1", "--name", f"w{i}")
            for i in range(2)
        ]
        deadline = time.monotonic() + 120
        while True:  # the scheduler takes a few seconds to listen
            try:
                with Client(address, timeout=5) as client:
                    client.wait_for_workers(2, timeout=120)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        yield address, workers
    finally:  # also whatever a worker started, should one start a server after all
        leftovers = descendants(started)
        for process in reversed(started):
            if process.poll() is None:
                process.kill()
            process.wait(timeout=30)
        stop(leftovers)
        log.close()


def corpus_file(home, name: str, seed: int) -> CorpusSource:
    path = home / f"{name}.csv"
    tweets(100, seed=seed).to_csv(path, index=False)
    return CorpusSource(path=str(path), id_column="tweet_id", name=name)


def assert_complete(run_id: str) -> None:
    with Store(Settings().store_path) as store:
        frame = store.outputs(run_id)
    verdicts = frame[frame["field"] == FILTER_FIELD]
    assert sorted(verdicts["text_id"]) == [f"t{i:03d}" for i in range(100)]


def descendants(workers: list[subprocess.Popen]) -> list[psutil.Process]:
    return [child for worker in workers if worker.poll() is None
            for child in psutil.Process(worker.pid).children(recursive=True)]


def stop(processes: list[psutil.Process]) -> None:
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=15)


def assert_no_prefect_server(workers: list[subprocess.Popen], home: Path) -> None:
    servers = [" ".join(child.cmdline()) for child in descendants(workers)]
    servers = [line for line in servers if "uvicorn" in line or "prefect" in line]
    assert not servers, f"a worker started a Prefect server: {servers}\n" + (home / "cluster.log").read_text()[-3000:]


def shard_task_runs(flow_run_ids: set) -> list:
    """The `execute-shard-*` task runs that the flow's API holds for these flow runs."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, TaskRunFilter, TaskRunFilterName

    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(flow_run_ids))),
            task_run_filter=TaskRunFilter(name=TaskRunFilterName(like_="execute-shard-")),
        )


def execute_shards_runs() -> set:
    """Ids of the `execute-shards` flow runs on the flow's API."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["execute-shards"])))
    return {run.id for run in runs}


def run_on(address: str, home: Path, model: str, name: str, seed: int) -> set:
    """Execute a fresh corpus on the cluster; returns the ids of the flow runs it made for its shards."""
    from flows import execute

    before = execute_shards_runs()
    settings = ExecutionSettings(runner="dask", dask_address=address, shard_size=20, reuse=False, run_id=name)
    result = execute(model, corpus_file(home, name, seed), execution=settings)
    assert result.shards_run == SHARDS
    assert_complete(name)
    return execute_shards_runs() - before


def test_workers_that_cannot_reach_the_flows_api_run_shards_without_a_server_of_their_own(
    home, model, cluster, monkeypatch,
):
    import flows.runners

    address, workers = cluster
    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # restored after: the runner exports the flow's
    nowhere = f"http://127.0.0.1:{_free_port()}/api"  # an API no worker reaches (a server on another host)
    monkeypatch.setattr(flows.runners, "flow_api_url", lambda: nowhere)
    shard_runs = run_on(address, home, model, "unreachable-api", seed=3)
    assert len(shard_runs) == 1 and shard_task_runs(shard_runs) == []  # the flow still records itself
    assert_no_prefect_server(workers, home)


def test_workers_report_to_the_flows_api_and_leave_no_process_when_killed(home, model, cluster, monkeypatch):
    address, workers = cluster
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    shard_runs = run_on(address, home, model, "reachable-api", seed=4)
    deadline = time.monotonic() + 60  # task run states may reach the server a moment after the results
    while True:
        runs = shard_task_runs(shard_runs)
        if (len(runs) == SHARDS and all(run.state_name == "Completed" for run in runs)) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sorted(run.name for run in runs) == [f"execute-shard-{i}" for i in range(SHARDS)]
    assert all(run.state_name == "Completed" for run in runs), [run.state_name for run in runs]
    assert_no_prefect_server(workers, home)

    victim = workers[0]
    family = [psutil.Process(victim.pid), *descendants([victim])]
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    _, alive = psutil.wait_procs(family, timeout=15)
    survivors = [" ".join(process.cmdline()) for process in alive]
    stop(alive)
    assert not survivors
