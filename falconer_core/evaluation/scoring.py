"""Scoring a runner against a reference's annotations, step by step and end to end, with
bootstrap intervals.

Each step is scored on exactly the questions the reference answered (teacher forcing: a
per-span step is asked about the reference's spans), so one weak step does not blur the score
of the next; span steps get the paper's word-level F1, label steps accuracy and the F1 of the
positive class. The end-to-end score (`endtoend`) then runs the whole plan and compares output
records, so filter errors count too.

Counts are kept per text, weighted by `1 / P(text was sampled)` (`AnnotationSample.weights`),
so a sample stratified by some model's scores still estimates the corpus's figures, and every
figure gets a bootstrap interval over texts (`bootstrap`). With uniform weights (a random
sample) the point estimates are the plain micro scores of `metrics`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Mapping
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.errors import ConfigError
from falconer_core.evaluation.bootstrap import (
    BootstrapSettings,
    accuracy_of,
    f1_of,
    interval,
    precision_recall_of,
    replicate_weights,
)
from falconer_core.evaluation.endtoend import END_TO_END, end_to_end_counts
from falconer_core.evaluation.metrics import covered_words, word_offsets
from falconer_core.execution import LabelOutcome, execute_plan
from falconer_core.execution.traces import answers
from falconer_core.metamodel.source import ModelSource, open_metamodel
from falconer_core.types import Runner

Weighting = Literal["uniform", "inverse inclusion probability"]


class StepScore(BaseModel):
    """How well a predictor matches a reference on one step (or on the whole plan)."""

    step: str = Field(description="The plan step, or 'end_to_end' for the whole plan's output records.")
    op: str = Field(description="'label', 'span', or 'plan' for the end-to-end score.")
    predictor: str = Field(description="What was scored, e.g. 'proxy'.")
    reference: str = Field(description="What it was scored against, e.g. 'human' or an LLM.")
    n: int = Field(description="Questions scored (texts, or spans for per-span steps; texts end to end).")
    f1: float | None = Field(description="Word-level F1 (span) or positive-class F1 (label); None when n == 0.")
    precision: float | None = None
    recall: float | None = None
    accuracy: float | None = Field(None, description="Label steps only.")
    f1_lo: float | None = Field(None, description="Lower end of the bootstrap interval of f1.")
    f1_hi: float | None = Field(None, description="Upper end of the bootstrap interval of f1.")
    accuracy_lo: float | None = None
    accuracy_hi: float | None = None


class TextCounts(BaseModel):
    """One held-out text's counts per scoring unit, kept so intervals and paired comparisons can
    redraw texts."""

    id: str
    weight: float = Field(description="1 / P(the text was sampled); 1.0 for a random sample.")
    counts: dict[str, list[float]] = Field(description="Unit (step name, or END_TO_END) -> [tp, fp, fn, tn].")


class Evaluation(BaseModel):
    """A predictor's scores on the held-out texts, per step and end to end, with intervals."""

    scores: list[StepScore]
    end_to_end: StepScore | None = Field(None, description="The plan's output records against the reference's.")
    mean_f1_lo: float | None = None
    mean_f1_hi: float | None = None
    n_texts: int = Field(description="Held-out texts.")
    seconds: float = Field(description="Time the predictor spent running the plan on the held-out texts.")
    weighting: Weighting = Field("uniform", description="How texts were weighted in every estimate.")
    bootstrap: BootstrapSettings = Field(default_factory=BootstrapSettings)
    texts: list[TextCounts] = Field(default_factory=list, description="Per-text counts behind every figure.")

    @property
    def mean_f1(self) -> float | None:
        """Mean F1 over the steps that had something to score."""
        values = [s.f1 for s in self.scores if s.f1 is not None]
        return sum(values) / len(values) if values else None

    @property
    def seconds_per_text(self) -> float:
        """Predictor time per held-out text (the whole plan on that text)."""
        return self.seconds / self.n_texts if self.n_texts else 0.0

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow and the promotion gate: mean_f1, f1.<step>, accuracy.<step>,
        end_to_end_f1, each with `_lo`/`_hi` interval ends, and heldout_texts."""
        out: dict[str, float] = {}
        _put(out, "mean_f1", self.mean_f1, self.mean_f1_lo, self.mean_f1_hi)
        for s in self.scores:
            _put(out, f"f1.{s.step}", s.f1, s.f1_lo, s.f1_hi)
            _put(out, f"accuracy.{s.step}", s.accuracy, s.accuracy_lo, s.accuracy_hi)
        if self.end_to_end is not None:
            e = self.end_to_end
            _put(out, "end_to_end_f1", e.f1, e.f1_lo, e.f1_hi)
        out["heldout_texts"] = float(self.n_texts)
        return out


def score_texts(
    runner: Runner,
    annotations: AnnotationSet,
    ids: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
    *,
    predictor: str = "proxy",
    bootstrap: BootstrapSettings | None = None,
) -> Evaluation:
    """Ask `runner` every question the reference answered on the texts in `ids` (all when None),
    run the plan end to end on them, and score both with intervals."""
    settings = bootstrap or BootstrapSettings()
    plan = annotations.plan
    wanted = None if ids is None else {str(i) for i in ids}
    records = [r for r in annotations.records if wanted is None or str(r.id) in wanted]
    text_of = annotations.text_of()
    held = [str(r.id) for r in records]
    weight_of = _weights(held, weights)
    ops = {step.name: step.op for step in plan.steps}
    counts = {i: {unit: [0.0] * 4 for unit in [*ops, END_TO_END]} for i in held}

    questions: dict[str, list[tuple[str, str, object]]] = {step: [] for step in ops}
    for record in records:
        for step, trace in record.steps.items():
            for answer in answers(trace):
                questions[step].append((str(record.id), answer.instruction, answer.outcome))
    n_questions = {step: len(group) for step, group in questions.items()}
    for step, group in questions.items():
        if group:
            _count_step(runner, ops[step], step, group, text_of, counts)

    started = time.perf_counter()
    predicted = execute_plan(plan, [text_of[i] for i in held], runner, held, include_failed=True)
    seconds = time.perf_counter() - started
    for text_id, row in end_to_end_counts(plan, records, predicted, {i: text_of[i] for i in held}).items():
        counts[text_id][END_TO_END] = [float(c) for c in row]

    texts = [TextCounts(id=i, weight=weight_of[i], counts=counts[i]) for i in held]
    uniform = len(set(weight_of.values())) <= 1
    evaluation = Evaluation(
        scores=[], n_texts=len(held), seconds=round(seconds, 4), texts=texts, bootstrap=settings,
        weighting="uniform" if uniform else "inverse inclusion probability",
    )
    base = {"predictor": predictor, "reference": annotations.annotator}
    summary = Summary(texts, [*ops, END_TO_END], settings) if texts else None
    for step in ops:
        evaluation.scores.append(_step_score(step, ops[step], n_questions[step], summary, base))
    evaluation.end_to_end = _step_score(END_TO_END, "plan", len(held), summary, base)
    scored = [step for step in ops if n_questions[step]]
    if summary is not None and scored:
        evaluation.mean_f1_lo, evaluation.mean_f1_hi = summary.mean_interval(scored)
    return evaluation


class Summary:
    """Point estimates and bootstrap intervals of every scoring unit, from weighted per-text
    counts; every interval comes from the same replicates, so the mean's keeps their correlation."""

    def __init__(self, texts: list[TextCounts], units: list[str], settings: BootstrapSettings) -> None:
        array = np.array([[t.counts[u] for u in units] for t in texts], dtype=float).reshape(len(texts), len(units), 4)
        weights = np.array([t.weight for t in texts], dtype=float)
        self.totals = np.einsum("t,tuk->uk", weights, array)
        replicates = np.einsum("bt,tuk->buk", replicate_weights(weights, settings), array)  # [B, U, 4]
        self.f1s, self.accuracies = f1_of(replicates), accuracy_of(replicates)
        self.index = {unit: k for k, unit in enumerate(units)}
        self.settings = settings

    def unit(self, name: str) -> dict[str, float | tuple[float, float]]:
        """f1, precision, recall, accuracy and the f1/accuracy intervals of one unit."""
        k = self.index[name]
        precision, recall = precision_recall_of(self.totals[k])
        return {
            "f1": float(f1_of(self.totals[k])), "precision": float(precision), "recall": float(recall),
            "accuracy": float(accuracy_of(self.totals[k])), "f1_interval": interval(self.f1s[:, k], self.settings),
            "accuracy_interval": interval(self.accuracies[:, k], self.settings),
        }

    def mean_interval(self, units: list[str]) -> tuple[float, float]:
        """The interval of the mean F1 over `units`."""
        return interval(self.f1s[:, [self.index[u] for u in units]].mean(axis=1), self.settings)


