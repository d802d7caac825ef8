"""The small value types every layer shares: spans, label results, training examples, and the
`Runner` contract that the metamodel and every annotator satisfy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Span:
    """A piece of a text found by `get_span`: `source[start:end] == text`."""

    text: str
    start: int
    end: int
    confidence: float = 1.0

    def to_dict(self) -> dict:
        return {"text": self.text, "start": self.start, "end": self.end, "confidence": self.confidence}


@dataclass(frozen=True)
class LabelResult:
    """The answer of `get_label` for one text; truthy when the label holds."""

    value: bool
    confidence: float

    def __bool__(self) -> bool:
        return self.value


@dataclass(frozen=True)
class LabelExample:
    """Supervision for `get_label`: does `instruction` hold for `text`?"""

    text: str
    instruction: str
    label: bool


@dataclass(frozen=True)
class SpanExample:
    """Supervision for `get_span`: the spans of `text` that answer `instruction`."""

    text: str
    instruction: str
    spans: tuple[Span, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "spans", tuple(self.spans))


Example = LabelExample | SpanExample

# One instruction for the whole batch, or one per text (per-span steps template their
# instruction with a value from an earlier step, so texts in one batch can differ).
Instructions = str | Sequence[str]


@runtime_checkable
class Runner(Protocol):
    """Anything that answers the two primitives: the metamodel, an LLM, a human label set."""

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]: ...

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]: ...


def per_text_instructions(texts: Sequence[str], instruction: Instructions) -> list[str]:
    """Broadcast one instruction to every text, or check a per-text list has the right length."""
    if isinstance(instruction, str):
        return [instruction] * len(texts)
    instructions = list(instruction)
    if len(instructions) != len(texts):
        from falconer_core.errors import FalconerError

        raise FalconerError(
            f"got {len(instructions)} instructions for {len(texts)} texts; pass one instruction "
            "or exactly one per text"
        )
    return instructions
