"""The drift check every execute ends with: signals without LLM calls, then, when one fires and
an LLM is configured, a small audit that declares drift or not.

The shards do not keep the proxy's confidences (their rows hold only the fields the plan
outputs, and a cascade replaces band answers by the LLM's), so the check runs the model once
more on a seeded, bounded draw of the corpus (`DriftSettings.sample`, 2,000 texts), at the
reference's precision (fp32), which is what `falconer drift` does. When a signal fires, a
seeded draw of `audit_size` of those texts (50) is labelled by the LLM and compared with the
proxy's answers on them (the cascade audit's `audit_agreement`: filter verdict agreement with a
Clopper-Pearson interval; a plan without a filter is audited on its label steps, `audited_plan`); drift is declared when the interval's upper bound is below the floor
(`verdict.agreement_floor`). Without an LLM the signal stands as "drift suspected (no audit)".
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.corpus import CorpusSnapshot
from falconer_core.drift.reference import DriftReference, DriftSettings, measure_confidences, top_level_steps
from falconer_core.drift.signals import drift_report
from falconer_core.drift.verdict import (
    DECLARED,
    NO_DRIFT,
    NO_REFERENCE,
    NOT_CONFIRMED,
    SUSPECTED,
    DriftAudit,
    DriftVerdict,
    agreement_floor,
    declare,
)
from falconer_core.metamodel.source import ModelSource
from falconer_core.plan import Plan


def sample_positions(n_texts: int, size: int, seed: int, salt: str = "drift") -> list[int]:
    """A seeded uniform draw of `size` of `n_texts` positions, in corpus order (all when fewer)."""
    if n_texts <= size:
        return list(range(n_texts))
    return sorted(random.Random(f"{salt}:{seed}").sample(range(n_texts), size))


def configured_llm(choice: AnnotatorChoice | None) -> AnnotatorChoice | None:
    """`choice` when it names an LLM that can be reached (a local one, or an endpoint or key in
    the environment or the choice); None otherwise: a fired signal then goes unaudited."""
    if choice is None or choice.llm is None:
        return None
    if choice.name == "local":
        return choice
    settings = choice.llm.llm_settings()
    return choice if (settings.base_url or settings.api_key) else None


def reference_agreement(reference: DriftReference, plan: Plan) -> float | None:
    """The reference's held-out agreement of the steps the filter reads (the lowest): what the
    audit's filter-verdict agreement is compared with. Without a filter, of the label steps."""
    names = set(plan.filter_steps) or {s.step for s in reference.steps if s.op == "label"}
    found = [s.agreement for s in reference.steps if s.step in names and s.agreement is not None]
    return min(found) if found else None


def check_drift(
    *, run_id: str, version: str | None, model: ModelSource, plan: Plan, corpus: CorpusSnapshot,
    reference: DriftReference | None, settings: DriftSettings, llm: AnnotatorChoice | None = None,
    cache_dir: Path | None = None,
) -> DriftVerdict:
    """The drift verdict of a run of `model` with `plan` over `corpus`."""
    base = {"run_id": run_id, "version": version, "plan_hash": plan.hash}
    if reference is None:
        return DriftVerdict(**base, status=NO_REFERENCE, declared=False,
                            reason="the version has no drift reference (registered before drift existed)")
    if reference.plan_hash != plan.hash:
        return DriftVerdict(**base, status=NO_REFERENCE, declared=False,
                            reason=f"the version's drift reference was measured for another plan ({reference.plan_hash})")
    positions = sample_positions(corpus.n_texts, settings.sample, settings.seed)
    texts = corpus.rows_at(positions)["text"].tolist()
    from falconer_core.metamodel.source import open_metamodel

    chosen = configured_llm(settings.audit_llm or llm)

    def auditor(audited: Plan) -> Auditor:
        return llm_auditor(chosen, audited, cache_dir=cache_dir)  # type: ignore[arg-type]

    return check_texts(run_id=run_id, version=version,
                       runner=open_metamodel(model), plan=plan, texts=texts, reference=reference,
                       settings=settings, auditor=auditor if chosen is not None else None)


@dataclass(frozen=True)
class Auditor:
    """Who labels a fired signal's audit sample: a runner that answers the plan as the LLM
    does (`build_annotator`), its identity for the verdict, and the client whose usage the
    audit reports (None: no usage)."""

    annotator: Any
    identity: str
    client: Any = None


