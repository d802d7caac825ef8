"""Cascade tasks: calibrating the thresholds, recording what the run routed, auditing it."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE, CacheKeyFnPolicy
from prefect.context import TaskRunContext

from falconer_core.annotators import build_annotator
from falconer_core.cascade import (
    AuditResult,
    Calibration,
    CascadeReport,
    CascadeSettings,
    audit_agreement,
    audit_positions,
    calibrate_corpus,
)
from falconer_core.corpus import CorpusSnapshot
from falconer_core.execution import execute_plan
from falconer_core.hashing import content_hash
from falconer_core.metamodel import ModelSource, Precision
from falconer_core.metamodel.precision import precision_key
from falconer_core.plan import Plan
from falconer_core.registry import Registry
from falconer_core.settings import Settings
from falconer_core.store import sessions
from tasks.policies import CODE, RESULTS, RETRY_DELAYS, retry_transient

_RETRY = {"retries": 3, "retry_delay_seconds": RETRY_DELAYS, "retry_condition_fn": retry_transient}


def _calibration_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    """The model, its precision, the plan, the corpus and the cascade's settings determine the thresholds."""
    model: ModelSource = parameters["model"]
    return content_hash(
        "calibrate", model.version or model.path, parameters["plan"].hash, parameters["corpus"].corpus_id,
        parameters["settings"].identity(), *precision_key(parameters.get("precision", "fp32")),
    )


@task(
    name="calibrate-cascade", **_RETRY, cache_policy=CacheKeyFnPolicy(cache_key_fn=_calibration_key) + CODE,
    persist_result=True, result_storage=RESULTS,
)
def calibrate(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: CascadeSettings, precision: Precision = "fp32",
) -> Calibration:
    """The proxy (at the shards' precision) and the LLM answer a uniform random sample; every
    cascaded step gets thresholds."""
    calibration = calibrate_corpus(
        model, plan, corpus, settings, cache_dir=Settings().llm_cache_dir, precision=precision,
    )
    logger = get_run_logger()
    for t in calibration.thresholds:
        keep = f"P(true) <= {t.lower:.4f} or >= {t.upper:.4f}" if t.op == "label" else f"confidence >= {t.upper:.4f}"
        logger.info(
            "step %s: keep the proxy's answer when %s (%s >= %.3f, certified %.3f; %.1f%% of calibration texts "
            "in the band)", t.step, keep, t.metric, t.target, t.certified, 100 * t.band_share,
        )
    return calibration


@task(name="record-cascade", cache_policy=NO_CACHE, **_RETRY)
def record_cascade(run_id: str, report: CascadeReport) -> CascadeReport:
    """Keep the run's cascade report (thresholds, budget, audit) with its totals over shards."""
    kept = sessions.record_run_report(Settings().store_path, run_id, report)
    get_run_logger().info(
        "cascade run %s: %d texts in a band, %d answered by the LLM, %d left to the proxy by the budget; LLM usage %s",
        run_id, kept.band_texts, kept.llm_texts, kept.over_budget, kept.llm_usage,
    )
    if kept.over_budget:
        get_run_logger().warning(
            "the LLM budget ran out: %d texts inside a band kept the proxy's answer (rows with in_band = true and "
            "source = 'proxy'); the target is not guaranteed for this run", kept.over_budget,
        )
    return kept


@task(name="audit-cascade", cache_policy=NO_CACHE, **_RETRY)
def audit(
    run_id: str, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: CascadeSettings,
    calibration: Calibration,
) -> AuditResult:
    """A fresh random sample the LLM labels, against what the run stored; logged to MLflow."""
    positions = audit_positions(corpus.n_texts, settings.audit_size, settings.seed, calibration.positions)
    rows = corpus.rows_at(positions)
    ids, texts = rows["id"].astype(str).tolist(), rows["text"].tolist()
    llm, client = build_annotator(settings.llm, plan, None, cache_dir=Settings().llm_cache_dir)
    records = execute_plan(plan, texts, llm, ids, include_failed=True)
    stored = sessions.stored_outputs(Settings().store_path, run_id, ids)
    result = audit_agreement(plan, texts, stored, records, usage=client.usage)
    if model.version:
        Registry.from_settings().log_cascade_audit(
            model.version, run_id, result.metrics(), {"cascade": settings.identity(), "execution_run": run_id},
        )
    get_run_logger().info(
        "audit of %s on %d fresh texts: filter agreement with the LLM %.3f [%.3f, %.3f]%s", run_id, result.n_texts,
        result.agreement, result.low, result.high, f"; span F1 {result.span_f1}" if result.span_f1 else "",
    )
    return result
