"""What the flows return: small, JSON-ready summaries a caller (CLI, notebook, another flow)
can print or act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from falconer_core.cascade.report import CascadeReport
from falconer_core.drift.verdict import DriftVerdict
from falconer_core.evaluation.scoring import Evaluation
from falconer_core.execution.runplan import RunPlan
from falconer_core.execution.shards import ShardResult
from falconer_core.plan import Plan
from falconer_core.reporting.costs import CostRow, compare_costs


class IncubationResult(BaseModel):
    """A fine-tuned, evaluated, registered metamodel for one plan."""

    model_version: str = Field(description="Registered NAME/VERSION.")
    champion: bool = Field(description="Whether it passed the gate and is now the champion.")
    promotion: list[str] = Field(description="The gate's reasons.")
    checkpoint: str = Field(description="Local checkpoint folder.")
    base_model: str
    parent: str | None = Field(description="The version it was retuned from, if any.")
    plan: Plan
    corpus_id: str
    annotator: str
    annotation_set_hash: str
    n_annotations: int
    evaluation: Evaluation
    annotation_seconds: float
    annotation_usage: dict = Field(default_factory=dict, description="LLM calls, tokens and cost of annotating.")
    fine_tune_seconds: float
    learning_curve: list[dict] = Field(
        default_factory=list, description="Per annotation round: annotations so far and held-out scores with intervals.",
    )


class ExecutionResult(BaseModel):
    """Outputs of one model over one corpus, in the store."""

    run_id: str
    model_version: str
    plan_hash: str
    corpus_id: str
    store_path: str
    n_texts: int
    shards: int = Field(description="Shards committed in total.")
    shards_run: int = Field(description="Shards executed by this flow run (the others were already done).")
    shards_reused: int = Field(0, description="Shards copied from other runs that had done the same texts.")
    runner: str = Field("sequential", description="Where the shards ran: sequential, processes or dask.")
    processes: int = Field(0, description="Distinct worker processes that executed shards in this flow run.")
    model_loads_per_process: int = Field(0, description="Most times one worker process loaded the model (1: once each).")
    rows: int = Field(description="Output rows of the run in the store.")
    seconds: float = Field(description="Metamodel time spent by this flow run.")
    texts_run: int = Field(description="Texts executed by this flow run.")
    cascade: CascadeReport | None = Field(
        None, description="A cascade run's report: thresholds, texts routed to the LLM, its usage, budget and audit.",
    )
    drift: DriftVerdict | None = Field(
        None, description="The run's drift check: signals against the version's reference, audit, verdict (None: off).",
    )


class MineResult(BaseModel):
    """An instruction mined over a corpus, end to end."""

    incubation: IncubationResult
    execution: ExecutionResult
    costs: list[CostRow]


class EvaluationResult(BaseModel):
    """A registered model scored against an annotator on a sample of a corpus."""

    model_version: str
    annotator: str
    annotation_set_hash: str
    evaluation: Evaluation


def execution_result(
    run: RunPlan, *, summary: dict[str, Any], results: Sequence[ShardResult], reused: Sequence[int], store_path: str,
    runner: str, cascade: CascadeReport | None = None, drift: DriftVerdict | None = None,
) -> ExecutionResult:
    """What `execute` returns: the run's totals in the store (`summary`: its record with `rows`
    and `shards`) and what this flow run did (the shards it executed, the ones it reused)."""
    return ExecutionResult(
        run_id=run.run_id, model_version=run.model_version, plan_hash=run.plan_hash, corpus_id=run.corpus_id,
        store_path=store_path, n_texts=run.n_texts, shards=summary["shards"], shards_run=len(results),
        shards_reused=len(reused), rows=summary["rows"], seconds=round(sum(r.seconds for r in results), 4),
        texts_run=sum(r.n_texts for r in results), runner=runner, processes=len({r.pid for r in results}),
        model_loads_per_process=max((r.model_loads for r in results), default=0), cascade=cascade,
        drift=drift,
    )


def mining_costs(incubation: IncubationResult, execution: ExecutionResult) -> list[CostRow]:
    """The comparison for a `mine` run: proxy time from the shards this run executed, or from
    the held-out evaluation when every shard was already done."""
    evaluation = incubation.evaluation
    proxy_seconds, proxy_texts = (
        (execution.seconds, execution.texts_run) if execution.texts_run else (evaluation.seconds, evaluation.n_texts)
    )
    return compare_costs(
        execution.n_texts, annotator=incubation.annotator, n_annotated=incubation.n_annotations,
        annotation_seconds=incubation.annotation_seconds, usage=incubation.annotation_usage,
        fine_tune_seconds=incubation.fine_tune_seconds, proxy_seconds=proxy_seconds, proxy_texts=proxy_texts,
    )


__all__ = [
    "EvaluationResult", "ExecutionResult", "IncubationResult", "MineResult", "execution_result", "mining_costs",
]
