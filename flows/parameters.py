"""Every flow parameter, described once. Each flow uses these as its parameters' defaults, so the
Prefect UI form (and the deployment schema) shows the same words in every flow, and no flow
repeats an `Args:` block.

A description that belongs to a type lives on that type's pydantic fields (`CorpusSource.path`,
`SamplingSettings.fraction`, ...); what is written here is what the parameter as a whole means.

What `mine`, `incubate` and `retune` share is two parameters, so the three signatures cannot
drift apart: `task` (what to learn, who annotates, where the new version comes from) and
`incubation` (sampling, rounds, training, hold-out, gate). Prefect merges a run's parameters
with a deployment's one level deep: a run that sets `task` or `incubation` replaces the
deployment's whole `task` or `incubation` (the UI form starts from the deployment's values, so
there it is edited in place).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators import AnnotatorChoice
from falconer_core.drift.reference import DriftSettings
from falconer_core.execution import ExecutionSettings
from falconer_core.llm import LLMChoice
from falconer_core.plan import Plan
from falconer_core.registry import DEFAULT_GATE
from falconer_core.sampling import SamplingSettings
from falconer_core.sampling.active import ActiveSettings
from falconer_core.training import HoldoutSettings, TrainingSettings


class TaskSpec(BaseModel):
    """What to learn, who annotates, and where the new version comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: str | None = Field(
        None, description="What to mine, in plain words; planned by the planner LLM unless a plan is given.")
    plan: Plan | str | None = Field(
        None, description="A plan (object) or the path of a plan file (YAML/JSON); overrides planning.")
    annotator: AnnotatorChoice = Field(
        AnnotatorChoice(),
        description="Who labels the sample: 'gold' (corpus columns named after the plan steps), 'openai' or 'local'.",
    )
    planner: LLMChoice = Field(
        LLMChoice(), description="The LLM that plans the instruction (its key comes from OPENAI_API_KEY only).")
    base_model: str | None = Field(
        None, description="Base encoder to fine-tune from (default: FALCONER_BASE_MODEL or the packaged MiniLM).")
    parent: str | None = Field(
        None, description="A registered version to continue from instead of the base (NAME, NAME@alias, NAME/N).")
    model_name: str | None = Field(
        None, description="Registered model name for the new version (default: FALCONER_MODEL_NAME).")


class IncubationSettings(BaseModel):
    """How an incubation samples, annotates (in rounds), fine-tunes, holds out and gates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: SamplingSettings = Field(SamplingSettings(), description="How many texts to annotate and how to pick them.")
    active: ActiveSettings = Field(
        ActiveSettings(),
        description="Annotating in rounds: a random first batch, then the texts the current metamodel is least "
        "sure of, re-tuning between rounds, until the held-out score's lower bound clears the gate or the budget "
        "(the sample size) is spent. One round (the default) annotates the whole sample at once.",
    )
    training: TrainingSettings = Field(TrainingSettings(progress=False), description="How to fine-tune the metamodel.")
    holdout: HoldoutSettings = Field(HoldoutSettings(), description="How many annotated texts to hold out for evaluation.")
    gate: dict[str, float] = Field(
        dict(DEFAULT_GATE),
        description="Absolute floor: metric -> minimum (e.g. mean_f1) for the new version to become its task's champion "
        "(it must also not be worse than the task's champion beyond the noise on the same held-out texts).",
    )


def corpus() -> Any:
    return Field(description="Corpus file (CSV, TSV, JSONL, Parquet) or folder of .txt files, with its text/id columns.")


def plan(default_note: str = "overrides planning") -> Any:
    return Field(None, description=f"A plan (object) or the path of a plan file (YAML/JSON); {default_note}.")


def annotator() -> Any:
    return Field(AnnotatorChoice(), description=TaskSpec.model_fields["annotator"].description)


def model(what: str) -> Any:
    return Field(description=f"The registered metamodel to {what}: NAME@champion-<plan_hash> (a task's champion), NAME@alias, NAME/N or NAME (with a plan, that task's champion; else the newest task champion).")


def task() -> Any:
    return Field(TaskSpec(), description="What to learn (an instruction or a plan), who annotates, and where the new "
                 "version comes from (a base encoder or a registered parent) and is registered.")


def incubation() -> Any:
    return Field(
        IncubationSettings(),
        description="How to grow the new version: sampling, annotation rounds, fine-tuning, hold-out and the gate.",
    )


def execution() -> Any:
    return Field(ExecutionSettings(), description="Shard size and batch size for running the metamodel over the corpus.")


def cascade() -> Any:
    return Field(
        None, description="Cascade with the LLM to a quality target, e.g. {'target': {'accuracy': 0.95}, 'llm_budget': 2000}: "
        "the proxy keeps the answers it is sure of, the LLM answers the rest (default: the proxy alone).",
    )


def drift() -> Any:
    return Field(
        DriftSettings(), description="The drift check after the run: signals on a seeded sample of `sample` texts "
        "against the version's reference; when one fires, an LLM audit of `audit_size` texts (`audit_llm`, default "
        "the cascade's LLM) declares drift when its upper bound is below `gate` or the reference's agreement less "
        "`max_drop`. `check: false` skips it.",
    )
