"""What a run shows people: the plan as markdown, tables of the annotated sample, the scores
and the costs, and a bar chart of F1 per step. Plain data and PNG bytes; the flows publish
them as Prefect artifacts, and anything else (a notebook, the CLI) can print them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.evaluation.scoring import StepScore
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


def scores_table(scores: Sequence[StepScore]) -> list[dict[str, Any]]:
    """Scores as table rows, numbers rounded for reading."""
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 4)

    return [
        {"step": s.step, "op": s.op, "predictor": s.predictor, "reference": s.reference, "n": s.n,
         "f1": r(s.f1), "precision": r(s.precision), "recall": r(s.recall), "accuracy": r(s.accuracy)}
        for s in scores
    ]


def costs_table(rows: Sequence[CostRow]) -> list[dict[str, Any]]:
    """Cost rows as table rows."""
    return [row.model_dump() for row in rows]


def f1_plot(scores: Sequence[StepScore], title: str = "F1 per step") -> bytes:
    """PNG of grouped bars: per step, one bar per (predictor vs reference) pair."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    steps = list(dict.fromkeys(s.step for s in scores))
    pairs = list(dict.fromkeys((s.predictor, s.reference) for s in scores))
    value = {(s.step, s.predictor, s.reference): s.f1 for s in scores}
    figure = Figure(figsize=(max(4.0, 1.2 * len(steps) + 2), 3.2), dpi=100)
    axes = figure.subplots()
    width = 0.8 / max(len(pairs), 1)
    for k, (predictor, reference) in enumerate(pairs):
        xs = [i + (k - (len(pairs) - 1) / 2) * width for i in range(len(steps))]
        ys = [value.get((step, predictor, reference)) or 0.0 for step in steps]
        bars = axes.bar(xs, ys, width, label=f"{predictor} vs {reference}")
        axes.bar_label(bars, fmt="%.2f", fontsize=8)
    axes.set_xticks(range(len(steps)), steps, rotation=15)
    axes.set_ylim(0, 1.3)
    axes.set_ylabel("F1 on held-out texts")
    axes.set_title(title)
    axes.legend(loc="upper right", fontsize=8, ncols=max(len(pairs), 1), frameon=False)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


__all__ = ["costs_table", "f1_plot", "plan_markdown", "sample_table", "scores_table"]
