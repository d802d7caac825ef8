"""The Prefect flows end to end on a temporary Prefect server, a temporary MLflow registry and
DuckDB store: `mine` with human labels and the tiny encoder, caching on re-run, a retried task,
lineage tags, resumable execution, and no API key anywhere it could leak."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest

from falconer_core.corpus.source import CorpusSource
from falconer_core.execution import ExecutionSettings
from falconer_core.execution.outputs import FILTER_FIELD
from falconer_core.llm.choice import LLMChoice
from falconer_core.sampling import SamplingSettings
from falconer_core.settings import Settings
from falconer_core.store import Store
from falconer_core.training import TrainingSettings
from tests.llm_server import ScriptedLLMServer, answer
from tests.mining_corpus import INSTRUCTION, PLAN, tweets

pytestmark = pytest.mark.usefixtures("prefect_harness")

SECRET = "sk-test-" + "0123456789abcdefXYZW" * 2
N_TEXTS = 150
SAMPLING = SamplingSettings(fraction=0.4, floor=40, cap=60)
TRAINING = TrainingSettings(epochs=2, min_epochs=1, batch_size=16, progress=False)


def incubation_settings(**changes):
    """The tests' incubation settings (a 0.0 gate: the tiny encoder is weak), with `changes`."""
    from flows.parameters import IncubationSettings

    return IncubationSettings(**{"sampling": SAMPLING, "training": TRAINING, "gate": {"mean_f1": 0.0}, **changes})


def incubate_args(mine_args: dict, *, without: tuple[str, ...] = (), **changes) -> dict:
    """`mine_args` for `incubate`/`retune` (no `execution`): the task without the fields named in
    `without`, with `changes` (task fields) applied."""
    from flows.parameters import TaskSpec

    task = mine_args["task"]
    kept = {name: getattr(task, name) for name in task.model_fields_set if name not in without}
    return {**{k: v for k, v in mine_args.items() if k != "execution"}, "task": TaskSpec(**{**kept, **changes})}


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One Falconer home (store, MLflow, Prefect results) for the module, and an API key in the
    environment that must never show up in Prefect, MLflow or the store."""
    folder = tmp_path_factory.mktemp("falconer-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FALCONER_HOME", str(folder))
        patch.setenv("OPENAI_API_KEY", SECRET)
        yield folder


@pytest.fixture(scope="module")
def corpus(home) -> CorpusSource:
    path = home / "tweets.csv"
    tweets(N_TEXTS).to_csv(path, index=False)
    return CorpusSource(path=str(path), id_column="tweet_id", name="tweets")


@pytest.fixture(scope="module")
def planner():
    """An OpenAI-compatible server that answers every planning request with the test plan."""
    with ScriptedLLMServer(handler=lambda body: answer(PLAN)) as server:
        yield server


@pytest.fixture(scope="module")
def mine_args(corpus, planner, tiny_encoder_path) -> dict:
    from flows.parameters import TaskSpec

    return {
        "corpus": corpus,
        "task": TaskSpec(
            instruction=INSTRUCTION, annotator="gold", base_model=str(tiny_encoder_path),
            planner=LLMChoice(backend="openai", base_url=planner.url, model="test-model"),
        ),
        "incubation": incubation_settings(),
        "execution": ExecutionSettings(shard_size=50),
    }


@pytest.fixture(scope="module")
def mined(mine_args):
    """The first `mine` run: (its flow run id, its result)."""
    from flows import mine

    state = mine(**mine_args, return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id, state.result()


# -- helpers ---------------------------------------------------------------------------------------


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def flow_run_tree(root: UUID) -> list:
    """The flow run and all its subflow runs."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with _client() as client:
        runs, frontier = [client.read_flow_run(root)], [root]
        while frontier:
            children = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=frontier))
            )
            runs += children
            frontier = [c.id for c in children]
    return runs


def task_runs(root: UUID) -> list:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = [run.id for run in flow_run_tree(root)]
    with _client() as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))


def states_by_task(root: UUID) -> dict[str, list[str]]:
    """Task name (run name without its random suffix) -> state names of its runs."""
    found: dict[str, list[str]] = {}
    for run in task_runs(root):
        found.setdefault(run.name.rsplit("-", 1)[0], []).append(run.state.name)
    return found


def outputs() -> "pandas.DataFrame":  # noqa: F821
    with Store(Settings().store_path) as store:
        return store.outputs()


