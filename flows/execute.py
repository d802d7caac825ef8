"""`execute`: a registered metamodel runs a plan over a whole corpus into the DuckDB store.

The corpus is a snapshot that workers read shard by shard; shards run on the task runner the
execution settings name (sequential, a process pool, or Dask), each leaving a Parquet part that
this flow commits as it completes, so the store has one writer. Re-running the same job
resumes it (committed shards are skipped); running over a grown corpus reuses every shard
another run already did on the same texts.

With a `cascade`, a calibration sample labelled by the LLM first sets each step's thresholds;
each shard then sends the texts inside a band to the LLM (within its share of the budget), and
the run's report keeps the thresholds, what was routed and what it cost; an optional audit on a
fresh sample reports the agreement achieved.

Every run ends with a drift check against the version's reference (`falconer_core.drift.check`):
its `DriftVerdict` is kept with the run, logged to MLflow, published as the `drift` artifact and
returned in the result (`ExecutionResult.drift`).
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from tqdm.auto import tqdm

import tasks
from falconer_core.cascade import Calibration, CascadeReport, CascadeSettings
from falconer_core.corpus import CorpusSnapshot, CorpusSource
from falconer_core.drift.reference import DriftSettings
from falconer_core.drift.verdict import DriftVerdict
from falconer_core.errors import FalconerError
from falconer_core.execution import ExecutionSettings, Shard, ShardResult, check_run_folder
from falconer_core.execution.runplan import RunPlan, next_pass
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry.precision_gate import precision_for_version
from falconer_core.reporting import ExecutionResult, execution_result
from falconer_core.settings import Settings
from falconer_core.store.sessions import heartbeat
from flows import parameters as p
from flows.artifacts import publish_cascade, publish_drift
from flows.plans import plan_for_model
from flows.runners import task_runner


@flow(name="execute", validate_parameters=True)
def execute(
    model: str = p.model("run"),
    corpus: CorpusSource = p.corpus(),
    plan: Plan | str | None = p.plan("default: the plan the model was trained for"),
    execution: ExecutionSettings = p.execution(),
    cascade: CascadeSettings | None = p.cascade(),
    drift: DriftSettings = p.drift(),
) -> ExecutionResult:
    """Run `plan` with the registered `model` over `corpus`; outputs go to the store."""
    if cascade is not None:
        cascade.check_llm()  # no LLM to defer to: fail before any work
    source, chosen, execution = choose_model(model, plan, execution)
    snapshot = tasks.snapshot(corpus)
    corpus_id = tasks.store_corpus(snapshot)
    calibration = None if cascade is None else tasks.calibrate(
        model=source, plan=chosen, corpus=snapshot, settings=cascade, precision=execution.precision,
    )
    run = tasks.plan_run(
        model=model, source=source, plan=chosen, corpus=corpus, snapshot=snapshot, corpus_id=corpus_id,
        execution=execution, cascade=cascade, calibration=calibration,
    )
    done, reused = tasks.start_run(run=run, plan=chosen)
    results = run_shards(run=run, model=source, plan=chosen, corpus=snapshot, execution=execution, done=done)
    summary = tasks.finish_run(run_id=run.run_id)
    report = None if calibration is None else report_cascade(
        run=run, model=source, plan=chosen, corpus=snapshot, settings=cascade, calibration=calibration,
    )
    verdict = check_drift(run=run, model=source, plan=chosen, corpus=snapshot, settings=drift, cascade=cascade,
                          source=corpus)
    return execution_result(
        run, summary=summary, results=results, reused=reused, store_path=str(Settings().store_path),
        runner=execution.runner, cascade=report, drift=verdict,
    )


def choose_model(
    model: str, plan: Plan | str | None, execution: ExecutionSettings,
) -> tuple[ModelSource, Plan, ExecutionSettings]:
    """The version that runs (a bare NAME with a plan: that task's champion), the plan, and the
    precision `auto` resolves to for it, before anything is keyed on it (run id, work keys)."""
    given = plan_for_model(plan, None) if plan else None
    source = tasks.fetch_model(model, plan_hash=given.hash if given else None)
    execution = execution.model_copy(update={"precision": precision_for_version(execution.precision, source.version)})
    return source, given or plan_for_model(None, source.version), execution


def check_drift(
    *, run: RunPlan, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: DriftSettings,
    cascade: CascadeSettings | None, source: CorpusSource,
) -> DriftVerdict | None:
    """The run's drift verdict (None when `settings.check` is off), kept with the run, on MLflow
    and as the run's `drift` artifact; a fired signal is audited by the cascade's LLM unless the
    settings name another. Declared drift is emitted as the `falconer.model.drift` event, on
    which the `retune-on-drift` deployment's trigger re-tunes the task's champion from `source`."""
    if not settings.check:
        return None
    verdict = tasks.check_drift(
        run_id=run.run_id, model=model, plan=plan, corpus=corpus, settings=settings,
        llm=cascade.llm if cascade is not None else None,
    )
    publish_drift(verdict)
    if verdict.declared and verdict.version:
        tasks.emit_drift_event(version=verdict.version, plan_hash=verdict.plan_hash,
                               payload=verdict.model_dump(mode="json"), corpus=source)
    return verdict


def run_shards(
    *, run: RunPlan, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, execution: ExecutionSettings,
    done: list[int],
) -> list[ShardResult]:
    """Run the pending shards with a heartbeat on the run; on any failure the run is marked failed
    (committed shards stay, so running the job again resumes it). Marking it failed may fail too
    (a full disk): that state is returned, not raised, so the first error is the one reported."""
    settings = Settings()
    try:
        with heartbeat(settings.store_path, run.run_id, every=settings.heartbeat_seconds):
            return run_passes(run=run, model=model, plan=plan, corpus=corpus, execution=execution, done=done)
    except BaseException:
        tasks.finish_run(run_id=run.run_id, status="failed", return_state=True)
        raise


def run_passes(
    *, run: RunPlan, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, execution: ExecutionSettings,
    done: list[int],
) -> list[ShardResult]:
    """Execute the shards not yet done, then once more, on a fresh runner, those whose worker
    died (`next_pass` decides which, and gives up after the second pass)."""
    pending, results, passes = run.pending(done), [], 0
    if pending:
        check_run_folder(run.run_folder)
    while pending:
        passed, crashed = execute_shards.with_options(task_runner=task_runner(execution))(
            model=model, plan=plan, corpus=corpus, shards=pending, run=run, execution=execution,
        )
        results += passed
        passes += 1
        pending = next_pass(pending, crashed, passes)
        if pending:
            get_run_logger().warning("retrying shard(s) %s whose worker failed: %s", sorted(crashed), crashed)
    return results


def report_cascade(
    *, run: RunPlan, model: ModelSource, plan: Plan, corpus: CorpusSnapshot, settings: CascadeSettings,
    calibration: Calibration,
) -> CascadeReport:
    """Keep the cascade's report with the run (and audit it on a fresh sample when asked)."""
    report = tasks.record_cascade(run_id=run.run_id, report=CascadeReport.from_calibration(calibration, settings))
    if settings.audit_size:
        found = tasks.audit(
            run_id=run.run_id, model=model, plan=plan, corpus=corpus, settings=settings, calibration=calibration,
        )
        report = tasks.record_cascade(run_id=run.run_id, report=report.model_copy(update={"audit": found}))
    publish_cascade(report, run.run_id)
    return report


@flow(name="execute-shards", validate_parameters=False)
def execute_shards(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, shards: list[Shard], run: RunPlan,
    execution: ExecutionSettings,
) -> tuple[list[ShardResult], dict[int, str]]:
    """Submit the shards to this flow's task runner, a window at a time, and commit each part as it completes.
    Returns the executed shards and, by index, the ones whose worker failed for a reason that
    may pass (a crash); a Falconer error (bad input, a full disk) is raised once the others
    are committed."""
    waiting, in_flight = list(shards), {}
    done: list[ShardResult] = []
    crashed: dict[int, str] = {}
    fatal: BaseException | None = None
    with tqdm(total=len(shards), desc="shards", unit="shard", disable=not execution.progress) as bar:
        while waiting or in_flight:
            # a window of submissions, not all at once: memory stays flat however many shards
            while waiting and len(in_flight) < execution.max_in_flight():
                shard = waiting.pop(0)
                in_flight[tasks.execute_shard.submit(
                    model=model, plan=plan, corpus=corpus, shard=shard, run=run.for_shard(shard), execution=execution,
                )] = shard
            future = next(as_completed(list(in_flight)))
            shard = in_flight.pop(future)
            try:
                result = future.result()
            except FalconerError as exc:
                fatal = fatal or exc
                continue
            except BaseException as exc:  # a crashed worker: the others still commit
                crashed[shard.index] = f"{type(exc).__name__}: {exc}"
                continue
            tasks.commit_shard(run=run, result=result)
            done.append(result)
            bar.update(1)
    if fatal is not None:
        raise fatal
    return done, crashed
