"""Turning executed records into output rows for the store: one row per text per field, one per
span for span fields, each with its offsets, confidence and provenance.

Every text of a shard also gets one `_filter` row (its filter verdict), so the outputs account
for every text: a text with no field rows was filtered out, not lost.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from falconer_core.errors import PlanError
from falconer_core.execution.interpreter import LabelOutcome, OutputRecord
from falconer_core.execution.traces import answers, context_name
from falconer_core.plan import Plan

#: The field that records, for every text, whether it passed the plan's filter.
FILTER_FIELD = "_filter"
OUTPUT_ROW_COLUMNS = (
    "text_id", "field", "value", "span_start", "span_end", "confidence", "model_version", "plan_hash", "step",
    "source", "in_band",
)


def output_rows(
    records: Sequence[OutputRecord], plan: Plan, model_version: str, *,
    sources: Sequence[str] | None = None, in_band: Sequence[bool] | None = None,
) -> pd.DataFrame:
    """Rows for `Store.write_outputs` from records of every text (`include_failed=True`).

    Label fields give "true"/"false"; span fields one row per span (a row with no value and no
    offsets when the text has none); per-span fields one row per answer, named
    `step@start-end` in the `step` column, with the offsets of the span they are about (label
    answers) or of the span they extracted (span answers). `sources` says per record who
    answered it ('proxy' by default, 'llm' in a cascade) and `in_band` whether a cascade found
    it inside a step's uncertain band (null outside cascades).
    """
    outputs = plan.outputs or []
    if any(o.name == FILTER_FIELD for o in outputs):
        raise PlanError(f"output field name {FILTER_FIELD!r} is reserved; rename that output")
    filter_name = "filter" if plan.filter is not None else None
    rows: list[dict[str, Any]] = []
    for k, record in enumerate(records):
        text_id = str(record.id)
        mark = {"source": sources[k] if sources is not None else "proxy", "in_band": in_band[k] if in_band is not None else None}
        mine = [{"text_id": text_id, "field": FILTER_FIELD, "value": record.passed, "step": filter_name}]
        if record.passed:
            for output in outputs:
                mine += _field_rows(text_id, output.name, output.step, record)
        rows += [{**row, **mark} for row in mine]
    frame = pd.DataFrame(rows, columns=list(OUTPUT_ROW_COLUMNS))
    frame[["span_start", "span_end"]] = frame[["span_start", "span_end"]].astype("Int64")
    frame["in_band"] = frame["in_band"].astype("boolean")
    frame["model_version"] = model_version
    frame["plan_hash"] = plan.hash
    return frame


def _field_rows(text_id: str, field: str, step: str, record: OutputRecord) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for answer in answers(record.steps[step]):
        base = {"text_id": text_id, "field": field, "step": context_name(step, answer.parents)}
        where = answer.parents[-1] if answer.parents else None
        if isinstance(answer.outcome, LabelOutcome):
            rows.append({
                **base, "value": answer.outcome.value, "confidence": answer.outcome.confidence,
                "span_start": where.start if where else None, "span_end": where.end if where else None,
            })
        elif not answer.outcome:
            rows.append(base)
        else:
            rows += [
                {**base, "value": s.text, "span_start": s.start, "span_end": s.end, "confidence": s.confidence}
                for s in answer.outcome
            ]
    return rows


__all__ = ["FILTER_FIELD", "OUTPUT_ROW_COLUMNS", "output_rows"]
