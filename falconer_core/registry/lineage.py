"""Printing a checkpoint's ancestry, newest first, down to the base encoder it started from: for
each version its metrics with their bootstrap intervals, and why it was or was not promoted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from falconer_core.registry.tags import (
    ANNOTATION_SET_HASH,
    ANNOTATOR,
    CORPUS_ID,
    FLOW_RUN_ID,
    METRIC_PREFIX,
    N_ANNOTATIONS,
    PLAN_HASH,
    PROMOTION,
    PROMOTION_REASONS,
    PROMOTION_TASK,
)

_INDENT = "    "
#: Shown first, in this order; the per-step metrics follow alphabetically.
_FIRST = {"mean_f1": 0, "end_to_end_f1": 1, "heldout_texts": 2}


def render_lineage(chain: Sequence[Mapping[str, Any]]) -> str:
    """Plain-text tree of a `Registry.lineage` chain: each version over the one it was tuned
    from, with its aliases, creation time, annotations, plan, corpus, key metrics and runs."""
    if not chain:
        return "(no lineage)"
    lines: list[str] = []
    for depth, entry in enumerate(chain):
        pad = _INDENT * (depth - 1) + "└── " if depth else ""
        body = _INDENT * depth + "  "
        kind = entry.get("kind")
        if kind == "base":
            lines.append(f"{pad}base model {entry['name']}")
            continue
        if kind == "missing":
            lines.append(f"{pad}{entry['ref']} (not in the registry: deleted or elsewhere)")
            continue
        aliases = "".join(f" @{a}" for a in entry.get("aliases", ()))
        created = (entry.get("created_at") or "?").replace("T", " ").replace("+00:00", " UTC")
        lines.append(f"{pad}{entry['ref']}{aliases}  ({created})")
        tags = entry.get("tags", {})
        lines.append(
            f"{body}annotator={tags.get(ANNOTATOR, '?')}  annotations={tags.get(N_ANNOTATIONS, '?')}"
            f" (set {tags.get(ANNOTATION_SET_HASH, '?')})  plan={tags.get(PLAN_HASH, '?')}"
            f"  corpus={tags.get(CORPUS_ID, '?')}"
        )
        shown = _key_metrics(entry)
        if shown:
            keys = sorted((k for k in shown if not _is_end(k)), key=lambda k: (_FIRST.get(k, len(_FIRST)), k))
            lines.append(f"{body}metrics: " + "  ".join(_with_interval(k, shown) for k in keys))
        if tags.get(PROMOTION):
            verdict = "champion" if tags[PROMOTION] == "champion" else "not promoted"
            task = tags.get(PROMOTION_TASK, tags.get(PLAN_HASH, "?"))
            lines.append(f"{body}promotion: {verdict} (task {task}): {tags.get(PROMOTION_REASONS, '?')}")
        lines.append(
            f"{body}mlflow run {entry.get('run_id') or '?'}  prefect flow run {tags.get(FLOW_RUN_ID, '?')}"
        )
    return "\n".join(lines)


def _is_end(key: str) -> bool:
    return key.endswith(("_lo", "_hi"))


def _with_interval(key: str, metrics: Mapping[str, float]) -> str:
    """`key=value [lo, hi]` when the interval ends were logged beside it."""
    lo, hi = metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi")
    interval = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else ""
    return f"{key}={metrics[key]:.4g}{interval}"


def _key_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The metrics tagged on the version (the task's key ones), else every run metric."""
    tags = entry.get("tags", {})
    keys = [k[len(METRIC_PREFIX):] for k in tags if k.startswith(METRIC_PREFIX)]
    metrics = entry.get("metrics", {})
    if not keys:
        return dict(sorted(metrics.items()))
    out: dict[str, float] = {}
    for key in sorted(keys):
        try:
            out[key] = float(metrics.get(key, tags[METRIC_PREFIX + key]))
        except (TypeError, ValueError):
            continue
    return out
