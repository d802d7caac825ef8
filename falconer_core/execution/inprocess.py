"""The `execute` flow's steps as plain calls in this process, for small jobs.

A temporary Prefect server costs ~15-25 s to start and stop, more than running the metamodel
over a few hundred texts. Below `SMALL_JOB_TEXTS` texts (and with no Prefect server named by
PREFECT_API_URL), `falconer execute` runs the same core calls as the flow's tasks, in the same
order, here: the same run id, work keys, shard parts, committed rows and run record; what it
lacks is only the Prefect flow run (no UI entry, no task retries). `--flow` keeps the flow for
any size; the flow stays the route for schedules, deployments, pools and clusters.
"""

from __future__ import annotations

from typing import Any

from falconer_core.corpus import CorpusSource, snapshot_corpus
from falconer_core.drift.reference import DriftSettings
from falconer_core.drift.runs import check_run
from falconer_core.errors import ConfigError, FalconerError
from falconer_core.execution.parts import check_run_folder
from falconer_core.execution.settings import ExecutionSettings
from falconer_core.execution.shards import ShardResult, execute_shard
from falconer_core.plan import Plan
from falconer_core.settings import Settings

#: Below this many texts `falconer execute` runs in process unless told `--flow`: one shard at
#: the automatic shard size (1024), where the flow machinery costs more than the work.
SMALL_JOB_TEXTS = 1000


def runs_in_process(
    n_texts: int, execution: ExecutionSettings, *, cascade: bool, api_url: str | None, asked: bool | None,
) -> bool:
    """Whether a job runs here: `asked` (--local True, --flow False) decides; unset, a small job
    without a cascade, on the sequential runner, with no Prefect server named, runs here."""
    if asked is not None:
        if asked and (cascade or execution.runner != "sequential"):
            raise ConfigError(
                "--local runs shards one by one in this process, without a cascade; drop --local to "
                "use --runner processes/dask or --cascade (they run as a Prefect flow)"
            )
        return asked
    return n_texts < SMALL_JOB_TEXTS and not cascade and execution.runner == "sequential" and not api_url


def execute_in_process(
    *, model: str, corpus: CorpusSource, plan: Plan | str | None, execution: ExecutionSettings,
    settings: Settings | None = None, log: Any = None, drift: DriftSettings | None = None,
):
    """What `flows.execute` does without a cascade, step for step, with no Prefect: returns the
    same `ExecutionResult`. `log(message)` hears what the flow's tasks would log."""
    from falconer_core.execution import runplan
    from falconer_core.registry import Registry
    from falconer_core.registry.precision_gate import precision_for_version
    from falconer_core.reporting import execution_result
    from falconer_core.store import sessions

    settings = settings or Settings()
    say = log or (lambda message: None)
    registry = Registry.from_settings(settings)
    given = plan if isinstance(plan, Plan) else Plan.load(plan) if plan else None  # flows.plans.plan_for_model
    # tasks.fetch_model: a bare NAME with a plan is that task's champion
    source = registry.fetch(registry.for_task(model, given.hash) if given else model)
    say(f"using {source.version} ({source.path})")
    execution = execution.model_copy(update={"precision": precision_for_version(execution.precision, source.version)})
    chosen = given or registry.plan_of(source.version)
    snapshot = snapshot_corpus(corpus, settings.corpora_dir)  # tasks.snapshot
    corpus_id = sessions.record_corpus(settings.store_path, snapshot)  # tasks.store_corpus
    run = runplan.plan_run(
        model=model, model_version=source.version, plan=chosen, corpus=corpus, snapshot=snapshot, corpus_id=corpus_id,
        execution=execution, cascade=None, calibration=None, llm_cache_dir=settings.llm_cache_dir,
    )
    say(f"run {run.run_id}: {len(run.shards)} shard(s) of {run.shard_size} texts")
    done, reused = sessions.start_run(  # tasks.start_run
        settings.store_path, run.run_id, kind=run.kind, plan=chosen, model_version=run.model_version,
        corpus_id=run.corpus_id, params=run.params, n_shards=len(run.shards), n_texts=run.n_texts,
        work_keys=run.reuse_keys,
    )
    try:
        with sessions.heartbeat(settings.store_path, run.run_id, every=settings.heartbeat_seconds):
            results = _run_passes(run, source, chosen, snapshot, execution, done, settings, say)
    except BaseException:
        sessions.finish_run(settings.store_path, run.run_id, "failed")
        raise
    summary = sessions.finish_run(settings.store_path, run.run_id)
    drift = drift or DriftSettings()
    verdict = None
    if drift.check:  # flows.execute.check_drift (no cascade here: no LLM of the run's own)
        verdict = check_run(run_id=run.run_id, model=source, plan=chosen, corpus=snapshot, settings=drift, app=settings)
        say(f"drift check: {verdict.status}; {verdict.reason}")
    return execution_result(
        run, summary=summary, results=results, reused=reused, store_path=str(settings.store_path),
        runner=execution.runner, cascade=None, drift=verdict,
    )


def _run_passes(run, source, plan, snapshot, execution, done, settings, say) -> list[ShardResult]:
    """`flows.execute.run_passes` on this process: each pending shard, then once more those that
    failed for a reason that may pass; a Falconer error is raised once the others are committed."""
    from falconer_core.execution.runplan import next_pass
    from falconer_core.store import sessions

    pending, results, passes = run.pending(done), [], 0
    if pending:
        check_run_folder(run.run_folder)
    while pending:
        crashed: dict[int, str] = {}
        fatal: BaseException | None = None
        for shard in pending:
            try:
                result = execute_shard(
                    source, plan, snapshot, shard, model_version=source.version or source.path, run_id=run.run_id,
                    run_folder=run.run_folder, batch_size=execution.batch_size, threads=execution.threads(),
                    precision=execution.precision, cascade=run.routes.get(shard.index),
                )
            except FalconerError as exc:
                fatal = fatal or exc
                continue
            except Exception as exc:
                crashed[shard.index] = f"{type(exc).__name__}: {exc}"
                continue
            sessions.commit_shard(settings.store_path, run.run_id, result, run.work_keys.get(shard.index))
            say(f"shard {shard.index}: {result.n_texts} texts, {result.n_passed} pass the filter, "
                f"{result.n_rows} rows in {result.seconds:.2f} s")
            results.append(result)
        if fatal is not None:
            raise fatal
        passes += 1
        pending = next_pass(pending, crashed, passes)
    return results


__all__ = ["SMALL_JOB_TEXTS", "execute_in_process", "runs_in_process"]