def assert_rows_match_corpus(frame, run_id: str) -> None:
    """Every corpus text has exactly one filter verdict, and no output row is repeated."""
    rows = frame[frame["run_id"] == run_id]
    verdicts = rows[rows["field"] == FILTER_FIELD]
    assert sorted(verdicts["text_id"]) == sorted(tweets(N_TEXTS)["tweet_id"])
    key = ["text_id", "field", "step", "span_start", "span_end", "value"]
    assert not rows.duplicated(subset=key).any()


# -- tests -----------------------------------------------------------------------------------------


def test_mine_runs_end_to_end_with_human_labels(mined, planner):
    flow_run_id, result = mined
    assert planner.calls == 1
    incubation, execution = result.incubation, result.execution
    assert incubation.annotator == "human" and incubation.n_annotations == 60
    assert incubation.model_version == f"{Settings().model_name}/1" and incubation.champion
    assert {s.step for s in incubation.evaluation.scores} == {"mentions_place", "people"}
    evaluation = incubation.evaluation
    assert evaluation.mean_f1_lo <= evaluation.mean_f1 <= evaluation.mean_f1_hi
    assert all(s.f1_lo <= s.f1 <= s.f1_hi for s in [*evaluation.scores, evaluation.end_to_end])
    assert execution.shards == execution.shards_run == 3 and execution.n_texts == N_TEXTS

    frame = outputs()
    assert_rows_match_corpus(frame, execution.run_id)
    passed = frame[(frame["field"] == FILTER_FIELD) & (frame["value"] == "true")]
    people = frame[frame["field"] == "people"]
    assert set(people["text_id"]) <= set(passed["text_id"])  # only texts passing the filter
    assert (people["model_version"] == incubation.model_version).all()
    assert (people["plan_hash"] == incubation.plan.hash).all()
    assert {row.route for row in result.costs} >= {"metamodel on the whole corpus", "fine-tune the metamodel"}

    # registration gated the faster precisions on the held-out texts; lineage and `auto` read the tags
    from falconer_core.registry import Registry, render_lineage
    from falconer_core.registry.precision_gate import gate_verdicts

    registry = Registry.from_settings()
    tags = registry.client.get_model_version(*incubation.model_version.split("/")).tags
    assert "int8" in gate_verdicts(tags) and tags["falconer.precision.int8.interval"].startswith("[")
    assert "precisions: " in render_lineage(registry.lineage(incubation.model_version))

    runs = flow_run_tree(flow_run_id)
    assert sorted(_flow_name(r) for r in runs) == ["execute", "execute-shards", "incubate", "mine"]
    with _client() as client:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[r.id for r in runs]))
        )
    assert {a.key for a in artifacts} >= {"plan", "annotation-sample", "evaluation", "f1-per-step", "cost-comparison"}


def test_rerun_is_served_from_the_cache(mined, mine_args, planner):
    from flows import mine

    state = mine(**mine_args, return_state=True)
    assert state.is_completed()
    states = states_by_task(state.state_details.flow_run_id)
    for name in ("plan", "sample", "annotate", "fine-tune", "register"):
        assert states[name] == ["Cached"], (name, states)
    # the candidate's evaluation is cached; the task's champion (now this very version) is scored
    # on the same held-out texts, since the flow cannot know register will be a cache hit
    assert sorted(states["evaluate"]) == ["Cached", "Completed"], states
    assert planner.calls == 1  # no second planning call reached the LLM
    again = state.result()
    assert again.incubation.model_version == mined[1].incubation.model_version
    assert again.execution.run_id == mined[1].execution.run_id and again.execution.shards_run == 0
    assert_rows_match_corpus(outputs(), again.execution.run_id)


