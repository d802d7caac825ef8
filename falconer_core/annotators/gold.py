"""`GoldAnnotator`: human labels already in the corpus, behind the `Runner` contract.

The paper notes that the generator's supervision can come from curated human annotations as
well as from an LLM. With this runner the same pipeline (annotate → fine-tune → evaluate)
runs on gold labels: give each plan step a corpus column, holding a bool-like value for a
label step, or spans for a span step (a list, or a JSON string of a list, of `Span`s,
`{"start", "end"}` objects or exact strings of the text).

Lookups are by instruction, then by text (or by id when `texts` maps ids to texts). A
per-span step's instruction is a template ("What is {speaker}'s job?"); its gold value for a
text is a mapping from the span's value ("Ada Lovelace"), or from the whole filled
instruction, to the answer. Anything not found raises `CorpusError`: guessing would silently
train on wrong labels.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from falconer_core.annotators.grounding import locate
from falconer_core.errors import CorpusError
from falconer_core.parsing import parse_bool
from falconer_core.types import Instructions, LabelResult, Span, per_text_instructions


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def coerce_label(value: Any) -> bool:
    """A bool from a corpus cell: bool, 0/1, or true/false, t/f, yes/no, y/n text (`parse_bool`)."""
    try:
        return parse_bool(value, "gold label")
    except ValueError as err:
        raise CorpusError(str(err)) from None


def coerce_spans(text: str, value: Any) -> list[Span]:
    """Spans from a corpus cell, checked against the text they claim to come from."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except ValueError:
            raise CorpusError(
                f"gold spans {value[:80]!r} are not a JSON list; write e.g. "
                '[{"start": 0, "end": 5}] or ["exact text"]'
            ) from None
    if not isinstance(value, (list, tuple)):
        raise CorpusError(f"gold spans must be a list, got {type(value).__name__}")
    spans: list[Span] = []
    for item in value:
        spans += _one_span(text, item)
    return sorted(set(spans), key=lambda s: (s.start, s.end))


def _one_span(text: str, item: Any) -> list[Span]:
    if isinstance(item, Span):
        start, end, claimed = item.start, item.end, item.text
    elif isinstance(item, Mapping) and "start" in item and "end" in item:
        start, end, claimed = int(item["start"]), int(item["end"]), item.get("text")
    elif isinstance(item, str):
        positions, how = locate(text, item)
        if how != "exact":
            raise CorpusError(f"gold span {item!r} does not occur verbatim in the text {text[:80]!r}")
        return [Span(text=text[s:e], start=s, end=e) for s, e in positions]
    else:
        raise CorpusError(f"gold span {item!r} is neither a Span, a {{start, end}} object nor a string")
    if not 0 <= start < end <= len(text):
        raise CorpusError(f"gold span offsets {start}:{end} are outside a text of length {len(text)}")
    if claimed is not None and text[start:end] != claimed:
        raise CorpusError(f"gold span {claimed!r} at {start}:{end} does not match the text there: {text[start:end]!r}")
    return [Span(text=text[start:end], start=start, end=end)]


def _template_pattern(template: str) -> re.Pattern[str] | None:
    """A regex that matches the template's filled instructions, or None without placeholders."""
    parts: list[str] = []
    fields = 0
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            fields += 1
            parts.append("(.+?)")
    return re.compile("".join(parts) + r"\Z", re.DOTALL) if fields else None


