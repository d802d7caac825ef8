"""Mined outputs in the store, shard by shard.

Idempotent writes: a shard's rows are replaced (delete, insert) and the shard marked complete in
one transaction, so a crashed or retried shard never leaves duplicates or half a shard, and
`completed_shards` tells execution exactly what is left to do. A shard carries the key of the
work it holds, so another run over the same texts copies its rows instead of redoing them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa_lib

from falconer_core.clock import now as _now
from falconer_core.corpus import validate_frame
from falconer_core.errors import ConfigError, StoreError
from falconer_core.execution.counts import ShardCounts
from falconer_core.store.connection import Connection, quoted, shard_number, where
from falconer_core.store.runs import RunRecords
from falconer_core.store.schemas import OUTPUT_COLUMNS, OutputsSchema, normalise_outputs

ExportFormat = Literal["csv", "parquet", "jsonl"]

#: Output columns a shard's part holds (the store adds run, shard and the commit time).
_PART_COLUMNS = tuple(c for c in OUTPUT_COLUMNS if c not in ("run_id", "shard", "created_at"))


def _outputs_sql(clause: str) -> str:
    return (
        f"SELECT {quoted(OUTPUT_COLUMNS)} FROM outputs{clause} "
        "ORDER BY run_id, shard, text_id, field, span_start NULLS FIRST, value"
    )


class ShardOutputs:
    """The `outputs` and `run_shards` tables: rows, shard completion, reuse and export."""

    def __init__(self, db: Connection, runs: RunRecords) -> None:
        self.db = db
        self.runs = runs

    def write_outputs(self, run_id: str, shard: int, frame: pd.DataFrame) -> int:
        """Replace the outputs of (run_id, shard) with `frame` and mark the shard complete, in
        one transaction; returns the row count. Safe to call again for the same shard.

        `frame` needs `text_id` and `field`; optional `value` (bools become "true"/"false"),
        `span_start`, `span_end`, `confidence`, `model_version`, `plan_hash`, `step`. Missing
        `model_version`/`plan_hash` are taken from the run record when there is one.
        """
        shard = shard_number(shard)
        frame = self._outputs_frame(run_id, shard, frame)
        with self.db.transaction():
            self.db.execute("DELETE FROM outputs WHERE run_id = ? AND shard = ?", [run_id, shard])
            self.db.insert_frame("outputs", frame)
            self.db.execute(
                "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at) VALUES (?, ?, ?, ?)",
                [run_id, shard, len(frame), _now()],
            )
        return len(frame)

    def _outputs_frame(self, run_id: str, shard: int, frame: pd.DataFrame) -> pd.DataFrame:
        run = self.runs.run(run_id) or {}
        frame = normalise_outputs(frame, run_id, shard, model_version=run.get("model_version"),
                                  plan_hash=run.get("plan_hash"))
        frame["created_at"] = _now()
        return validate_frame(
            OutputsSchema, frame[list(OUTPUT_COLUMNS)], what=f"outputs of run {run_id} shard {shard}", error=StoreError
        )

    def completed_shards(self, run_id: str) -> list[int]:
        """Shards of `run_id` whose outputs were committed, sorted; execution skips these."""
        rows = self.db.execute("SELECT shard FROM run_shards WHERE run_id = ? ORDER BY shard", [run_id])
        return [int(r[0]) for r in rows]

    def commit_part(
        self, run_id: str, shard: int, part: pa_lib.Table, *, work_key: str | None = None,
        n_texts: int | None = None, seconds: float | None = None, cascade: ShardCounts | None = None,
    ) -> int:
        """Commit one shard's rows (an Arrow table read from the worker's Parquet part) and mark
        the shard complete, in one transaction; safe to repeat. Returns the row count.
        `cascade`: what a cascade shard routed (None for a proxy-only shard)."""
        shard = shard_number(shard)
        missing = [c for c in _PART_COLUMNS if c not in part.column_names]
        if missing:
            raise StoreError(f"part of run {run_id} shard {shard} lacks column(s) {missing}")
        if len(part) and set(part.column("run_id").to_pylist()) - {run_id}:
            raise StoreError(f"part of shard {shard} belongs to another run than {run_id}")
        routed = (
            [None] * 4 if cascade is None else
            [cascade.band_texts, cascade.llm_texts, cascade.over_budget, json.dumps(cascade.llm_usage, default=str)]
        )
        with self.db.transaction():
            self.db.execute("DELETE FROM outputs WHERE run_id = ? AND shard = ?", [run_id, shard])
            with self.db.registered("_part", part):
                self.db.execute(
                    f"INSERT INTO outputs ({quoted(OUTPUT_COLUMNS)}) SELECT ?, ?, {quoted(_PART_COLUMNS)}, ? FROM _part",
                    [run_id, shard, _now()],
                )
            self.db.execute(
                "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at, work_key, n_texts, seconds, "
                "band_texts, llm_texts, over_budget, llm_usage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [run_id, shard, len(part), _now(), work_key, n_texts, seconds, *routed],
            )
            self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [_now(), run_id])
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
        with self.db.transaction():
            with self.db.registered("_wanted", wanted):
                found = self.db.execute(
                    "SELECT w.shard, rs.run_id, rs.shard, rs.n_texts, rs.band_texts, rs.llm_texts, rs.over_budget "
                    "FROM _wanted w "
                    "JOIN run_shards rs ON rs.work_key = w.work_key AND rs.run_id <> ? "
                    "QUALIFY row_number() OVER (PARTITION BY w.shard ORDER BY rs.completed_at) = 1",
                    [run_id],
                )
            for shard, source_run, source_shard, n_texts, *cascade in found:
                self.db.execute(
                    f"INSERT INTO outputs ({quoted(OUTPUT_COLUMNS)}) SELECT ?, ?, {quoted(_PART_COLUMNS)}, ? "
                    "FROM outputs WHERE run_id = ? AND shard = ?",
                    [run_id, int(shard), _now(), source_run, int(source_shard)],
                )
                (rows,) = self.db.one("SELECT count(*) FROM outputs WHERE run_id = ? AND shard = ?", [run_id, int(shard)])
                self.db.execute(
                    "INSERT OR REPLACE INTO run_shards (run_id, shard, n_rows, completed_at, work_key, n_texts, seconds, "
                    "band_texts, llm_texts, over_budget) VALUES (?, ?, ?, ?, ?, ?, 0.0, ?, ?, ?)",
                    [run_id, int(shard), rows, _now(), work_keys[int(shard)], n_texts, *cascade],
                )
                reused.append(int(shard))
        return sorted(reused)

    def outputs(
        self, run_id: str | None = None, *, field: str | None = None, step: str | None = None,
        plan_hash: str | None = None, limit: int | None = None,
    ) -> pd.DataFrame:
        """Stored outputs, filtered, ordered by run, shard, text, field and span start."""
        clause, params = where({"run_id": run_id, "field": field, "step": step, "plan_hash": plan_hash})
        sql = _outputs_sql(clause)
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self.db.read(OutputsSchema, sql, params, "outputs")

    def outputs_of(self, run_id: str, text_ids: Iterable[str]) -> pd.DataFrame:
        """The stored outputs of some texts of one run (an audit's sample), ordered like `outputs`."""
        wanted = pd.DataFrame({"text_id": [str(i) for i in text_ids]})
        with self.db.registered("_wanted_texts", wanted):
            clause = " WHERE run_id = ? AND text_id IN (SELECT text_id FROM _wanted_texts)"
            frame = self.db.fetch(_outputs_sql(clause), [run_id])
        return validate_frame(OutputsSchema, frame, what=f"outputs of run {run_id}", error=StoreError)

    def export_outputs(self, path: str | Path, format: ExportFormat | None = None, run_id: str | None = None) -> int:
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
        clause, params = where({"run_id": run_id})
        with self.db.lock:
            self.db.execute(f"COPY ({_outputs_sql(clause)}) TO ? ({options[fmt]})", [*params, str(path)])
            (count,) = self.db.one(f"SELECT count(*) FROM outputs{clause}", params)
        return int(count)


__all__ = ["ExportFormat", "ShardOutputs"]