def test_registered_version_carries_every_lineage_tag(mined):
    from falconer_core.registry import Registry
    from falconer_core.registry import tags as T

    flow_run_id, result = mined
    incubation = result.incubation
    registry = Registry.from_settings(Settings())
    ref = registry.resolve(incubation.model_version)
    found = registry.client.get_model_version(ref.name, str(ref.version)).tags
    assert set(T.LINEAGE_TAGS) <= set(found)
    incubate_run = next(r for r in flow_run_tree(flow_run_id) if r.parent_task_run_id and "incubate" in _flow_name(r))
    assert found[T.PARENT_VERSION] == T.NONE
    assert found[T.BASE_MODEL] == incubation.base_model
    assert found[T.PLAN_HASH] == incubation.plan.hash
    assert found[T.ANNOTATION_SET_HASH] == incubation.annotation_set_hash
    assert found[T.N_ANNOTATIONS] == str(incubation.n_annotations)
    assert found[T.ANNOTATOR] == "human"
    assert found[T.CORPUS_ID] == incubation.corpus_id
    assert found[T.FLOW_RUN_ID] == str(incubate_run.id)
    assert found[T.MLFLOW_RUN_ID] == ref.run_id
    assert f"champion-{incubation.plan.hash}" in ref.aliases and f"candidate-{incubation.plan.hash}" in ref.aliases
    run = registry.client.get_run(ref.run_id)
    # learning from the unannotated texts is on by default, and the run says so and on how many
    assert run.data.params["training.unlabeled"] == "True"
    assert run.data.params["n_unlabeled_texts"] == str(N_TEXTS - incubation.n_annotations)
    assert run.data.params["training.max_unlabeled"] == str(TRAINING.max_unlabeled)
    contexts = {i.dataset.digest: [t.value for t in i.tags] for i in run.inputs.dataset_inputs}
    assert contexts[incubation.annotation_set_hash] == ["training"]
    assert ["evaluation"] in contexts.values()
    assert [o.model_id for o in run.outputs.model_outputs] == [found[T.LOGGED_MODEL_ID]]


def _flow_name(run) -> str:
    with _client() as client:
        return client.read_flow(run.flow_id).name


def test_a_task_that_fails_once_is_retried(mine_args, monkeypatch):
    import tasks.annotation
    from flows import incubate

    real = tasks.annotation.build_annotator
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("annotator endpoint dropped the connection")
        return real(*args, **kwargs)

    monkeypatch.setattr(tasks.annotation, "build_annotator", flaky)
    monkeypatch.setattr(tasks.annotate, "retry_delay_seconds", [0])
    args = incubate_args(mine_args)
    args["incubation"] = incubation_settings(sampling=SAMPLING.model_copy(update={"seed": 7}))  # a new sample: not cached
    state = incubate(**args, return_state=True)
    assert state.is_completed(), state.message
    assert calls["n"] == 2
    annotate_runs = [r for r in task_runs(state.state_details.flow_run_id) if r.name.startswith("annotate-")]
    assert [r.run_count for r in annotate_runs] == [2]
    assert annotate_runs[0].state.name == "Completed"


def test_a_wrong_input_is_not_retried(mine_args, monkeypatch):
    import tasks.annotation
    from falconer_core.errors import CorpusError
    from flows import incubate

    calls = {"n": 0}

    def broken(*args, **kwargs):
        calls["n"] += 1
        raise CorpusError("no gold column for step 'people'")

    monkeypatch.setattr(tasks.annotation, "build_annotator", broken)
    args = incubate_args(mine_args)
    args["incubation"] = incubation_settings(sampling=SAMPLING.model_copy(update={"seed": 8}))
    state = incubate(**args, return_state=True)
    assert state.is_failed() and calls["n"] == 1


def test_execution_resumes_after_a_failed_shard_without_loss_or_duplicates(mined, corpus, monkeypatch):
    import falconer_core.execution as execution
    from flows import execute

    version = mined[1].incubation.model_version
    real = execution.execute_shard

    def failing_on_shard_2(model, plan, frame, shard, **kwargs):
        if shard.index == 2:
            raise RuntimeError("worker lost while executing shard 2")
        return real(model, plan, frame, shard, **kwargs)

    monkeypatch.setattr(execution, "execute_shard", failing_on_shard_2)
    settings = ExecutionSettings(shard_size=20)
    failed = execute(version, corpus, execution=settings, return_state=True)
    assert failed.is_failed()  # shard 2 failed on both passes; the others committed meanwhile
    with Store(Settings().store_path) as store:
        (run,) = store.runs("execute").query("status == 'failed'")["run_id"]
        assert store.completed_shards(run) == [0, 1, 3, 4, 5, 6, 7]
    monkeypatch.setattr(execution, "execute_shard", real)

    resumed = execute(version, corpus, execution=settings)  # the plan comes from the registry
    assert resumed.shards == 8 and resumed.shards_run == 1  # only shard 2 was left to do
    frame = outputs()
    assert resumed.rows == int((frame["run_id"] == resumed.run_id).sum())
    assert_rows_match_corpus(frame, resumed.run_id)
    with Store(Settings().store_path) as store:
        assert store.run(resumed.run_id)["status"] == "completed"


