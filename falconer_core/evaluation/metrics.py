"""Scores for the two primitives, in plain Python so they run anywhere (no torch, no numpy).

`word_f1` is the paper's span metric: it compares the *words* that predicted and reference spans
cover, so a span that is off by a word still earns partial credit, which suits annotators (LLMs,
people) that disagree on span edges. `exact_span_prf` is the strict counterpart and
`label_metrics` scores `get_label`.

Edge cases, the same for every precision/recall/F1 here (micro-averaged: counts are summed over
all texts before dividing):
- nothing predicted and nothing in the reference anywhere (tp = fp = fn = 0): precision, recall
  and F1 are 1.0, since the two agree perfectly;
- otherwise a ratio whose denominator is 0 is 0.0 (no predictions: precision 0.0; no
  reference: recall 0.0), and F1 is 0.0 when precision + recall is 0.
A text with neither predictions nor reference adds nothing to the counts.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from typing import Protocol, TypedDict

from falconer_core.errors import ConfigError
from falconer_core.types import LabelResult

_WORD = re.compile(r"\S+")


class HasOffsets(Protocol):
    """Anything with character offsets; `Span` is the usual one."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...


class SpanScores(TypedDict):
    """Micro precision/recall/F1 and the counts they come from."""

    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


class LabelScores(TypedDict):
    """Accuracy over all items, and precision/recall/F1 of the positive (True) class."""

    accuracy: float
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int
    tn: int
    n: int


def prf(tp: int, fp: int, fn: int) -> SpanScores:
    """Precision, recall and F1 from counts, with the edge cases in the module docstring."""
    if tp + fp + fn == 0:
        return SpanScores(precision=1.0, recall=1.0, f1=1.0, tp=0, fp=0, fn=0)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return SpanScores(precision=precision, recall=recall, f1=f1, tp=tp, fp=fp, fn=fn)


def word_offsets(text: str) -> list[tuple[int, int]]:
    """The (start, end) of every whitespace-separated word of `text`."""
    return [match.span() for match in _WORD.finditer(text)]


def covered_words(spans: Sequence[HasOffsets], words: Sequence[tuple[int, int]]) -> set[int]:
    """Indexes of the words that some span overlaps by at least one character; `words` must be
    in text order, as `word_offsets` gives them."""
    ends = [end for _, end in words]
    covered: set[int] = set()
    for span in spans:
        if span.end <= span.start:
            continue  # an empty span covers no character, so no word
        index = bisect_right(ends, span.start)  # first word ending after the span starts
        while index < len(words) and words[index][0] < span.end:
            covered.add(index)
            index += 1
    return covered


def word_f1(
    predicted: Sequence[Sequence[HasOffsets]],
    gold: Sequence[Sequence[HasOffsets]],
    texts: Sequence[str],
) -> SpanScores:
    """The paper's word-level F1: per text, the words covered by predicted spans against the
    words covered by gold spans, counts summed over texts (micro average)."""
    _check_lengths(predicted=predicted, gold=gold, texts=texts)
    tp = fp = fn = 0
    for spans, references, text in zip(predicted, gold, texts):
        words = word_offsets(text)
        mine, theirs = covered_words(spans, words), covered_words(references, words)
        tp += len(mine & theirs)
        fp += len(mine - theirs)
        fn += len(theirs - mine)
    return prf(tp, fp, fn)


def exact_span_prf(
    predicted: Sequence[Sequence[HasOffsets]], gold: Sequence[Sequence[HasOffsets]]
) -> SpanScores:
    """Strict span scores: a prediction counts only if its (start, end) equals a gold span's.
    Duplicate spans in one text count once."""
    _check_lengths(predicted=predicted, gold=gold)
    tp = fp = fn = 0
    for spans, references in zip(predicted, gold):
        mine = {(span.start, span.end) for span in spans}
        theirs = {(span.start, span.end) for span in references}
        tp += len(mine & theirs)
        fp += len(mine - theirs)
        fn += len(theirs - mine)
    return prf(tp, fp, fn)


def label_metrics(predicted: Sequence[bool | LabelResult], gold: Sequence[bool]) -> LabelScores:
    """Accuracy, and precision/recall/F1 of the positive class, of `get_label` answers."""
    _check_lengths(predicted=predicted, gold=gold)
    if not gold:
        raise ConfigError("label_metrics got no items; accuracy of nothing is undefined")
    tp = fp = fn = tn = 0
    for index, (answer, truth) in enumerate(zip(predicted, gold)):
        mine, theirs = _as_bool(answer, f"predicted[{index}]"), _as_bool(truth, f"gold[{index}]")
        if mine and theirs:
            tp += 1
        elif mine:
            fp += 1
        elif theirs:
            fn += 1
        else:
            tn += 1
    scores = prf(tp, fp, fn)
    return LabelScores(
        accuracy=(tp + tn) / len(gold),
        precision=scores["precision"],
        recall=scores["recall"],
        f1=scores["f1"],
        tp=tp,
        fp=fp,
        fn=fn,
        tn=tn,
        n=len(gold),
    )


def _as_bool(value: object, where: str) -> bool:
    """A label as a bool; refuses None, strings and the like, which `bool()` would silently
    turn into an answer (`bool("no")` is True)."""
    if isinstance(value, LabelResult):
        return value.value
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return bool(value)
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ConfigError(f"{where} is {value!r}; expected a bool or a LabelResult")


def _check_lengths(**sequences: Sequence[object]) -> None:
    """Parallel inputs must line up one to one, or every score after the gap would be wrong."""
    lengths = {name: len(items) for name, items in sequences.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{name}={length}" for name, length in lengths.items())
        raise ConfigError(f"inputs differ in length ({shown}); pass one entry per text")
