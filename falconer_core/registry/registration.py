"""Registering a fine-tuned checkpoint with its lineage and promoting it behind its task's gates:
the absolute floor and the paired comparison with the task's champion (`promotion`).
(Fetching a registered version back is `Registry.fetch` / `Registry.plan_of`.)

Registration is idempotent: the version carries a key of what it registers (checkpoint, model
name, corpus), and a retry after a failure past `create_model_version` (in promotion, say)
finds that version and promotes it instead of creating a second one."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet, annotation_rows
from falconer_core.evaluation.comparison import compare
from falconer_core.evaluation.scoring import Evaluation
from falconer_core.hashing import content_hash
from falconer_core.registry.card import write_card
from falconer_core.registry.client import Registry
from falconer_core.registry.continual import log_task
from falconer_core.registry.refs import ModelVersionRef
from falconer_core.settings import Settings
from falconer_core.training.checkpoint import Checkpoint

#: Default absolute floor: the proxy must reach this mean F1 against its annotator (and, to
#: replace a task's champion, not be worse than it beyond the noise).
DEFAULT_GATE: dict[str, float] = {"mean_f1": 0.5}
#: The version tag that names what was registered, so a retry finds the version it made.
REGISTRATION_KEY = "falconer.registration_key"


class Registration(BaseModel):
    """A registered checkpoint and the promotion decision."""

    version: str = Field(description="NAME/VERSION in the registry.")
    run_id: str | None = Field(description="The MLflow run of the fine-tune.")
    champion: bool = Field(description="Whether it passed both gates and became its task's champion.")
    reasons: list[str] = Field(description="Why: one line per gated metric, one for the comparison with the champion.")
    ancestors: dict[str, bool] = Field(
        default_factory=dict, description="Ancestor task (plan hash) -> whether it became that task's champion too.",
    )
    ancestor_reasons: dict[str, list[str]] = Field(default_factory=dict, description="Why, per ancestor task.")


class AncestorScores(BaseModel):
    """A child scored on one ancestor task's held-out texts, beside that task's champion."""

    plan_hash: str = Field(description="The ancestor task.")
    evaluation: Evaluation = Field(description="The child on that task's held-out texts.")
    incumbent: Evaluation | None = Field(None, description="The task's champion on the same texts (None: no champion).")
    incumbent_version: str | None = Field(None, description="That champion (NAME/VERSION).")


def register_checkpoint(
    settings: Settings,
    checkpoint: Checkpoint,
    annotations: AnnotationSet,
    evaluation: Evaluation,
    *,
    model_name: str | None = None,
    corpus_id: str,
    gate: Mapping[str, float],
    flow_run_id: str | None,
    incumbent: Evaluation | None = None,
    incumbent_version: str | None = None,
    ancestors: Sequence[AncestorScores] = (),
) -> Registration:
    """Log the fine-tune to MLflow (run, checkpoint, plan, annotations), register a version with
    every lineage tag, then make it its task's candidate and, if it meets `gate` and is not
    worse than the task's champion `incumbent_version` (whose `incumbent` evaluation is on the
    same held-out texts), the task's champion. When this checkpoint is already registered under
    `model_name` for `corpus_id` (an earlier attempt failed after creating the version), that
    version is promoted instead of a new one. Metrics are the evaluation's plus
    `ungrounded.<step>` for an LLM annotator's span steps.

    Each of `ancestors` (the earlier tasks of a re-tune, scored on their own held-out texts)
    is gated the same way: the version becomes that task's champion too unless it misses the
    floor there or is worse than that task's champion beyond the noise."""
    comparison = None
    if incumbent is not None and incumbent_version is not None and evaluation.texts:
        comparison = compare(evaluation, incumbent, incumbent_version)
    registry = Registry.from_settings(settings)
    metrics = {**evaluation.metrics(), **annotations.ungrounded_metrics()}
    model_name = model_name or settings.model_name
    key = content_hash("registration", checkpoint.key, model_name, corpus_id)
    ref = registry.find_version(model_name, REGISTRATION_KEY, key)
    if ref is None:
        ref = _log(registry, checkpoint, annotations, metrics, model_name, corpus_id, flow_run_id, key)
    decision = registry.promote(ref.name, ref.version, metrics, dict(gate), comparison,
                                incumbent_metrics=incumbent.metrics() if incumbent is not None else None)
    verdicts, why = {}, {}
    for ancestor in ancestors:
        paired = None
        if ancestor.incumbent is not None and ancestor.incumbent_version is not None and ancestor.evaluation.texts:
            paired = compare(ancestor.evaluation, ancestor.incumbent, ancestor.incumbent_version)
        found = registry.promote(
            ref.name, ref.version, ancestor.evaluation.metrics(), dict(gate), paired, task=ancestor.plan_hash,
            incumbent_metrics=ancestor.incumbent.metrics() if ancestor.incumbent is not None else None,
        )
        verdicts[ancestor.plan_hash], why[ancestor.plan_hash] = found.champion, list(found.reasons)
    write_card(registry, ref, cost=annotations.usage)  # the version's model card, with the decisions just made
    return Registration(version=str(ref), run_id=ref.run_id, champion=decision.champion, reasons=list(decision.reasons),
                        ancestors=verdicts, ancestor_reasons=why)


def _log(registry: Registry, checkpoint: Checkpoint, annotations: AnnotationSet, metrics: Mapping[str, float],
         model_name: str, corpus_id: str, flow_run_id: str | None, key: str) -> ModelVersionRef:
    """Log the fine-tune run and create its version, tagged with the registration key."""
    with tempfile.TemporaryDirectory(prefix="falconer-annotations-") as tmp:
        path = Path(tmp) / "annotations.jsonl"
        rows = annotation_rows(annotations).astype(object).where(lambda f: f.notna(), None)
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows.to_dict("records")), "utf-8")
        ref = registry.log_fine_tune(
            checkpoint.path, model_name=model_name, parent=checkpoint.parent,
            base_model=checkpoint.base_model, plan=annotations.plan,
            annotation_set_hash=annotations.hash, n_annotations=annotations.size,
            annotator=annotations.annotator, corpus_id=corpus_id,
            settings={"training": checkpoint.training, "n_examples": checkpoint.n_examples,
                      "n_unlabeled_texts": checkpoint.n_unlabeled,
                      "replayed": checkpoint.replayed, "n_train_texts": len(checkpoint.train_ids), "n_heldout_texts": len(checkpoint.heldout_ids)},
            metrics=metrics, summary=checkpoint.summary, flow_run_id=flow_run_id, annotations_path=path,
            version_tags={REGISTRATION_KEY: key}, heldout_ids=checkpoint.heldout_ids,
        )
    log_task(registry, ref.run_id, annotations, checkpoint.heldout_ids)  # what its children replay and are gated on
    return ref


__all__ = ["DEFAULT_GATE", "REGISTRATION_KEY", "AncestorScores", "Registration", "register_checkpoint"]
