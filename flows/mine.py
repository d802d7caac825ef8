"""`mine`: an instruction and a corpus in, mined records in DuckDB out. Incubates a metamodel
(plan, sample, annotate, fine-tune, evaluate, register), executes it over the whole corpus,
and compares what that cost with the annotator doing every text."""

from __future__ import annotations

from prefect import flow, get_run_logger

from falconer_core.metamodel import TrainingSettings
from falconer_core.pipeline.config import AnnotatorChoice, CorpusSource, ExecutionSettings, HoldoutSettings, LLMChoice
from falconer_core.pipeline.costs import mining_costs
from falconer_core.pipeline.registration import DEFAULT_GATE
from falconer_core.pipeline.results import MineResult
from falconer_core.plan import Plan
from falconer_core.sampling import SamplingSettings
from flows.artifacts import publish_costs
from flows.execute import execute
from flows.incubate import incubate


@flow(name="mine", validate_parameters=True)
def mine(
    corpus: CorpusSource,
    instruction: str | None = None,
    plan: Plan | str | None = None,
    annotator: AnnotatorChoice = AnnotatorChoice(),
    planner: LLMChoice = LLMChoice(),
    base_model: str | None = None,
    parent: str | None = None,
    sampling: SamplingSettings = SamplingSettings(),
    training: TrainingSettings = TrainingSettings(progress=False),
    holdout: HoldoutSettings = HoldoutSettings(),
    execution: ExecutionSettings = ExecutionSettings(),
    gate: dict[str, float] = DEFAULT_GATE,
) -> MineResult:
    """Mine `corpus` for `instruction` (or run the given `plan`) end to end; the new version
    executes whether or not it passed the gate, which only decides who is champion.

    Args:
        corpus: Corpus file (CSV, TSV, JSONL, Parquet) or folder of .txt files, with its text/id columns.
        instruction: What to mine, in plain words; planned by the planner LLM unless a plan is given.
        plan: A plan (object) or the path of a plan file (YAML/JSON); overrides planning.
        annotator: Who labels the sample: 'gold' (corpus columns named after the plan steps), 'openai' or 'local'.
        planner: The LLM that plans the instruction (its key comes from OPENAI_API_KEY only).
        base_model: Base encoder to fine-tune from (default: FALCONER_BASE_MODEL or the packaged MiniLM).
        parent: A registered version to continue from instead (NAME, NAME@alias or NAME/N).
        sampling: How many texts to annotate and how to pick them.
        training: How to fine-tune the metamodel.
        holdout: How many annotated texts to hold out for evaluation.
        execution: Shard size and batch size for running the metamodel over the corpus.
        gate: Promotion gate: metric -> minimum (e.g. mean_f1) for the new version to become champion.
    """
    grown = incubate(corpus, instruction, plan, annotator, planner, base_model, parent, sampling, training, holdout, gate)
    if not grown.champion:
        get_run_logger().warning("%s did not pass the gate (%s); mining with it anyway", grown.model_version, grown.promotion)
    executed = execute(grown.model_version, corpus, grown.plan, execution)
    costs = mining_costs(grown, executed)
    publish_costs(costs)
    return MineResult(incubation=grown, execution=executed, costs=costs)
