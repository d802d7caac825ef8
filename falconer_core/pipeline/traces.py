"""Walking a step's trace: every answer a step gave on one text, with the spans it was about.

A top-level step has one answer per text; a per-span step has one per span of its `for_each`
step (nested for chains). Annotation rows, training examples and output rows all need the
same flat view: (the enclosing spans, the instruction actually asked, the answer).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from falconer_core.execution import LabelOutcome, Outcome, PerSpanOutcome, StepTrace
from falconer_core.types import Span


@dataclass(frozen=True)
class Answer:
    """One answer of a step on one text."""

    parents: tuple[Span, ...]  # the for_each spans this answer is about (empty at top level)
    instruction: str  # the instruction sent, templated for per-span steps
    outcome: LabelOutcome | list[Span]


def answers(trace: StepTrace) -> Iterator[Answer]:
    """Every answer in a step's trace, depth first in span order."""
    yield from _walk(trace.result, (), trace.instruction)


def _walk(result: Outcome, parents: tuple[Span, ...], instruction: str) -> Iterator[Answer]:
    if isinstance(result, LabelOutcome):
        yield Answer(parents, instruction, result)
        return
    items = list(result)
    if items and isinstance(items[0], PerSpanOutcome):
        for item in items:
            yield from _walk(item.result, parents + (item.span,), item.instruction or instruction)
        return
    if parents and not items and instruction is None:
        return
    yield Answer(parents, instruction, items)  # type: ignore[arg-type]


def context_name(step: str, parents: Sequence[Span]) -> str:
    """`step` at top level; `step@start-end` for a per-span answer (`/`-joined when nested), so
    rows of one text stay distinct and say which span they answer about."""
    if not parents:
        return step
    return f"{step}@" + "/".join(f"{s.start}-{s.end}" for s in parents)


__all__ = ["Answer", "answers", "context_name"]
