"""The drift loop's second half: a declared drift is emitted as `falconer.model.drift`, the
`retune-on-drift` deployment's trigger (prefect.yaml) fires on it with the event's version, task
and corpus, and the run re-tunes the task's champion (or, with `retune` off, only says so).

The fast tests check the event and the trigger against each other without a server; the slow
one runs the loop on a real `prefect server` and worker (as tests/test_deployment.py does), with
a tiny champion grown from the demo tweets' gold columns."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import yaml

from deployments.project import PREFECT_FILE
from falconer_core.drift.event import DRIFT_EVENT, DriftEvent, public_figures
from tests.triggers import automation, received, run_parameters

DEPLOYMENT = "retune-on-drift"


def _deployment() -> dict:
    return next(d for d in yaml.safe_load(PREFECT_FILE.read_text())["deployments"] if d["name"] == DEPLOYMENT)


def _emitted(monkeypatch, **kwargs) -> dict:
    """What `emit_drift_event` hands Prefect's `emit_event`."""
    import tasks.drift_events as module

    sent: list[dict] = []
    monkeypatch.setattr(module, "emit_event", lambda **event: sent.append(event))
    module.emit_drift_event.fn(**kwargs)
    assert len(sent) == 1
    return sent[0]


def test_the_drift_event_names_the_version_and_task_and_keeps_credentials_out(monkeypatch):
    sent = _emitted(monkeypatch, version="falconer-metamodel/4", plan_hash="fe3600b1cb276819",
                    payload={"psi": 0.41, "estimate": {"agreement": 0.81, "api_key": "sk-live"}, "token": "t0k"},
                    corpus={"path": "/data/tweets-december.csv", "id_column": "id"})
    assert sent["event"] == DRIFT_EVENT == "falconer.model.drift"
    assert sent["resource"]["prefect.resource.id"] == "falconer.model.falconer-metamodel/4"
    assert (sent["resource"]["falconer.model"], sent["resource"]["falconer.plan"]) == (
        "falconer-metamodel/4", "fe3600b1cb276819")
    assert all(isinstance(v, str) for v in sent["resource"].values())  # Prefect resource labels are strings
    assert sent["payload"]["figures"] == {"psi": 0.41, "estimate": {"agreement": 0.81}}
    assert "sk-live" not in str(sent) and "t0k" not in str(sent)
    assert sent["payload"]["corpus"]["path"] == "/data/tweets-december.csv"


def test_public_figures_are_plain_json():
    from falconer_core.corpus import CorpusSource

    figures = public_figures({"ks": float("nan"), "steps": [{"pass_rate": 0.5, "password": "x"}],
                              "source": CorpusSource(path="a.csv")})
    assert figures["ks"] is None and figures["steps"] == [{"pass_rate": 0.5}]
    assert figures["source"]["path"] == "a.csv"
    with pytest.raises(Exception):
        DriftEvent(version="falconer-metamodel", plan_hash="x", corpus={"path": "a.csv"}, secret="no")


def test_the_trigger_fires_on_the_drift_event_only_and_passes_its_fields(monkeypatch):
    sent = _emitted(monkeypatch, version="falconer-metamodel/4", plan_hash="fe3600b1cb276819", payload={"psi": 0.4},
                    corpus={"path": "/data/tweets-december.csv", "id_column": "id"})
    event = received(sent["event"], sent["resource"], sent["payload"])
    deployment = _deployment()
    trigger = automation(deployment)
    assert trigger.enabled and trigger.actions[0].type == "run-deployment"
    assert trigger.trigger.covers(event)
    assert not trigger.trigger.covers(received("falconer.model.registered", sent["resource"], sent["payload"]))
    assert not trigger.trigger.covers(received(DRIFT_EVENT, {"prefect.resource.id": "prefect.flow-run.1"}, {}))

    parameters = run_parameters(deployment, event)
    assert (parameters["model"], parameters["plan_hash"]) == ("falconer-metamodel/4", "fe3600b1cb276819")
    assert parameters["corpus"] == {"path": "/data/tweets-december.csv", "text_column": "text", "id_column": "id",
                                    "name": None}
    assert parameters["retune"] is True and parameters["incubation"]["active"]["rounds"] > 1
    assert parameters["incubation"]["active"]["stop_at_gate"] is False  # a drift re-tune spends its budget

    from flows.retune_on_drift import retune_on_drift

    checked = retune_on_drift.validate_parameters(parameters)
    assert checked["corpus"].path == "/data/tweets-december.csv" and checked["annotator"].name == "openai"


