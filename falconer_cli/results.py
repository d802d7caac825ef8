"""What the pipeline commands print when a flow is done: a few mined records, the proxy's scores
against its supervision, the cost comparison, and where everything was written."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from falconer_cli.render import console, key_values, print_note, table

if TYPE_CHECKING:  # the CLI imports the library lazily, so that --help answers at once
    from falconer_core.cascade import CascadeReport

_FILTER_FIELD = "_filter"  # falconer_core.execution.FILTER_FIELD, without importing pandas


def print_mine_result(result: Any, flow_run_id: str, *, records: int = 5) -> None:
    """The end of `mine`/`demo`: records, F1 per step, costs, and where to look."""
    incubation, execution = result.incubation, result.execution
    print_records(execution.store_path, execution.run_id, records)
    print_scores(incubation.evaluation, incubation.annotator, title="proxy vs its supervision")
    if len(incubation.learning_curve) > 1:
        console.print(table(
            [{"round": r["round"], "annotations": r["annotations"], "held-out mean F1 [95% interval]": _interval(r, "mean_f1")}
             for r in incubation.learning_curve],
            title="learning curve (active rounds)",
        ))
    if result.costs:
        console.print(table(
            [_cost_row(c) for c in result.costs], ["route", "texts", "seconds", "USD", "basis"],
            title=f"cost: the annotator on all {execution.n_texts} texts vs Falconer",
        ))
    verdict = "champion of its task" if incubation.champion else "candidate (not promoted)"
    print_where(
        flow_run_id,
        store_path=execution.store_path,
        run_id=execution.run_id,
        model_version=incubation.model_version,
        verdict=f"{verdict}: {'; '.join(incubation.promotion)}",
    )


def _interval(row: dict, key: str) -> str:
    if row.get(key) is None:
        return "n/a"
    return f"{row[key]:.3f} [{row.get(key + '_lo', float('nan')):.3f}, {row.get(key + '_hi', float('nan')):.3f}]"


def print_execution_result(result: Any, flow_run_id: str | None, *, records: int = 5) -> None:
    """The end of `execute`: records, run counts, and where to look."""
    print_records(result.store_path, result.run_id, records)
    console.print(key_values([
        ("texts", result.n_texts),
        ("shards", f"{result.shards} committed, {result.shards_run} run now"),
        ("output rows", result.rows),
        ("metamodel time", f"{result.seconds:.1f} s for {result.texts_run} texts"),
        *([("drift", result.drift.summary())] if getattr(result, "drift", None) is not None else []),
    ], title=f"run {result.run_id}"))
    if result.cascade is not None:
        print_cascade(result.cascade, result.n_texts)
    print_where(flow_run_id, store_path=result.store_path, run_id=result.run_id, model_version=result.model_version)


def print_cascade(report: CascadeReport, n_texts: int) -> None:
    """A cascade run: each step's thresholds and guarantee, what the LLM answered, the budget, the audit."""
    rows = [
        {"step": t.step, "target": f"{t.metric} >= {t.target}", "certified": t.certified,
         "keep the proxy when": f"P(true) <= {t.lower:.4f} or >= {t.upper:.4f}" if t.op == "label"
         else f"confidence >= {t.upper:.4f}", "calibration texts": t.n}
        for t in report.thresholds
    ]
    console.print(table(rows, title="cascade thresholds (guarantee relative to the LLM)", flexible=("step",)))
    usage, calibration = report.llm_usage, report.calibration_usage  # LLM usage snapshots: counts by name
    facts = [
        ("LLM answered", f"{report.llm_texts:,} of {n_texts:,} texts ({report.llm_texts / max(n_texts, 1):.1%}), "
                         f"{report.calibration_texts:,} of them to calibrate"),
        ("LLM tokens", f"{usage.get('total_tokens', 0) + calibration.get('total_tokens', 0):,}"),
        ("LLM cost", f"${usage.get('cost_usd', 0) + calibration.get('cost_usd', 0):.4f}"),
    ]
    if report.llm_budget is not None:
        facts.append(("budget", f"{report.llm_budget:,} texts; {report.over_budget:,} band texts kept "
                                "the proxy's answer for lack of it"))
    if report.audit is not None:
        audit = report.audit
        facts.append(("audit", f"agreement {audit.agreement:.3f} [{audit.low:.3f}, {audit.high:.3f}] on "
                               f"{audit.n_texts} fresh texts"))
    console.print(key_values(facts, title="cascade"))
    if report.over_budget:
        print_note("the LLM budget ran out before the band was covered: the target is not guaranteed for this run")


def print_evaluation_result(result: Any, flow_run_id: str) -> None:
    """The end of `evaluate`: F1 per step against the annotator."""
    print_scores(result.evaluation, result.annotator, title=f"{result.model_version} vs {result.annotator}")
    print_where(flow_run_id, model_version=result.model_version)


