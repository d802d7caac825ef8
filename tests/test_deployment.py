"""The deployments of prefect.yaml on a real Prefect server: `falconer deploy` (which runs
`prefect deploy --all` after creating the process work pool), a process worker, and
`prefect deployment run mine/mine`; the run completes and its outputs are in DuckDB. Then a
second task is mined into the same home and `execute/execute-nightly` runs: it must run the
demo task's champion, not the newest champion of any task.

Everything listens on 127.0.0.1 on a free port, with PREFECT_HOME and FALCONER_HOME in a
temporary folder; every process the test starts is stopped in `finally`, by its own PID.
"""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from deployments.project import (
    EXECUTE_DEPLOYMENT,
    MINE_DEPLOYMENT,
    PREFECT_FILE,
    PROJECT_ROOT,
    run_deployment,
    start_worker,
)
from deployments.server import LocalServer, ServerError, free_port, stop_process
from falconer_core.data import DEMO_CORPUS_PATH as DEMO_CORPUS
from falconer_core.data import DEMO_PLAN_PATH as DEMO_PLAN

PEOPLE_PLAN = {"steps": [{"name": "people", "op": "span", "instruction": "Extract the names of people."}],
               "outputs": [{"name": "people", "step": "people"}]}
N_TEXTS = 40
SHARD_SIZE = 16

pytestmark = pytest.mark.timeout(1500)


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """The first tweets of the demo corpus, with their gold columns (the demo plan's steps)."""
    frame = pd.read_csv(DEMO_CORPUS, dtype=str, keep_default_na=False).head(N_TEXTS)
    path = tmp_path / "tweets.csv"
    frame.to_csv(path, index=False)
    return path


def _nightly() -> dict:
    deployments = yaml.safe_load(PREFECT_FILE.read_text())["deployments"]
    return next(d for d in deployments if d["name"] == EXECUTE_DEPLOYMENT.split("/")[1])


def test_the_nightly_deployment_names_the_demo_tasks_champion():
    from falconer_core.plan import Plan
    from falconer_core.registry import champion_alias

    assert _nightly()["parameters"]["model"] == f"falconer-metamodel@{champion_alias(Plan.load(DEMO_PLAN).hash)}"
    mine = next(d for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"] if d["name"] == "mine")
    assert PROJECT_ROOT / mine["parameters"]["task"]["plan"] == DEMO_PLAN  # the packaged demo plan, not a copy
    assert PROJECT_ROOT / mine["parameters"]["corpus"]["path"] == DEMO_CORPUS


def test_every_deployments_parameters_fit_its_flow():
    """prefect.yaml's parameter blocks validate against the flows' signatures: a parameter the
    flow no longer has (a top-level `sampling` once it moved into `incubation`) fails here, not
    on a worker at run time."""
    import importlib

    from falconer_core.drift.event import DRIFT_EVENT, DriftEvent
    from tests.triggers import received, run_parameters

    drift = DriftEvent(version="falconer-metamodel/3", plan_hash="fe3600b1cb276819", corpus={"path": "tweets.csv"},
                       figures={"psi": 0.4})
    event = received(DRIFT_EVENT, drift.resource(), drift.payload())
    triggered = 0
    for deployment in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]:
        module, name = deployment["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), name)
        if deployment.get("triggers"):  # the parameters a triggered run gets: the deployment's and the event's
            flow.validate_parameters(run_parameters(deployment, event))
            triggered += 1
        else:
            flow.validate_parameters(deployment["parameters"])
    assert triggered == 1  # retune-on-drift
    from flows import mine

    with pytest.raises(Exception, match="sampling"):
        mine.validate_parameters({"corpus": {"path": "tweets.csv"}, "sampling": {"fraction": 0.2}})
    with pytest.raises(Exception, match="instruction"):  # moved into `task`
        mine.validate_parameters({"corpus": {"path": "tweets.csv"}, "instruction": "Find places"})


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text("utf-8", errors="replace")[-chars:] if path.exists() else "(no log)"


def test_mine_deployment_runs_on_a_worker_and_nightly_runs_its_tasks_champion(tmp_path, tiny_corpus, tiny_encoder_path):
    server = LocalServer(port=free_port(), home=tmp_path / "prefect", ui=False)
    env = server.client_env()
    env["FALCONER_HOME"] = str(tmp_path / "falconer")
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"
    started: list[subprocess.Popen] = []
    try:
        with server_log.open("wb") as log:
            started.append(server.start(log=log))
        server.wait_ready(started[0], timeout=180)

        deployed = subprocess.run(
            [str(Path(sys.executable).with_name("falconer")), "deploy", "--api-url", server.api_url],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
        )
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "mine" in deployed.stdout and "execute-nightly" in deployed.stdout, deployed.stdout

        with worker_log.open("wb") as log:
            started.append(start_worker(env, log=log))
        deployed_task = next(d for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"]
                             if d["name"] == "mine")["parameters"]["task"]
        parameters = {
            "corpus": {"path": str(tiny_corpus), "id_column": "id", "name": "tiny-tweets"},
            # a run's `task` replaces the deployment's: keep its plan and annotator, change the base
            "task": {**deployed_task, "base_model": str(tiny_encoder_path)},
            "incubation": {
                "sampling": {"fraction": 0.5, "floor": 20, "cap": N_TEXTS},
                "training": {"epochs": 1, "progress": False},
                "gate": {"mean_f1": 0.0},  # the tiny encoder is weak; the gate is not what is tested here
            },
            "execution": {"shard_size": SHARD_SIZE},
        }
        corpus = parameters["corpus"]
        try:
            flow_run_id = run_deployment(env, MINE_DEPLOYMENT, parameters, watch_timeout=600)
            # another task mined into the same home becomes the champion of *its* task only
            run_deployment(env, MINE_DEPLOYMENT, {**parameters, "task": {**parameters["task"], "plan": PEOPLE_PLAN}},
                           watch_timeout=600)
            run_deployment(env, EXECUTE_DEPLOYMENT, {"corpus": corpus}, watch_timeout=600)
        except ServerError as exc:
            pytest.fail(f"{exc}\n--- worker log ---\n{_tail(worker_log)}")
        assert uuid.UUID(flow_run_id)
    finally:
        for process in reversed(started):
            stop_process(process)

    from falconer_core.plan import Plan
    from falconer_core.store import Store

    with Store(tmp_path / "falconer" / "falconer.duckdb") as db:
        runs = db.runs(kind="execute").sort_values("started_at")
        assert len(runs) == 3 and set(runs["status"]) == {"completed"}
        first, second, nightly = (runs.iloc[k] for k in range(3))
        verdicts = db.outputs(first["run_id"], field="_filter")
        shards = db.completed_shards(first["run_id"])
    corpus_ids = pd.read_csv(tiny_corpus, dtype=str)["id"].tolist()
    assert sorted(verdicts["text_id"]) == sorted(corpus_ids)  # every text once: no loss, no duplicates
    assert shards == list(range(math.ceil(N_TEXTS / SHARD_SIZE)))
    assert set(verdicts["model_version"]) == {"falconer-metamodel/1"}
    assert (second["model_version"], second["plan_hash"]) == ("falconer-metamodel/2", Plan.from_dict(PEOPLE_PLAN).hash)
    # the nightly job ran the demo task's champion and plan, not the newest champion (version 2)
    assert (nightly["model_version"], nightly["plan_hash"]) == ("falconer-metamodel/1", Plan.load(DEMO_PLAN).hash)
