"""What a run shows people: the plan as markdown, tables of the annotated sample, the scores
(each with its bootstrap interval, the end-to-end score and the mean) and the costs, and a bar
chart of F1 per step with error bars. Plain data and PNG bytes; the flows publish them as
Prefect artifacts, and anything else (a notebook, the CLI) can print them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.evaluation.scoring import Evaluation, StepScore
from falconer_core.execution import LabelOutcome
from falconer_core.execution.traces import answers
from falconer_core.plan import Plan, render_condition
from falconer_core.reporting.costs import CostRow

_TEXT_CHARS = 160


def plan_markdown(plan: Plan) -> str:
    """The plan for review: the request, a table of steps, filter and outputs, and the YAML."""
    lines = [f"# Plan `{plan.hash}`", ""]
    if plan.instruction:
        lines += [f"> {plan.instruction}", ""]
    lines += ["| # | step | op | instruction | runs on |", "|---|---|---|---|---|"]
    reads = set(plan.filter_steps)
    for i, step in enumerate(plan.steps, 1):
        scope = (
            f"each `{step.for_each}` span" if step.for_each
            else "every text" if step.name in reads or plan.filter is None else "texts passing the filter"
        )
        instruction = step.instruction.replace("|", "\\|")
        lines.append(f"| {i} | `{step.name}` | {step.op} | {instruction} | {scope} |")
    condition = render_condition(plan.filter) if plan.filter is not None else "(none: every text)"
    lines += ["", f"**Filter:** {condition}", ""]
    lines += [f"**Outputs:** {', '.join(f'`{o.name}`' for o in plan.outputs or []) or '(none)'}", ""]
    lines += ["```yaml", plan.to_yaml().rstrip(), "```"]
    return "\n".join(lines)


def sample_table(annotations: AnnotationSet, limit: int = 200) -> list[dict[str, Any]]:
    """One row per annotated text (at most `limit`): id, the start of the text, each step's answer."""
    texts = annotations.text_of()
    rows = []
    for record in annotations.records[:limit]:
        text = texts[str(record.id)]
        row: dict[str, Any] = {"id": str(record.id), "text": _short(text), "passed": record.passed}
        for step in annotations.plan.steps:
            trace = record.steps.get(step.name)
            row[step.name] = "" if trace is None else _answer_text(trace)
        rows.append(row)
    return rows


def _answer_text(trace) -> str:
    parts = []
    for answer in answers(trace):
        if isinstance(answer.outcome, LabelOutcome):
            value = "yes" if answer.outcome.value else "no"
        else:
            value = "; ".join(s.text for s in answer.outcome) or "-"
        parts.append(f"{answer.parents[-1].text} → {value}" if answer.parents else value)
    return " | ".join(parts)


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= _TEXT_CHARS else flat[: _TEXT_CHARS - 1] + "…"


def scores_table(evaluation: Evaluation) -> list[dict[str, Any]]:
    """One row per step, then the plan end to end and the mean over steps; numbers rounded for
    reading, each F1 and accuracy with its 95% bootstrap interval."""
    rows = [_score_row(s) for s in [*evaluation.scores, *([evaluation.end_to_end] if evaluation.end_to_end else [])]]
    if evaluation.mean_f1 is not None:
        rows.append({"step": "mean over steps", "op": "", "n": evaluation.n_texts, "f1": _r(evaluation.mean_f1),
                     "f1 95% interval": _span(evaluation.mean_f1_lo, evaluation.mean_f1_hi)})
    return rows


def _score_row(s: StepScore) -> dict[str, Any]:
    return {
        "step": s.step, "op": s.op, "predictor": s.predictor, "reference": s.reference, "n": s.n,
        "f1": _r(s.f1), "f1 95% interval": _span(s.f1_lo, s.f1_hi), "precision": _r(s.precision),
        "recall": _r(s.recall), "accuracy": _r(s.accuracy), "accuracy 95% interval": _span(s.accuracy_lo, s.accuracy_hi),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _span(lo: float | None, hi: float | None) -> str:
    return "" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


def costs_table(rows: Sequence[CostRow]) -> list[dict[str, Any]]:
    """Cost rows as table rows."""
    return [row.model_dump() for row in rows]


def f1_plot(evaluation: Evaluation, title: str = "F1 per step") -> bytes:
    """PNG of one bar per step and one for the plan end to end, each with its 95% interval as
    an error bar, and the mean over steps as a dashed line."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    shown = [s for s in [*evaluation.scores, evaluation.end_to_end] if s is not None]
    labels = [s.step.replace("_", " ") if s.op == "plan" else s.step for s in shown]
    values = [s.f1 or 0.0 for s in shown]
    below = [(s.f1 - s.f1_lo) if s.f1 is not None and s.f1_lo is not None else 0.0 for s in shown]
    above = [(s.f1_hi - s.f1) if s.f1 is not None and s.f1_hi is not None else 0.0 for s in shown]
    figure = Figure(figsize=(max(4.0, 1.2 * len(shown) + 2), 3.4), dpi=100)
    axes = figure.subplots()
    colours = ["#4c72b0" if s.op != "plan" else "#dd8452" for s in shown]
    bars = axes.bar(range(len(shown)), values, 0.6, color=colours, yerr=[below, above], capsize=4)
    axes.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=8, label_type="center", color="white")
    if evaluation.mean_f1 is not None:
        axes.axhline(evaluation.mean_f1, color="grey", linestyle="--", linewidth=1,
                     label=f"mean over steps {evaluation.mean_f1:.2f}")
        axes.legend(loc="upper right", fontsize=8, frameon=False)
    reference = shown[0].reference if shown else "?"
    axes.set_xticks(range(len(shown)), labels, rotation=15)
    axes.set_ylim(0, 1.3)
    axes.set_ylabel(f"F1 vs {reference} (95% interval)")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


__all__ = ["costs_table", "f1_plot", "plan_markdown", "sample_table", "scores_table"]
