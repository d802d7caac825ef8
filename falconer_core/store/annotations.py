"""Plans and annotation sets in the store: a plan under its hash, an annotation set as rows
(one per text, step and span) that replace any earlier copy of the same set."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from falconer_core.clock import now as _now
from falconer_core.corpus import validate_frame
from falconer_core.errors import StoreError
from falconer_core.store.connection import Connection, quoted, where
from falconer_core.store.schemas import (
    ANNOTATION_COLUMNS,
    AnnotationsSchema,
    PlansSchema,
    fill_key,
    require_columns,
)

_ANNOTATION_OPTIONAL = ("plan_hash", "value", "span_text", "start", "end", "annotator")


class AnnotationRecords:
    """The `plans` and `annotations` tables."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def upsert_plan(self, plan_hash: str, plan: str | Mapping[str, Any], instruction: str | None = None) -> None:
        """Record a plan under its hash; the first `created_at` is kept on re-insert."""
        plan_json = plan if isinstance(plan, str) else json.dumps(plan, sort_keys=True)
        try:
            json.loads(plan_json)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"plan {plan_hash} is not valid JSON ({exc}); pass the plan as a dict or JSON text"
            ) from None
        self.db.execute(
            "INSERT INTO plans VALUES (?, ?, ?, ?) ON CONFLICT (plan_hash) DO UPDATE "
            "SET plan_json = excluded.plan_json, instruction = excluded.instruction",
            [plan_hash, plan_json, instruction, _now()],
        )

    def plan(self, plan_hash: str) -> dict[str, Any] | None:
        """The stored plan as a dict, or None when the hash is unknown."""
        row = self.db.one("SELECT plan_json FROM plans WHERE plan_hash = ?", [plan_hash])
        return None if row is None else json.loads(row[0])

    def plans(self) -> pd.DataFrame:
        """Every stored plan, newest first."""
        return self.db.read(PlansSchema, "SELECT * FROM plans ORDER BY created_at DESC", [], "plans")

    def record_annotations(
        self, annotation_set_hash: str, frame: pd.DataFrame, *, plan_hash: str | None = None,
        annotator: str | None = None,
    ) -> int:
        """Store an annotation set, replacing any earlier copy of the same set; returns rows.

        `frame` needs `text_id`, `step`, `kind` and, per kind, `value` (label) or
        `span_text`/`start`/`end` (span; all null = no span). `plan_hash` and `annotator` fill
        the columns when the frame lacks them.
        """
        frame = frame.copy()
        require_columns(frame, ("text_id", "step", "kind"), "annotations frame")
        fill_key(frame, "annotation_set_hash", annotation_set_hash, what="annotations frame")
        for column, default in (("plan_hash", plan_hash), ("annotator", annotator)):
            if column not in frame.columns:
                frame[column] = default
        for column in _ANNOTATION_OPTIONAL:
            if column not in frame.columns:
                frame[column] = None
        frame["created_at"] = _now()
        unknown = sorted(set(frame.columns) - set(ANNOTATION_COLUMNS))
        if unknown:
            raise StoreError(
                f"annotations frame has unknown columns {unknown}; allowed: {list(ANNOTATION_COLUMNS)}"
            )
        frame = validate_frame(
            AnnotationsSchema, frame[list(ANNOTATION_COLUMNS)], what="annotations frame", error=StoreError
        )
        with self.db.transaction():
            self.db.execute("DELETE FROM annotations WHERE annotation_set_hash = ?", [annotation_set_hash])
            self.db.insert_frame("annotations", frame)
        return len(frame)

    def annotations(self, annotation_set_hash: str | None = None, *, plan_hash: str | None = None) -> pd.DataFrame:
        """Stored annotations, filtered by set and/or plan."""
        clause, params = where({"annotation_set_hash": annotation_set_hash, "plan_hash": plan_hash})
        return self.db.read(
            AnnotationsSchema,
            f"SELECT {quoted(ANNOTATION_COLUMNS)} FROM annotations{clause} ORDER BY text_id, step, start",
            params,
            "annotations",
        )


__all__ = ["AnnotationRecords"]