def test_retune_continues_from_the_champion(mined, mine_args):
    from falconer_core.registry import Registry
    from falconer_core.registry import tags as T
    from flows import retune

    registry = Registry.from_settings(Settings())
    parent = str(registry.resolve(f"{Settings().model_name}@champion-{mined[1].incubation.plan.hash}"))
    args = incubate_args(mine_args, without=("base_model", "instruction", "planner"), plan=mined[1].incubation.plan)
    result = retune(**args)
    assert result.parent == parent and result.model_version != parent
    lineage = registry.lineage(result.model_version)
    assert [entry["ref"] for entry in lineage[:2]] == [result.model_version, parent]
    assert lineage[0]["tags"][T.PARENT_VERSION] == parent
    assert lineage[-1]["kind"] == "base"
    # the same task had a champion: the retuned version was compared with it on its held-out texts
    assert f"vs {parent} on the same" in "; ".join(result.promotion)
    parent_model = registry.client.get_model_version(*parent.split("/")).tags[T.LOGGED_MODEL_ID]
    run = registry.client.get_run(registry.resolve(result.model_version).run_id)
    assert [m.model_id for m in run.inputs.model_inputs] == [parent_model]


def test_retune_in_active_rounds_re_tunes_from_the_parent_each_round(mined, mine_args):
    from falconer_core.registry import Registry
    from falconer_core.sampling.active import ActiveSettings
    from flows import retune

    registry = Registry.from_settings(Settings())
    parent = str(registry.resolve(f"{Settings().model_name}@champion-{mined[1].incubation.plan.hash}"))
    args = incubate_args(mine_args, without=("base_model", "instruction", "planner"), plan=mined[1].incubation.plan,
                         model_name="retune-rounds")
    rounds = incubation_settings(gate={"mean_f1": 1.01}, active=ActiveSettings(rounds=2))
    result = retune(**{**args, "incubation": rounds}, model=parent)
    assert [row["annotations"] for row in result.learning_curve] == [30, 60] and result.n_annotations == 60
    assert result.parent == parent


def test_two_tasks_mined_into_one_home_keep_two_champions(mined, mine_args):
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from flows import incubate

    first = mined[1].incubation
    people = Plan.from_dict({"steps": [{"name": "people", "op": "span", "instruction": "Extract the names of people."}],
                             "outputs": ["people"]})
    second = incubate(**incubate_args(mine_args, without=("instruction", "planner"), plan=people))
    assert second.champion and "no champion for this task yet" in second.promotion
    registry = Registry.from_settings(Settings())
    assert str(registry.champion_of(Settings().model_name, people.hash)) == second.model_version
    assert registry.champion_of(Settings().model_name, first.plan.hash) is not None
    assert str(registry.champion_of(Settings().model_name, first.plan.hash)) != second.model_version


def test_retune_on_a_new_task_replays_the_parents_task_and_is_gated_on_it(mined, mine_args):
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.registry import tags as T
    from flows import retune

    first = mined[1].incubation
    registry = Registry.from_settings(Settings())
    parent = str(registry.resolve(f"{Settings().model_name}@champion-{first.plan.hash}"))
    people = Plan.from_dict({"steps": [{"name": "people", "op": "span", "instruction": "Extract the people named."}],
                             "outputs": ["people"]})
    args = incubate_args(mine_args, without=("base_model", "instruction", "planner"), plan=people, model_name="continual")
    result = retune(**args, model=parent)
    run = registry.client.get_run(registry.resolve(result.model_version).run_id)
    assert int(run.data.params[f"replayed.{first.plan.hash}"]) > 0  # the parent's task was rehearsed
    assert run.data.params["training.replay"] == "True"
    decided = json.loads(registry.lookup.tags(result.model_version)[T.PROMOTION_FOR_PREFIX + first.plan.hash])
    assert decided["reasons"] and decided["score"]["mean_f1"] is not None  # gated on the parent's held-out texts


def test_the_api_key_never_reaches_prefect_mlflow_or_the_store(mined, home):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    flow_run_id, _ = mined
    runs = flow_run_tree(flow_run_id)
    with _client() as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[r.id for r in runs])))
        artifacts = client.read_artifacts()
    assert logs
    seen = json.dumps([r.parameters for r in runs], default=str)
    seen += "\n".join(log.message for log in logs)
    seen += json.dumps([a.data for a in artifacts], default=str)
    assert SECRET not in seen
    for path in Path(home).rglob("*"):
        if path.is_file() and path.suffix not in (".safetensors", ".bin"):
            assert SECRET.encode() not in path.read_bytes(), path


