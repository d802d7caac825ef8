"""What a pipeline run writes to the DuckDB store besides outputs: the corpus, the plan, the
annotation set and the run record. Each call opens the store, writes, and closes it again, so
no stage holds the file longer than its write (DuckDB allows one writing process at a time).

While a run executes, `heartbeat` says from a thread of the flow's process, every
`Settings().heartbeat_seconds`, that the run is alive: a shard that takes minutes never makes a
live run look stale, and a killed run stops beating at once. Sessions of one process take turns
(`_SESSION`), so a beat never races a shard's commit for the same row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from falconer_core.annotators.annotation import AnnotationSet, annotation_rows
from falconer_core.cascade.report import CascadeReport
from falconer_core.corpus import CorpusSnapshot
from falconer_core.drift.verdict import DriftVerdict
from falconer_core.execution.parts import read_part, remove_part
from falconer_core.execution.shards import ShardResult
from falconer_core.plan import Plan
from falconer_core.store.database import Store

_log = logging.getLogger(__name__)

#: One store session at a time in this process (a heartbeat beside a commit: no write conflict).
_SESSION = threading.RLock()


@contextmanager
def _session(store_path: str | Path) -> Iterator[Store]:
    with _SESSION, Store(store_path) as store:
        yield store


def record_corpus(store_path: str | Path, corpus: CorpusSnapshot) -> str:
    """Register the snapshotted corpus (its texts stay in the snapshot); returns its corpus id."""
    with _session(store_path) as store:
        return store.register_corpus(corpus)


def record_annotations(store_path: str | Path, annotations: AnnotationSet) -> int:
    """Store the plan and the annotation set (replacing an earlier copy); returns rows written."""
    plan = annotations.plan
    with _session(store_path) as store:
        store.upsert_plan(plan.hash, plan.to_dict(), plan.instruction)
        return store.record_annotations(
            annotations.hash, annotation_rows(annotations), plan_hash=plan.hash, annotator=annotations.annotator
        )


def start_run(
    store_path: str | Path, run_id: str, *, kind: str, plan: Plan, model_version: str, corpus_id: str,
    params: dict[str, Any], n_shards: int | None = None, n_texts: int | None = None,
    work_keys: Mapping[int, str] | None = None,
) -> tuple[list[int], list[int]]:
    """Record the run as running (keeping its first start time), reuse the shards other runs
    already did on the same texts, and return (every completed shard, the ones reused now)."""
    with _session(store_path) as store:
        store.upsert_plan(plan.hash, plan.to_dict(), plan.instruction)
        store.upsert_run(
            run_id, kind, status="running", plan_hash=plan.hash, model_version=model_version,
            corpus_id=corpus_id, params=params,
        )
        if n_shards is not None:
            store.set_run_size(run_id, n_shards=n_shards, n_texts=n_texts or 0)
        reused = store.reuse_shards(run_id, work_keys or {})
        return store.completed_shards(run_id), reused


def commit_shard(store_path: str | Path, run_id: str, result: ShardResult, work_key: str | None) -> int:
    """Commit a worker's part into the store (rows and completion in one transaction), then
    delete the part; returns rows written. Repeating it for the same shard is harmless."""
    part = read_part(result.part)
    with _session(store_path) as store:
        rows = store.shard_outputs.commit_part(
            run_id, result.shard.index, part, work_key=work_key, n_texts=result.n_texts, seconds=result.seconds,
            cascade=result.cascade,
        )
    remove_part(result.part)
    return rows


def finish_run(store_path: str | Path, run_id: str, status: str = "completed") -> dict[str, Any]:
    """Mark the run finished; returns its record with the row and shard counts."""
    with _session(store_path) as store:
        store.set_run_status(run_id, status)  # type: ignore[arg-type]
        record = store.run(run_id) or {}
        (rows,) = store.query("SELECT count(*) AS n FROM outputs WHERE run_id = ?", [run_id])["n"].tolist()
        return {**record, "rows": int(rows), "shards": len(store.completed_shards(run_id))}


def record_run_report(store_path: str | Path, run_id: str, report: CascadeReport) -> CascadeReport:
    """Keep `report` as the run's report, with the cascade's totals over its committed shards."""
    with _session(store_path) as store:
        counts = store.run_records.cascade_counts(run_id)
        return store.run_records.update_run_report(run_id, report.with_counts(counts))


@contextmanager
def heartbeat(store_path: str | Path, run_id: str, *, every: float) -> Iterator[None]:
    """Beat for `run_id` every `every` seconds while the block runs; a beat that fails (the
    store busy or full) is logged and the next one tries again."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every):
            try:
                with _session(store_path) as store:
                    store.heartbeat(run_id)
            except Exception as exc:  # noqa: BLE001  (a missed beat must not end the run)
                _log.warning("run %s: heartbeat not written (%s: %s)", run_id, type(exc).__name__, exc)

    thread = threading.Thread(target=beat, name=f"falconer-heartbeat-{run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def record_drift(store_path: str | Path, verdict: DriftVerdict) -> None:
    """Keep a run's drift verdict with its record."""
    with _session(store_path) as store:
        store.record_drift(verdict)


def stored_outputs(store_path: str | Path, run_id: str, text_ids: list[str]):
    """The outputs a run stored for these texts."""
    with _session(store_path) as store:
        return store.outputs_of(run_id, text_ids)


__all__ = [
    "commit_shard", "finish_run", "heartbeat", "record_annotations", "record_corpus", "record_drift", "record_run_report", "start_run",
    "stored_outputs",
]
