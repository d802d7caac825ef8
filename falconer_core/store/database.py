"""The DuckDB store: corpora, plans, annotations, runs and mined outputs in one embedded file.

`Store` opens the file, migrates its schema and hands out one collaborator per concern, all over
one shared `Connection`: `corpus_records` (corpora), `annotation_records` (plans and
annotations), `shard_outputs` (outputs, shard parts, reuse, export) and `run_records` (runs).
Its methods of the same names forward to them, so callers keep one entry point.

Why DuckDB: one file, no server, SQL over millions of output rows, and zero-copy inserts from
pandas/Arrow. Why these rules:

- **Idempotent writes.** `write_outputs(run_id, shard, frame)` deletes that (run, shard) and
  inserts the new rows in one transaction, and marks the shard complete in the same
  transaction. A crashed or retried shard therefore never leaves duplicates or half a shard,
  and `completed_shards` tells execution exactly what is left to do.
- **pandera on every frame.** Each frame written or read is validated (`OutputsSchema`,
  `AnnotationsSchema`, …), so a bug upstream fails at the boundary with a readable message
  instead of poisoning the table.
- **No secrets.** Nothing here holds credentials; `upsert_run` refuses params whose keys look
  like one (API keys belong in the environment, not in a run record).

Threading: a `Store` owns exactly one DuckDB connection (see `connection`). Its calls take a
lock, so sharing one Store between threads is safe but serialised; for parallel work open one
`Store` per thread on the same path. DuckDB lets only one *process* open a file for writing: a
second process gets a `StoreError` saying so (or waits, given `wait_seconds`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa_lib

from falconer_core.corpus import CorpusSnapshot
from falconer_core.disk import disk_errors
from falconer_core.errors import StoreError
from falconer_core.execution.counts import ShardCounts
from falconer_core.settings import Settings
from falconer_core.store.annotations import AnnotationRecords
from falconer_core.store.connection import Connection
from falconer_core.store.corpora import CorpusRecords
from falconer_core.store.outputs import ExportFormat, ShardOutputs
from falconer_core.store.runs import RunRecords
from falconer_core.store.schemas import RunStatus

if TYPE_CHECKING:  # the cascade builds on execution, which reads the store's schemas
    from falconer_core.cascade.report import CascadeReport
    from falconer_core.drift.verdict import DriftVerdict

SCHEMA_VERSION = 4

# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------

_DDL = """
CREATE TABLE IF NOT EXISTS falconer_meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL);
CREATE TABLE IF NOT EXISTS corpora (
    corpus_id VARCHAR PRIMARY KEY, name VARCHAR, n_texts BIGINT NOT NULL, source VARCHAR,
    created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS corpus_texts (
    corpus_id VARCHAR NOT NULL, id VARCHAR NOT NULL, text VARCHAR NOT NULL,
    PRIMARY KEY (corpus_id, id));
CREATE TABLE IF NOT EXISTS plans (
    plan_hash VARCHAR PRIMARY KEY, plan_json JSON NOT NULL, instruction VARCHAR,
    created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS annotations (
    annotation_set_hash VARCHAR NOT NULL, plan_hash VARCHAR, text_id VARCHAR NOT NULL,
    step VARCHAR NOT NULL, kind VARCHAR NOT NULL CHECK (kind IN ('label', 'span')),
    value BOOLEAN, span_text VARCHAR, start INTEGER, "end" INTEGER, annotator VARCHAR,
    created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, plan_hash VARCHAR, model_version VARCHAR,
    corpus_id VARCHAR, status VARCHAR NOT NULL, started_at TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ, params JSON);
CREATE TABLE IF NOT EXISTS outputs (
    run_id VARCHAR NOT NULL, shard INTEGER NOT NULL, text_id VARCHAR NOT NULL,
    field VARCHAR NOT NULL, value VARCHAR, span_start INTEGER, span_end INTEGER,
    confidence DOUBLE, model_version VARCHAR, plan_hash VARCHAR, step VARCHAR,
    created_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS run_shards (
    run_id VARCHAR NOT NULL, shard INTEGER NOT NULL, n_rows BIGINT NOT NULL,
    completed_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (run_id, shard));
"""

# Schema version 2: corpora point at their Parquet snapshot instead of copying texts; runs carry
# their size and a heartbeat; shards carry the key of the work they hold, so another run over
# the same texts can reuse them. Idempotent, so it upgrades a version-1 file in place.
_MIGRATE_2 = """
ALTER TABLE corpora ADD COLUMN IF NOT EXISTS snapshot VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS n_shards BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS n_texts BIGINT;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS heartbeat_at TIMESTAMPTZ;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS work_key VARCHAR;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS n_texts BIGINT;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS seconds DOUBLE;
"""

# Schema version 3: cascades. Each output row says who answered its text (`source`: proxy or
# llm; null on rows written before) and whether the text was inside a step's uncertain band;
# shards count what they sent to the LLM; a run keeps a report (thresholds, budget, audit).
_MIGRATE_3 = """
ALTER TABLE outputs ADD COLUMN IF NOT EXISTS source VARCHAR;
ALTER TABLE outputs ADD COLUMN IF NOT EXISTS in_band BOOLEAN;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS band_texts BIGINT;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS llm_texts BIGINT;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS over_budget BIGINT;
ALTER TABLE run_shards ADD COLUMN IF NOT EXISTS llm_usage JSON;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS report JSON;
"""

# Schema version 4: drift. A run keeps its drift status (a short word `falconer runs` shows and
# SQL can filter on; null on runs from before) and the whole verdict (signals, audit) as JSON.
_MIGRATE_4 = """
ALTER TABLE runs ADD COLUMN IF NOT EXISTS drift_status VARCHAR;
ALTER TABLE runs ADD COLUMN IF NOT EXISTS drift JSON;
"""


class Store:
    """One DuckDB file holding Falconer's state; use as a context manager or call `close()`."""

    def __init__(
        self, path: str | Path | None = None, *, wait_seconds: float = 0.0, on_wait: Callable[[str], None] | None = None,
    ) -> None:
        """Open (or create) the store; `wait_seconds` and `on_wait` as in `Connection`: a reader
        passes them to wait out a writer in another process instead of failing at once."""
        self.path = Path(path) if path is not None else Path(Settings().store_path)
        with disk_errors(self.path.parent):
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = Connection(self.path, wait_seconds=wait_seconds, on_wait=on_wait)
        try:
            _migrate(self.db)
        except BaseException:
            try:
                self.db.close()
            except Exception:  # noqa: BLE001  (the migration's error is the one to report)
                pass
            raise
        self.corpus_records = CorpusRecords(self.db)
        self.annotation_records = AnnotationRecords(self.db)
        self.run_records = RunRecords(self.db)
        self.shard_outputs = ShardOutputs(self.db, self.run_records)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); the file stays on disk."""
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL and return the result as a frame, for ad-hoc inspection (CLI, notebooks)."""
        return self.db.fetch(sql, params or [])

    # -- forwarded to the collaborators (documented there) ---------------------------------------

    def upsert_corpus(self, corpus: pd.DataFrame, *, name: str | None = None, source: str | None = None) -> str:
        """`CorpusRecords.upsert_corpus`."""
        return self.corpus_records.upsert_corpus(corpus, name=name, source=source)

    def register_corpus(self, snapshot: CorpusSnapshot) -> str:
        """`CorpusRecords.register_corpus`."""
        return self.corpus_records.register_corpus(snapshot)

    def texts_view(self) -> str:
        """`CorpusRecords.texts_view`."""
        return self.corpus_records.texts_view()

    def corpora(self) -> pd.DataFrame:
        """`CorpusRecords.corpora`."""
        return self.corpus_records.corpora()

    def corpus_texts(self, corpus_id: str) -> pd.DataFrame:
        """`CorpusRecords.corpus_texts`."""
        return self.corpus_records.corpus_texts(corpus_id)

    def upsert_plan(self, plan_hash: str, plan: str | Mapping[str, Any], instruction: str | None = None) -> None:
        """`AnnotationRecords.upsert_plan`."""
        self.annotation_records.upsert_plan(plan_hash, plan, instruction)

    def plan(self, plan_hash: str) -> dict[str, Any] | None:
        """`AnnotationRecords.plan`."""
        return self.annotation_records.plan(plan_hash)

    def plans(self) -> pd.DataFrame:
        """`AnnotationRecords.plans`."""
        return self.annotation_records.plans()

    def record_annotations(
        self, annotation_set_hash: str, frame: pd.DataFrame, *, plan_hash: str | None = None,
        annotator: str | None = None,
    ) -> int:
        """`AnnotationRecords.record_annotations`."""
        return self.annotation_records.record_annotations(
            annotation_set_hash, frame, plan_hash=plan_hash, annotator=annotator
        )

    def annotations(self, annotation_set_hash: str | None = None, *, plan_hash: str | None = None) -> pd.DataFrame:
        """`AnnotationRecords.annotations`."""
        return self.annotation_records.annotations(annotation_set_hash, plan_hash=plan_hash)

    def write_outputs(self, run_id: str, shard: int, frame: pd.DataFrame) -> int:
        """`ShardOutputs.write_outputs`."""
        return self.shard_outputs.write_outputs(run_id, shard, frame)

    def completed_shards(self, run_id: str) -> list[int]:
        """`ShardOutputs.completed_shards`."""
        return self.shard_outputs.completed_shards(run_id)

    def commit_part(
        self, run_id: str, shard: int, part: pa_lib.Table, *, work_key: str | None = None,
        n_texts: int | None = None, seconds: float | None = None, cascade: ShardCounts | None = None,
    ) -> int:
        """`ShardOutputs.commit_part`."""
        return self.shard_outputs.commit_part(
            run_id, shard, part, work_key=work_key, n_texts=n_texts, seconds=seconds, cascade=cascade
        )

    def reuse_shards(self, run_id: str, work_keys: Mapping[int, str]) -> list[int]:
        """`ShardOutputs.reuse_shards`."""
        return self.shard_outputs.reuse_shards(run_id, work_keys)

    def outputs(
        self, run_id: str | None = None, *, field: str | None = None, step: str | None = None,
        plan_hash: str | None = None, limit: int | None = None,
    ) -> pd.DataFrame:
        """`ShardOutputs.outputs`."""
        return self.shard_outputs.outputs(run_id, field=field, step=step, plan_hash=plan_hash, limit=limit)

    def outputs_of(self, run_id: str, text_ids: Iterable[str]) -> pd.DataFrame:
        """`ShardOutputs.outputs_of`."""
        return self.shard_outputs.outputs_of(run_id, text_ids)

    def export_outputs(self, path: str | Path, format: ExportFormat | None = None, run_id: str | None = None) -> int:
        """`ShardOutputs.export_outputs`."""
        return self.shard_outputs.export_outputs(path, format, run_id)

    def upsert_run(
        self, run_id: str, kind: str, *, status: RunStatus = "running", plan_hash: str | None = None,
        model_version: str | None = None, corpus_id: str | None = None, params: Mapping[str, Any] | None = None,
    ) -> None:
        """`RunRecords.upsert_run`."""
        self.run_records.upsert_run(
            run_id, kind, status=status, plan_hash=plan_hash, model_version=model_version, corpus_id=corpus_id,
            params=params,
        )

    def set_run_status(self, run_id: str, status: RunStatus) -> None:
        """`RunRecords.set_run_status`."""
        self.run_records.set_run_status(run_id, status)

    def set_run_size(self, run_id: str, *, n_shards: int, n_texts: int) -> None:
        """`RunRecords.set_run_size`."""
        self.run_records.set_run_size(run_id, n_shards=n_shards, n_texts=n_texts)

    def run(self, run_id: str) -> dict[str, Any] | None:
        """`RunRecords.run`."""
        return self.run_records.run(run_id)

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        """`RunRecords.runs`."""
        return self.run_records.runs(kind)

    def heartbeat(self, run_id: str) -> None:
        """`RunRecords.heartbeat`."""
        self.run_records.heartbeat(run_id)

    def run_progress(self, *, stale_after_seconds: float | None = None, kind: str | None = None) -> pd.DataFrame:
        """`RunRecords.run_progress`."""
        return self.run_records.run_progress(stale_after_seconds=stale_after_seconds, kind=kind)

    def update_run_report(self, run_id: str, report: CascadeReport) -> CascadeReport:
        """`RunRecords.update_run_report`."""
        return self.run_records.update_run_report(run_id, report)

    def cascade_report(self, run_id: str) -> CascadeReport | None:
        """`RunRecords.cascade_report`."""
        return self.run_records.cascade_report(run_id)

    def cascade_counts(self, run_id: str) -> ShardCounts:
        """`RunRecords.cascade_counts`."""
        return self.run_records.cascade_counts(run_id)

    def record_drift(self, verdict: DriftVerdict) -> None:
        """`RunRecords.record_drift`."""
        self.run_records.record_drift(verdict)

    def drift(self, run_id: str) -> DriftVerdict | None:
        """`RunRecords.drift`."""
        return self.run_records.drift(run_id)


def _migrate(db: Connection) -> None:
    """Create the tables and bring an older file up to `SCHEMA_VERSION` (in place, idempotent);
    refuse a file written by a newer Falconer."""
    db.execute("SET TimeZone = 'UTC'")
    db.execute(_DDL)
    db.execute("INSERT INTO falconer_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)])
    found = db.one("SELECT value FROM falconer_meta WHERE key = 'schema_version'")
    if found is None or int(found[0]) > SCHEMA_VERSION:
        db.close()
        raise StoreError(
            f"store {db.path} has schema version {found and found[0]}, newer than this "
            f"Falconer understands ({SCHEMA_VERSION}); upgrade Falconer"
        )
    db.execute(_MIGRATE_2)
    db.execute(_MIGRATE_3)
    db.execute(_MIGRATE_4)
    if int(found[0]) < SCHEMA_VERSION:
        db.execute("UPDATE falconer_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])


__all__ = ["SCHEMA_VERSION", "ExportFormat", "Store"]
