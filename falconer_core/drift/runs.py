"""The drift check of an execution run, end to end: read the version's reference, check, keep
the verdict with the run in the store and its figures on MLflow. One call, shared by the
`execute` flow's task and the in-process small-job path, so both record the same thing."""

from __future__ import annotations

from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.corpus import CorpusSnapshot
from falconer_core.drift.check import check_drift
from falconer_core.drift.reference import DriftSettings
from falconer_core.drift.verdict import TOO_FEW, DriftVerdict
from falconer_core.metamodel.source import ModelSource
from falconer_core.plan import Plan
from falconer_core.settings import Settings


def check_run(
    *, run_id: str, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: DriftSettings,
    llm: AnnotatorChoice | None = None, app: Settings | None = None,
) -> DriftVerdict:
    """The run's drift verdict, recorded in the store and, when signals were measured, as
    `drift.*` metrics of an MLflow run tagged with the version (`Registry.log_drift`). `llm`:
    the run's own LLM (a cascade's), used to audit when `settings.audit_llm` names none."""
    from falconer_core.registry import Registry
    from falconer_core.registry.drift import read_reference
    from falconer_core.store import sessions

    app = app or Settings()
    if corpus.n_texts < settings.min_texts:
        verdict = DriftVerdict(run_id=run_id, version=model.version, plan_hash=plan.hash, status=TOO_FEW,
                               declared=False, reason=f"{corpus.n_texts} texts, fewer than drift.min_texts "
                                                      f"({settings.min_texts}): not checked")
        sessions.record_drift(app.store_path, verdict)
        return verdict
    registry = Registry.from_settings(app)
    reference = read_reference(registry, model.version) if model.version else None
    verdict = check_drift(
        run_id=run_id, version=model.version, model=model, plan=plan, corpus=corpus, reference=reference,
        settings=settings, llm=llm, cache_dir=app.llm_cache_dir,
    )
    sessions.record_drift(app.store_path, verdict)
    if model.version and verdict.report is not None:
        params = {"drift": settings.model_dump(mode="json", exclude={"audit_llm"}), "execution_run": run_id,
                  "status": verdict.status, "audit_llm": verdict.audit.llm if verdict.audit else "none"}
        registry.log_drift(model.version, run_id, verdict.metrics(), params)
    return verdict


__all__ = ["check_run"]
