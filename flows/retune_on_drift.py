"""`retune-on-drift`: the action behind the `falconer.model.drift` trigger. It finds the current
champion of the drifted task and re-tunes it on the drifted corpus through `retune` (annotation
in rounds from the texts the champion is least sure of, replay of earlier tasks, the usual
gate, promotion), so the next nightly run, which names `champion-<plan_hash>`, runs the new
version. With `retune` off it only says what it would do: the trigger stays, its action is off."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import Field

import tasks
from falconer_core.annotators import AnnotatorChoice
from falconer_core.corpus import CorpusSource
from falconer_core.errors import ConfigError
from falconer_core.registry.refs import parse_ref
from falconer_core.reporting import IncubationResult
from falconer_core.sampling.active import ActiveSettings
from flows import parameters as p
from flows.parameters import IncubationSettings, TaskSpec
from flows.retune import retune as retune_flow

#: Rounds by default: a drawn first batch, then the texts the re-tuned champion is least sure of,
#: the whole budget spent (clearing the absolute gate early is not recovering: on
#: benchmarks/drift_loop.py one 50-text round recovered 0.760 of a pre-shift 0.840, 100 texts 0.890).
DRIFT_INCUBATION = IncubationSettings(active=ActiveSettings(rounds=3, stop_at_gate=False))


@flow(name="retune-on-drift", validate_parameters=True)
def retune_on_drift(
    model: str = Field(description="The version drift was declared for (NAME/N, the event's `falconer.model`), "
                       "or a model NAME: its task's current champion is re-tuned."),
    plan_hash: str = Field(description="The drifted task (the event's `falconer.plan`)."),
    corpus: CorpusSource = p.corpus(),
    retune: bool = Field(True, description="Re-tune and promote; false only logs what would be done."),
    annotator: AnnotatorChoice = p.annotator(),
    incubation: IncubationSettings = Field(DRIFT_INCUBATION, description=p.incubation().description),
) -> IncubationResult | None:
    """Re-tune task `plan_hash`'s champion on `corpus`, unless the champion has already moved
    on from the drifted version `model` (an earlier trigger re-tuned it) or `retune` is off."""
    log = get_run_logger()
    name, drifted, _ = parse_ref(model)
    champion = tasks.find_champion(model_name=name, plan_hash=plan_hash)
    if champion is None:
        raise ConfigError(f"task {plan_hash} has no champion under {name!r}: nothing to re-tune")
    if drifted is not None and champion != f"{name}/{drifted}":
        log.info("drift was declared for %s, but task %s's champion is now %s: nothing to re-tune",
                 model, plan_hash, champion)
        return None
    plan = tasks.fetch_plan(champion)
    if not retune:
        log.info("retune is off: would re-tune %s (task %s) on %s with %d annotation round(s)", champion,
                 plan_hash, corpus.path, incubation.active.rounds)
        return None
    log.info("re-tuning %s (task %s) on the drifted corpus %s", champion, plan_hash, corpus.path)
    return retune_flow(corpus=corpus, task=TaskSpec(plan=plan, annotator=annotator, model_name=name),
                       model=champion, incubation=incubation)
