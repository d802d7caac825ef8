"""The run plan an `execute` run decides before any shard (`falconer_core.execution.runplan`):
run id, shards, work keys, cascade routes, run folder, and the crash-retry rule."""

from __future__ import annotations

import pandas as pd
import pytest

from falconer_core.cascade import Calibration, CascadeSettings
from falconer_core.corpus import CorpusSource, snapshot_corpus
from falconer_core.errors import ConfigError
from falconer_core.execution import ExecutionSettings
from falconer_core.execution.runplan import MAX_PASSES, next_pass, plan_run
from falconer_core.execution.shards import make_shards
from tests import talks as tk


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "texts.csv"
    pd.DataFrame({"id": [f"t{i}" for i in range(45)], "text": [f"text number {i}" for i in range(45)]}).to_csv(path, index=False)
    source = CorpusSource(path=str(path), id_column="id", name="texts")
    return source, snapshot_corpus(source, tmp_path / "corpora")


def _plan(corpus, execution, **extra):
    source, snapshot = corpus
    return plan_run(
        model="m", model_version="m/1", plan=tk.TALKS, corpus=source, snapshot=snapshot, corpus_id=snapshot.corpus_id,
        execution=execution, **extra,
    )


def test_a_run_plan_is_derived_from_its_inputs_and_resolves_the_run_folder(corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("FALCONER_HOME", str(tmp_path / "home"))
    run = _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20))
    assert run.run_id.startswith("exec-") and run == _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20))
    assert [(s.start, s.end) for s in run.shards] == [(0, 20), (20, 40), (40, 45)] and run.shard_size == 20
    assert sorted(run.work_keys) == [0, 1, 2] and len(set(run.work_keys.values())) == 3 and run.routes == {}
    assert run.run_folder == str(tmp_path / "home" / "runs")  # resolved, never left unset
    assert run.params == {"model": "m", "corpus": corpus[0].model_dump(), "shard_size": 20,
                          "execution": ExecutionSettings(precision="fp32", shard_size=20).model_dump()}
    assert run.reuse_keys == run.work_keys and _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20, reuse=False)).reuse_keys is None
    assert _plan(corpus, ExecutionSettings(precision="fp32", shard_size=10)).run_id != run.run_id
    named = _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20, run_id="mine", run_folder="memory://parts"))
    assert (named.run_id, named.run_folder) == ("mine", "memory://parts")
    assert [s.index for s in run.pending([0, 2])] == [1]
    one = run.for_shard(run.shards[1])
    assert one.shards == [run.shards[1]] and one.work_keys == {1: run.work_keys[1]} and one.run_id == run.run_id


def test_a_cascade_run_plan_splits_the_budget_and_keys_its_routing(corpus):
    settings = CascadeSettings(target="accuracy=0.9", llm_budget=12, llm="local")
    calibration = Calibration(thresholds=[], positions=[], ids=[], llm_records={})
    run = _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20), cascade=settings, calibration=calibration)
    proxy = _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20))
    assert run.run_id.startswith("cascade-") and run.params["cascade"] == settings.identity()
    assert sorted(run.routes) == [0, 1, 2] and sum(r.allowance for r in run.routes.values()) == 12
    assert set(run.work_keys.values()).isdisjoint(proxy.work_keys.values())  # never reuses proxy-only rows
    with pytest.raises(ConfigError, match="calibration"):
        _plan(corpus, ExecutionSettings(precision="fp32", shard_size=20), cascade=settings)


def test_crashed_shards_run_once_more_then_the_run_gives_up():
    shards = make_shards(45, 20)
    assert next_pass(shards, {}, 1) == []
    assert next_pass(shards, {1: "BrokenProcessPool: died"}, 1) == [shards[1]]
    assert MAX_PASSES == 2
    with pytest.raises(RuntimeError, match=r"shard\(s\) \[1\] failed twice: .*BrokenProcessPool"):
        next_pass([shards[1]], {1: "BrokenProcessPool: died"}, 2)
    assert next_pass([shards[1]], {}, 2) == []
