"""Annotating the sample: build the chosen annotator, run the whole plan with it, and keep the
answers as an `AnnotationSet` with a content hash.

The annotator runs the plan exactly as the metamodel later will (`execute_plan`), but with
`include_failed=True`: the texts the filter rejects are negatives the metamodel must learn
too. The set's hash covers only what was annotated (plan, texts, answers), so two annotators
that agree produce the same set, and any change in the answers gives a new one.

An LLM's span that matches nowhere in its text (a paraphrase, an invention) is not an answer
to learn from, and neither is the rest of that answer: teaching the grounded part alone would
teach that the missing mention is not one. So the set records, per span step, how many spans
did not ground and which answers they touched (`ungrounded`); training and evaluation leave
those answers out, the registry logs the share per step, and a step whose share passes the
annotator's limit fails here with examples.
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
from falconer_core.errors import ConfigError, LLMError
from falconer_core.execution import LabelOutcome, OutputRecord, execute_plan
from falconer_core.execution.traces import answers, context_name
from falconer_core.hashing import content_hash
from falconer_core.llm import LocalLLM, OpenAIClient
from falconer_core.plan import Plan
from falconer_core.types import Runner

_EXAMPLES_KEPT = 5


class StepGrounding(BaseModel):
    """How one span step's LLM answers grounded in their texts."""

    model_config = ConfigDict(frozen=True)

    spans_returned: int = Field(description="Distinct span strings the annotator returned, over the step's answers.")
    spans_ungrounded: int = Field(description="Of those, the strings found nowhere in their text.")
    answers: list[tuple[str, str]] = Field(
        default_factory=list,
        description="(text id, answer context) of each answer with an ungrounded span: left out of training.",
    )
    examples: list[tuple[str, str]] = Field(
        default_factory=list, description="A few (returned string, start of its text) pairs, for the report."
    )

    @property
    def share(self) -> float:
        """Ungrounded spans as a share of the spans returned (0 when none were returned)."""
        return self.spans_ungrounded / self.spans_returned if self.spans_returned else 0.0


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
    ungrounded: dict[str, StepGrounding] = Field(
        default_factory=dict,
        description="Per span step of an LLM annotator: spans found nowhere in their text (empty for gold).",
    )
    hash: str = Field(description="Content hash of plan, texts and answers (and which answers did not ground).")

    @property
    def size(self) -> int:
        """Number of annotated texts."""
        return len(self.ids)

    def text_of(self) -> dict[str, str]:
        """Text by id."""
        return dict(zip(self.ids, self.texts))

    def ungrounded_answers(self, step: str) -> set[tuple[str, str]]:
        """(text id, answer context) of the step's answers that had an ungrounded span."""
        found = self.ungrounded.get(step)
        return {tuple(a) for a in found.answers} if found is not None else set()

    def ungrounded_metrics(self) -> dict[str, float]:
        """`ungrounded.<step>`: the share of each span step's returned spans that did not ground."""
        return {f"ungrounded.{step}": round(g.share, 6) for step, g in self.ungrounded.items()}


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
    return LLMAnnotator(client, batch_size=choice.batch_size, max_ungrounded=settings.max_ungrounded), client


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
    """Run every step of `plan` on the sample with `runner`, keeping filter negatives.

    With an LLM annotator, a span step whose share of ungroundable spans is above the
    annotator's `max_ungrounded` raises LLMError naming the step, with examples."""
    ids, texts = [str(i) for i in ids], list(texts)
    started = time.perf_counter()
    records = execute_plan(plan, texts, runner, ids, include_failed=True)
    seconds = time.perf_counter() - started
    grounding = step_grounding(plan, records, texts, runner)
    if isinstance(runner, LLMAnnotator):
        _check_grounding(grounding, runner.max_ungrounded, annotator)
    usage = client.usage.as_dict() if client is not None else {}
    return AnnotationSet(
        plan=plan, annotator=annotator, ids=ids, texts=texts, records=records, seconds=round(seconds, 4),
        usage=usage, ungrounded=grounding, hash=annotation_set_hash(plan, ids, texts, records, grounding),
    )


def step_grounding(
    plan: Plan, records: Sequence[OutputRecord], texts: Sequence[str], runner: Runner
) -> dict[str, StepGrounding]:
    """Per span step, how the LLM annotator's answers on these records grounded ({} for any
    other runner: gold spans are checked when they are read)."""
    if not isinstance(runner, LLMAnnotator):
        return {}
    report: dict[str, StepGrounding] = {}
    for step in (s for s in plan.steps if s.op == "span"):
        returned, dropped, touched, examples = 0, 0, [], []
        for record, text in zip(records, texts):
            trace = record.steps.get(step.name)
            for answer in answers(trace) if trace is not None else ():
                result = runner.grounding.get((text, answer.instruction))
                if result is None:
                    continue
                returned += len(result.matched) + len(result.dropped)
                if result.dropped:
                    dropped += len(result.dropped)
                    touched.append((str(record.id), context_name(step.name, answer.parents)))
                    examples += [(value, text[:120]) for value in result.dropped][: _EXAMPLES_KEPT - len(examples)]
        report[step.name] = StepGrounding(
            spans_returned=returned, spans_ungrounded=dropped, answers=touched, examples=examples
        )
    return report


def _check_grounding(grounding: Mapping[str, StepGrounding], limit: float, annotator: str) -> None:
    for step, found in grounding.items():
        if found.share > limit:
            shown = [f"{value!r} in {text!r}" for value, text in found.examples]
            raise LLMError(
                f"step {step!r}: {found.spans_ungrounded} of the {found.spans_returned} spans {annotator} "
                f"returned ({found.share:.0%}) are not in their text (the limit is {limit:.0%}), e.g. "
                f"{'; '.join(shown)}. The model paraphrases or invents instead of copying: use a stronger "
                "model, reword the step's instruction, or raise FALCONER_LLM_MAX_UNGROUNDED.",
                problems=shown,
            )


def annotation_set_hash(
    plan: Plan, ids: Sequence[str], texts: Sequence[str], records: Sequence[OutputRecord],
    ungrounded: Mapping[str, StepGrounding] | None = None,
) -> str:
    """Content hash of what the metamodel will learn from: plan program, texts and answers, and
    which answers are left out for ungrounded spans (only when there are any, so a set without
    them hashes as it always did)."""
    answers = [
        {"id": str(r.id), "text": t, "steps": {k: v.model_dump(mode="json") for k, v in r.steps.items()}}
        for r, t in zip(records, texts)
    ]
    left_out = {step: sorted(map(list, g.answers)) for step, g in (ungrounded or {}).items() if g.answers}
    if left_out:
        return content_hash(plan.hash, list(map(str, ids)), answers, left_out)
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
    "StepGrounding",
    "annotate_sample",
    "annotation_rows",
    "annotation_set_hash",
    "annotator_fingerprint",
    "build_annotator",
    "sample_rows",
    "step_grounding",
]
