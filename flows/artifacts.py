"""Publishing what a run shows as Prefect artifacts (the plan, the annotation sample, the
scores, the F1 plot, the cost comparison), visible on the flow run's Artifacts tab.

Every text goes through the redaction of `falconer_core.registry.redaction` first: API keys in
the environment, and key-shaped strings, never reach the Prefect database.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prefect.artifacts import create_image_artifact, create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.cascade import CascadeReport
from falconer_core.drift.verdict import DriftVerdict
from falconer_core.evaluation.scoring import Evaluation
from falconer_core.plan import Plan
from falconer_core.registry.redaction import env_secrets, redact
from falconer_core.reporting import artifacts
from falconer_core.reporting.costs import CostRow
from falconer_core.settings import Settings


def _clean(value: Any) -> Any:
    secrets = env_secrets().values()
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def publish_plan(plan: Plan) -> None:
    """The plan as markdown: steps, filter, outputs and its YAML."""
    create_markdown_artifact(_clean(artifacts.plan_markdown(plan)), key="plan", description=f"Plan {plan.hash}")


def publish_sample(annotations: AnnotationSet) -> None:
    """The annotated sample: each text with every step's answer and, for an LLM annotator, the
    spans it returned that are not in the text (those answers are left out of training)."""
    rows = artifacts.sample_table(annotations)
    description = f"{annotations.size} texts annotated by {annotations.annotator} (set {annotations.hash})"
    if annotations.ungrounded:
        missing: dict[str, list[str]] = {}
        for step, found in annotations.ungrounded.items():
            for text_id, context in found.answers:
                missing.setdefault(text_id, []).append(context)
        for row in rows:
            row["ungrounded"] = ", ".join(missing.get(row["id"], []))
        shares = "; ".join(
            f"{step} {g.spans_ungrounded}/{g.spans_returned} ({g.share:.0%})"
            + (" e.g. " + ", ".join(repr(value) for value, _ in g.examples[:3]) if g.examples else "")
            for step, g in annotations.ungrounded.items()
        )
        description += f"; spans not found in their text: {shares}"
    create_table_artifact(_clean(rows), key="annotation-sample", description=_clean(description))


def publish_scores(evaluation: Evaluation, title: str) -> Path:
    """The per-step and end-to-end scores with their intervals, as a table and as a bar chart
    with error bars (also saved as a PNG; returns its path)."""
    note = f"{title}; 95% bootstrap intervals over texts, texts weighted {evaluation.weighting}"
    create_table_artifact(_clean(artifacts.scores_table(evaluation)), key="evaluation", description=note)
    png = artifacts.f1_plot(evaluation, title)
    folder = Path(Settings().artifacts_dir) / str(flow_run.id or "local")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f1-per-step.png").write_bytes(png)
    create_image_artifact(
        image_url="data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        key="f1-per-step", description=f"{title} (PNG also at {folder / 'f1-per-step.png'})",
    )
    return folder / "f1-per-step.png"


def publish_learning_curve(rows: Sequence[dict], plan: Plan) -> None:
    """Held-out F1 with its interval against annotations so far, one row per annotation round."""
    create_table_artifact(
        _clean(list(rows)), key="learning-curve",
        description=f"Learning curve of plan {plan.hash}: held-out F1 [95% interval] per step vs annotations",
    )


def publish_costs(rows: Sequence[CostRow]) -> None:
    """The proxy against the annotator doing the whole corpus: time, tokens, cost."""
    create_table_artifact(
        _clean(artifacts.costs_table(rows)), key="cost-comparison",
        description="Annotator on the whole corpus vs Falconer (sample + fine-tune + metamodel)",
    )


def publish_cascade(report: CascadeReport, run_id: str) -> None:
    """A cascade run's thresholds and what it routed (and its audit, when there was one)."""
    rows = [
        {
            "step": t.step, "metric": t.metric, "target": t.target, "keep proxy when": (
                f"P(true) <= {t.lower:.4f} or >= {t.upper:.4f}" if t.op == "label" else f"confidence >= {t.upper:.4f}"
            ), "certified": t.certified, "calibration texts": t.n, "band share": t.band_share,
        }
        for t in report.thresholds
    ]
    usage = report.llm_usage
    description = (
        f"Cascade run {run_id}: {report.llm_texts} texts answered by the LLM and "
        f"{report.calibration_texts} calibration texts; {report.over_budget} band texts kept the "
        f"proxy's answer for lack of budget; LLM tokens {usage.get('total_tokens', 0)}, cost ${usage.get('cost_usd', 0):.4f}"
    )
    if report.audit is not None:
        audit = report.audit
        description += (
            f". Audit on {audit.n_texts} fresh texts: agreement {audit.agreement:.3f} "
            f"[{audit.low:.3f}, {audit.high:.3f}]"
        )
    create_table_artifact(_clean(rows), key="cascade", description=_clean(description))


def publish_drift(verdict: DriftVerdict) -> None:
    """A run's drift check: per step the signals against the reference, and the verdict (with
    the audit's agreement and interval when one ran) in the description."""
    rows = verdict.report.rows() if verdict.report is not None else [{"status": verdict.status, "reason": verdict.reason}]
    description = f"Drift of run {verdict.run_id} ({verdict.version}): {verdict.status}. {verdict.reason}"
    if verdict.report is not None:
        r = verdict.report
        description += (f". Filter pass rate {r.pass_rate_reference:.3f} (reference) -> {r.pass_rate:.3f} on "
                        f"{r.n_texts} texts; KS threshold p < {r.threshold:.3g}")
    create_table_artifact(_clean(rows), key="drift", description=_clean(description))
