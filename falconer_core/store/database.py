"""The DuckDB store: corpora, plans, annotations, runs and mined outputs in one embedded file.

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

Threading: a `Store` owns exactly one DuckDB connection. Its methods take a lock, so sharing
one Store between threads is safe but serialised; for parallel work open one `Store` per
thread on the same path (connections in one process share the database). DuckDB lets only one
*process* open a file for writing: a second process gets a `StoreError` saying so.
"""

from __future__ import annotations

import json
import numbers
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow as pa_lib

from falconer_core.clock import now as _now
from falconer_core.corpus import CorpusSchema, CorpusSnapshot, corpus_id, validate_frame
from falconer_core.errors import ConfigError, StoreBusyError, StoreError
from falconer_core.settings import Settings
from falconer_core.store.runs import RunRecords
from falconer_core.store.schemas import (
    ANNOTATION_COLUMNS,
    OUTPUT_COLUMNS,
    AnnotationsSchema,
    CorporaSchema,
    OutputsSchema,
    PlansSchema,
    fill_key,
    normalise_outputs,
    require_columns,
)

SCHEMA_VERSION = 3

ExportFormat = Literal["csv", "parquet", "jsonl"]

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

_NULLABLE_TYPES = {
    pyarrow.int32(): pd.Int64Dtype(),
    pyarrow.int64(): pd.Int64Dtype(),
    pyarrow.bool_(): pd.BooleanDtype(),
}
_ANNOTATION_OPTIONAL = ("plan_hash", "value", "span_text", "start", "end", "annotator")


