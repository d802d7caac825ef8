"""`LLMAnnotator`: the generator's supervision, from any JSON client (endpoint or LocalLLM).

It satisfies the `Runner` contract, so `execute_plan` can run a whole plan on the sample with
it, exactly as the metamodel later runs the plan on the corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from falconer_core.annotators.grounding import ground_spans
from falconer_core.annotators.prompts import label_messages, label_schema, span_messages, span_schema
from falconer_core.errors import ConfigError
from falconer_core.llm.base import JSONClient, JSONRequest
from falconer_core.types import Instructions, LabelResult, Span, per_text_instructions

_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}
_MAX_DROPPED_KEPT = 50


@dataclass
class AnnotatorStats:
    """What the annotator did, for the run's report: calls, items, and grounding losses."""

    requests: int = 0
    labels: int = 0
    span_texts: int = 0
    spans_returned: int = 0
    spans_grounded: int = 0
    grounded_exact: int = 0
    grounded_case: int = 0
    grounded_whitespace: int = 0
    spans_dropped: int = 0
    dropped_examples: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Counts only (no texts), suitable for metrics logging."""
        return {k: v for k, v in self.__dict__.items() if k != "dropped_examples"}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"label {value!r} is not true or false")


def _items(value: Any, count: int, key: str) -> dict[int, dict[str, Any]]:
    """Answer items by id; a lone unwrapped answer is accepted for a one-text batch."""
    if isinstance(value, dict) and "answers" in value:
        value = value["answers"]
    elif isinstance(value, dict) and key in value and count == 1:
        value = [{"id": 1, **value}]
    if not isinstance(value, list):
        raise ValueError('expected {"answers": [...]} with one entry per text')
    items: dict[int, dict[str, Any]] = {}
    for item in value:
        if isinstance(item, dict) and key in item:
            raw_id = item.get("id", 1 if count == 1 else None)
            try:
                items[int(raw_id)] = item
            except (TypeError, ValueError):
                continue
    missing = [i for i in range(1, count + 1) if i not in items]
    if missing:
        raise ValueError(f"answers are missing for ids {missing}; give one entry per id 1..{count}")
    return items


def _label_validator(count: int) -> Callable[[Any], list[dict[str, Any]]]:
    def validate(value: Any) -> list[dict[str, Any]]:
        items = _items(value, count, "label")
        out = []
        for i in range(1, count + 1):
            confidence = items[i].get("confidence", 1.0)
            if not isinstance(confidence, (int, float)) or not 0 <= confidence <= 1:
                confidence = 1.0
            out.append({"label": _as_bool(items[i]["label"]), "confidence": float(confidence)})
        return out

    return validate


def _span_validator(count: int) -> Callable[[Any], list[list[str]]]:
    def validate(value: Any) -> list[list[str]]:
        items = _items(value, count, "spans")
        out = []
        for i in range(1, count + 1):
            spans = items[i]["spans"]
            spans = [spans] if isinstance(spans, str) else spans
            if not isinstance(spans, list):
                raise ValueError(f"id {i}: 'spans' must be a list of strings")
            out.append([s for s in spans if isinstance(s, str) and s.strip()])
        return out

    return validate


class LLMAnnotator:
    """Labels and spans from an LLM, several texts per call, spans grounded to offsets.

    Spans the LLM returns are matched back into the text (see `grounding`): every occurrence,
    exact first, then case- and whitespace-tolerant. Spans that match nowhere are dropped and
    counted in `stats`, with a few examples kept for inspection.
    """

    def __init__(self, client: JSONClient, *, batch_size: int = 8) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.client = client
        self.batch_size = batch_size
        self.stats = AnnotatorStats()

    def __repr__(self) -> str:
        return f"LLMAnnotator(client={self.client!r}, batch_size={self.batch_size})"

    def _batches(self, texts: Sequence[str], instruction: Instructions) -> list[tuple[str, list[int]]]:
        """(instruction, text indices) groups: one instruction per call, at most batch_size texts."""
        groups: dict[str, list[int]] = {}
        for index, instr in enumerate(per_text_instructions(texts, instruction)):
            groups.setdefault(instr, []).append(index)
        return [
            (instr, indices[start : start + self.batch_size])
            for instr, indices in groups.items()
            for start in range(0, len(indices), self.batch_size)
        ]

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        """Whether `instruction` holds for each text (confidence as reported, else 1.0)."""
        batches = self._batches(texts, instruction)
        requests = [
            JSONRequest(
                label_messages(instr, [texts[i] for i in indices]), label_schema(len(indices)),
                schema_name="labels", validate=_label_validator(len(indices)),
            )
            for instr, indices in batches
        ]
        answers = self.client.complete_json_many(requests)
        results: list[LabelResult | None] = [None] * len(texts)
        for (_, indices), answer in zip(batches, answers):
            for index, item in zip(indices, answer):
                results[index] = LabelResult(value=item["label"], confidence=item["confidence"])
        self.stats.requests += len(requests)
        self.stats.labels += len(texts)
        return [r for r in results if r is not None]

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        """Spans answering `instruction` in each text, with character offsets."""
        batches = self._batches(texts, instruction)
        requests = [
            JSONRequest(
                span_messages(instr, [texts[i] for i in indices]), span_schema(len(indices)),
                schema_name="spans", validate=_span_validator(len(indices)),
            )
            for instr, indices in batches
        ]
        answers = self.client.complete_json_many(requests)
        results: list[list[Span]] = [[] for _ in texts]
        for (_, indices), answer in zip(batches, answers):
            for index, values in zip(indices, answer):
                results[index] = self._ground(texts[index], values)
        self.stats.requests += len(requests)
        self.stats.span_texts += len(texts)
        return results

    def _ground(self, text: str, values: list[str]) -> list[Span]:
        grounded = ground_spans(text, values)
        stats = self.stats
        stats.spans_returned += len(set(values))
        stats.spans_grounded += len(grounded.matched)
        for how in grounded.matched.values():
            setattr(stats, f"grounded_{how}", getattr(stats, f"grounded_{how}") + 1)
        stats.spans_dropped += len(grounded.dropped)
        for value in grounded.dropped:
            if len(stats.dropped_examples) < _MAX_DROPPED_KEPT:
                stats.dropped_examples.append((value, text[:200]))
        return grounded.spans