def mean_f1_replicates(evaluation: Evaluation, settings: BootstrapSettings, weights: np.ndarray) -> np.ndarray:
    """Mean step F1 per replicate for the given replicate weights [B, T] (texts in
    `evaluation.texts` order): what a paired comparison redraws."""
    steps = [s.step for s in evaluation.scores if s.f1 is not None]
    if not steps or not evaluation.texts:
        return np.full(weights.shape[0], np.nan)
    array = np.array([[t.counts[u] for u in steps] for t in evaluation.texts], dtype=float)
    return f1_of(np.einsum("bt,tuk->buk", weights, array)).mean(axis=1)


def evaluate_model(
    model: ModelSource,
    annotations: AnnotationSet,
    ids: Collection[str] | None = None,
    weights: Mapping[str, float] | None = None,
    *,
    predictor: str = "proxy",
    bootstrap: BootstrapSettings | None = None,
) -> Evaluation:
    """Score the metamodel against the annotator on the annotated texts in `ids` (all when None)."""
    return score_texts(open_metamodel(model), annotations, ids, weights, predictor=predictor, bootstrap=bootstrap)


def _count_step(
    runner: Runner, op: str, step: str, group: list[tuple[str, str, object]],
    text_of: dict[str, str], counts: dict[str, dict[str, list[float]]],
) -> None:
    """One runner call for the step's questions; each answer's counts go to its text."""
    texts = [text_of[text_id] for text_id, _, _ in group]
    instructions = [instruction for _, instruction, _ in group]
    if op == "label":
        for (text_id, _, outcome), answer in zip(group, runner.get_label(texts, instructions)):
            mine, theirs = bool(getattr(answer, "value", answer)), isinstance(outcome, LabelOutcome) and outcome.value
            counts[text_id][step][(0 if theirs else 1) if mine else (2 if theirs else 3)] += 1
        return
    for (text_id, _, outcome), spans, text in zip(group, runner.get_span(texts, instructions), texts):
        words = word_offsets(text)
        mine, theirs = covered_words(list(spans), words), covered_words(list(outcome), words)  # type: ignore[arg-type]
        row = counts[text_id][step]
        row[0] += len(mine & theirs)
        row[1] += len(mine - theirs)
        row[2] += len(theirs - mine)


