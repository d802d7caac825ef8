"""Walking a step's trace: every answer a step gave on one text, with the spans it was about.

A top-level step has one answer per text; a per-span step has one per span of its `for_each`
step (nested for chains). Annotation rows, training examples and output rows all need the
same flat view: (the enclosing spans, the instruction actually asked, the answer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from falconer_core.execution.interpreter import LabelOutcome, PerSpanOutcome, StepTrace
from falconer_core.types import Span


@dataclass(frozen=True)
class Answer:
    """One answer of a step on one text."""

    parents: tuple[Span, ...]  # the for_each spans this answer is about (empty at top level)
    instruction: str  # the instruction sent, templated for per-span steps
    outcome: LabelOutcome | list[Span]


def answers(trace: StepTrace) -> Iterator[Answer]:
    """Every answer in a step's trace, depth first in span order; a per-span step whose
    `for_each` step found nothing has no answers."""
    if trace.for_each is None:
        yield Answer((), trace.instruction, trace.result)  # type: ignore[arg-type]
    else:
        yield from _per_span(trace.result, ())  # type: ignore[arg-type]


def _per_span(items: list[PerSpanOutcome], parents: tuple[Span, ...]) -> Iterator[Answer]:
    # The innermost level carries the templated instruction; outer levels carry None.
    for item in items:
        spans = parents + (item.span,)
        if item.instruction is not None:
            yield Answer(spans, item.instruction, item.result)  # type: ignore[arg-type]
        else:
            yield from _per_span(item.result, spans)  # type: ignore[arg-type]


def context_name(step: str, parents: Sequence[Span]) -> str:
    """`step` at top level; `step@start-end` for a per-span answer (`/`-joined when nested), so
    rows of one text stay distinct and say which span they answer about."""
    if not parents:
        return step
    return f"{step}@" + "/".join(f"{s.start}-{s.end}" for s in parents)


__all__ = ["Answer", "answers", "context_name"]
