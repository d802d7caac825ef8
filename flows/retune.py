"""`retune`: continual re-tuning. The current champion (or any registered version) is
fine-tuned on a new task's annotations and registered as its child, so lineage shows the
chain of tasks a checkpoint has learned."""

from __future__ import annotations

from prefect import flow

from falconer_core.metamodel import TrainingSettings
from falconer_core.pipeline.config import AnnotatorChoice, CorpusSource, HoldoutSettings, LLMChoice
from falconer_core.pipeline.registration import DEFAULT_GATE
from falconer_core.pipeline.results import IncubationResult
from falconer_core.pipeline.settings import Settings
from falconer_core.plan import Plan
from falconer_core.sampling import SamplingSettings
from flows.incubate import incubate


@flow(name="retune", validate_parameters=True)
def retune(
    corpus: CorpusSource,
    instruction: str | None = None,
    plan: Plan | str | None = None,
    model: str | None = None,
    annotator: AnnotatorChoice = AnnotatorChoice(),
    planner: LLMChoice = LLMChoice(),
    sampling: SamplingSettings = SamplingSettings(),
    training: TrainingSettings = TrainingSettings(progress=False),
    holdout: HoldoutSettings = HoldoutSettings(),
    gate: dict[str, float] = DEFAULT_GATE,
) -> IncubationResult:
    """Retune `model` (default: the champion of the configured model name) on a new task.

    Args:
        corpus: Corpus file (CSV, TSV, JSONL, Parquet) or folder of .txt files, with its text/id columns.
        instruction: What to mine, in plain words; planned by the planner LLM unless a plan is given.
        plan: A plan (object) or the path of a plan file (YAML/JSON); overrides planning.
        model: The registered version to continue from (default: the champion of FALCONER_MODEL_NAME).
        annotator: Who labels the sample: 'gold' (corpus columns named after the plan steps), 'openai' or 'local'.
        planner: The LLM that plans the instruction (its key comes from OPENAI_API_KEY only).
        sampling: How many texts to annotate and how to pick them.
        training: How to fine-tune the metamodel.
        holdout: How many annotated texts to hold out for evaluation.
        gate: Promotion gate: metric -> minimum (e.g. mean_f1) for the new version to become champion.
    """
    parent = model or Settings().model_name
    return incubate(corpus, instruction, plan, annotator, planner, None, parent, sampling, training, holdout, gate)