def _step_score(unit: str, op: str, n: int, summary: Summary | None, base: dict) -> StepScore:
    name = "end_to_end" if unit == END_TO_END else unit
    if n == 0 or summary is None:
        return StepScore(step=name, op=op, n=n, f1=None, **base)
    s = summary.unit(unit)
    label = op == "label"
    return StepScore(
        step=name, op=op, n=n, f1=s["f1"], precision=s["precision"], recall=s["recall"],
        accuracy=s["accuracy"] if label else None, f1_lo=s["f1_interval"][0], f1_hi=s["f1_interval"][1],
        accuracy_lo=s["accuracy_interval"][0] if label else None,
        accuracy_hi=s["accuracy_interval"][1] if label else None, **base,
    )


def _weights(ids: list[str], weights: Mapping[str, float] | None) -> dict[str, float]:
    """Each held-out text's weight; refuses a missing, non-positive or non-finite one."""
    if weights is None:
        return dict.fromkeys(ids, 1.0)
    missing = [i for i in ids if i not in weights]
    if missing:
        raise ConfigError(f"no sampling weight for held-out texts {missing[:5]}; pass one per text (AnnotationSample.weights())")
    bad = {i: weights[i] for i in ids if not (isinstance(weights[i], (int, float)) and math.isfinite(weights[i]) and weights[i] > 0)}
    if bad:
        raise ConfigError(f"sampling weights must be positive numbers; got {dict(list(bad.items())[:5])}")
    return {i: float(weights[i]) for i in ids}


def _put(out: dict[str, float], key: str, value: float | None, lo: float | None, hi: float | None) -> None:
    if value is None:
        return
    out[key] = round(value, 6)
    if lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        out[f"{key}_lo"], out[f"{key}_hi"] = round(lo, 6), round(hi, 6)


__all__ = ["Evaluation", "StepScore", "TextCounts", "evaluate_model", "mean_f1_replicates", "Summary", "score_texts"]