def test_evaluate_scores_a_registered_model_against_human_labels(mined, corpus):
    from flows import evaluate

    version = mined[1].incubation.model_version
    result = evaluate(version, corpus, sampling=SamplingSettings(fraction=0.2, floor=20, cap=30, seed=3))
    assert result.model_version == version and result.annotator == "human"
    assert result.evaluation.n_texts == 30
    assert {s.step: s.reference for s in result.evaluation.scores} == {"mentions_place": "human", "people": "human"}
    assert result.evaluation.weighting == "uniform"  # a random sample: the model did not choose it
    e2e = result.evaluation.end_to_end
    assert e2e.n == 30 and e2e.f1_lo <= e2e.f1 <= e2e.f1_hi


def test_only_transient_failures_are_retried():
    from falconer_core.errors import CorpusError, LLMError, StoreBusyError, StoreError, TransientLLMError
    from tasks.policies import is_transient

    assert is_transient(ConnectionError("reset")) and is_transient(TimeoutError())
    assert is_transient(TransientLLMError("endpoint down"))
    assert is_transient(StoreBusyError("lock held"))
    # decided by type: the same words in a permanent error do not make it transient
    assert not is_transient(LLMError("Gave up after 5 attempts"))
    assert not is_transient(StoreError("cannot open the store x.duckdb"))
    assert not is_transient(LLMError("gave no usable JSON in 3 attempts"))
    assert not is_transient(CorpusError("no gold label")) and not is_transient(ValueError("bug"))


# -- caches that cannot outlive a fix ----------------------------------------------------------------


def _plan_task_key(planner: LLMChoice) -> str:
    from types import SimpleNamespace

    import tasks

    return tasks.make_plan.cache_policy.compute_key(
        SimpleNamespace(task=tasks.make_plan), {"instruction": INSTRUCTION, "planner": planner}, {}
    )


def test_a_core_library_fingerprint_follows_its_source(tmp_path):
    import shutil

    import falconer_core
    from tasks.policies import source_fingerprint

    source = Path(falconer_core.__file__).parent
    copy = tmp_path / "falconer_core"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = source_fingerprint(copy)
    assert before == source_fingerprint(source)
    prompts = copy / "annotators" / "prompts.py"
    prompts.write_text(prompts.read_text().replace("careful data annotator", "careful annotator"))
    assert source_fingerprint(copy) != before


def test_task_cache_keys_change_with_the_core_library_and_the_endpoint(monkeypatch):
    import tasks.policies

    planner = LLMChoice(backend="openai", base_url="http://127.0.0.1:8001/v1", model="m")
    key = _plan_task_key(planner)
    assert key == _plan_task_key(planner)
    assert _plan_task_key(planner.model_copy(update={"base_url": "http://127.0.0.1:8002/v1"})) != key
    # a fix anywhere in falconer_core (the wrapper task unchanged) is a new key
    monkeypatch.setattr(tasks.policies, "source_fingerprint", lambda root: "after-a-fix")
    tasks.policies.core_fingerprint.cache_clear()
    try:
        assert _plan_task_key(planner) != key
    finally:
        tasks.policies.core_fingerprint.cache_clear()


def test_the_annotate_key_names_the_annotator_endpoint(tmp_path):
    from types import SimpleNamespace

    from falconer_core.annotators import AnnotatorChoice
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.plan import Plan
    from tasks.annotation import _annotate_key

    tweets(20).to_csv(tmp_path / "t.csv", index=False)
    corpus = snapshot_corpus(CorpusSource(path=str(tmp_path / "t.csv"), id_column="tweet_id"), tmp_path / "corpora")
    params = {"plan": Plan.from_dict(PLAN), "corpus": corpus, "sample": SimpleNamespace(ids=corpus.ids()[:5])}
    one = AnnotatorChoice(name="openai", model="m", base_url="http://127.0.0.1:8001/v1")
    two = one.model_copy(update={"base_url": "http://127.0.0.1:8002/v1"})
    assert _annotate_key(None, {**params, "annotator": one}) != _annotate_key(None, {**params, "annotator": two})


