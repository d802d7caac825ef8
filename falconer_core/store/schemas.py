"""pandera schemas of the store's tables: every frame written to or read from DuckDB is checked
against one, so a bug upstream fails at the boundary with a readable message instead of
poisoning a table."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.engines import pandas_engine

from falconer_core.corpus import validate_frame
from falconer_core.errors import StoreError

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
        "source": pa.Column(str, pa.Check.isin(["proxy", "llm"]), nullable=True, coerce=True),
        "in_band": pa.Column("boolean", nullable=True, coerce=True),
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
        "n_shards": _INT,
        "n_texts": _INT,
        "heartbeat_at": pa.Column(_UTC, nullable=True, coerce=True),
        "report": _STR,
        "drift_status": _STR,
        "drift": _STR,
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
        "snapshot": _STR,
    },
    strict=True,
    ordered=True,
    name="CorporaSchema",
)

OUTPUT_COLUMNS: tuple[str, ...] = tuple(OutputsSchema.columns)
ANNOTATION_COLUMNS: tuple[str, ...] = tuple(AnnotationsSchema.columns)


_OUTPUT_OPTIONAL = (
    "value", "span_start", "span_end", "confidence", "model_version", "plan_hash", "step", "source", "in_band",
)


def normalise_outputs(
    frame: pd.DataFrame, run_id: str, shard: int, *, model_version: str | None = None, plan_hash: str | None = None
) -> pd.DataFrame:
    """One shard's output rows with their key columns set and values as text (bools become
    "true"/"false"), checked against `OutputsSchema` but for `created_at` (set when stored).
    Refuses a frame that names another run or shard, or carries unknown columns."""
    frame = frame.copy()
    require_columns(frame, ("text_id", "field"), "outputs frame")
    fill_key(frame, "run_id", run_id, what="outputs frame")
    fill_key(frame, "shard", shard, what="outputs frame")
    defaults = {"model_version": model_version, "plan_hash": plan_hash, "source": "proxy"}
    for column in _OUTPUT_OPTIONAL:
        if column not in frame.columns:
            frame[column] = defaults.get(column)
    frame["value"] = frame["value"].map(value_text).astype("str")
    unknown = sorted(set(frame.columns) - set(OUTPUT_COLUMNS))
    if unknown:
        raise StoreError(f"outputs frame has unknown columns {unknown}; allowed: {list(OUTPUT_COLUMNS)}")
    columns = [c for c in OUTPUT_COLUMNS if c != "created_at"]
    schema = OutputsSchema.remove_columns(["created_at"])
    return validate_frame(schema, frame[columns], what=f"outputs of run {run_id} shard {shard}", error=StoreError)


def value_text(value: object) -> str | None:
    """An output value as the text the store keeps."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StoreError(f"{what} lacks required column(s) {missing}; it has {list(frame.columns)}")


def fill_key(frame: pd.DataFrame, column: str, value: object, *, what: str) -> None:
    """Set a key column, refusing a frame that already says something different."""
    if column in frame.columns:
        present = set(frame[column].dropna().unique().tolist())
        if present - {value}:
            raise StoreError(
                f"{what} has {column} values {sorted(map(str, present))[:5]} but is written as "
                f"{column}={value!r}; drop the column or write each part separately"
            )
    frame[column] = value


def is_missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


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
    "fill_key",
    "is_missing",
    "normalise_outputs",
    "require_columns",
    "value_text",
]
