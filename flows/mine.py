"""`mine`: an instruction and a corpus in, mined records in DuckDB out. Incubates a metamodel
(plan, sample, annotate, fine-tune, evaluate, register), executes it over the whole corpus,
and compares what that cost with the annotator doing every text."""

from __future__ import annotations

from prefect import flow, get_run_logger

from falconer_core.cascade import CascadeSettings
from falconer_core.corpus import CorpusSource
from falconer_core.execution import ExecutionSettings
from falconer_core.reporting import MineResult, mining_costs
from flows import parameters as p
from flows.artifacts import publish_costs
from flows.execute import execute
from flows.incubate import incubate
from flows.parameters import IncubationSettings, TaskSpec


@flow(name="mine", validate_parameters=True)
def mine(
    corpus: CorpusSource = p.corpus(),
    task: TaskSpec = p.task(),
    incubation: IncubationSettings = p.incubation(),
    execution: ExecutionSettings = p.execution(),
    cascade: CascadeSettings | None = p.cascade(),
) -> MineResult:
    """Mine `corpus` for `task.instruction` (or run `task.plan`) end to end; the new version
    executes whether or not it passed the gate, which only decides who is champion."""
    if cascade is not None:
        cascade.check_llm()  # before hours of annotation and fine-tuning, not after
    grown = incubate(corpus=corpus, task=task, incubation=incubation)
    if not grown.champion:
        get_run_logger().warning("%s did not pass the gate (%s); mining with it anyway", grown.model_version, grown.promotion)
    executed = execute(model=grown.model_version, corpus=corpus, plan=grown.plan, execution=execution, cascade=cascade)
    costs = mining_costs(grown, executed)
    publish_costs(costs)
    return MineResult(incubation=grown, execution=executed, costs=costs)
