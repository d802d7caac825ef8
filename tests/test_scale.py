"""Execution at corpus scale, on the temporary Prefect server with real runners: shards on a
process pool and on a Dask LocalCluster give the same rows as sequential execution, the model
loads once per worker, a grown corpus reuses the shards already done, and faults (an unreachable
cluster, an unwritable run folder, a crashed shard) end in a clear error or a correct recovery."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from falconer_core.corpus import CorpusSource
from falconer_core.errors import ConfigError, StoreError
from falconer_core.execution import FILTER_FIELD, ExecutionSettings
from falconer_core.settings import Settings
from falconer_core.store import Store
from tests.mining_corpus import register_untrained, tweets

pytestmark = pytest.mark.usefixtures("prefect_harness")

KEY = ["text_id", "field", "step", "span_start", "span_end", "value"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    folder = tmp_path_factory.mktemp("falconer-scale")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FALCONER_HOME", str(folder))
        yield folder


@pytest.fixture(scope="module")
def model(home, tiny_encoder_path) -> str:
    """A registered tiny metamodel (untrained head: the rows are what they are, the same everywhere)."""
    return register_untrained(home, tiny_encoder_path, "scale-model")


def corpus_file(home, name: str, n: int, seed: int = 0) -> CorpusSource:
    path = home / f"{name}.csv"
    tweets(n, seed=seed).to_csv(path, index=False)
    return CorpusSource(path=str(path), id_column="tweet_id", name=name)


def rows_of(run_id: str) -> pd.DataFrame:
    with Store(Settings().store_path) as store:
        frame = store.outputs(run_id)
    return frame.sort_values(KEY, na_position="first").reset_index(drop=True)[KEY + ["confidence"]]


def assert_complete(run_id: str, n: int) -> pd.DataFrame:
    """Every text has exactly one filter verdict and no row is repeated."""
    frame = rows_of(run_id)
    verdicts = frame[frame["field"] == FILTER_FIELD]
    assert sorted(verdicts["text_id"]) == [f"t{i:03d}" for i in range(n)]
    assert not frame.duplicated(subset=KEY).any()
    return frame


def test_processes_and_dask_give_the_rows_of_sequential_and_load_the_model_once_per_worker(home, model):
    from flows import execute

    corpus = corpus_file(home, "runners", 160)
    base = {"shard_size": 20, "reuse": False}
    sequential = execute(model, corpus, execution=ExecutionSettings(**base, run_id="seq"))
    expected = assert_complete("seq", 160)
    assert sequential.shards_run == 8 and sequential.processes == 1

    pooled = execute(model, corpus, execution=ExecutionSettings(**base, run_id="proc", runner="processes", workers=2))
    assert pooled.shards_run == 8 and pooled.processes == 2 and pooled.model_loads_per_process == 1
    pd.testing.assert_frame_equal(assert_complete("proc", 160), expected, check_exact=False, atol=1e-6)

    dasked = execute(model, corpus, execution=ExecutionSettings(**base, run_id="dask", runner="dask", workers=2))
    assert dasked.shards_run == 8 and 1 <= dasked.processes <= 2 and dasked.model_loads_per_process == 1
    pd.testing.assert_frame_equal(assert_complete("dask", 160), expected, check_exact=False, atol=1e-6)


def test_a_grown_corpus_executes_only_its_new_shards(home, model):
    from flows import execute

    settings = ExecutionSettings(shard_size=25)
    first = execute(model, corpus_file(home, "growing", 100, seed=5), execution=settings)  # texts no other test has
    assert first.shards_run == 4 and first.shards_reused == 0
    grown = execute(model, corpus_file(home, "growing", 120, seed=5), execution=settings)  # 20 texts appended
    assert grown.corpus_id != first.corpus_id and grown.run_id != first.run_id
    assert grown.shards_reused == 4 and grown.shards_run == 1 and grown.texts_run == 20
    frame = assert_complete(grown.run_id, 120)
    old = rows_of(first.run_id)
    pd.testing.assert_frame_equal(frame[frame["text_id"].isin(old["text_id"])].reset_index(drop=True), old)
    again = execute(model, corpus_file(home, "growing", 120, seed=5), execution=settings)  # same content: resumes
    assert again.run_id == grown.run_id and again.shards_run == 0 and again.shards == 5
    with Store(Settings().store_path) as store:
        progress = store.run_progress().set_index("run_id")
    assert progress.loc[grown.run_id, "status"] == "completed"
    assert progress.loc[grown.run_id, "shards_done"] == progress.loc[grown.run_id, "n_shards"] == 5


def test_a_shard_whose_worker_crashed_runs_again_without_loss_or_duplicates(home, model, monkeypatch):
    import falconer_core.execution as execution
    from flows import execute

    real, calls = execution.execute_shard, {"n": 0}

    def crash_once_on_shard_2(model, plan, corpus, shard, **kwargs):
        if shard.index == 2 and calls["n"] == 0:
            calls["n"] += 1
            raise RuntimeError("worker lost while executing shard 2")
        return real(model, plan, corpus, shard, **kwargs)

    monkeypatch.setattr(execution, "execute_shard", crash_once_on_shard_2)
    folder = (home / "url-runs").as_uri()  # a run folder given as an fsspec URL
    settings = ExecutionSettings(shard_size=20, reuse=False, run_folder=folder)
    result = execute(model, corpus_file(home, "crashy", 100), execution=settings)
    assert calls["n"] == 1 and result.shards_run == 5 and result.shards == 5
    assert_complete(result.run_id, 100)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_dask_scheduler_fails_before_any_work(home, model):
    from flows import execute

    address = f"tcp://127.0.0.1:{_free_port()}"
    settings = ExecutionSettings(runner="dask", dask_address=address, run_id="nowhere", reuse=False)
    with pytest.raises(ConfigError, match="no Dask scheduler answers at"):
        execute(model, corpus_file(home, "unreachable", 40), execution=settings)
    with Store(Settings().store_path) as store:
        assert store.run("nowhere")["status"] == "failed" and store.completed_shards("nowhere") == []


def test_an_unwritable_run_folder_fails_before_any_work(home, model):
    from flows import execute

    blocker = home / "not-a-folder"
    blocker.write_text("a file where the run folder should be")
    settings = ExecutionSettings(run_folder=str(blocker / "runs"), run_id="blocked", reuse=False)
    with pytest.raises(StoreError, match="cannot hold shard parts"):
        execute(model, corpus_file(home, "blocked", 40), execution=settings)
    with Store(Settings().store_path) as store:
        assert store.run("blocked")["status"] == "failed" and store.completed_shards("blocked") == []


def test_dask_address_needs_the_dask_runner():
    with pytest.raises(ValueError, match="runner='dask'"):
        ExecutionSettings(dask_address="tcp://127.0.0.1:8786")


def test_automatic_shard_size_is_coarse_and_stable_as_a_corpus_grows():
    auto = ExecutionSettings()
    assert auto.shard_size_for(1_200) == 1024 and auto.shard_size_for(20_000) == auto.shard_size_for(21_000)
    assert auto.shard_size_for(1_000_000) == 16384 and 1_000_000 / 16384 < 64
    assert ExecutionSettings(shard_size=7).shard_size_for(1_000_000) == 7


def test_a_run_killed_with_sigkill_resumes_without_lost_or_duplicated_rows(home, model):
    """A real `falconer execute` process is killed mid-run; the run then reads `stale`, and the
    same command resumes it: every text once, no row twice, committed shards not redone."""
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus = corpus_file(home, "killed", 240, seed=11)  # texts no other test executed: every shard runs
    command = [sys.executable, "-m", "falconer_cli.main", "execute", model, "--corpus", corpus.path,
               "--id-column", "tweet_id", "--shard-size", "20", "--run-id", "killed", "--no-reuse"]
    env = {**os.environ, "FALCONER_HOME": str(home)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # its own group: the kill takes its Prefect server too
    seen, deadline = "", time.monotonic() + 600  # a loaded machine starts the temporary server slowly
    try:
        for line in process.stdout:  # Prefect prints each shard's log line on the terminal
            seen += line
            if "shard 6:" in line or time.monotonic() > deadline:  # shards 0-5 ran, the first commits are in
                break
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    assert "shard 6:" in seen, seen[-3000:]
    with Store(Settings().store_path) as store:
        committed = store.completed_shards("killed")
        assert 0 < len(committed) < 12
        assert store.run("killed")["status"] == "running"  # nobody marked it: it was killed
        assert store.run_progress(stale_after_seconds=0).set_index("run_id").loc["killed", "status"] == "stale"
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert_complete("killed", 240)
    with Store(Settings().store_path) as store:
        assert store.run("killed")["status"] == "completed" and len(store.completed_shards("killed")) == 12


def test_int8_execution_is_its_own_run_with_complete_rows(home, model):
    from flows import execute

    corpus = corpus_file(home, "precise", 60, seed=7)
    fp32 = execute(model, corpus, execution=ExecutionSettings(shard_size=30))
    int8 = execute(model, corpus, execution=ExecutionSettings(shard_size=30, precision="int8"))
    assert int8.run_id != fp32.run_id and int8.shards_reused == 0 and int8.shards_run == 2
    assert_complete(int8.run_id, 60)
