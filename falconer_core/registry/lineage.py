"""A checkpoint's ancestry, newest first, down to the base encoder it started from: read from the
registry (`read_lineage`), and printed (`render_lineage`) with each version's metrics, their
bootstrap intervals, and why it was or was not promoted."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from falconer_core.registry.refs import ModelVersionRef, RegistryError
from falconer_core.registry.tags import (
    ANNOTATION_SET_HASH,
    ANNOTATOR,
    BASE_MODEL,
    CORPUS_ID,
    FLOW_RUN_ID,
    METRIC_PREFIX,
    N_ANNOTATIONS,
    NONE,
    PARENT_VERSION,
    PLAN_HASH,
    PROMOTION,
    PROMOTION_FOR_PREFIX,
    PROMOTION_REASONS,
    PROMOTION_TASK,
)

if TYPE_CHECKING:
    from falconer_core.registry.lookup import VersionLookup

_INDENT = "    "
#: Shown first, in this order; the per-step metrics follow alphabetically.
_FIRST = {"mean_f1": 0, "end_to_end_f1": 1, "heldout_texts": 2}


def read_lineage(lookup: VersionLookup, ref: str | ModelVersionRef) -> list[dict[str, Any]]:
    """The ancestry of a version, newest first: the version, its parent, the parent's parent,
    ..., then the base model. Each entry has kind ("version", "base" or "missing"), ref,
    name, version, aliases, tags, metrics, run_id, source and created_at (UTC, ISO 8601)."""
    chain: list[dict[str, Any]] = []
    seen: set[str] = set()
    mv = lookup.model_version(ref)
    while True:
        entry = _version_entry(lookup, mv)
        chain.append(entry)
        seen.add(entry["ref"])
        parent = entry["tags"].get(PARENT_VERSION, NONE)
        if parent in (NONE, "") or parent in seen:
            break
        try:
            mv = lookup.model_version(parent)
        except RegistryError:
            chain.append(_other_entry("missing", parent))
            return chain
    chain.append(_other_entry("base", entry["tags"].get(BASE_MODEL, "unknown")))
    return chain


def _version_entry(lookup: VersionLookup, mv: Any) -> dict[str, Any]:
    """A lineage entry for a registered version."""
    return {
        "kind": "version",
        "ref": f"{mv.name}/{mv.version}",
        "name": mv.name,
        "version": int(mv.version),
        "aliases": sorted(mv.aliases or ()),
        "tags": dict(mv.tags or {}),
        "metrics": lookup.run_metrics(mv.run_id),
        "run_id": mv.run_id,
        "source": mv.source,
        "created_at": datetime.fromtimestamp(mv.creation_timestamp / 1000, timezone.utc).isoformat(timespec="seconds"),
    }


def _other_entry(kind: str, name: str) -> dict[str, Any]:
    """A lineage entry that is not a registered version: the base encoder, or a missing parent."""
    return {"kind": kind, "ref": name, "name": name, "version": None, "aliases": [], "tags": {},
            "metrics": {}, "run_id": None, "source": None, "created_at": None}


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
        lines += [f"{body}{line}" for line in _per_task(tags)]
        precisions = _precisions(tags)
        if precisions:
            lines.append(f"{body}precisions: {precisions}")
        lines.append(
            f"{body}mlflow run {entry.get('run_id') or '?'}  prefect flow run {tags.get(FLOW_RUN_ID, '?')}"
        )
    return "\n".join(lines)


def _precisions(tags: Mapping[str, str]) -> str:
    """The precision gate's verdicts on this version (`falconer.precision.<p>` tags), e.g.
    `bf16 ok (-0.0004 [-0.003, 0.002])  int8 refused (...)`; '' when never gated."""
    shown = []
    for name in ("bf16", "int8"):
        verdict = tags.get(f"falconer.precision.{name}")
        if verdict:
            delta, interval = tags.get(f"falconer.precision.{name}.delta"), tags.get(f"falconer.precision.{name}.interval")
            shown.append(f"{name} {verdict}" + (f" ({delta} {interval})" if delta else ""))
    return "  ".join(shown)


def _per_task(tags: Mapping[str, str]) -> list[str]:
    """One line per task the version was gated on (its own and its ancestors'): its score with
    the interval beside the champion's, the verdict and why."""
    own = tags.get(PLAN_HASH)
    found = sorted((k[len(PROMOTION_FOR_PREFIX):], v) for k, v in tags.items() if k.startswith(PROMOTION_FOR_PREFIX))
    if not any(task != own for task, _ in found):
        return []  # a version gated on its own task only: the promotion line says it all
    lines = []
    for task, raw in sorted(found, key=lambda item: item[0] != own):
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            continue
        verdict = "champion" if body.get("champion") else "not promoted"
        rival = body.get("incumbent")
        beside = f" vs {rival} {_score(body.get('incumbent_score'))}" if rival else " (no champion before)"
        kind = "own task" if task == own else "ancestor task"
        lines.append(f"task {task} ({kind}): mean_f1 {_score(body.get('score'))}{beside} -> {verdict}: "
                     + "; ".join(body.get("reasons", [])))
    return lines


def _score(score: Mapping[str, Any] | None) -> str:
    """`0.812 [0.78, 0.84]`, or `?` when unknown."""
    if not score or score.get("mean_f1") is None:
        return "?"
    lo, hi = score.get("lo"), score.get("hi")
    interval = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else ""
    return f"{score['mean_f1']:.4g}{interval}"


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