def llm_auditor(choice: AnnotatorChoice, plan: Plan, *, cache_dir: Path | None = None) -> Auditor:
    """The LLM annotator of `choice` answering `plan`."""
    from falconer_core.annotators import build_annotator

    annotator, client = build_annotator(choice, plan, None, cache_dir=cache_dir)
    return Auditor(annotator=annotator, identity=choice.llm.identity(), client=client)  # type: ignore[union-attr]


def check_texts(
    *, run_id: str, version: str | None, runner: Any, plan: Plan, texts: list[str],
    reference: DriftReference, settings: DriftSettings, auditor: Callable[[Plan], Auditor] | None,
) -> DriftVerdict:
    """The drift verdict of the proxy `runner` on the drawn `texts` against `reference` (made for
    `plan`): the signals, then, when one fires and an `auditor` is given (built, for the plan
    the audit compares, only then), the audit and the declare rule."""
    base = {"run_id": run_id, "version": version, "plan_hash": plan.hash}
    # the uncertain bands are the reference's: its band shares were counted with them
    settings = settings.model_copy(update={"label_band": reference.settings.label_band,
                                           "span_band": reference.settings.span_band})
    measured, _ = measure_confidences(runner, plan, texts)
    report = drift_report(reference, measured, settings)
    verdict = DriftVerdict(**base, status=NO_DRIFT, declared=False, report=report,
                           reason=f"no step's confidences moved (KS p >= {report.threshold:.3g} on {report.n_texts} texts)")
    if not report.drift:
        return verdict
    shifted = ", ".join(s.step for s in report.steps if s.shifted)
    audited = audited_plan(plan)
    if auditor is None or not settings.audit_size or audited is None:
        why = "no LLM configured to audit it" if audited is not None else "the plan has no label step to audit"
        return verdict.model_copy(update={"status": SUSPECTED, "reason": (
            f"the confidences of {shifted} moved (KS p < {report.threshold:.3g}); {why}")})
    known = reference_agreement(reference, plan)
    floor = agreement_floor(settings.gate, known, settings.max_drop)
    audit = audit_sample(audited, texts, runner, auditor(audited), settings, floor, known)
    declared = declare(audit.high, floor)
    bound = f"[{audit.low:.3f}, {audit.high:.3f}]"
    reason = (f"the confidences of {shifted} moved and the LLM agrees on {audit.agreement:.3f} {bound} of "
              f"{audit.n_texts} audited texts, " + (f"below {floor:.3f}" if declared else
                                                    "no floor known" if floor is None else f"not below {floor:.3f}"))
    return verdict.model_copy(update={"status": DECLARED if declared else NOT_CONFIRMED, "declared": declared,
                                      "audit": audit, "reason": reason})


def audited_plan(plan: Plan) -> Plan | None:
    """The plan whose filter verdict the audit compares: the plan itself, or, when it has no
    filter (every text passes: nothing to compare), the same plan filtering on all its
    top-level label steps; None without any label step to audit."""
    if plan.filter is not None:
        return plan
    labels = [s.name for s in top_level_steps(plan) if s.op == "label"]
    if not labels:
        return None
    return Plan.from_dict({**plan.to_dict(), "filter": labels[0] if len(labels) == 1 else {"and": labels}})


def audit_sample(
    plan: Plan, texts: list[str], runner: Any, auditor: Auditor, settings: DriftSettings,
    floor: float | None, reference: float | None,
) -> DriftAudit:
    """The auditor labels a seeded draw of the drift sample; its filter verdicts are compared
    with the proxy's (`runner`) on the same texts (the cascade audit's `audit_agreement`)."""
    from falconer_core.cascade.audit import audit_agreement
    from falconer_core.execution import execute_plan
    from falconer_core.serving.pyfunc import predict_rows

    picked = sample_positions(len(texts), settings.audit_size, settings.seed, salt="drift-audit")
    ids, chosen = [str(i) for i in picked], [texts[i] for i in picked]
    stored = predict_rows(runner, plan, chosen, ids)  # the rows `execute` stores: what `audit_agreement` reads
    answered = execute_plan(plan, chosen, auditor.annotator, ids, include_failed=True)
    found = audit_agreement(plan, chosen, stored, answered, usage=getattr(auditor.client, "usage", None))
    return DriftAudit(n_texts=found.n_texts, agreement=found.agreement, low=found.low, high=found.high, floor=floor,
                      reference_agreement=reference, llm=auditor.identity, usage=found.usage)


__all__ = ["Auditor", "audit_sample", "audited_plan", "check_drift", "check_texts", "configured_llm", "llm_auditor",
           "reference_agreement", "sample_positions"]