# -- an LLM annotator whose replies are cut off, or reworded ----------------------------------------------

_GOLD = {row.text: (bool(row.mentions_place), json.loads(row.people)) for row in tweets(N_TEXTS).itertuples()}


def _llm(**options):
    from tests.llm_server import Annotator

    return Annotator(lambda text, _: _GOLD[text][0], lambda text, _: _GOLD[text][1], **options)


def _mine_with_llm(mine_args, server, model_name: str):
    from flows import mine

    annotator = {"name": "openai", "base_url": server.url, "model": "test-model", "batch_size": 8}
    task = incubate_args(mine_args, annotator=annotator, model_name=model_name)["task"]
    state = mine(**{**mine_args, "task": task}, return_state=True)
    assert state.is_completed(), state.message
    return state.state_details.flow_run_id, state.result()


def _annotation_set(flow_run_id):
    """The AnnotationSet the annotate task of a flow run persisted."""
    (run,) = [r for r in task_runs(flow_run_id) if r.name.startswith("annotate-")]
    return run.state.result()


def test_mine_with_truncated_llm_replies_ends_with_the_annotations_of_a_clean_run(mined, mine_args):
    with ScriptedLLMServer(handler=_llm()) as clean_server:
        _, clean = _mine_with_llm(mine_args, clean_server, "llm-tweets")
    cutting = _llm(max_chars=150)  # a reply for 8 texts runs past the budget; the halves fit
    with ScriptedLLMServer(handler=cutting) as server:
        flow_run_id, cut = _mine_with_llm(mine_args, server, "llm-tweets")
    assert cutting.cut > 0
    assert cut.incubation.annotation_usage["calls"] > clean.incubation.annotation_usage["calls"]
    assert cut.incubation.annotation_set_hash == clean.incubation.annotation_set_hash
    assert cut.incubation.model_version == clean.incubation.model_version  # same set: fine-tune cached
    annotations = _annotation_set(flow_run_id)
    assert annotations.hash == cut.incubation.annotation_set_hash and annotations.ungrounded["people"].spans_ungrounded == 0


def test_reworded_spans_are_reported_per_step_and_kept_out_of_training(mined, mine_args, monkeypatch):
    from falconer_core.registry import Registry
    from falconer_core.training import HoldoutSettings, flatten, split_ids, step_examples
    from flows import incubate
    from tests.llm_server import reworded

    monkeypatch.setenv("FALCONER_LLM_MAX_UNGROUNDED", "0.5")  # 30% reworded is past the default 20%
    with ScriptedLLMServer(handler=_llm(reword=0.3)) as server:
        annotator = {"name": "openai", "base_url": server.url, "model": "test-model"}
        args = incubate_args(mine_args, annotator=annotator, model_name="llm-reworded")
        state = incubate(**args, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    annotations = _annotation_set(state.state_details.flow_run_id)

    # what the scripted LLM did, counted from the gold data of the sampled texts
    passing = [t for t in annotations.texts if _GOLD[t][0]]
    spans = [(t, p) for t in passing for p in _GOLD[t][1]]
    missed = {t for t, p in spans if reworded(t, p, 0.3)}
    share = sum(reworded(t, p, 0.3) for t, p in spans) / len(spans)
    assert 0.15 < share < 0.45 and missed

    run = Registry.from_settings(Settings()).resolve(result.model_version).run_id
    data = Registry.from_settings(Settings()).client.get_run(run).data
    assert data.metrics["ungrounded.people"] == pytest.approx(share, abs=1e-6)

    train_ids, _ = split_ids(annotations.ids, HoldoutSettings())
    text_of = annotations.text_of()
    train_passing = [i for i in train_ids if _GOLD[text_of[i]][0]]
    left_out = [i for i in train_passing if text_of[i] in missed]
    assert left_out
    expected = len(train_ids) + len(train_passing) - len(left_out)  # one label per text, one span answer per passing text
    assert int(data.params["n_examples"]) == expected == len(flatten(step_examples(annotations, train_ids)))
    trained_on = {e.text for e in step_examples(annotations, train_ids)["people"]}
    assert not trained_on & {text_of[i] for i in left_out}

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with _client() as client:
        (sample,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            key=ArtifactFilterKey(any_=["annotation-sample"]),
        ))
    assert f"people {round(share * len(spans))}/{len(spans)}" in sample.description
    rows = json.loads(sample.data) if isinstance(sample.data, str) else sample.data
    assert {r["id"] for r in rows if r["ungrounded"]} == {i for i in annotations.ids if text_of[i] in missed}


