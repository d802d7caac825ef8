"""The drift check an execute ends with: signals against the version's reference, an LLM audit
when one fires and an LLM is there, the verdict kept with the run and on MLflow."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.corpus import CorpusSnapshot
from falconer_core.drift.reference import DriftSettings
from falconer_core.drift.runs import check_run
from falconer_core.drift.verdict import DriftVerdict
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from tasks.policies import RETRY_DELAYS, retry_transient


@task(name="check-drift", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=retry_transient)
def check_drift(
    *, run_id: str, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: DriftSettings,
    llm: AnnotatorChoice | None = None,
) -> DriftVerdict:
    """The run's `DriftVerdict` (what a `falconer.model.drift` event carries as its payload)."""
    verdict = check_run(run_id=run_id, model=model, plan=plan, corpus=corpus, settings=settings, llm=llm)
    log = get_run_logger()
    (log.warning if verdict.fired else log.info)("drift check of run %s (%s): %s; %s", run_id, model.version,
                                                  verdict.status, verdict.reason)
    return verdict
