"""What a pipeline run writes to the DuckDB store besides outputs: the corpus, the plan, the
annotation set and the run record. Each call opens the store, writes, and closes it again, so
no stage holds the file longer than its write (DuckDB allows one writing process at a time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from falconer_core.annotators.annotation import AnnotationSet, annotation_rows
from falconer_core.plan import Plan
from falconer_core.store.database import Store


def record_corpus(store_path: str | Path, corpus: pd.DataFrame, *, name: str | None, source: str | None) -> str:
    """Register the corpus (ids and texts); returns its corpus id."""
    with Store(store_path) as store:
        return store.upsert_corpus(corpus[["id", "text"]], name=name, source=source)


def record_annotations(store_path: str | Path, annotations: AnnotationSet) -> int:
    """Store the plan and the annotation set (replacing an earlier copy); returns rows written."""
    plan = annotations.plan
    with Store(store_path) as store:
        store.upsert_plan(plan.hash, plan.to_dict(), plan.instruction)
        return store.record_annotations(
            annotations.hash, annotation_rows(annotations), plan_hash=plan.hash, annotator=annotations.annotator
        )


def start_run(
    store_path: str | Path, run_id: str, *, kind: str, plan: Plan, model_version: str, corpus_id: str,
    params: dict[str, Any],
) -> list[int]:
    """Record the run as running (keeping its first start time) and return its completed shards."""
    with Store(store_path) as store:
        store.upsert_plan(plan.hash, plan.to_dict(), plan.instruction)
        store.upsert_run(
            run_id, kind, status="running", plan_hash=plan.hash, model_version=model_version,
            corpus_id=corpus_id, params=params,
        )
        return store.completed_shards(run_id)


def write_shard(store_path: str | Path, run_id: str, shard: int, rows: pd.DataFrame) -> int:
    """Replace the shard's rows and mark it complete, atomically; returns rows written."""
    with Store(store_path) as store:
        return store.write_outputs(run_id, shard, rows)


def finish_run(store_path: str | Path, run_id: str, status: str = "completed") -> dict[str, Any]:
    """Mark the run finished; returns its record with the row and shard counts."""
    with Store(store_path) as store:
        store.set_run_status(run_id, status)  # type: ignore[arg-type]
        record = store.run(run_id) or {}
        (rows,) = store.query("SELECT count(*) AS n FROM outputs WHERE run_id = ?", [run_id])["n"].tolist()
        return {**record, "rows": int(rows), "shards": len(store.completed_shards(run_id))}


__all__ = ["finish_run", "record_annotations", "record_corpus", "start_run", "write_shard"]
