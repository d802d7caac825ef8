"""A version's model card: Markdown that MLflow's UI shows as the version's description, saying
what the model does (instruction, plan), where it came from (base, parent, annotation set), how
well (scores per step and end to end, with intervals), whether it was promoted and why, what it
cost, how to load and serve it, and what it cannot do.

`build_card` is a pure function of `CardFacts`; `card_facts` gathers them from the registry (tags,
run metrics, plan), so a card can be rebuilt for any version, old ones included."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from falconer_core.registry import tags as T

if TYPE_CHECKING:
    from falconer_core.registry.client import Registry
    from falconer_core.registry.refs import ModelVersionRef

#: The version tag holding the annotation cost (the annotator's LLM usage, JSON) the card reports.
COST_TAG = "falconer.annotation_cost"


class CardFacts(BaseModel):
    """Everything a card says, as registration and the registry know it."""

    name: str = Field(description="Registered model name.")
    version: int = Field(description="Registered version number.")
    aliases: list[str] = Field(default_factory=list, description="Aliases pointing at this version.")
    instruction: str | None = Field(None, description="The user's instruction the plan was written for.")
    plan_yaml: str = Field(description="The plan the model executes, as YAML.")
    plan_hash: str = Field(description="The plan's hash: the task this version is a candidate or champion of.")
    base_model: str = Field("unknown", description="The base encoder at the root of the lineage.")
    parent: str = Field(T.NONE, description="The version it was retuned from ('none': tuned from the base).")
    annotation_set_hash: str = Field("unknown", description="Digest of the annotation set it learned from.")
    n_annotations: int | None = Field(None, description="Annotated texts in that set.")
    annotator: str = Field("unknown", description="Who annotated: 'human' (gold) or an LLM.")
    corpus_id: str = Field("unknown", description="The corpus snapshot the sample was drawn from.")
    metrics: dict[str, float] = Field(default_factory=dict, description="The fine-tune run's metrics.")
    promotion: str | None = Field(None, description="'champion', 'rejected', or None when never gated.")
    promotion_reasons: str | None = Field(None, description="Why, one clause per gated metric and comparison.")
    gate: dict[str, float] = Field(default_factory=dict, description="The absolute floor it was gated on.")
    cost: dict[str, Any] | None = Field(None, description="The annotator's LLM usage (calls, tokens, cost_usd).")
    run_id: str | None = Field(None, description="The MLflow run of the fine-tune.")


def build_card(facts: CardFacts) -> str:
    """The model card as Markdown."""
    ref = f"{facts.name}/{facts.version}"
    task_alias = f"champion-{facts.plan_hash}"  # this task's champion, which `champion` may not be
    alias = task_alias if task_alias in facts.aliases else next(
        (a for a in facts.aliases if a.startswith("champion")), facts.aliases[0] if facts.aliases else None
    )
    uri = f"models:/{facts.name}@{alias}" if alias else f"models:/{facts.name}/{facts.version}"
    parent = "none (fine-tuned from the base encoder)" if facts.parent in (T.NONE, "") else f"`{facts.parent}`"
    lines = [
        f"# {ref}: Falconer metamodel",
        "",
        "## Task",
        f"- Instruction: {facts.instruction or '(none recorded)'}",
        f"- Plan `{facts.plan_hash}`:",
        "",
        "```yaml",
        facts.plan_yaml.rstrip(),
        "```",
        "",
        "## Lineage",
        f"- Base encoder: `{facts.base_model}`",
        f"- Parent: {parent}",
        f"- Annotation set: `{facts.annotation_set_hash}`, {_count(facts.n_annotations)} texts annotated by "
        f"`{facts.annotator}` from corpus `{facts.corpus_id}`",
    ]
    if facts.run_id:
        lines.append(f"- MLflow run: `{facts.run_id}`")
    lines += ["", "## Scores (held-out annotated texts, against the annotator; 95% bootstrap intervals)", *_scores(facts.metrics)]
    lines += ["", "## Promotion", *_promotion(facts)]
    lines += ["", "## Cost", *_cost(facts)]
    lines += [
        "",
        "## Use",
        "Load it in Python (MLFLOW_TRACKING_URI pointing at this registry):",
        "",
        "```python",
        "import mlflow.pyfunc, pandas as pd",
        f'model = mlflow.pyfunc.load_model("{uri}")',
        'model.predict(pd.DataFrame({"text": ["..."], "id": ["1"]}))',
        "```",
        "",
        "Serve it over HTTP, then POST to `/invocations`:",
        "",
        "```bash",
        f"mlflow models serve -m {uri} --env-manager local -h 127.0.0.1 -p 5001",
        "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\",
        "  -d '{\"dataframe_records\": [{\"id\": \"1\", \"text\": \"...\"}]}'",
        "```",
        "",
        f"Or write it out as a standalone MLflow model folder: `falconer export {ref} DIR`, then "
        "`mlflow.pyfunc.load_model(DIR)`.",
        "",
        "Each prediction row is one text's `_filter` verdict, or one output field (one row per span "
        "for span fields) with its value, span offsets and confidence: the rows `falconer execute` stores.",
        "",
        "## Known limits",
        "- It answers this plan only; another instruction needs another plan and fine-tune.",
        f"- Scores are against `{facts.annotator}` on a held-out share of {_count(facts.n_annotations)} "
        "annotated texts, not against gold unless the annotator is human; small sets give wide intervals.",
        "- Texts unlike the sampled corpus (language, domain, length) may score lower than above.",
        "- Runs at the fastest precision this machine runs well (`auto`: bf16 on CPUs with bf16 units, else fp32; "
        "pass `model_config={\"precision\": \"fp32\"}` to pin it); no cascade to the LLM when served.",
    ]
    return "\n".join(lines) + "\n"


def card_facts(registry: Registry, ref: str | ModelVersionRef) -> CardFacts:
    """A version's facts as the registry holds them (tags, run metrics, plan)."""
    version = registry.resolve(ref)
    mv = registry.client.get_model_version(version.name, str(version.version))
    tags = dict(mv.tags or {})
    metrics: dict[str, float] = {}
    if mv.run_id:
        metrics = dict(registry.client.get_run(mv.run_id).data.metrics)
    plan = registry.plan_of(version)
    n = tags.get(T.N_ANNOTATIONS)
    return CardFacts(
        name=version.name, version=version.version, aliases=list(version.aliases),
        instruction=plan.instruction, plan_yaml=plan.to_yaml(), plan_hash=tags.get(T.PLAN_HASH, plan.hash),
        base_model=tags.get(T.BASE_MODEL, "unknown"), parent=tags.get(T.PARENT_VERSION, T.NONE),
        annotation_set_hash=tags.get(T.ANNOTATION_SET_HASH, "unknown"),
        n_annotations=int(n) if n and n.isdigit() else None,
        annotator=tags.get(T.ANNOTATOR, "unknown"), corpus_id=tags.get(T.CORPUS_ID, "unknown"),
        metrics=metrics, promotion=tags.get(T.PROMOTION), promotion_reasons=tags.get(T.PROMOTION_REASONS),
        gate=json.loads(tags[T.PROMOTION_GATE]) if tags.get(T.PROMOTION_GATE) else {},
        cost=json.loads(tags[COST_TAG]) if tags.get(COST_TAG) else None, run_id=mv.run_id,
    )


