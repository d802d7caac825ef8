"""`LLMAnnotator`: the generator's supervision, from any JSON client (endpoint or LocalLLM).

It satisfies the `Runner` contract, so `execute_plan` can run a whole plan on the sample with
it, exactly as the metamodel later runs the plan on the corpus. A batch whose reply stopped at
the token limit is split in halves and asked again (never repaired), so a truncated reply
costs calls, not answers. How each (text, instruction) grounded is kept in `grounding`, so
the annotation set can count ungroundable spans per step and keep those answers out of
training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from falconer_core.annotators.grounding import GroundingResult, ground_spans
from falconer_core.annotators.prompts import label_messages, label_schema, span_messages, span_schema
from falconer_core.errors import ConfigError, LLMError
from falconer_core.llm.base import JSONClient, JSONRequest, LLMTruncatedError
from falconer_core.parsing import parse_bool
from falconer_core.types import Instructions, LabelResult, Span, per_text_instructions

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
    truncated_splits: int = 0
    dropped_examples: list[tuple[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Counts only (no texts), suitable for metrics logging."""
        return {k: v for k, v in self.__dict__.items() if k != "dropped_examples"}


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
            out.append({"label": parse_bool(items[i]["label"], "label"), "confidence": float(confidence)})
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


Batch = tuple[str, list[int]]  # one instruction and the indices of the texts asked with it


class LLMAnnotator:
    """Labels and spans from an LLM, several texts per call, spans grounded to offsets.

    Spans the LLM returns are matched back into the text (see `grounding`): every occurrence,
    exact first, then case- and whitespace-tolerant. Spans that match nowhere are dropped,
    counted in `stats` with a few examples, and recorded per (text, instruction) in
    `grounding`; `max_ungrounded` is the share of a step's spans that may be dropped before
    `annotate_sample` fails the step.
    """

    def __init__(self, client: JSONClient, *, batch_size: int = 8, max_ungrounded: float = 0.2) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if not 0 <= max_ungrounded <= 1:
            raise ConfigError(f"max_ungrounded is a share between 0 and 1, got {max_ungrounded}")
        self.client = client
        self.batch_size = batch_size
        self.max_ungrounded = max_ungrounded
        self.stats = AnnotatorStats()
        #: How the spans of each (text, instruction) grounded, for per-step accounting.
        self.grounding: dict[tuple[str, str], GroundingResult] = {}

    def __repr__(self) -> str:
        return f"LLMAnnotator(client={self.client!r}, batch_size={self.batch_size})"

    def _batches(self, texts: Sequence[str], instruction: Instructions) -> list[Batch]:
        """(instruction, text indices) groups: one instruction per call, at most batch_size texts."""
        groups: dict[str, list[int]] = {}
        for index, instr in enumerate(per_text_instructions(texts, instruction)):
            groups.setdefault(instr, []).append(index)
        return [
            (instr, indices[start : start + self.batch_size])
            for instr, indices in groups.items()
            for start in range(0, len(indices), self.batch_size)
        ]

    def _ask(self, texts: Sequence[str], batches: list[Batch], op: str) -> dict[int, Any]:
        """Each text's validated answer item, by text index. A batch cut off at the token limit
        is split in halves and asked again; one text that is still cut off fails the call."""
        messages, schema, validator = (
            (label_messages, label_schema, _label_validator) if op == "label"
            else (span_messages, span_schema, _span_validator)
        )
        requests = [
            JSONRequest(messages(instr, [texts[i] for i in indices]), schema(len(indices)),
                        schema_name=f"{op}s", validate=validator(len(indices)))
            for instr, indices in batches
        ]
        self.stats.requests += len(requests)
        replies = self.client.complete_json_many(requests, errors="return")
        found: dict[int, Any] = {}
        halves: list[Batch] = []
        failure: LLMError | None = None
        for (instr, indices), reply in zip(batches, replies):
            if isinstance(reply, LLMTruncatedError) and len(indices) > 1:
                middle = (len(indices) + 1) // 2
                halves += [(instr, indices[:middle]), (instr, indices[middle:])]
                self.stats.truncated_splits += 1
            elif isinstance(reply, LLMTruncatedError):
                failure = failure or LLMTruncatedError(
                    f"the answer for one text alone was cut off ({texts[indices[0]][:80]!r}, "
                    f"instruction {instr!r}): {reply}"
                )
            elif isinstance(reply, LLMError):
                failure = failure or reply
            else:
                found.update(zip(indices, reply))
        if halves:
            found.update(self._ask(texts, halves, op))
        if failure is not None:
            raise failure
        return found

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        """Whether `instruction` holds for each text (confidence as reported, else 1.0)."""
        items = self._ask(texts, self._batches(texts, instruction), "label")
        self.stats.labels += len(texts)
        return [LabelResult(value=items[i]["label"], confidence=items[i]["confidence"]) for i in range(len(texts))]

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        """Spans answering `instruction` in each text, with character offsets."""
        instructions = per_text_instructions(texts, instruction)
        items = self._ask(texts, self._batches(texts, instruction), "span")
        self.stats.span_texts += len(texts)
        return [self._ground(texts[i], instructions[i], items[i]) for i in range(len(texts))]

    def _ground(self, text: str, instruction: str, values: list[str]) -> list[Span]:
        grounded = ground_spans(text, values)
        self.grounding[(text, instruction)] = grounded
        stats = self.stats
        stats.spans_returned += len(grounded.matched) + len(grounded.dropped)
        stats.spans_grounded += len(grounded.matched)
        for how in grounded.matched.values():
            setattr(stats, f"grounded_{how}", getattr(stats, f"grounded_{how}") + 1)
        stats.spans_dropped += len(grounded.dropped)
        for value in grounded.dropped:
            if len(stats.dropped_examples) < _MAX_DROPPED_KEPT:
                stats.dropped_examples.append((value, text[:200]))
        return grounded.spans