def test_incubate_in_active_rounds_grows_the_sample_until_the_gate_or_the_budget(mine_args):
    from falconer_core.corpus import snapshot_corpus
    from falconer_core.sampling import sample_for_annotation
    from falconer_core.sampling.active import ActiveSettings
    from flows import incubate

    args = incubate_args(mine_args, model_name="active-rounds")
    active = ActiveSettings(rounds=3, first_share=0.5)
    rounds = incubation_settings(gate={"mean_f1": 1.01}, active=active)
    state = incubate(**{**args, "incubation": rounds}, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    curve = result.learning_curve
    assert [row["annotations"] for row in curve] == [30, 45, 60] and result.n_annotations == 60  # the budget
    assert all(row["mean_f1_lo"] <= row["mean_f1"] <= row["mean_f1_hi"] for row in curve)
    assert len({row["heldout_texts"] for row in curve}) == 1  # the same held-out texts every round
    snapshot = snapshot_corpus(args["corpus"], Settings().corpora_dir)
    first = sample_for_annotation(snapshot.ids(), fraction=SAMPLING.fraction, floor=30, cap=30, seed=SAMPLING.seed)
    heldout = {t.id for t in result.evaluation.texts}
    assert heldout and heldout <= set(first.ids)  # held out: drawn texts only

    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with _client() as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            key=ArtifactFilterKey(any_=["learning-curve"]),
        ))
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [r["annotations"] for r in rows] == [30, 45, 60]

    # a gate the first round's lower bound clears: one round, half the budget
    early = incubate(**{**incubate_args(mine_args, model_name="active-early"), "incubation": incubation_settings(active=active)})
    assert [row["annotations"] for row in early.learning_curve] == [30] and early.n_annotations == 30


def test_a_small_job_run_in_process_stores_what_the_execute_flow_stores(home, corpus, tiny_encoder_path):
    """The CLI's short path (`--local`, the default for small jobs) runs the flow's steps without
    Prefect: the same run id, the same rows, the same run record, the same result."""
    from falconer_core.execution.inprocess import execute_in_process
    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from flows import execute

    folder = Metamodel.from_base(str(tiny_encoder_path)).save(home / "inprocess-ckpt")
    ref = str(Registry.from_settings(Settings()).log_fine_tune(
        folder, model_name="inprocess", parent=None, base_model=None, plan=Plan.from_dict(PLAN),
        annotation_set_hash="none", n_annotations=0, annotator="human", corpus_id="test", settings={},
        metrics={"mean_f1": 0.0},
    ))
    by_flow = execute(ref, corpus, execution=ExecutionSettings(shard_size=50, run_id="small-flow", reuse=False))
    here = execute_in_process(model=ref, corpus=corpus, plan=None,
                              execution=ExecutionSettings(shard_size=50, run_id="small-here", reuse=False))
    ignored = {"run_id": True, "seconds": True, "drift": {"run_id"}}
    assert here.model_dump(exclude=ignored) == by_flow.model_dump(exclude=ignored)
    assert here.drift.status == "no reference"  # logged without one: a status, not an error
    assert here.shards_run == 3 and here.rows > N_TEXTS

    frame = outputs()
    key = ["shard", "text_id", "field", "step", "span_start", "span_end", "value"]

    def rows(run_id):
        found = frame[frame["run_id"] == run_id].drop(columns=["run_id", "created_at"])
        return found.sort_values(key).reset_index(drop=True)

    assert rows("small-here").equals(rows("small-flow"))
    with Store(Settings().store_path) as store:
        records = [store.run(run_id) for run_id in ("small-here", "small-flow")]
    for record in records:
        record["params"]["execution"].pop("run_id")
    varying = {"run_id", "started_at", "finished_at", "heartbeat_at"}
    assert [{k: v for k, v in r.items() if k not in varying} for r in records][0] == \
        {k: v for k, v in records[1].items() if k not in varying}

    # left to derive its run id, the short path names the run the flow would resume
    derived = execute_in_process(model=ref, corpus=corpus, plan=None, execution=ExecutionSettings(shard_size=50))
    resumed = execute(ref, corpus, execution=ExecutionSettings(shard_size=50))
    assert resumed.run_id == derived.run_id and resumed.shards_run == 0 and resumed.rows == derived.rows
