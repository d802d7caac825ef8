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
"""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.futures import as_completed
from tqdm.auto import tqdm

import tasks
from falconer_core.cascade import CascadeSettings, ShardCascade, budget_left, cascade_work_keys, shard_cascades
from falconer_core.corpus import CorpusSnapshot, CorpusSource
from falconer_core.errors import FalconerError
from falconer_core.execution import (
    ExecutionSettings,
    Shard,
    ShardResult,
    check_run_folder,
    execution_run_id,
    make_shards,
    work_keys,
)
from falconer_core.metamodel import ModelSource
from falconer_core.plan import Plan
from falconer_core.registry.precision_gate import precision_for_version
from falconer_core.reporting import ExecutionResult
from falconer_core.settings import Settings
from flows import parameters as p
from flows.artifacts import publish_cascade
from flows.plans import plan_for_model
from flows.runners import task_runner


@flow(name="execute", validate_parameters=True)
def execute(
    model: str = p.model("run"),
    corpus: CorpusSource = p.corpus(),
    plan: Plan | str | None = p.plan("default: the plan the model was trained for"),
    execution: ExecutionSettings = p.execution(),
    cascade: CascadeSettings | None = p.cascade(),
) -> ExecutionResult:
    """Run `plan` with the registered `model` over `corpus`; outputs go to the store."""
    if cascade is not None:
        cascade.check_llm()  # no LLM to defer to: fail before any work
    source = tasks.fetch_model(model)
    # `auto` becomes the precision that runs before anything is keyed on it (run id, work keys)
    execution = execution.model_copy(update={"precision": precision_for_version(execution.precision, source.version)})
    chosen = plan_for_model(plan, source.version)
    snapshot = tasks.snapshot(corpus)
    corpus_id = tasks.store_corpus(snapshot)
    size = execution.shard_size_for(snapshot.n_texts)
    shards = make_shards(snapshot.n_texts, size)
    identity = cascade.identity() if cascade is not None else None
    run_id = execution.run_id or execution_run_id(source.version, chosen, corpus_id, size, execution.precision, identity)
    keys = work_keys(source.version, chosen, snapshot, size, execution.precision)
    routes: dict[int, ShardCascade] = {}
    if cascade is not None:
        calibration = tasks.calibrate(source, chosen, snapshot, cascade)
        routes = shard_cascades(calibration, cascade, shards, snapshot.n_texts, Settings().llm_cache_dir)
        keys = cascade_work_keys(keys, routes, cascade)
    params = {"model": model, "corpus": corpus.model_dump(), "execution": execution.model_dump(), "shard_size": size}
    if cascade is not None:
        params["cascade"] = identity
    done, reused = tasks.start_run(
        run_id, "execute", chosen, source.version, corpus_id, params, len(shards), snapshot.n_texts,
        keys if execution.reuse else None,
    )
    done = set(done)
    pending = [shard for shard in shards if shard.index not in done]
    run_folder = execution.run_folder or Settings().runs_dir
    results: list[ShardResult] = []
    try:
        if pending:
            check_run_folder(run_folder)
        for attempt in (1, 2):  # a second pass, on a fresh runner, for shards whose worker died
            if not pending:
                break
            passed, crashed = execute_shards.with_options(task_runner=task_runner(execution))(
                model=source, plan=chosen, corpus=snapshot, shards=pending, run_id=run_id, run_folder=run_folder,
                work_keys=keys, execution=execution, routes=routes,
            )
            results += passed
            pending = [shard for shard in pending if shard.index in crashed]
            if pending and attempt == 1:
                get_run_logger().warning("retrying shard(s) %s whose worker failed: %s", sorted(crashed), crashed)
        if pending:
            raise RuntimeError(f"shard(s) {[s.index for s in pending]} failed twice: {crashed}")
    except BaseException:
        tasks.finish_run(run_id, "failed")  # committed shards stay; running the job again resumes it
        raise
    summary = tasks.finish_run(run_id)
    report = None
    if cascade is not None:
        report = tasks.record_cascade(run_id, {
            **calibration.summary(), "llm_budget": cascade.llm_budget, "budget_left_for_shards": budget_left(calibration, cascade),
        })
        if cascade.audit_size:
            found = tasks.audit(run_id, source, chosen, snapshot, cascade, calibration)
            report = tasks.record_cascade(run_id, {"audit": found.model_dump()})
        publish_cascade(report, run_id)
    return ExecutionResult(
        run_id=run_id, model_version=source.version, plan_hash=chosen.hash, corpus_id=corpus_id,
        store_path=str(Settings().store_path), n_texts=snapshot.n_texts, shards=summary["shards"],
        shards_run=len(results), shards_reused=len(reused), rows=summary["rows"],
        seconds=round(sum(r.seconds for r in results), 4), texts_run=sum(r.n_texts for r in results),
        runner=execution.runner, processes=len({r.pid for r in results}),
        model_loads_per_process=max((r.model_loads for r in results), default=0), cascade=report,
    )


@flow(name="execute-shards", validate_parameters=False)
def execute_shards(
    model: ModelSource, plan: Plan, corpus: CorpusSnapshot, shards: list[Shard], run_id: str, run_folder: str,
    work_keys: dict[int, str], execution: ExecutionSettings, routes: dict[int, ShardCascade] | None = None,
) -> tuple[list[ShardResult], dict[int, str]]:
    """Submit every shard to this flow's task runner and commit each part as it completes.
    Returns the executed shards and, by index, the ones whose worker failed for a reason that
    may pass (a crash); a Falconer error (bad input, a full disk) is raised once the others
    are committed."""
    futures = {
        tasks.execute_shard.submit(
            model, plan, corpus, shard, model.version or model.path, run_id, run_folder,
            execution.batch_size, execution.threads(), execution.precision, (routes or {}).get(shard.index),
        ): shard
        for shard in shards
    }
    done: list[ShardResult] = []
    crashed: dict[int, str] = {}
    fatal: BaseException | None = None
    with tqdm(total=len(shards), desc="shards", unit="shard", disable=not execution.progress) as bar:
        for future in as_completed(list(futures)):
            shard = futures[future]
            try:
                result = future.result()
            except FalconerError as exc:
                fatal = fatal or exc
                continue
            except BaseException as exc:  # a crashed worker: the others still commit
                crashed[shard.index] = f"{type(exc).__name__}: {exc}"
                continue
            tasks.commit_shard(run_id, result, work_keys.get(shard.index))
            done.append(result)
            bar.update(1)
    if fatal is not None:
        raise fatal
    return done, crashed