def _quoted(columns: Iterable[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


class Store(RunRecords):
    """One DuckDB file holding Falconer's state; use as a context manager or call `close()`."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else Path(Settings().store_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.IOException as exc:
            raise StoreBusyError(
                f"cannot open the store {self.path}: {exc}. If another Falconer process (a "
                "flow, a worker, a notebook) has it open, stop it or point this one at another "
                "file"
            ) from None
        self._lock = threading.RLock()
        self._exec("SET TimeZone = 'UTC'")
        self._exec(_DDL)
        self._exec(
            "INSERT INTO falconer_meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING",
            [str(SCHEMA_VERSION)],
        )
        found = self._one("SELECT value FROM falconer_meta WHERE key = 'schema_version'")
        if found is None or int(found[0]) > SCHEMA_VERSION:
            self._con.close()
            raise StoreError(
                f"store {self.path} has schema version {found and found[0]}, newer than this "
                f"Falconer understands ({SCHEMA_VERSION}); upgrade Falconer"
            )
        self._exec(_MIGRATE_2)
        self._exec(_MIGRATE_3)
        if int(found[0]) < SCHEMA_VERSION:
            self._exec("UPDATE falconer_meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION)])

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent); the file stays on disk."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    # -- low level -------------------------------------------------------------------------------

    def query(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        """Run SQL and return the result as a frame, for ad-hoc inspection (CLI, notebooks)."""
        with self._lock:
            return self._fetch(sql, params or [])

    def _fetch(self, sql: str, params: list[Any]) -> pd.DataFrame:
        # Through Arrow rather than `.df()`: nullable ints/bools stay nullable (not float/NaN).
        table = self._con.sql(sql, params=params).to_arrow_table()
        return table.to_pandas(types_mapper=_NULLABLE_TYPES.get)

    def _exec(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        # Always drain the result: DuckDB 2 refuses further work on a connection that still
        # holds an unfinished result from execute().
        return self._con.execute(sql, params or []).fetchall()

    def _one(self, sql: str, params: list[Any] | None = None) -> tuple[Any, ...] | None:
        rows = self._exec(sql, params)
        return rows[0] if rows else None

    def _insert_frame(self, table: str, frame: pd.DataFrame) -> None:
        # Registration hands DuckDB the frame's columns directly (Arrow-backed, no per-row
        # Python), which is what makes a shard of a million rows cheap to write.
        name = f"_falconer_{table}_frame"
        self._con.register(name, frame)
        try:
            cols = _quoted(frame.columns)
            self._exec(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {name}")
        finally:
            self._con.unregister(name)

    def _transaction(self, work: Callable[[], None]) -> None:
        # All of `work` lands, or none of it: a crash mid-shard leaves the previous state.
        with self._lock:
            self._con.begin()
            try:
                work()
                self._con.commit()
            except BaseException:
                self._con.rollback()
                raise

    def _read(self, schema: pa.DataFrameSchema, sql: str, params: list[Any], what: str) -> pd.DataFrame:
        with self._lock:
            frame = self._fetch(sql, params)
        return validate_frame(schema, frame, what=what, error=StoreError)

    # -- corpora -------------------------------------------------------------------------------

    def upsert_corpus(self, corpus: pd.DataFrame, *, name: str | None = None, source: str | None = None) -> str:
        """Register a loaded corpus and its texts; returns its `corpus_id`.

        The id is a hash of the ids and texts, so a known id means the texts are already
        stored: re-registering only updates name/source and repeated runs share one record.
        """
        corpus = validate_frame(CorpusSchema, corpus, what="corpus", error=StoreError)
        cid = corpus_id(corpus)
        texts = pd.DataFrame({"corpus_id": cid, "id": corpus["id"], "text": corpus["text"]})

        def work() -> None:
            if self._exists("corpora", "corpus_id", cid):
                self._exec(
                    "UPDATE corpora SET name = coalesce(?, name), source = coalesce(?, source) "
                    "WHERE corpus_id = ?",
                    [name, source, cid],
                )
                return
            self._exec(
                "INSERT INTO corpora (corpus_id, name, n_texts, source, created_at) VALUES (?, ?, ?, ?, ?)",
                [cid, name, len(corpus), source, _now()],
            )
            self._insert_frame("corpus_texts", texts)

        self._transaction(work)
        return cid

    def register_corpus(self, snapshot: CorpusSnapshot) -> str:
        """Record a snapshotted corpus (its id, size and where its Parquet snapshot is); the
        texts stay in the snapshot, so a corpus version costs a row here, not a copy."""

        def work() -> None:
            if self._exists("corpora", "corpus_id", snapshot.corpus_id):
                self._exec(
                    "UPDATE corpora SET name = coalesce(?, name), source = coalesce(?, source), snapshot = ? "
                    "WHERE corpus_id = ?",
                    [snapshot.name, snapshot.source, snapshot.path, snapshot.corpus_id],
                )
                return
            self._exec(
                "INSERT INTO corpora (corpus_id, name, n_texts, source, created_at, snapshot) VALUES (?, ?, ?, ?, ?, ?)",
                [snapshot.corpus_id, snapshot.name, snapshot.n_texts, snapshot.source, _now(), snapshot.path],
            )

        self._transaction(work)
        return snapshot.corpus_id

    def texts_view(self) -> str:
        """(Re)create the temporary view `texts` (corpus_id, id, text) over every corpus: the
        snapshots still on disk and the texts stored inline; returns its name for joins."""
        with self._lock:
            snapshots = self._exec("SELECT corpus_id, snapshot FROM corpora WHERE snapshot IS NOT NULL")
        parts = ["SELECT corpus_id, id, text FROM corpus_texts"]
        for cid, path in snapshots:
            if Path(path).is_file():
                parts.append(f"SELECT '{_sql_text(cid)}' AS corpus_id, id, text FROM read_parquet('{_sql_text(path)}')")
        with self._lock:
            self._exec("CREATE OR REPLACE TEMP VIEW texts AS " + " UNION ALL ".join(parts))
        return "texts"

    def corpora(self) -> pd.DataFrame:
        """Every registered corpus, newest first."""
        return self._read(CorporaSchema, "SELECT * FROM corpora ORDER BY created_at DESC", [], "corpora")

    def corpus_texts(self, corpus_id: str) -> pd.DataFrame:
        """The `id`/`text` frame of a registered corpus, in its original order."""
        if not self._exists("corpora", "corpus_id", corpus_id):
            raise StoreError(f"no corpus {corpus_id!r} in {self.path}; register it with upsert_corpus")
        return self._read(
            CorpusSchema,
            "SELECT id, text FROM corpus_texts WHERE corpus_id = ? ORDER BY rowid",
            [corpus_id],
            f"corpus {corpus_id}",
        )

    def _exists(self, table: str, key: str, value: str) -> bool:
        with self._lock:
            return self._one(f"SELECT 1 FROM {table} WHERE {key} = ? LIMIT 1", [value]) is not None

    # -- plans ---------------------------------------------------------------------------------

    def upsert_plan(
        self, plan_hash: str, plan: str | Mapping[str, Any], instruction: str | None = None
    ) -> None:
        """Record a plan under its hash; the first `created_at` is kept on re-insert."""
        plan_json = plan if isinstance(plan, str) else json.dumps(plan, sort_keys=True)
        try:
            json.loads(plan_json)
        except json.JSONDecodeError as exc:
            raise StoreError(
                f"plan {plan_hash} is not valid JSON ({exc}); pass the plan as a dict or JSON text"
            ) from None
        with self._lock:
            self._exec(
                "INSERT INTO plans VALUES (?, ?, ?, ?) ON CONFLICT (plan_hash) DO UPDATE "
                "SET plan_json = excluded.plan_json, instruction = excluded.instruction",
                [plan_hash, plan_json, instruction, _now()],
            )

    def plan(self, plan_hash: str) -> dict[str, Any] | None:
        """The stored plan as a dict, or None when the hash is unknown."""
        with self._lock:
            row = self._one("SELECT plan_json FROM plans WHERE plan_hash = ?", [plan_hash])
        return None if row is None else json.loads(row[0])

    def plans(self) -> pd.DataFrame:
        """Every stored plan, newest first."""
        return self._read(PlansSchema, "SELECT * FROM plans ORDER BY created_at DESC", [], "plans")

    # -- annotations ---------------------------------------------------------------------------

    def record_annotations(
        self,
        annotation_set_hash: str,
        frame: pd.DataFrame,
        *,
        plan_hash: str | None = None,
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

        def work() -> None:
            self._exec("DELETE FROM annotations WHERE annotation_set_hash = ?", [annotation_set_hash])
            self._insert_frame("annotations", frame)

        self._transaction(work)
        return len(frame)

    def annotations(
        self, annotation_set_hash: str | None = None, *, plan_hash: str | None = None
    ) -> pd.DataFrame:
        """Stored annotations, filtered by set and/or plan."""
        where, params = _where({"annotation_set_hash": annotation_set_hash, "plan_hash": plan_hash})
        return self._read(
            AnnotationsSchema,
            f"SELECT {_quoted(ANNOTATION_COLUMNS)} FROM annotations{where} ORDER BY text_id, step, start",
            params,
            "annotations",
        )

    # -- outputs -------------------------------------------------------------------------------

    def write_outputs(self, run_id: str, shard: int, frame: pd.DataFrame) -> int:
        """Replace the outputs of (run_id, shard) with `frame` and mark the shard complete, in
        one transaction; returns the row count. Safe to call again for the same shard.

        `frame` needs `text_id` and `field`; optional `value` (bools become "true"/"false"),
        `span_start`, `span_end`, `confidence`, `model_version`, `plan_hash`, `step`. Missing
        `model_version`/`plan_hash` are taken from the run record when there is one.
        """
        shard = _shard_number(shard)
        frame = self._outputs_frame(run_id, shard, frame)

        def work() -> None:
            self._exec("DELETE FROM outputs WHERE run_id = ? AND shard = ?", [run_id, shard])
            self._insert_frame("outputs", frame)
            self._exec(
                "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at) VALUES (?, ?, ?, ?)",
                [run_id, shard, len(frame), _now()],
            )

        self._transaction(work)
        return len(frame)

    def _outputs_frame(self, run_id: str, shard: int, frame: pd.DataFrame) -> pd.DataFrame:
        run = self.run(run_id) or {}
        frame = normalise_outputs(frame, run_id, shard, model_version=run.get("model_version"),
                                  plan_hash=run.get("plan_hash"))
        frame["created_at"] = _now()
        return validate_frame(
            OutputsSchema, frame[list(OUTPUT_COLUMNS)], what=f"outputs of run {run_id} shard {shard}", error=StoreError
        )

    def completed_shards(self, run_id: str) -> list[int]:
        """Shards of `run_id` whose outputs were committed, sorted; execution skips these."""
        with self._lock:
            rows = self._exec(
                "SELECT shard FROM run_shards WHERE run_id = ? ORDER BY shard", [run_id]
            )
        return [int(r[0]) for r in rows]

    def commit_part(
        self, run_id: str, shard: int, part: pa_lib.Table, *, work_key: str | None = None,
        n_texts: int | None = None, seconds: float | None = None, cascade: Mapping[str, Any] | None = None,
    ) -> int:
        """Commit one shard's rows (an Arrow table read from the worker's Parquet part) and mark
        the shard complete, in one transaction; safe to repeat. Returns the row count.
        `cascade` holds a cascade shard's band_texts, llm_texts, over_budget and llm_usage."""
        shard = _shard_number(shard)
        missing = [c for c in OUTPUT_COLUMNS if c not in ("run_id", "shard", "created_at") and c not in part.column_names]
        if missing:
            raise StoreError(f"part of run {run_id} shard {shard} lacks column(s) {missing}")
        if len(part) and set(part.column("run_id").to_pylist()) - {run_id}:
            raise StoreError(f"part of shard {shard} belongs to another run than {run_id}")
        columns = [c for c in OUTPUT_COLUMNS if c not in ("run_id", "shard", "created_at")]
        extra = dict(cascade or {})

        def work() -> None:
            self._exec("DELETE FROM outputs WHERE run_id = ? AND shard = ?", [run_id, shard])
            self._con.register("_part", part)
            try:
                self._exec(
                    f"INSERT INTO outputs ({_quoted(OUTPUT_COLUMNS)}) SELECT ?, ?, {_quoted(columns)}, ? FROM _part",
                    [run_id, shard, _now()],
                )
            finally:
                self._con.unregister("_part")
            self._exec(
                "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at, work_key, n_texts, seconds, "
                "band_texts, llm_texts, over_budget, llm_usage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, shard, len(part), _now(), work_key, n_texts, seconds, extra.get("band_texts"),
                 extra.get("llm_texts"), extra.get("over_budget"),
                 json.dumps(extra["llm_usage"], default=str) if "llm_usage" in extra else None],
            )
            self._exec("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [_now(), run_id])

        self._transaction(work)
        return len(part)

    def reuse_shards(self, run_id: str, work_keys: Mapping[int, str]) -> list[int]:
        """Shards of `run_id` whose work (same model, plan and texts: same key) another run has
        already committed: their rows are copied into this run, and the shards marked complete,
        in one transaction. Returns the shards reused; this is what makes re-runs incremental."""
        wanted = pd.DataFrame({"shard": list(work_keys), "work_key": list(work_keys.values())})
        if wanted.empty:
            return []
        done = set(self.completed_shards(run_id))
        wanted = wanted[~wanted["shard"].isin(done)]
        reused: list[int] = []

        def work() -> None:
            self._con.register("_wanted", wanted)
            try:
                found = self._exec(
                    "SELECT w.shard, rs.run_id, rs.shard, rs.n_texts, rs.band_texts, rs.llm_texts, rs.over_budget "
                    "FROM _wanted w "
                    "JOIN run_shards rs ON rs.work_key = w.work_key AND rs.run_id <> ? "
                    "QUALIFY row_number() OVER (PARTITION BY w.shard ORDER BY rs.completed_at) = 1",
                    [run_id],
                )
            finally:
                self._con.unregister("_wanted")
            for shard, source_run, source_shard, n_texts, *cascade in found:
                self._exec(
                    f"INSERT INTO outputs ({_quoted(OUTPUT_COLUMNS)}) SELECT ?, ?, "
                    f"{_quoted(c for c in OUTPUT_COLUMNS if c not in ('run_id', 'shard', 'created_at'))}, ? "
                    "FROM outputs WHERE run_id = ? AND shard = ?",
                    [run_id, int(shard), _now(), source_run, int(source_shard)],
                )
                (rows,) = self._one("SELECT count(*) FROM outputs WHERE run_id = ? AND shard = ?", [run_id, int(shard)])
                self._exec(
                    "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at, work_key, n_texts, seconds, "
                    "band_texts, llm_texts, over_budget) VALUES (?, ?, ?, ?, ?, ?, 0.0, ?, ?, ?)",
                    [run_id, int(shard), rows, _now(), work_keys[int(shard)], n_texts, *cascade],
                )
                reused.append(int(shard))

        self._transaction(work)
        return sorted(reused)

    def outputs(
        self,
        run_id: str | None = None,
        *,
        field: str | None = None,
        step: str | None = None,
        plan_hash: str | None = None,
        limit: int | None = None,
    ) -> pd.DataFrame:
        """Stored outputs, filtered, ordered by run, shard, text, field and span start."""
        where, params = _where({"run_id": run_id, "field": field, "step": step, "plan_hash": plan_hash})
        sql = f"{self._outputs_sql(where)}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._read(OutputsSchema, sql, params, "outputs")

    def outputs_of(self, run_id: str, text_ids: Iterable[str]) -> pd.DataFrame:
        """The stored outputs of some texts of one run (an audit's sample), ordered like `outputs`."""
        wanted = pd.DataFrame({"text_id": [str(i) for i in text_ids]})
        with self._lock:
            self._con.register("_wanted_texts", wanted)
            try:
                where = " WHERE run_id = ? AND text_id IN (SELECT text_id FROM _wanted_texts)"
                frame = self._fetch(self._outputs_sql(where), [run_id])
            finally:
                self._con.unregister("_wanted_texts")
        return validate_frame(OutputsSchema, frame, what=f"outputs of run {run_id}", error=StoreError)

    @staticmethod
    def _outputs_sql(where: str) -> str:
        return (
            f"SELECT {_quoted(OUTPUT_COLUMNS)} FROM outputs{where} "
            "ORDER BY run_id, shard, text_id, field, span_start NULLS FIRST, value"
        )

    def export_outputs(
        self, path: str | Path, format: ExportFormat | None = None, run_id: str | None = None
    ) -> int:
        """Write outputs to CSV, Parquet or JSONL (format from the suffix when not given);
        returns the row count. DuckDB's COPY streams the rows, so big runs never sit in pandas."""
        path = Path(path)
        fmt = format or {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                         ".ndjson": "jsonl"}.get(path.suffix.lower())
        options = {"csv": "FORMAT csv, HEADER true", "parquet": "FORMAT parquet", "jsonl": "FORMAT json"}
        if fmt not in options:
            raise ConfigError(
                f"cannot export outputs to {path.name}: unknown format {format or path.suffix!r}; "
                "use csv, parquet or jsonl (or a file ending in .csv/.parquet/.jsonl)"
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        where, params = _where({"run_id": run_id})
        with self._lock:
            self._exec(f"COPY ({self._outputs_sql(where)}) TO ? ({options[fmt]})", [*params, str(path)])
            (count,) = self._one(f"SELECT count(*) FROM outputs{where}", params)
        return int(count)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _shard_number(shard: object) -> int:
    if isinstance(shard, bool) or not isinstance(shard, numbers.Integral) or shard < 0:
        raise StoreError(f"shard must be a non-negative int, got {shard!r}")
    return int(shard)


def _sql_text(value: str) -> str:
    """A value for a single-quoted SQL literal (paths and ids we wrote ourselves)."""
    return str(value).replace("'", "''")


def _where(filters: Mapping[str, object]) -> tuple[str, list[Any]]:
    used = {k: v for k, v in filters.items() if v is not None}
    if not used:
        return "", []
    return " WHERE " + " AND ".join(f'"{k}" = ?' for k in used), list(used.values())
