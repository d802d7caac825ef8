"""The end-to-end score: what the proxy would write for a text against what the annotator wrote.

Per-step scores are teacher-forced (a span step is scored only on texts the annotator's filter
passed, a per-span step on the annotator's spans), so a filter error never reaches them. Here
both sides run the whole plan and their output rows (`execution.output_rows`) are compared as
sets of facts per text: "this text passes the filter", "this label field holds" (per span for
per-span steps), and "this word is in this span field". A text the proxy wrongly filters out
loses every fact the annotator found in it; one it wrongly lets in adds every fact it extracts.
Micro precision/recall/F1 over those facts is the end-to-end score. A plan without a filter
decides nothing about which texts pass, so its verdicts are no facts: counted, they would give a
model that finds nothing a free true positive on every text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from falconer_core.evaluation.metrics import covered_words, word_offsets
from falconer_core.execution import FILTER_FIELD, OutputRecord, output_rows
from falconer_core.plan import Plan
from falconer_core.types import Span

#: The scoring unit of the end-to-end score (kept apart from step names by its underscore).
END_TO_END = "_end_to_end"


def end_to_end_counts(
    plan: Plan, reference: Sequence[OutputRecord], predicted: Sequence[OutputRecord], texts: dict[str, str]
) -> dict[str, list[int]]:
    """Per text id: [tp, fp, fn, 0] of the predicted output facts against the reference's.
    Both record lists must hold every text (`execute_plan(..., include_failed=True)`)."""
    filtered = plan.filter is not None
    theirs = _facts(output_rows(list(reference), plan, "reference"), texts, filtered=filtered)
    mine = _facts(output_rows(list(predicted), plan, "predicted"), texts, filtered=filtered)
    counts = {}
    for text_id in texts:
        a, b = mine.get(text_id, set()), theirs.get(text_id, set())
        counts[text_id] = [len(a & b), len(a - b), len(b - a), 0]
    return counts


def _facts(rows: pd.DataFrame, texts: dict[str, str], *, filtered: bool) -> dict[str, set[tuple[Any, ...]]]:
    """Output rows as facts per text: the filter verdict (when the plan has a filter), true
    labels, and covered words."""
    facts: dict[str, set[tuple[Any, ...]]] = {}
    words: dict[str, list[tuple[int, int]]] = {}
    for row in rows.itertuples(index=False):
        text_id = str(row.text_id)
        found = facts.setdefault(text_id, set())
        if row.field == FILTER_FIELD:
            if filtered and _is_bool(row.value) and row.value:
                found.add((FILTER_FIELD,))
        elif _is_bool(row.value):
            if row.value:
                found.add((row.field, row.step))
        elif isinstance(row.value, str) and not pd.isna(row.span_start):
            offsets = words.setdefault(text_id, word_offsets(texts[text_id]))
            span = Span(row.value, int(row.span_start), int(row.span_end))
            found.update((row.field, row.step, w) for w in covered_words([span], offsets))
    return facts


def _is_bool(value: Any) -> bool:
    """A label value; a column of only labels comes back as numpy bools."""
    return isinstance(value, (bool, np.bool_))


__all__ = ["END_TO_END", "end_to_end_counts"]
