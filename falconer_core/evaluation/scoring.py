"""Scoring a runner step by step against a reference, on examples built from annotations.

Each step is scored on exactly the questions the reference answered (teacher forcing: a
per-span step is asked about the reference's spans), so one weak step does not blur the score
of the next. Span steps get the paper's word-level F1; label steps accuracy and the F1 of the
positive class.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.evaluation.metrics import label_metrics, word_f1
from falconer_core.finetune.examples import ExamplesByStep, step_examples
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.types import LabelExample, Runner, SpanExample


class StepScore(BaseModel):
    """How well a predictor matches a reference on one step."""

    step: str
    op: str = Field(description="'label' or 'span'.")
    predictor: str = Field(description="What was scored, e.g. 'proxy'.")
    reference: str = Field(description="What it was scored against, e.g. 'human' or an LLM.")
    n: int = Field(description="Questions scored (texts, or spans for per-span steps).")
    f1: float | None = Field(description="Word-level F1 (span) or positive-class F1 (label); None when n == 0.")
    precision: float | None = None
    recall: float | None = None
    accuracy: float | None = Field(None, description="Label steps only.")


class Evaluation(BaseModel):
    """A predictor's scores on the held-out texts, per step, and how long it took."""

    scores: list[StepScore]
    n_texts: int = Field(description="Held-out texts.")
    seconds: float = Field(description="Time the predictor spent answering.")

    @property
    def mean_f1(self) -> float | None:
        """Mean F1 over the steps that had something to score."""
        values = [s.f1 for s in self.scores if s.f1 is not None]
        return sum(values) / len(values) if values else None

    @property
    def seconds_per_text(self) -> float:
        """Predictor time per held-out text (every step it ran on that text)."""
        return self.seconds / self.n_texts if self.n_texts else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow and the promotion gate: mean_f1, f1.<step>, accuracy.<step>."""
        out: dict[str, float] = {}
        if self.mean_f1 is not None:
            out["mean_f1"] = round(self.mean_f1, 6)
        for s in self.scores:
            if s.f1 is not None:
                out[f"f1.{s.step}"] = round(s.f1, 6)
            if s.accuracy is not None:
                out[f"accuracy.{s.step}"] = round(s.accuracy, 6)
        out["heldout_texts"] = float(self.n_texts)
        return out


def score_runner(
    runner: Runner, examples: ExamplesByStep, ops: dict[str, str], *, predictor: str, reference: str
) -> list[StepScore]:
    """Ask `runner` every question in `examples` and score it per step."""
    scores = []
    for step, group in examples.items():
        base = {"step": step, "op": ops[step], "predictor": predictor, "reference": reference, "n": len(group)}
        if not group:
            scores.append(StepScore(**base, f1=None))
        elif ops[step] == "label":
            scores.append(StepScore(**base, **_label_scores(runner, group)))  # type: ignore[arg-type]
        else:
            scores.append(StepScore(**base, **_span_scores(runner, group)))  # type: ignore[arg-type]
    return scores


def _label_scores(runner: Runner, group: Sequence[LabelExample]) -> dict[str, float]:
    predicted = runner.get_label([e.text for e in group], [e.instruction for e in group])
    m = label_metrics(predicted, [e.label for e in group])
    return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"], "accuracy": m["accuracy"]}


def _span_scores(runner: Runner, group: Sequence[SpanExample]) -> dict[str, float]:
    texts = [e.text for e in group]
    predicted = runner.get_span(texts, [e.instruction for e in group])
    m = word_f1(predicted, [list(e.spans) for e in group], texts)
    return {"f1": m["f1"], "precision": m["precision"], "recall": m["recall"]}


def evaluate_model(
    model: ModelSource, annotations: AnnotationSet, ids: Sequence[str] | None = None, *, predictor: str = "proxy"
) -> Evaluation:
    """Score the metamodel against the annotator on the annotated texts in `ids` (all when None)."""
    examples = step_examples(annotations, ids)
    runner = open_metamodel(model)
    ops = {step.name: step.op for step in annotations.plan.steps}
    started = time.perf_counter()
    scores = score_runner(runner, examples, ops, predictor=predictor, reference=annotations.annotator)
    seconds = time.perf_counter() - started
    n_texts = len(annotations.ids) if ids is None else len({str(i) for i in ids})
    return Evaluation(scores=scores, n_texts=n_texts, seconds=round(seconds, 4))


__all__ = ["Evaluation", "StepScore", "evaluate_model", "score_runner"]
