"""Printing a checkpoint's ancestry, newest first, down to the base encoder it started from."""

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
)

_INDENT = "    "


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
            lines.append(f"{body}metrics: " + "  ".join(f"{k}={v:.4g}" for k, v in shown.items()))
        lines.append(
            f"{body}mlflow run {entry.get('run_id') or '?'}  prefect flow run {tags.get(FLOW_RUN_ID, '?')}"
        )
    return "\n".join(lines)


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