class GoldAnnotator:
    """A `Runner` answering from gold labels and spans keyed by instruction, then text or id."""

    def __init__(
        self,
        labels: Mapping[str, Mapping[Hashable, Any]] | None = None,
        spans: Mapping[str, Mapping[Hashable, Any]] | None = None,
        texts: Mapping[Hashable, str] | None = None,
    ) -> None:
        self.labels = {k: dict(v) for k, v in (labels or {}).items()}
        self.spans = {k: dict(v) for k, v in (spans or {}).items()}
        self._ids: dict[str, Hashable] = {}
        for key, text in (texts or {}).items():
            if text in self._ids and self._ids[text] != key:
                continue  # identical texts: either id answers for both
            self._ids[text] = key
        self._patterns = {
            instruction: pattern
            for instruction in [*self.labels, *self.spans]
            if (pattern := _template_pattern(instruction)) is not None
        }

    def __repr__(self) -> str:
        return f"GoldAnnotator(label_instructions={len(self.labels)}, span_instructions={len(self.spans)})"

    @classmethod
    def from_records(
        cls,
        records: Iterable[Mapping[str, Any]] | Any,
        plan: Any,
        *,
        text_field: str = "text",
        columns: Mapping[str, str] | None = None,
    ) -> GoldAnnotator:
        """Gold from corpus rows: the column named after each plan step (or `columns[step]`).

        `records` is a list of dicts or a pandas DataFrame; `plan` a `Plan`. Steps without a
        column are skipped here and raise when asked. Empty cells (None/NaN) mean "no gold".
        """
        if hasattr(records, "to_dict"):
            records = records.to_dict("records")
        rows = list(records)
        columns = dict(columns or {})
        labels: dict[str, dict[Hashable, Any]] = {}
        spans: dict[str, dict[Hashable, Any]] = {}
        for step in plan.steps:
            column = columns.get(step.name, step.name)
            target = (labels if step.op == "label" else spans).setdefault(step.instruction, {})
            for row in rows:
                if text_field not in row:
                    raise CorpusError(f"records have no {text_field!r} field; pass text_field=")
                if column in row and not _missing(row[column]):
                    text = row[text_field]
                    if text in target and target[text] != row[column]:
                        raise CorpusError(f"identical texts disagree in gold column {column!r}: {text[:80]!r}")
                    target[text] = row[column]
        return cls(labels={k: v for k, v in labels.items() if v}, spans={k: v for k, v in spans.items() if v})

    # -- lookup ---------------------------------------------------------------------------
    def _lookup(self, table: Mapping[str, Mapping[Hashable, Any]], kind: str, text: str, instruction: str) -> Any:
        if instruction in table:
            return self._by_text(table[instruction], kind, text, instruction)
        for template, pattern in self._patterns.items():
            if template not in table:
                continue
            match = pattern.match(instruction)
            if match is None:
                continue
            per_value = self._by_text(table[template], kind, text, template)
            if isinstance(per_value, str):  # a JSON object in a corpus column
                try:
                    per_value = json.loads(per_value)
                except ValueError:
                    pass
            if not isinstance(per_value, Mapping):
                raise CorpusError(
                    f"gold for per-span step {template!r} must map each span value to its answer, "
                    f"got {type(per_value).__name__}"
                )
            for key in (instruction, *match.groups()):
                if key in per_value:
                    return per_value[key]
            raise CorpusError(
                f"no gold {kind} for {instruction!r} on text {text[:80]!r}; gold covers "
                f"{sorted(map(str, per_value))[:10]}"
            )
        known = sorted(table)[:10]
        raise CorpusError(
            f"no gold {kind}s for instruction {instruction!r}; gold has {kind}s for {known}. "
            "Add a column for this step or annotate with an LLM."
        )

    def _by_text(self, gold: Mapping[Hashable, Any], kind: str, text: str, instruction: str) -> Any:
        for key in (text, self._ids.get(text)):
            if key is not None and key in gold and not _missing(gold[key]):
                return gold[key]
        raise CorpusError(f"no gold {kind} for instruction {instruction!r} on text {text[:80]!r}")

    # -- the Runner contract ----------------------------------------------------------------
    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        """Gold labels, with confidence 1."""
        return [
            LabelResult(value=coerce_label(self._lookup(self.labels, "label", text, instr)), confidence=1.0)
            for text, instr in zip(texts, per_text_instructions(texts, instruction))
        ]

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        """Gold spans, checked against each text."""
        return [
            coerce_spans(text, self._lookup(self.spans, "span", text, instr))
            for text, instr in zip(texts, per_text_instructions(texts, instruction))
        ]
