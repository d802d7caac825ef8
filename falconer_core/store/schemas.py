"""pandera schemas of the store's tables: every frame written to or read from DuckDB is checked
against one, so a bug upstream fails at the boundary with a readable message instead of
poisoning a table."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine

RunStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
RUN_STATUSES: tuple[str, ...] = ("pending", "running", "completed", "failed", "cancelled")

_UTC = pandas_engine.DateTime(unit="us", tz="UTC")
_STR = pa.Column(str, nullable=True, coerce=True)
_INT = pa.Column("Int64", nullable=True, coerce=True)


def _span_ok(start: str, end: str):
    def check(frame: pd.DataFrame) -> pd.Series:
        s, e = frame[start], frame[end]
        both_null = s.isna() & e.isna()
        ordered = s.notna() & e.notna() & (s >= 0) & (e >= s)
        return (both_null | ordered).fillna(False).astype(bool)

    return pa.Check(check, name=f"{start}/{end} both null, or 0 <= {start} <= {end}")


#: One row per text per output field (one per span for span fields). `value` is text: span
#: text, or "true"/"false" for label fields; null with null offsets means "no span found".
OutputsSchema = pa.DataFrameSchema(
    {
        "run_id": pa.Column(str, nullable=False, coerce=True),
        "shard": pa.Column("int64", pa.Check.ge(0), nullable=False, coerce=True),
        "text_id": pa.Column(str, nullable=False, coerce=True),
        "field": pa.Column(str, nullable=False, coerce=True),
        "value": _STR,
        "span_start": _INT,
        "span_end": _INT,
        "confidence": pa.Column("float64", pa.Check.in_range(0.0, 1.0), nullable=True, coerce=True),
        "model_version": _STR,
        "plan_hash": _STR,
        "step": _STR,
        "created_at": pa.Column(_UTC, nullable=False, coerce=True),
    },
    checks=[_span_ok("span_start", "span_end")],
    strict=True,
    ordered=True,
    name="OutputsSchema",
)


def _annotation_rows_ok(frame: pd.DataFrame) -> pd.Series:
    label = frame["kind"] == "label"
    span = frame["kind"] == "span"
    no_span = frame["span_text"].isna() & frame["start"].isna() & frame["end"].isna()
    span_set = frame["span_text"].notna() & frame["start"].notna() & frame["end"].notna()
    ok_label = label & frame["value"].notna() & no_span
    ok_span = span & frame["value"].isna() & (no_span | span_set)
    return (ok_label | ok_span).fillna(False).astype(bool)


#: One row per label answer, one per annotated span; a span row with null span_text/start/end
#: records "annotated, no span here" (a negative example, which training needs).
AnnotationsSchema = pa.DataFrameSchema(
    {
        "annotation_set_hash": pa.Column(str, nullable=False, coerce=True),
        "plan_hash": _STR,
        "text_id": pa.Column(str, nullable=False, coerce=True),
        "step": pa.Column(str, nullable=False, coerce=True),
        "kind": pa.Column(str, pa.Check.isin(["label", "span"]), nullable=False, coerce=True),
        "value": pa.Column("boolean", nullable=True, coerce=True),
        "span_text": _STR,
        "start": _INT,
        "end": _INT,
        "annotator": _STR,
        "created_at": pa.Column(_UTC, nullable=False, coerce=True),
    },
    checks=[
        _span_ok("start", "end"),
        pa.Check(
            _annotation_rows_ok,
            name="label rows have a value and no span; span rows have no value and either all "
            "or none of span_text/start/end",
        ),
    ],
    strict=True,
    ordered=True,
    name="AnnotationsSchema",
)

RunsSchema = pa.DataFrameSchema(
    {
        "run_id": pa.Column(str, nullable=False, unique=True, coerce=True),
        "kind": pa.Column(str, nullable=False, coerce=True),
        "plan_hash": _STR,
        "model_version": _STR,
        "corpus_id": _STR,
        "status": pa.Column(str, pa.Check.isin(list(RUN_STATUSES)), nullable=False, coerce=True),
        "started_at": pa.Column(_UTC, nullable=False, coerce=True),
        "finished_at": pa.Column(_UTC, nullable=True, coerce=True),
        "params": _STR,
    },
    strict=True,
    ordered=True,
    name="RunsSchema",
)

PlansSchema = pa.DataFrameSchema(
    {
        "plan_hash": pa.Column(str, nullable=False, unique=True, coerce=True),
        "plan_json": pa.Column(str, nullable=False, coerce=True),
        "instruction": _STR,
        "created_at": pa.Column(_UTC, nullable=False, coerce=True),
    },
    strict=True,
    ordered=True,
    name="PlansSchema",
)

CorporaSchema = pa.DataFrameSchema(
    {
        "corpus_id": pa.Column(str, nullable=False, unique=True, coerce=True),
        "name": _STR,
        "n_texts": pa.Column("int64", pa.Check.ge(0), nullable=False, coerce=True),
        "source": _STR,
        "created_at": pa.Column(_UTC, nullable=False, coerce=True),
    },
    strict=True,
    ordered=True,
    name="CorporaSchema",
)

OUTPUT_COLUMNS: tuple[str, ...] = tuple(OutputsSchema.columns)
ANNOTATION_COLUMNS: tuple[str, ...] = tuple(AnnotationsSchema.columns)


__all__ = [
    "ANNOTATION_COLUMNS",
    "OUTPUT_COLUMNS",
    "RUN_STATUSES",
    "AnnotationsSchema",
    "CorporaSchema",
    "OutputsSchema",
    "PlansSchema",
    "RunStatus",
    "RunsSchema",
]
