"""The proxy's confidence per text and step: what the cascade routes on.

A label step's score is the proxy's P(true). A span step's is the least confident word
decision on the text: a word kept inside a span scores P(inside), a word left out 1 - P(inside),
so a text scores low both when a kept span is shaky and when a dropped token nearly made it.
`ScoredProxy` wraps the metamodel and keeps that per-text span confidence as it answers, so
routing needs no second forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from falconer_core.evaluation.metrics import word_f1
from falconer_core.execution.interpreter import LabelOutcome, OutputRecord
from falconer_core.plan import Plan, Step
from falconer_core.types import Instructions, LabelResult, Span, per_text_instructions


class ScoredProxy:
    """The metamodel as a `Runner` that also remembers each span answer's per-text confidence."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.span_confidence: dict[tuple[str, str], float] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        return self.model.get_label(texts, instruction)

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        # decoding pulls in torch; the workers that call this have it loaded, flows must not
        from falconer_core.metamodel.decoding import span_confidence, spans_from_word_probs

        texts, instructions = list(texts), per_text_instructions(texts, instruction)
        results: list[list[Span]] = [[] for _ in texts]
        for text, asked in zip(texts, instructions):
            self.span_confidence[(text, asked)] = 1.0  # empty texts: nothing to find, surely
        for item, (encoded, probs) in self.model.span_word_probs(texts, instruction).items():
            threshold = self.model.span_threshold_for(instructions[item])
            results[item] = spans_from_word_probs(texts[item], encoded, probs, threshold)
            self.span_confidence[(texts[item], instructions[item])] = span_confidence(probs, threshold)
        return results


def cascaded_steps(plan: Plan, targets: dict[str, float]) -> list[Step]:
    """The steps a cascade calibrates: top-level label steps under a label target, top-level span
    steps under a span_f1 target (per-span steps follow the routing of their text)."""
    label = any(m != "span_f1" for m in targets)
    return [
        s for s in plan.steps
        if s.for_each is None and ((s.op == "label" and label) or (s.op == "span" and "span_f1" in targets))
    ]


def p_true(outcome: LabelOutcome) -> float:
    """P(true) from a label outcome's value and its confidence in that value."""
    return outcome.confidence if outcome.value else 1.0 - outcome.confidence


def step_score(step: Step, record: OutputRecord, text: str, proxy: ScoredProxy) -> float | None:
    """The proxy's score on one text for one step (None where the step did not run)."""
    trace = record.steps.get(step.name)
    if trace is None:
        return None
    if step.op == "label":
        return p_true(trace.result)
    return proxy.span_confidence.get((text, step.instruction), 1.0)


def text_f1(predicted: Sequence[Span], reference: Sequence[Span], text: str) -> float:
    """Word F1 of one text's spans against the reference's (1.0 when both find nothing)."""
    return float(word_f1([predicted], [reference], [text])["f1"])


__all__ = ["ScoredProxy", "cascaded_steps", "p_true", "step_score", "text_f1"]