# ---------------------------------------------------------------------------------------- the loop, for real
N_CHAMPION, N_DRIFTED, N_SHIFTED = 40, 80, 120
TINY_INCUBATION = {
    "sampling": {"fraction": 0.5, "floor": 20, "cap": 40},
    "active": {"rounds": 2},
    "training": {"epochs": 1, "progress": False},
    "gate": {"mean_f1": 0.0},  # the tiny encoder is weak; the gate is not what is tested here
}
GROW_CHAMPION = """
import json, sys
from flows.incubate import incubate
result = incubate(**json.loads(sys.argv[1]))
print("REGISTERED", result.model_version, result.champion)
"""
EMIT = """
import json, sys
from prefect.events.worker import EventsWorker
from tasks.drift_events import emit_drift_event
print("EVENT", emit_drift_event.fn(**json.loads(sys.argv[1])))
EventsWorker.drain_all()
"""


def _api(server, method: str, path: str, body: dict | None = None):
    import json
    import urllib.request

    request = urllib.request.Request(f"{server.api_url}{path}", method=method,
                                     data=None if method == "GET" else json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        text = reply.read().decode()
    return json.loads(text) if text else None


def _python(script: str, argument: dict, env: dict, timeout: float) -> str:
    import json
    import subprocess
    import sys

    from deployments.project import PROJECT_ROOT

    done = subprocess.run([sys.executable, "-c", script, json.dumps(argument)], env=env, cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return done.stdout


def _wait(what: str, probe, timeout: float, logs=()):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(1.0)
    tails = "\n".join(f"--- {p.name} ---\n{p.read_text('utf-8', 'replace')[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@contextmanager
def _loop_server(tmp_path, monkeypatch, tiny_encoder_path, deployments: list[str], champion_tweets: int = N_CHAMPION,
                 champion_incubation: dict | None = None):
    """A real `prefect server` with `deployments` deployed and a worker, a Falconer home, and
    the demo task's champion `falconer-metamodel/1` grown on the first `champion_tweets` demo
    tweets with the gold annotator; yields what the test needs, stops both processes after."""
    import subprocess

    import pandas as pd

    from deployments.project import deploy, start_worker
    from deployments.server import LocalServer, free_port, stop_process
    from falconer_core.data import DEMO_CORPUS_PATH, DEMO_PLAN_PATH
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    tweets = pd.read_csv(DEMO_CORPUS_PATH, dtype=str, keep_default_na=False)
    (tmp_path / "before.csv").write_text(tweets.head(champion_tweets).to_csv(index=False))
    server = LocalServer(port=free_port(), home=tmp_path / "prefect", ui=False)
    env = server.client_env()
    env.update(FALCONER_HOME=str(tmp_path / "falconer"), PREFECT_WORKER_QUERY_SECONDS="2")
    monkeypatch.setenv("FALCONER_HOME", env["FALCONER_HOME"])
    logs = [tmp_path / "server.log", tmp_path / "worker.log"]
    started: list[subprocess.Popen] = []
    try:
        with logs[0].open("wb") as log:
            started.append(server.start(log=log))
        server.wait_ready(started[0], timeout=180)
        deployed = deploy(env, deployments)
        assert all(name in deployed for name in deployments), deployed
        with logs[1].open("wb") as log:
            started.append(start_worker(env, log=log))
        grown = _python(GROW_CHAMPION, {
            "corpus": {"path": str(tmp_path / "before.csv"), "id_column": "id", "name": "tweets-before"},
            "task": {"plan": str(DEMO_PLAN_PATH), "annotator": {"name": "gold"}, "base_model": str(tiny_encoder_path)},
            "incubation": champion_incubation or {**TINY_INCUBATION, "active": {"rounds": 1}},
        }, env, timeout=400)
        assert "REGISTERED falconer-metamodel/1 True" in grown, grown
        plan_hash = Plan.load(DEMO_PLAN_PATH).hash
        registry = Registry.from_settings(Settings())
        assert str(registry.champion_of("falconer-metamodel", plan_hash)) == "falconer-metamodel/1"
        ids = {d["name"]: d["id"] for d in _api(server, "POST", "/deployments/filter",
                                                 {"deployments": {"name": {"any_": deployments}}})}
        yield SimpleNamespace(server=server, env=env, logs=logs, registry=registry, plan_hash=plan_hash,
                              tweets=tweets, deployments=ids)
    finally:
        for process in reversed(started):
            stop_process(process)


def _runs_of(loop, deployment: str) -> list[dict]:
    return _api(loop.server, "POST", "/flow_runs/filter", {
        "flow_runs": {"deployment_id": {"any_": [loop.deployments[deployment]]}}, "sort": "EXPECTED_START_TIME_ASC"})


def _all_finished(loop, deployment: str, at_least: int) -> list[dict]:
    """The deployment's runs once there are `at_least` and all of them have finished, else []."""
    runs = _runs_of(loop, deployment)
    done = [r for r in runs if r["state"] and r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED")]
    return runs if len(runs) >= at_least and len(done) == len(runs) else []


def _assert_completed(loop, run: dict) -> None:
    assert run["state"]["type"] == "COMPLETED", (run["state"], loop.logs[1].read_text()[-4000:])


@pytest.mark.slow  # a real server, a worker, a champion and three triggered runs: about 90 s
@pytest.mark.timeout(900)
def test_a_drift_event_starts_retune_on_drift_which_moves_the_champion_once_unless_retune_is_off(
    tmp_path, tiny_encoder_path, monkeypatch,
):
    from datetime import datetime, timedelta, timezone

    from falconer_core.registry import tags as T

    with _loop_server(tmp_path, monkeypatch, tiny_encoder_path, [DEPLOYMENT]) as loop:
        (tmp_path / "after.csv").write_text(loop.tweets.iloc[N_CHAMPION:N_CHAMPION + N_DRIFTED].to_csv(index=False))
        drifted = {"path": str(tmp_path / "after.csv"), "id_column": "id", "name": "tweets-after"}
        registry, plan_hash, deployment_id = loop.registry, loop.plan_hash, loop.deployments[DEPLOYMENT]
        since = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()

        def drift_and_wait(retune: bool, runs_before: int) -> dict:
            """Switch the deployment's `retune` as a user would in the UI, emit the drift of
            version 1, and wait for the run the trigger starts to finish."""
            _api(loop.server, "PATCH", f"/deployments/{deployment_id}", {"parameters": {
                "retune": retune, "annotator": {"name": "gold"}, "incubation": TINY_INCUBATION}})
            out = _python(EMIT, {"version": "falconer-metamodel/1", "plan_hash": plan_hash, "corpus": drifted,
                                 "payload": {"psi": 0.42, "agreement_estimate": 0.71, "api_key": "sk-never"}},
                          loop.env, timeout=120)
            event_id = out.split("EVENT", 1)[1].split()[0]
            seen = _wait("the server to store the drift event", lambda: [
                e for e in _drift_events(loop, since) if e["id"] == event_id], timeout=60, logs=loop.logs)
            assert seen[0]["resource"]["falconer.plan"] == plan_hash
            assert "sk-never" not in str(seen[0]) and seen[0]["payload"]["figures"]["psi"] == 0.42
            run = _wait("the triggered run to finish", lambda: _all_finished(loop, DEPLOYMENT, runs_before + 1),
                        timeout=300, logs=loop.logs)[-1]
            assert run["created_by"]["type"] == "AUTOMATION", run["created_by"]  # started by the trigger
            _assert_completed(loop, run)
            assert (run["parameters"]["model"], run["parameters"]["plan_hash"]) == ("falconer-metamodel/1", plan_hash)
            assert run["parameters"]["corpus"]["path"] == drifted["path"] and run["parameters"]["retune"] is retune
            return run

        drift_and_wait(retune=False, runs_before=0)
        assert [str(v) for v in registry.versions("falconer-metamodel")] == ["falconer-metamodel/1"]  # nothing tuned
        assert str(registry.champion_of("falconer-metamodel", plan_hash)) == "falconer-metamodel/1"

        drift_and_wait(retune=True, runs_before=1)
        child = registry.champion_of("falconer-metamodel", plan_hash)
        assert str(child) == "falconer-metamodel/2", registry.lookup.tags("falconer-metamodel/2")
        assert registry.lookup.tags(child)[T.PARENT_VERSION] == "falconer-metamodel/1"  # re-tuned from the champion

        # a late event for the version the champion has moved on from re-tunes nothing
        drift_and_wait(retune=True, runs_before=2)
        assert [str(v) for v in registry.versions("falconer-metamodel")] == ["falconer-metamodel/2", "falconer-metamodel/1"]
        assert str(registry.champion_of("falconer-metamodel", plan_hash)) == "falconer-metamodel/2"


def _drift_events(loop, since: str) -> list[dict]:
    return _api(loop.server, "POST", "/events/filter", {"filter": {
        "event": {"name": [DRIFT_EVENT]}, "occurred": {"since": since}}})["events"]


NIGHTLY = "execute-nightly"


@pytest.mark.slow  # a real server, a worker, a champion, two nightly runs and the re-tune between: about 2 min
@pytest.mark.timeout(900)
def test_a_nightly_run_on_a_shifted_corpus_declares_drift_and_the_next_one_runs_the_retuned_champion(
    tmp_path, tiny_encoder_path, monkeypatch,
):
    """The whole loop with nothing emitted by hand: the nightly deployment runs the champion on a
    corpus from another source (templated tweets, tests/mining_corpus.py: its confidences move),
    the LLM disagrees with it there, so the run declares drift and emits the event; the trigger
    re-tunes the champion on that corpus with the same LLM, and the next nightly run, whose
    model is still `champion-<plan_hash>`, runs the child."""
    from datetime import datetime, timedelta, timezone

    from falconer_core.data import demo_plan
    from falconer_core.drift import measure_confidences
    from falconer_core.metamodel import Metamodel
    from falconer_core.store import Store
    from tests.llm_server import Annotator, ScriptedLLMServer
    from tests.mining_corpus import tweets as templated

    since = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    # a reference of 50 held-out tweets, so a KS test can see the shift in the tiny model's confidences
    grow = {**TINY_INCUBATION, "active": {"rounds": 1}, "sampling": {"fraction": 1.0, "cap": 200},
            "holdout": {"fraction": 0.25}}
    with _loop_server(tmp_path, monkeypatch, tiny_encoder_path, [NIGHTLY, DEPLOYMENT], 200, grow) as loop:
        shifted = templated(N_SHIFTED).rename(columns={"tweet_id": "id"})[["id", "text"]]
        shifted.to_csv(tmp_path / "shifted.csv", index=False)
        corpus = {"path": str(tmp_path / "shifted.csv"), "id_column": "id", "name": "tweets-shifted"}
        model = Metamodel.load(loop.registry.download("falconer-metamodel/1"))
        passed = measure_confidences(model, demo_plan(), shifted["text"].tolist())[0].passed
        says = {text: not ok for text, ok in zip(shifted["text"], passed)}  # the LLM: the champion is wrong here
        with ScriptedLLMServer(handler=Annotator(lambda text, _i: says[text], lambda _t, _i: [])) as llm_server:
            llm = {"name": "openai", "base_url": llm_server.url, "model": "test-model", "batch_size": 8}
            _api(loop.server, "PATCH", f"/deployments/{loop.deployments[DEPLOYMENT]}", {"parameters": {
                "annotator": llm, "incubation": TINY_INCUBATION}})
            champion = f"falconer-metamodel@champion-{loop.plan_hash}"
            nightly = {"model": champion, "corpus": corpus,
                       "drift": {"audit_llm": llm, "audit_size": 20, "min_texts": 50}}

            def run_nightly(k: int) -> dict:
                """Start a run of the nightly deployment now (its schedule has runs queued for
                2 a.m.: those stay scheduled) and wait for it to finish."""
                created = _api(loop.server, "POST", f"/deployments/{loop.deployments[NIGHTLY]}/create_flow_run",
                               {"parameters": nightly})

                def finished() -> dict | None:
                    run = _api(loop.server, "GET", f"/flow_runs/{created['id']}")
                    return run if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED") else None
                run = _wait(f"nightly run {k}", finished, timeout=300, logs=loop.logs)
                _assert_completed(loop, run)
                return run

            run_nightly(1)
            with Store() as store:
                first = store.runs("execute").iloc[0]
                verdict = store.drift(first["run_id"])
            assert first["model_version"] == "falconer-metamodel/1"
            assert verdict.fired and verdict.declared, verdict.reason  # the signal fired, the audit confirmed it
            assert verdict.audit.n_texts == 20 and verdict.audit.high < verdict.audit.floor

            (event,) = _wait("the run's drift event", lambda: _drift_events(loop, since), timeout=60, logs=loop.logs)
            assert event["resource"]["falconer.model"] == "falconer-metamodel/1"
            assert event["payload"]["corpus"]["path"] == corpus["path"]
            retuned = _wait("the re-tune the trigger starts", lambda: _all_finished(loop, DEPLOYMENT, 1),
                            timeout=400, logs=loop.logs)[-1]
            assert retuned["created_by"]["type"] == "AUTOMATION", retuned["created_by"]
            _assert_completed(loop, retuned)
            assert str(loop.registry.champion_of("falconer-metamodel", loop.plan_hash)) == "falconer-metamodel/2"

            nightly["drift"] = {"check": False}  # the child's own check is not what is tested here
            run_nightly(2)
            with Store() as store:
                second = store.runs("execute").iloc[0]
            assert second["run_id"] != first["run_id"]
            assert second["model_version"] == "falconer-metamodel/2"  # the next night runs the new champion
