"""Annotating the sample: build the chosen annotator, run the whole plan with it, and keep the
answers as an `AnnotationSet` with a content hash.

The annotator runs the plan exactly as the metamodel later will (`execute_plan`), but with
`include_failed=True`: the texts the filter rejects are negatives the metamodel must learn
too. The set's hash covers only what was annotated (plan, texts, answers), so two annotators
that agree produce the same set, and any change in the answers gives a new one.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.annotators.gold import GoldAnnotator
from falconer_core.annotators.llm import LLMAnnotator
from falconer_core.errors import ConfigError
from falconer_core.execution import LabelOutcome, OutputRecord, execute_plan
from falconer_core.execution.traces import answers, context_name
from falconer_core.hashing import content_hash
from falconer_core.llm import LocalLLM, OpenAIClient
from falconer_core.plan import Plan
from falconer_core.types import Runner


class AnnotationSet(BaseModel):
    """The annotator's answers on the sample, for every step of the plan."""

    model_config = ConfigDict(frozen=True)

    plan: Plan = Field(description="The plan that was annotated.")
    annotator: str = Field(description="Who answered: 'human' or the LLM's identity.")
    ids: list[str] = Field(description="Annotated text ids, in sample order.")
    texts: list[str] = Field(description="Annotated texts, aligned with `ids`.")
    records: list[OutputRecord] = Field(description="One record per text, with every step's trace.")
    seconds: float = Field(description="Wall time the annotator took.")
    usage: dict[str, Any] = Field(default_factory=dict, description="LLM calls, tokens and cost (empty for gold).")
    hash: str = Field(description="Content hash of plan, texts and answers.")

    @property
    def size(self) -> int:
        """Number of annotated texts."""
        return len(self.ids)

    def text_of(self) -> dict[str, str]:
        """Text by id."""
        return dict(zip(self.ids, self.texts))


def build_annotator(
    choice: AnnotatorChoice, plan: Plan, rows: pd.DataFrame, *, cache_dir: Path | None = None
) -> tuple[Runner, Any]:
    """The annotator the choice names, and its LLM client (None for gold labels).

    Gold labels come from the sample's rows: one column per plan step (or `choice.columns`).
    """
    if choice.name == "gold":
        missing = [s.name for s in plan.steps if choice.columns.get(s.name, s.name) not in rows.columns]
        if missing:
            raise ConfigError(
                f"gold annotation needs a corpus column per plan step; missing {missing} among "
                f"{list(rows.columns)}. Name the columns after the steps, map them with "
                "annotator.columns, or annotate with an LLM"
            )
        return GoldAnnotator.from_records(rows, plan, columns=choice.columns), None
    llm = choice.llm
    settings = llm.llm_settings(cache_dir)
    client = OpenAIClient(settings) if llm.backend == "openai" else LocalLLM(settings)
    return LLMAnnotator(client, batch_size=choice.batch_size), client


def annotator_fingerprint(choice: AnnotatorChoice, plan: Plan, rows: pd.DataFrame) -> str:
    """What determines the annotator's answers on these rows: the LLM and its endpoint, or the
    gold cells themselves (so editing a label re-annotates)."""
    if choice.name != "gold":
        return content_hash(choice.llm.cache_identity(), choice.batch_size)
    columns = [choice.columns.get(s.name, s.name) for s in plan.steps]
    cells = rows[[c for c in columns if c in rows.columns]].astype(str).to_numpy().tolist()
    return content_hash("gold", columns, cells)


def annotate_sample(
    plan: Plan, ids: Sequence[str], texts: Sequence[str], runner: Runner, *, annotator: str, client: Any = None
) -> AnnotationSet:
    """Run every step of `plan` on the sample with `runner`, keeping filter negatives."""
    ids, texts = [str(i) for i in ids], list(texts)
    started = time.perf_counter()
    records = execute_plan(plan, texts, runner, ids, include_failed=True)
    seconds = time.perf_counter() - started
    usage = client.usage.as_dict() if client is not None else {}
    return AnnotationSet(
        plan=plan, annotator=annotator, ids=ids, texts=texts, records=records, seconds=round(seconds, 4),
        usage=usage, hash=annotation_set_hash(plan, ids, texts, records),
    )


def annotation_set_hash(plan: Plan, ids: Sequence[str], texts: Sequence[str], records: Sequence[OutputRecord]) -> str:
    """Content hash of what the metamodel will learn from: plan program, texts and answers."""
    answers = [
        {"id": str(r.id), "text": t, "steps": {k: v.model_dump(mode="json") for k, v in r.steps.items()}}
        for r, t in zip(records, texts)
    ]
    return content_hash(plan.hash, list(map(str, ids)), answers)


def annotation_rows(annotations: AnnotationSet) -> pd.DataFrame:
    """The set as rows for `Store.record_annotations`: one per label answer, one per span, and a
    span row with no span where a text was annotated and had none (a negative). Per-span
    answers are named `step@start-end` after the span they answer about."""
    rows: list[dict[str, Any]] = []
    for record in annotations.records:
        for step, trace in record.steps.items():
            for answer in answers(trace):
                base = {"text_id": str(record.id), "step": context_name(step, answer.parents)}
                if isinstance(answer.outcome, LabelOutcome):
                    rows.append({**base, "kind": "label", "value": answer.outcome.value})
                elif not answer.outcome:
                    rows.append({**base, "kind": "span"})
                else:
                    rows += [
                        {**base, "kind": "span", "span_text": s.text, "start": s.start, "end": s.end}
                        for s in answer.outcome
                    ]
    return pd.DataFrame(rows, columns=["text_id", "step", "kind", "value", "span_text", "start", "end"])


def sample_rows(frame: pd.DataFrame, ids: Sequence[str]) -> pd.DataFrame:
    """The corpus rows of the sampled ids, in sample order, with every column (gold labels
    included): what any annotator reads, and what the gold one takes its answers from."""
    by_id: Mapping[str, int] = {str(i): k for k, i in enumerate(frame["id"])}
    missing = [i for i in ids if str(i) not in by_id]
    if missing:
        raise ConfigError(f"sampled ids {missing[:5]} are not in the corpus; re-run sampling")
    return frame.iloc[[by_id[str(i)] for i in ids]].reset_index(drop=True)


__all__ = [
    "AnnotationSet",
    "annotate_sample",
    "annotation_rows",
    "annotation_set_hash",
    "annotator_fingerprint",
    "build_annotator",
    "sample_rows",
]
