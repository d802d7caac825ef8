"""Emitting a declared drift as a Prefect event (`falconer.model.drift`), which the
`retune-on-drift` deployment's trigger turns into a re-tune of the task's champion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event
from prefect.exceptions import MissingContextError

from falconer_core.corpus import CorpusSource
from falconer_core.drift.event import DRIFT_EVENT, DriftEvent


@task(name="emit-drift-event", cache_policy=NO_CACHE)
def emit_drift_event(
    version: str, plan_hash: str, payload: Mapping[str, Any], *, corpus: CorpusSource | Mapping[str, Any] | str,
) -> str | None:
    """Emit `falconer.model.drift` for `version` (NAME/N) on task `plan_hash`, with `payload`
    (the drift figures; keys named like credentials are dropped) and the drifted `corpus`, which
    the re-tune samples from. Returns the event's id, or None when this process emits no events
    (no Prefect API configured)."""
    drift = DriftEvent(version=version, plan_hash=plan_hash, corpus=CorpusSource.model_validate(corpus),
                       figures=dict(payload))
    event = emit_event(event=DRIFT_EVENT, resource=drift.resource(), payload=drift.payload())
    try:
        get_run_logger().info("%s for %s (task %s) on %s: %s", DRIFT_EVENT, version, plan_hash, drift.corpus.path,
                              "emitted" if event else "not emitted (no Prefect API to send it to)")
    except MissingContextError:  # called with `.fn` outside a run
        pass
    return str(event.id) if event else None