def write_card(registry: Registry, ref: str | ModelVersionRef, *, cost: Mapping[str, Any] | None = None) -> str:
    """Build the card of a version (recording `cost` on it first) and set it as the version's
    description; returns the card."""
    version = registry.resolve(ref)
    if cost:
        registry.client.set_model_version_tag(version.name, str(version.version), COST_TAG, json.dumps(dict(cost), sort_keys=True, default=str))
    card = build_card(card_facts(registry, version))
    registry.client.update_model_version(version.name, str(version.version), description=card)
    return card


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def _interval(metrics: Mapping[str, float], key: str) -> str:
    value = metrics.get(key)
    if value is None or not math.isfinite(value):
        return "–"
    lo, hi = metrics.get(f"{key}_lo"), metrics.get(f"{key}_hi")
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else f"{value:.3f}"


def _scores(metrics: Mapping[str, float]) -> list[str]:
    steps = sorted({k.split(".", 1)[1].removesuffix("_lo").removesuffix("_hi")
                    for k in metrics if k.startswith(("f1.", "accuracy."))})
    if not steps and "mean_f1" not in metrics:
        return ["No held-out scores were recorded."]
    rows = ["| step | F1 | accuracy |", "|---|---|---|"]
    rows += [f"| {s} | {_interval(metrics, 'f1.' + s)} | {_interval(metrics, 'accuracy.' + s)} |" for s in steps]
    rows.append(f"| **mean** | {_interval(metrics, 'mean_f1')} | |")
    rows.append(f"| **end to end** | {_interval(metrics, 'end_to_end_f1')} | |")
    if "heldout_texts" in metrics:
        rows += ["", f"On {int(metrics['heldout_texts'])} held-out texts."]
    return rows


def _promotion(facts: CardFacts) -> list[str]:
    if facts.promotion is None:
        return ["Not gated yet: neither candidate nor champion of its task."]
    verdict = "**champion** of its task" if facts.promotion == "champion" else "**rejected** (stays a candidate)"
    gate = ", ".join(f"{k} >= {v}" for k, v in sorted(facts.gate.items())) or "none"
    lines = [f"- Decision: {verdict} (task `{facts.plan_hash}`)", f"- Gate: {gate}"]
    if facts.promotion_reasons:
        lines.append(f"- Reasons: {facts.promotion_reasons}")
    return lines


def _cost(facts: CardFacts) -> list[str]:
    lines = []
    if facts.cost:
        usd = facts.cost.get("cost_usd")
        lines.append(
            f"- Annotation: {facts.cost.get('calls', '?')} LLM calls, {facts.cost.get('total_tokens', '?')} tokens"
            + (f", ${float(usd):.4f} at list prices" if usd is not None else "")
        )
    elif facts.annotator == "human":
        lines.append("- Annotation: human gold labels (no LLM cost)")
    else:
        lines.append("- Annotation: not recorded")
    seconds = facts.metrics.get("train.seconds")
    lines.append(f"- Fine-tune: {seconds:.0f} s" if seconds is not None else "- Fine-tune: time not recorded")
    return lines


__all__ = ["COST_TAG", "CardFacts", "build_card", "card_facts", "write_card"]
