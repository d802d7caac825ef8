"""The drift loop's second half: a declared drift is emitted as `falconer.model.drift`, the
`retune-on-drift` deployment's trigger (prefect.yaml) fires on it with the event's version, task
and corpus, and the run re-tunes the task's champion (or, with `retune` off, only says so).

The fast tests check the event and the trigger against each other without a server; the slow
one runs the loop on a real `prefect server` and worker (as tests/test_deployment.py does), with
a tiny champion grown from the demo tweets' gold columns."""

from __future__ import annotations

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

    from flows.retune_on_drift import retune_on_drift

    checked = retune_on_drift.validate_parameters(parameters)
    assert checked["corpus"].path == "/data/tweets-december.csv" and checked["annotator"].name == "openai"
