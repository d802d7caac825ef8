"""Align span strings an LLM returns back to character offsets in the source text.

LLMs return the words, not where they are. A span is grounded by matching it in the text in
three passes of growing tolerance: exact, then case-insensitive, then case-insensitive with
any run of whitespace matching any other (line breaks, double spaces); surrounding quotes and
punctuation the model added are stripped before the last try. Matches must sit on word
boundaries, so "art" is not found inside "start".

Every occurrence is kept, not only the first: the annotation trains a tagger, and a mention
left untagged at its second occurrence would teach the tagger that it is not a mention. When
grounded spans overlap (the model returned "New York" and "New York City"), the longer one
wins. A span that matches nowhere is dropped: it is a hallucination or a paraphrase, and
either would be a wrong label.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from falconer_core.types import Span

Match = Literal["exact", "case", "whitespace"]
_EDGE_PUNCT = "\"'`“”‘’«».,;:!?()[]{}<>"


@dataclass
class GroundingResult:
    """Grounded spans of one text, which pass matched each input, and what was dropped."""

    spans: list[Span] = field(default_factory=list)
    matched: dict[str, Match] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)


def _bounded(text: str, start: int, end: int) -> bool:
    """True when the match does not cut a word at either edge."""
    left_ok = start == 0 or not (text[start - 1].isalnum() and text[start].isalnum())
    right_ok = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return left_ok and right_ok


def _find(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(text) if m.end() > m.start() and _bounded(text, m.start(), m.end())]


def _whitespace_pattern(value: str) -> re.Pattern[str] | None:
    words = value.split()
    return re.compile(r"\s+".join(re.escape(w) for w in words), re.IGNORECASE) if words else None


def locate(text: str, value: str) -> tuple[list[tuple[int, int]], Match | None]:
    """Every (start, end) where `value` occurs in `text`, and the pass that found it."""
    if not value.strip():
        return [], None
    exact = _find(text, re.compile(re.escape(value)))
    if exact:
        return exact, "exact"
    folded = _find(text, re.compile(re.escape(value), re.IGNORECASE))
    if folded:
        return folded, "case"
    for candidate in dict.fromkeys([value, value.strip().strip(_EDGE_PUNCT).strip()]):
        pattern = _whitespace_pattern(candidate)
        found = _find(text, pattern) if pattern is not None else []
        if found:
            return found, "whitespace"
    return [], None


def _without_overlaps(spans: Iterable[Span]) -> list[Span]:
    """Keep the longest of overlapping spans (ties: the earlier one), in text order."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
        if all(span.end <= k.start or span.start >= k.end for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)


def ground_spans(text: str, values: Iterable[str], confidence: float = 1.0) -> GroundingResult:
    """Ground each returned string in `text`: all occurrences, longest wins on overlap; blank
    strings are ignored (they are not answers), unmatched ones land in `dropped`."""
    result = GroundingResult()
    found: list[Span] = []
    for value in dict.fromkeys(v for v in values if isinstance(v, str) and v.strip()):
        positions, how = locate(text, value)
        if how is None:
            result.dropped.append(value)
            continue
        result.matched[value] = how
        found += [Span(text=text[s:e], start=s, end=e, confidence=confidence) for s, e in positions]
    result.spans = _without_overlaps(set(found))
    return result
