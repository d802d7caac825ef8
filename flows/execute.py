"""`execute`: a registered metamodel runs a plan over a whole corpus, shard by shard, into the
DuckDB store. Re-running the same job resumes it: committed shards are skipped."""

from __future__ import annotations

from prefect import flow

import tasks
from falconer_core.corpus import CorpusSource
from falconer_core.execution import ExecutionSettings, execution_run_id, pending_shards
from falconer_core.plan import Plan
from falconer_core.reporting import ExecutionResult
from falconer_core.settings import Settings
from flows import parameters as p
from flows.plans import plan_for_model


@flow(name="execute", validate_parameters=True)
def execute(
    model: str = p.model("run"),
    corpus: CorpusSource = p.corpus(),
    plan: Plan | str | None = p.plan("default: the plan the model was trained for"),
    execution: ExecutionSettings = p.execution(),
) -> ExecutionResult:
    """Run `plan` with the registered `model` over `corpus`; outputs go to the store."""
    source = tasks.fetch_model(model)
    chosen = plan_for_model(plan, source.version)
    frame = tasks.load_corpus(corpus)
    corpus_id = tasks.store_corpus(frame, corpus)
    run_id = execution.run_id or execution_run_id(source.version, chosen, corpus_id, execution.shard_size)
    params = {"model": model, "corpus": corpus.model_dump(), "execution": execution.model_dump()}
    done = tasks.start_run(run_id, "execute", chosen, source.version, corpus_id, params)
    seconds, texts, shards = 0.0, 0, pending_shards(len(frame), execution.shard_size, done)
    try:
        for shard in shards:
            result = tasks.execute_shard(source, chosen, frame, shard, source.version, execution.batch_size)
            tasks.store_shard(run_id, result)
            seconds, texts = seconds + result.seconds, texts + result.n_texts
    except Exception:
        tasks.finish_run(run_id, "failed")  # committed shards stay; running the job again resumes it
        raise
    summary = tasks.finish_run(run_id)
    return ExecutionResult(
        run_id=run_id, model_version=source.version, plan_hash=chosen.hash, corpus_id=corpus_id,
        store_path=str(Settings().store_path), n_texts=len(frame), shards=summary["shards"],
        shards_run=len(shards), rows=summary["rows"], seconds=round(seconds, 4), texts_run=texts,
    )
