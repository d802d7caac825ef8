"""Registering a fine-tuned checkpoint with its lineage and promoting it behind its task's gates:
the absolute floor and the paired comparison with the task's champion (`promotion`).
(Fetching a registered version back is `Registry.fetch` / `Registry.plan_of`.)

Registration is idempotent: the version carries a key of what it registers (checkpoint, model
name, corpus), and a retry after a failure past `create_model_version` (in promotion, say)
finds that version and promotes it instead of creating a second one."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, Field

from falconer_core.annotators.annotation import AnnotationSet, annotation_rows
from falconer_core.evaluation.comparison import compare
from falconer_core.evaluation.scoring import Evaluation
from falconer_core.hashing import content_hash
from falconer_core.registry.client import Registry
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
) -> Registration:
    """Log the fine-tune to MLflow (run, checkpoint, plan, annotations), register a version with
    every lineage tag, then make it its task's candidate and, if it meets `gate` and is not
    worse than the task's champion `incumbent_version` (whose `incumbent` evaluation is on the
    same held-out texts), the task's champion. When this checkpoint is already registered under
    `model_name` for `corpus_id` (an earlier attempt failed after creating the version), that
    version is promoted instead of a new one. Metrics are the evaluation's plus
    `ungrounded.<step>` for an LLM annotator's span steps."""
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
    decision = registry.promote(ref.name, ref.version, metrics, dict(gate), comparison)
    # --- serving hook (issue 21): the version's model card, with the decision just made
    from falconer_core.registry.card import write_card

    write_card(registry, ref, cost=annotations.usage)
    # --- end serving hook
    return Registration(version=str(ref), run_id=ref.run_id, champion=decision.champion, reasons=list(decision.reasons))


def _log(registry: Registry, checkpoint: Checkpoint, annotations: AnnotationSet, metrics: Mapping[str, float],
         model_name: str, corpus_id: str, flow_run_id: str | None, key: str) -> ModelVersionRef:
    """Log the fine-tune run and create its version, tagged with the registration key."""
    with tempfile.TemporaryDirectory(prefix="falconer-annotations-") as tmp:
        path = Path(tmp) / "annotations.jsonl"
        rows = annotation_rows(annotations).astype(object).where(lambda f: f.notna(), None)
        path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows.to_dict("records")), "utf-8")
        return registry.log_fine_tune(
            checkpoint.path, model_name=model_name, parent=checkpoint.parent,
            base_model=checkpoint.base_model, plan=annotations.plan,
            annotation_set_hash=annotations.hash, n_annotations=annotations.size,
            annotator=annotations.annotator, corpus_id=corpus_id,
            settings={"training": checkpoint.training, "n_examples": checkpoint.n_examples,
                      "n_unlabeled_texts": checkpoint.n_unlabeled,
                      "n_train_texts": len(checkpoint.train_ids), "n_heldout_texts": len(checkpoint.heldout_ids)},
            metrics=metrics, summary=checkpoint.summary, flow_run_id=flow_run_id, annotations_path=path,
            version_tags={REGISTRATION_KEY: key}, heldout_ids=checkpoint.heldout_ids,
        )


__all__ = ["DEFAULT_GATE", "REGISTRATION_KEY", "Registration", "register_checkpoint"]
