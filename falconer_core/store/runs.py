"""The store's run records: one row per run (status, size, heartbeat, params, report) and what
progress its shards show. Runs are their own concept: created, resumed, watched, finished."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from falconer_core.clock import now as _now
from falconer_core.errors import ConfigError, StoreError
from falconer_core.execution.counts import ShardCounts
from falconer_core.secrets import SECRET_NAME as _SECRET_KEY
from falconer_core.settings import Settings
from falconer_core.store.connection import Connection
from falconer_core.store.schemas import RUN_STATUSES, RunsSchema, RunStatus, is_missing

if TYPE_CHECKING:  # the cascade builds on execution, which reads the store's schemas
    from falconer_core.cascade.report import CascadeReport
    from falconer_core.drift.verdict import DriftVerdict

_FINISHED = {"completed", "failed", "cancelled"}


class RunRecords:
    """The `runs` table, and the run-level view of `run_shards` (counts, progress)."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def upsert_run(
        self,
        run_id: str,
        kind: str,
        *,
        status: RunStatus = "running",
        plan_hash: str | None = None,
        model_version: str | None = None,
        corpus_id: str | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Create or update a run record. Re-upserting keeps `started_at`; a finished status
        stamps `finished_at`. Params are stored as JSON and must hold no credentials."""
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {RUN_STATUSES}")
        params_json = None
        if params is not None:
            params_json = json.dumps(check_no_secrets(params), sort_keys=True, default=str)
        now = _now()
        finished = now if status in _FINISHED else None
        self.db.execute(
            "INSERT INTO runs (run_id, kind, plan_hash, model_version, corpus_id, status, started_at, "
            "finished_at, params, heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
            "heartbeat_at = excluded.heartbeat_at, "
            "kind = excluded.kind, status = excluded.status, finished_at = excluded.finished_at, "
            "plan_hash = coalesce(excluded.plan_hash, runs.plan_hash), "
            "model_version = coalesce(excluded.model_version, runs.model_version), "
            "corpus_id = coalesce(excluded.corpus_id, runs.corpus_id), "
            "params = coalesce(excluded.params, runs.params)",
            [run_id, kind, plan_hash, model_version, corpus_id, status, now, finished, params_json, now],
        )

    def set_run_status(self, run_id: str, status: RunStatus) -> None:
        """Move a run to `status` (stamping `finished_at` when it is a final one)."""
        if status not in RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; use one of {RUN_STATUSES}")
        updated = self.db.execute(
            "UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ? RETURNING run_id",
            [status, _now() if status in _FINISHED else None, run_id],
        )
        if not updated:
            raise StoreError(f"no run {run_id!r} in {self.db.path}; create it with upsert_run first")

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run as a dict (params decoded), or None when unknown."""
        frame = self.db.read(RunsSchema, "SELECT * FROM runs WHERE run_id = ?", [run_id], "runs")
        if frame.empty:
            return None
        record = frame.iloc[0].to_dict()
        for key in ("params", "report", "drift"):
            record[key] = json.loads(record[key]) if isinstance(record[key], str) else None
        return {k: (None if is_missing(v) else v) for k, v in record.items()}

    def update_run_report(self, run_id: str, report: CascadeReport) -> CascadeReport:
        """Keep `report` (what a cascade run found: thresholds, budget use, audit) as the run's
        report, over what was stored (`CascadeReport.merged_into`); returns the whole report.
        Like params, it must hold no credentials."""
        from falconer_core.cascade.report import CascadeReport

        merged = report.merged_into((self.run(run_id) or {}).get("report"))
        check_no_secrets(merged)
        self.db.execute("UPDATE runs SET report = ? WHERE run_id = ?", [json.dumps(merged, sort_keys=True, default=str), run_id])
        return CascadeReport.model_validate(merged)

    def cascade_report(self, run_id: str) -> CascadeReport | None:
        """The run's stored cascade report, or None when it has none."""
        from falconer_core.cascade.report import CascadeReport

        stored = (self.run(run_id) or {}).get("report")
        return None if stored is None else CascadeReport.model_validate(stored)

    def record_drift(self, verdict: DriftVerdict) -> None:
        """Keep a run's drift verdict: its status as a word, the whole verdict (figures only, no
        text) as JSON; the run id is the row's key, not repeated in the JSON."""
        body = verdict.model_dump(mode="json", exclude={"run_id"})
        check_no_secrets(body)
        updated = self.db.execute(
            "UPDATE runs SET drift_status = ?, drift = ? WHERE run_id = ? RETURNING run_id",
            [verdict.status, json.dumps(body, sort_keys=True), verdict.run_id],
        )
        if not updated:
            raise StoreError(f"no run {verdict.run_id!r} in {self.db.path}; create it with upsert_run first")

    def drift(self, run_id: str) -> DriftVerdict | None:
        """The run's drift verdict, or None when it has none (not checked, or from before)."""
        from falconer_core.drift.verdict import DriftVerdict

        stored = (self.run(run_id) or {}).get("drift")
        return None if stored is None else DriftVerdict.model_validate({**stored, "run_id": run_id})

    def cascade_counts(self, run_id: str) -> ShardCounts:
        """A cascade run's totals over its committed shards: texts in a band, answered by the
        LLM, left to the proxy by the budget, and the LLM's calls, tokens and cost."""
        frame = self.db.fetch(
            "SELECT band_texts, llm_texts, over_budget, llm_usage FROM run_shards WHERE run_id = ?", [run_id]
        )
        return ShardCounts.total(
            ShardCounts(
                band_texts=0 if is_missing(band) else int(band), llm_texts=0 if is_missing(llm) else int(llm),
                over_budget=0 if is_missing(over) else int(over), llm_usage={} if is_missing(usage) else json.loads(usage),
            )
            for band, llm, over, usage in frame.itertuples(index=False)
        )

    def runs(self, kind: str | None = None) -> pd.DataFrame:
        """All runs (optionally of one kind), newest first."""
        sql = "SELECT * FROM runs" + (" WHERE kind = ?" if kind else "") + " ORDER BY started_at DESC"
        return self.db.read(RunsSchema, sql, [kind] if kind else [], "runs")

    def set_run_size(self, run_id: str, *, n_shards: int, n_texts: int) -> None:
        """Record how big the run is, so progress can be shown as done/total."""
        self.db.execute("UPDATE runs SET n_shards = ?, n_texts = ?, heartbeat_at = ? WHERE run_id = ?",
                        [int(n_shards), int(n_texts), _now(), run_id])

    def heartbeat(self, run_id: str) -> None:
        """Say the run is alive; a running run whose heartbeat stops is shown as stale."""
        self.db.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", [_now(), run_id])

    def run_progress(self, *, stale_after_seconds: float | None = None, kind: str | None = None) -> pd.DataFrame:
        """One row per run: status (a `running` run without a heartbeat for `stale_after_seconds`,
        default `Settings().stale_after_seconds`, reads `stale`), shards done/total, texts
        done/total, metamodel texts/s, newest first."""
        if stale_after_seconds is None:
            stale_after_seconds = Settings().stale_after_seconds
        where = " WHERE r.kind = ?" if kind else ""
        sql = (
            "SELECT r.run_id, r.kind, r.status, r.model_version, r.corpus_id, r.started_at, r.heartbeat_at, r.drift_status, "
            "r.n_shards, r.n_texts, count(s.shard) AS shards_done, coalesce(sum(s.n_texts), 0)::BIGINT AS texts_done, "
            "coalesce(sum(s.seconds), 0)::DOUBLE AS seconds FROM runs r LEFT JOIN run_shards s ON s.run_id = r.run_id"
            f"{where} GROUP BY ALL ORDER BY r.started_at DESC"
        )
        frame = self.db.fetch(sql, [kind] if kind else [])
        now = _now()
        beat = frame["heartbeat_at"].fillna(frame["started_at"])
        idle = [(now - b).total_seconds() if not is_missing(b) else 0.0 for b in beat]
        frame.loc[(frame["status"] == "running") & (pd.Series(idle, index=frame.index) > stale_after_seconds), "status"] = "stale"
        frame["texts_per_second"] = [
            round(t / s, 1) if s else None for t, s in zip(frame["texts_done"], frame["seconds"])
        ]
        return frame


def check_no_secrets(params: Mapping[str, Any], prefix: str = "") -> Mapping[str, Any]:
    """`params`, refused when a key looks like a credential (secrets belong in the environment)."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if _SECRET_KEY.search(str(key)):
            raise ConfigError(
                f"run param {name!r} looks like a credential; secrets are never stored. Pass "
                "them through the environment (e.g. OPENAI_API_KEY) and leave them out of params"
            )
        if isinstance(value, Mapping):
            check_no_secrets(value, prefix=f"{name}.")
    return params


__all__ = ["RunRecords", "check_no_secrets"]
