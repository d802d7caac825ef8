"""Looking at what runs left behind: `outputs` (query or export the DuckDB store), `runs` (their
status and progress) and `lineage` (a checkpoint's ancestry in the MLflow registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from falconer_cli.app import app, guarded
from falconer_cli.render import console, key_values, print_note, table

_OUTPUT_COLUMNS = ("text_id", "field", "value", "start", "end", "conf", "source", "text")


@app.command("outputs")
@guarded
def outputs(
    run_id: Annotated[Optional[str], typer.Option("--run-id", help="Run to show (default: the newest run with outputs).")] = None,
    export: Annotated[Optional[Path], typer.Option("--export", help="Write the run's outputs to a .csv, .parquet or .jsonl file instead of printing them.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Rows to print (export writes all).")] = 20,
    field: Annotated[Optional[str], typer.Option("--field", help="Only this output field (`_filter` shows each text's filter verdict).")] = None,
    all_runs: Annotated[bool, typer.Option("--all-runs", help="Every run, not just one.")] = False,
    store: Annotated[Optional[Path], typer.Option("--store", help="DuckDB file (default: FALCONER_HOME/falconer.duckdb).")] = None,
) -> None:
    """Print mined outputs from the DuckDB store, or export them."""
    from falconer_core.errors import StoreError

    path = _store_path(store)
    with reading_store(path) as db:
        if all_runs:
            run_id = None
        elif run_id is None:
            run_id = _newest_run(db)
            print_note(f"run {run_id} (the newest; pick another with --run-id)")
        elif not db.query("SELECT 1 FROM outputs WHERE run_id = ? LIMIT 1", [run_id]).shape[0]:
            known = ", ".join(db.query("SELECT DISTINCT run_id FROM outputs")["run_id"].tolist()[:10])
            raise StoreError(f"no outputs for run {run_id!r} in {path} (runs with outputs: {known or 'none'})")
        if export is not None:
            count = db.export_outputs(export, run_id=run_id)
            console.print(f"wrote {count} output rows to {export}")
            return
        frame = query_outputs(db, run_id, field=field, limit=limit)
        frame = frame.rename(columns={"span_start": "start", "span_end": "end", "confidence": "conf"})
        columns = [c for c in _OUTPUT_COLUMNS if c in frame.columns] + (["run_id"] if run_id is None else [])
        console.print(table(frame.to_dict("records"), columns, flexible=("text",),
                            title=f"outputs of {'every run' if run_id is None else run_id}"))
        console.print(key_values(run_summary(db, run_id)))


def query_outputs(db, run_id: str | None, *, field: str | None = None, limit: int = 20):
    """Output rows with their source text; the per-text `_filter` rows only when asked for."""
    from falconer_core.execution.outputs import FILTER_FIELD

    where, params = [], []
    if run_id is not None:
        where.append("o.run_id = ?")
        params.append(run_id)
    if field is not None:
        where.append("o.field = ?")
        params.append(field)
    else:
        where.append("o.field <> ?")
        params.append(FILTER_FIELD)
    db.texts_view()
    sql = (
        "SELECT o.run_id, o.text_id, o.field, o.value, o.span_start, o.span_end, o.confidence, o.source, t.text "
        "FROM outputs o LEFT JOIN runs r ON r.run_id = o.run_id "
        "LEFT JOIN texts t ON t.corpus_id = r.corpus_id AND t.id = o.text_id "
        f"WHERE {' AND '.join(where)} "
        "ORDER BY o.run_id, o.shard, o.text_id, o.field, o.span_start NULLS FIRST LIMIT ?"
    )
    return db.query(sql, [*params, int(limit)])


def run_summary(db, run_id: str | None) -> list[tuple[str, object]]:
    """Counts that say what a run found: rows, texts, texts passing the filter, model, plan."""
    from falconer_core.execution.outputs import FILTER_FIELD

    where, params = ("WHERE run_id = ?", [run_id]) if run_id else ("", [])
    counts = db.query(
        f"SELECT count(*) AS n_rows, count(DISTINCT text_id) AS n_texts, "
        f"count(DISTINCT CASE WHEN field = ? AND value = 'true' THEN text_id END) AS n_passed, "
        f"string_agg(DISTINCT model_version, ', ') AS models, string_agg(DISTINCT plan_hash, ', ') AS plans "
        f"FROM outputs {where}",
        [FILTER_FIELD, *params],
    ).iloc[0]
    return [
        ("rows", int(counts["n_rows"])),
        ("texts", int(counts["n_texts"])),
        ("texts passing the filter", int(counts["n_passed"])),
        ("model", counts["models"]),
        ("plan", counts["plans"]),
        ("store", str(db.path)),
    ]


def _newest_run(db) -> str:
    from falconer_core.errors import StoreError

    found = db.query("SELECT run_id FROM outputs GROUP BY run_id ORDER BY max(created_at) DESC LIMIT 1")
    if found.empty:
        raise StoreError(f"{db.path} holds no outputs yet; run `falconer mine` (or `falconer demo`) first")
    return str(found["run_id"].iloc[0])


def reading_store(path: Path):
    """The store opened to read: while a run holds it for a write, wait for it (up to
    FALCONER_STORE_WAIT_SECONDS) with a note on stderr, instead of failing on its lock."""
    from falconer_core.settings import Settings
    from falconer_core.store import Store

    return Store(path, wait_seconds=Settings().store_wait_seconds, on_wait=print_note)


def _store_path(store: Path | None) -> Path:
    from falconer_core.errors import StoreError
    from falconer_core.settings import Settings

    path = store or Settings().store_path
    if not path.is_file():
        raise StoreError(
            f"no Falconer store at {path}; run `falconer mine` (or `falconer demo`) first, or "
            "point at one with --store or FALCONER_HOME"
        )
    return path


@app.command("runs")
@guarded
def runs(
    limit: Annotated[int, typer.Option("--limit", min=1, help="Newest runs to list.")] = 20,
    stale_after: Annotated[Optional[float], typer.Option("--stale-after", min=1, help="Seconds without a heartbeat after which a running run reads 'stale' (killed; run it again to resume). Default: 2.5 heartbeats; a run beats every FALCONER_HEARTBEAT_SECONDS (15 s).")] = None,
    store: Annotated[Optional[Path], typer.Option("--store", help="DuckDB file (default: FALCONER_HOME/falconer.duckdb).")] = None,
) -> None:
    """List execution runs: status (running, stale, completed, failed), shards and texts done, texts/s,
    and the drift check's verdict (no reference, no drift, drift suspected (no audit), drift not
    confirmed, drift detected)."""
    import pandas as pd

    with reading_store(_store_path(store)) as db:
        frame = db.run_progress(stale_after_seconds=stale_after).head(limit)
    rows = [
        {"run": r.run_id, "kind": r.kind, "status": r.status, "model": r.model_version,
         "shards": f"{r.shards_done}/{'?' if pd.isna(r.n_shards) else int(r.n_shards)}",
         "texts": f"{int(r.texts_done):,}", "texts/s": "—" if r.texts_per_second is None else f"{r.texts_per_second:,.1f}",
         "drift": r.drift_status if isinstance(r.drift_status, str) else "—", "started": str(r.started_at)[:19]}
        for r in frame.itertuples(index=False)
    ]
    if not rows:
        console.print("no runs yet; run `falconer mine` or `falconer execute` first")
        return
    checked = any(r["drift"] != "—" for r in rows)  # a store with no drift check yet keeps its narrower table
    console.print(table(rows, ["run", "kind", "status", "model", "shards", "texts", "texts/s",
                               *(["drift"] if checked else []), "started"],
                        title="runs (newest first)"))


@app.command("lineage")
@guarded
def lineage(
    model: Annotated[Optional[str], typer.Argument(help="NAME, NAME@alias or NAME/version (default: the champion of FALCONER_MODEL_NAME).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """Print a checkpoint's ancestry: each version over the one it was tuned from, down to the base."""
    import json

    from falconer_core.registry import Registry, RegistryError, render_lineage
    from falconer_core.settings import Settings

    settings = Settings()
    uri = settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).is_file():
        raise RegistryError(
            f"no MLflow registry at {uri}; run `falconer mine` (or `falconer demo`) first, or point "
            "at one with FALCONER_HOME or FALCONER_MLFLOW_TRACKING_URI"
        )
    chain = Registry.from_settings(settings).lineage(model or settings.model_name)
    if as_json:
        console.print_json(json.dumps(chain, default=str))
    else:
        console.print(render_lineage(chain), markup=False, highlight=False, soft_wrap=True)
