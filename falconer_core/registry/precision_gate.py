"""The precision gate's verdicts on a model version, as tags, and the precision `auto` runs it at.

Each gated precision gets `falconer.precision.<p>` = `ok` or `refused`, with
`falconer.precision.<p>.delta` (its mean F1 minus fp32's) and `falconer.precision.<p>.interval`
(the paired bootstrap interval of that difference); `falconer.precision.gate` holds the whole
result as JSON (reference, texts, machine, speeds). A version without these tags (registered
before the gate existed) leaves `auto` to the machine's capabilities alone.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.evaluation.precision_gate import PrecisionGate, gate_metamodel
from falconer_core.evaluation.scoring import Evaluation
from falconer_core.metamodel.precision import AUTO, PRECISIONS, Precision, resolve_precision
from falconer_core.registry.client import Registry
from falconer_core.registry.refs import ModelVersionRef

#: `falconer.precision.<precision>` = ok | refused, with `.delta` and `.interval` beside it.
PRECISION_TAG = "falconer.precision."
#: The whole gate result, as JSON.
PRECISION_GATE_TAG = "falconer.precision.gate"
OK, REFUSED = "ok", "refused"


def precision_tags(gate: PrecisionGate) -> dict[str, str]:
    """The version tags that record `gate`."""
    tags = {PRECISION_GATE_TAG: gate.model_dump_json()}
    for v in gate.verdicts:
        tags[f"{PRECISION_TAG}{v.precision}"] = OK if v.passed else REFUSED
        tags[f"{PRECISION_TAG}{v.precision}.delta"] = f"{v.delta:+.4f}"
        tags[f"{PRECISION_TAG}{v.precision}.interval"] = f"[{v.lo:+.4f}, {v.hi:+.4f}]"
    return tags


def record_precision_gate(registry: Registry, ref: str | ModelVersionRef, gate: PrecisionGate) -> dict[str, str]:
    """Write `gate`'s verdicts as tags on the version `ref` names; returns the tags written."""
    version = registry.resolve(ref)
    tags = precision_tags(gate)
    for key, value in tags.items():
        registry.client.set_model_version_tag(version.name, str(version.version), key, value)
    return tags


def gate_verdicts(tags: dict[str, str]) -> dict[str, bool]:
    """Precision -> passed, from a version's tags ({} when it was never gated)."""
    return {p: tags[PRECISION_TAG + p] == OK for p in PRECISIONS if PRECISION_TAG + p in tags}


def recorded_gate(registry: Registry, ref: str | ModelVersionRef) -> PrecisionGate | None:
    """The gate result recorded on a version, or None."""
    raw = registry.client.get_model_version(*_name_version(registry, ref)).tags.get(PRECISION_GATE_TAG)
    return None if raw is None else PrecisionGate.model_validate(json.loads(raw))


def precision_for_version(
    precision: str, version: str | ModelVersionRef | None, registry: Registry | None = None,
    device_type: str | None = None,
) -> Precision:
    """The precision to run a version at: a named one as it is (checked against the machine);
    `auto` resolved from the machine's capabilities and, when the version was gated, only among
    the precisions its gate passed. Call it before run ids and work keys are made."""
    if precision != AUTO or version is None:
        return resolve_precision(precision, device_type)
    registry = registry or Registry.from_settings()
    tags = registry.client.get_model_version(*_name_version(registry, version)).tags or {}
    return resolve_precision(AUTO, device_type, gated=gate_verdicts(dict(tags)))


def gate_registered_checkpoint(
    registry: Registry, ref: str | ModelVersionRef, model: Any, annotations: AnnotationSet,
    heldout_ids: Collection[str], *, fp32_evaluation: Evaluation | None = None,
) -> PrecisionGate:
    """What registration calls once the version exists: gate the fp32 `model`'s (the loaded
    checkpoint's) precisions on its held-out texts against their annotations (reusing fp32's
    `evaluation` when given) and tag the version with the verdicts."""
    gate = gate_metamodel(model, annotations, list(heldout_ids), fp32_evaluation=fp32_evaluation)
    record_precision_gate(registry, ref, gate)
    return gate


def annotated_ids(registry: Registry, ref: str | ModelVersionRef) -> tuple[list[str], str | None]:
    """The ids of the texts a version was fine-tuned and evaluated on (its run's annotations
    artifact), and the corpus they come from (its `falconer.corpus_id` tag); ([], None) when
    the run kept no annotations."""
    import tempfile

    from falconer_core.registry import tags as T

    version = registry.resolve(ref)
    corpus_id = registry.client.get_model_version(version.name, str(version.version)).tags.get(T.CORPUS_ID)
    names = [f.path for f in registry.client.list_artifacts(version.run_id, "annotations")] if version.run_id else []
    ids: dict[str, None] = {}
    with tempfile.TemporaryDirectory(prefix="falconer-annotations-") as tmp:
        for name in names:
            local = registry.client.download_artifacts(version.run_id, name, dst_path=tmp)
            for line in Path(local).read_text("utf-8").splitlines():
                if line.strip():
                    ids.setdefault(str(json.loads(line)["text_id"]))
    return list(ids), corpus_id


def _name_version(registry: Registry, ref: str | ModelVersionRef) -> tuple[str, str]:
    version = registry.resolve(ref)
    return version.name, str(version.version)


__all__ = [
    "OK",
    "annotated_ids",
    "PRECISION_GATE_TAG",
    "PRECISION_TAG",
    "REFUSED",
    "gate_registered_checkpoint",
    "gate_verdicts",
    "precision_for_version",
    "precision_tags",
    "record_precision_gate",
    "recorded_gate",
]