def print_scores(evaluation: Any, reference: str, *, title: str) -> None:
    """One row per plan step, then the plan end to end: F1 (word-level for spans) and accuracy,
    each with its 95% bootstrap interval, precision and recall; then the mean over steps."""
    shown = [*evaluation.scores, *([evaluation.end_to_end] if evaluation.end_to_end else [])]
    rows = [
        {"step": s.step if s.op != "plan" else "(end to end)", "n": s.n,
         "F1 [95% interval]": _with_interval(s.f1, s.f1_lo, s.f1_hi), "P": s.precision, "R": s.recall,
         "accuracy [95%]": _with_interval(s.accuracy, s.accuracy_lo, s.accuracy_hi)}
        for s in shown
    ]
    weighting = "" if evaluation.weighting == "uniform" else f", weighted by {evaluation.weighting}"
    console.print(table(rows, title=f"{title}: {evaluation.n_texts} held-out texts labelled by {reference}{weighting}",
                        flexible=("step",)))
    mean = evaluation.mean_f1
    if mean is not None:
        console.print(Text(
            f"proxy F1 against {reference}: {_with_interval(mean, evaluation.mean_f1_lo, evaluation.mean_f1_hi)} "
            "(mean over steps, 95% interval)", style="bold green",
        ))


def _with_interval(value: float | None, lo: float | None, hi: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3f}" + ("" if lo is None or hi is None else f" [{lo:.2f}, {hi:.2f}]")


def print_records(store_path: str, run_id: str, limit: int) -> None:
    """A few texts that passed the filter, with what was mined from each (texts with something
    extracted first)."""
    if limit <= 0:
        return
    from falconer_cli.inspect import reading_store

    with reading_store(Path(store_path)) as db:
        ids = db.query(
            "SELECT text_id FROM outputs WHERE run_id = ? AND field <> ? "
            "GROUP BY text_id ORDER BY count(value) = 0, min(shard), text_id LIMIT ?",
            [run_id, _FILTER_FIELD, int(limit)],
        )["text_id"].tolist()
        if not ids:
            console.print(f"no text passed the filter in run {run_id}")
            return
        db.texts_view()
        rows = db.query(
            "SELECT o.text_id, t.text, o.field, o.value FROM outputs o "
            "LEFT JOIN runs r ON r.run_id = o.run_id "
            "LEFT JOIN texts t ON t.corpus_id = r.corpus_id AND t.id = o.text_id "
            "WHERE o.run_id = ? AND o.field <> ? AND list_contains(?, o.text_id) "
            "ORDER BY o.text_id, o.field, o.span_start NULLS FIRST",
            [run_id, _FILTER_FIELD, ids],
        )
    mined: dict[str, dict[str, Any]] = {}
    for row in rows.itertuples(index=False):
        record = mined.setdefault(row.text_id, {"id": row.text_id, "text": row.text})
        values = record.setdefault(row.field, [])
        if isinstance(row.value, str):
            values.append(row.value)
    fields = sorted({k for r in mined.values() for k in r} - {"id", "text"})
    shown = [{**r, **{f: ", ".join(r.get(f, [])) or "—" for f in fields}} for r in (mined[i] for i in ids if i in mined)]
    console.print(table(shown, ["id", "text", *fields], title=f"mined records (first {len(shown)})",
                        max_width=90, flexible=("text", *fields)))


def print_where(
    flow_run_id: str | None,
    *,
    store_path: str | None = None,
    run_id: str | None = None,
    model_version: str | None = None,
    verdict: str | None = None,
) -> None:
    """Where each piece lives, and the commands that open the Prefect and MLflow UIs."""
    from falconer_core.settings import Settings

    settings = Settings()
    pairs: list[tuple[str, Any]] = []
    if store_path:
        pairs += [("DuckDB", f"{os.path.abspath(store_path)}  (run {run_id})"),
                  ("  look", f"falconer outputs --run-id {run_id}  [--export outputs.parquet]")]
    if model_version:
        mlflow_run = _mlflow_run_id(settings, model_version)
        pairs += [("MLflow", f"model {model_version}" + (f"  run {mlflow_run}" if mlflow_run else "")
                   + (f"  — {verdict}" if verdict else "")),
                  ("  registry", settings.mlflow_tracking_uri),
                  ("  lineage", f"falconer lineage {model_version}")]
    api_url = os.environ.get("PREFECT_API_URL", "").rstrip("/")
    ui = api_url.removesuffix("/api") if api_url else "http://127.0.0.1:4200"
    if flow_run_id is None:
        pairs += [("Prefect", "no flow run: a small job ran in this process (--flow records it as a flow run)")]
    else:
        pairs += [("Prefect", f"flow run {flow_run_id}"),
                  ("  UI", f"{ui}/runs/flow-run/{flow_run_id}" + ("" if api_url else "  (after `falconer serve`)"))]
    pairs += [("MLflow UI", f"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri "
                            f"{settings.mlflow_tracking_uri} --workers 1  -> http://127.0.0.1:5000")]
    console.print(key_values(pairs, title="where to look"))


def _mlflow_run_id(settings: Any, model_version: str) -> str | None:
    from falconer_core.registry import Registry, RegistryError

    try:
        return Registry.from_settings(settings).resolve(model_version).run_id
    except RegistryError:
        return None


def _cost_row(row: Any) -> dict[str, Any]:
    return {"route": row.route, "texts": row.texts,
            "seconds": None if row.seconds is None else round(row.seconds, 1),
            "USD": None if row.cost_usd is None else f"{row.cost_usd:.4f}", "basis": row.basis}

