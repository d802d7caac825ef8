"""MLflow lineage on a real sqlite tracking database in a temporary folder.

A fresh MLflow database costs ~8 s of schema migrations, so one migrated (empty) database is
made per session and copied for each registry; every registry still gets its own file, its own
artifact folder and an explicit tracking URI.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

import falconer_core.registry as registry_pkg
from falconer_core.annotators.annotation import annotate_sample
from falconer_core.errors import ConfigError, ModelError
from falconer_core.evaluation import compare, score_texts
from falconer_core.metamodel import Metamodel
from falconer_core.plan import Plan
from falconer_core.registry import (
    ModelVersionRef,
    Registry,
    RegistryError,
    champion_alias,
    check_gate,
    parse_ref,
    render_lineage,
)
from falconer_core.registry import tags as T
from falconer_core.registry.redaction import is_secret_name, redact
from falconer_core.training import TrainingSettings, TrainingSummary
from falconer_core.types import SpanExample
from tests import talks as tk

PLAN = Plan.from_dict(
    {
        "instruction": "Find tweets that mention a place and extract the people they mention",
        "steps": [
            {"name": "mentions_place", "op": "label", "instruction": "Does this tweet mention a place?"},
            {"name": "person", "op": "span", "instruction": "Extract the people mentioned"},
        ],
        "filter": "mentions_place",
    }
)
SETTINGS = {"epochs": 1, "learning_rate": 1e-4, "batch_size": 4, "seed": 0}


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """An empty, fully migrated MLflow sqlite database to copy."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def new_registry(folder: Path, migrated_db: Path) -> Registry:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_db, folder / "mlflow.db")
    return Registry(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}", artifact_root=folder / "mlartifacts")


@pytest.fixture
def registry(tmp_path, migrated_db) -> Registry:
    return new_registry(tmp_path / "state", migrated_db)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_encoder_path) -> tuple[Path, dict]:
    """A tiny metamodel after a real one-epoch fine-tune, saved, with its training summary."""
    model = Metamodel.from_base(str(tiny_encoder_path))
    examples = [SpanExample("Ada met Alan in Paris.", "Extract the people mentioned", [])] * 4
    summary = model.fine_tune(examples, epochs=1, batch_size=4, progress=False)
    folder = model.save(tmp_path_factory.mktemp("ckpt") / "metamodel")
    return folder, asdict(summary)


@pytest.fixture
def annotations(tmp_path) -> Path:
    path = tmp_path / "annotations.jsonl"
    path.write_text(json.dumps({"text_id": "t1", "step": "person", "span_text": "Ada"}) + "\n")
    return path


def log(reg: Registry, folder: Path, parent=None, *, f1=0.8, n=64, annotator="human", **extra):
    kwargs = dict(
        model_name="tweets",
        parent=parent,
        base_model="tiny-bert",
        plan=PLAN,
        annotation_set_hash=f"ann{n}",
        n_annotations=n,
        annotator=annotator,
        corpus_id="btc-demo",
        settings=SETTINGS,
        metrics={"f1": f1, "accuracy": 0.9},
        summary=None,
        flow_run_id=f"flow-{n}",
    )
    kwargs.update(extra)
    return reg.log_fine_tune(folder, **kwargs)


@pytest.fixture(scope="module")
def retuned(tmp_path_factory, migrated_db, checkpoint):
    """A base fine-tune and two continual retunes, each from the one before."""
    folder, summary = checkpoint
    annotations = tmp_path_factory.mktemp("ann") / "annotations.jsonl"
    annotations.write_text('{"text_id": "t1", "step": "person", "span_text": "Ada"}\n')
    reg = new_registry(tmp_path_factory.mktemp("lineage"), migrated_db)
    annotations.write_text('{"text_id": "t1", "step": "person", "span_text": "Ada"}\n'
                           '{"text_id": "t2", "step": "person", "span_text": "Alan"}\n')
    v1 = log(reg, folder, None, f1=0.61, n=64, summary=summary, annotations_path=annotations, heldout_ids=["t2"])
    v2 = log(reg, folder, "tweets/1", f1=0.72, n=128, annotator="gpt-4o-mini")
    v3 = log(reg, folder, "tweets@latest", f1=0.75, n=256, annotator="gpt-4o-mini")
    return reg, [v1, v2, v3]


# ---------------------------------------------------------------------------------------------
# logging and tags
# ---------------------------------------------------------------------------------------------


def test_every_fine_tune_is_a_run_and_a_version_tagged_with_its_lineage(retuned):
    reg, refs = retuned
    assert [str(r) for r in refs] == ["tweets/1", "tweets/2", "tweets/3"]
    expected_parent = ["none", "tweets/1", "tweets/2"]
    for ref, parent, n in zip(refs, expected_parent, [64, 128, 256]):
        mv = reg.client.get_model_version("tweets", str(ref.version))
        assert set(T.LINEAGE_TAGS) <= set(mv.tags)
        assert mv.tags[T.PARENT_VERSION] == parent
        assert mv.tags[T.BASE_MODEL] == "tiny-bert"
        assert mv.tags[T.PLAN_HASH] == PLAN.hash
        assert mv.tags[T.ANNOTATION_SET_HASH] == f"ann{n}"
        assert mv.tags[T.N_ANNOTATIONS] == str(n)
        assert mv.tags[T.ANNOTATOR] == ("human" if n == 64 else "gpt-4o-mini")
        assert mv.tags[T.CORPUS_ID] == "btc-demo"
        assert mv.tags[T.FLOW_RUN_ID] == f"flow-{n}"
        assert mv.tags[T.MLFLOW_RUN_ID] == mv.run_id == ref.run_id
        assert float(mv.tags[T.METRIC_PREFIX + "f1"]) == {64: 0.61, 128: 0.72, 256: 0.75}[n]
        assert mv.source == f"runs:/{mv.run_id}/model"  # an MLflow pyfunc model holding the checkpoint

        run = reg.client.get_run(mv.run_id)
        assert run.info.status == "FINISHED"
        assert run.info.experiment_id == reg.experiment_id
        assert run.data.params["learning_rate"] == "0.0001"
        assert run.data.params["base_model"] == "tiny-bert"
        assert run.data.params["parent_version"] == parent
        assert run.data.metrics["f1"] == float(mv.tags[T.METRIC_PREFIX + "f1"])
        assert run.data.tags[T.MODEL_VERSION] == str(ref)
        assert run.data.tags[T.PLAN_HASH] == PLAN.hash

    first = reg.client.get_run(refs[0].run_id)
    assert first.data.metrics["f1"] == 0.61
    assert "train.best_epoch" in first.data.metrics
    artifacts = {a.path for a in reg.client.list_artifacts(refs[0].run_id)}
    assert artifacts == {"model", "plan.yaml", "training_summary.json", "annotations"}
    checkpoint_files = {Path(a.path).name for a in reg.client.list_artifacts(refs[0].run_id, "model/artifacts/checkpoint")}
    assert {"falconer.json", "config.json", "model.safetensors"} <= checkpoint_files
    # artifacts land in the registry's own folder, not ./mlruns
    root = Path(reg.artifact_location.removeprefix("file://"))
    assert (root / refs[0].run_id / "artifacts" / "plan.yaml").read_text() == PLAN.to_yaml()
    assert reg.client.get_experiment(reg.experiment_id).artifact_location == reg.artifact_location


def test_lineage_in_mlflow_terms_datasets_and_logged_models(retuned):
    reg, refs = retuned
    first = reg.client.get_run(refs[0].run_id)
    inputs = {i.dataset.name: i for i in first.inputs.dataset_inputs}
    training, heldout = inputs["annotations-ann64"], inputs["heldout-ann64"]
    assert training.dataset.digest == "ann64"  # the annotation set's own hash
    assert [(t.key, t.value) for t in training.tags] == [("mlflow.data.context", "training")]
    assert [(t.key, t.value) for t in heldout.tags] == [("mlflow.data.context", "evaluation")]
    assert json.loads(training.dataset.profile)["num_rows"] == 2 and json.loads(heldout.dataset.profile)["num_rows"] == 1
    models = [reg.client.get_model_version("tweets", str(r.version)).tags[T.LOGGED_MODEL_ID] for r in refs]
    for ref, model_id in zip(refs, models):
        run = reg.client.get_run(ref.run_id)
        assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
        assert reg.client.get_logged_model(model_id).source_run_id == ref.run_id
    assert first.inputs.model_inputs == []  # tuned from the base: no parent model
    for child, parent in zip(refs[1:], models):
        assert [m.model_id for m in reg.client.get_run(child.run_id).inputs.model_inputs] == [parent]


def test_log_fine_tune_fails_fast_on_bad_input(registry, checkpoint, tmp_path):
    folder, _ = checkpoint
    with pytest.raises(ModelError, match="not a Falconer checkpoint"):
        log(registry, tmp_path)
    with pytest.raises(ConfigError, match="bad model name"):
        log(registry, folder, model_name="a/b")
    with pytest.raises(RegistryError, match="no registered model named 'nope'"):
        log(registry, folder, parent="nope/1")
    with pytest.raises(ConfigError, match="must be a number"):
        log(registry, folder, metrics={"f1": "high"})
    with pytest.raises(ConfigError, match="annotations file not found"):
        log(registry, folder, annotations_path=tmp_path / "missing.jsonl")


def test_typed_inputs_are_accepted_and_base_model_read_from_the_checkpoint(registry, checkpoint):
    folder, summary = checkpoint
    ref = log(
        registry,
        folder,
        plan=PLAN.to_yaml(),
        base_model=None,
        settings=TrainingSettings(epochs=2),
        summary=TrainingSummary(**summary),
    )
    run = registry.client.get_run(ref.run_id)
    assert run.data.params["epochs"] == "2" and run.data.params["patience"] == "3"
    assert len(registry.client.get_metric_history(ref.run_id, "train.train_loss")) == len(summary["train_loss"])
    tags = registry.client.get_model_version("tweets", str(ref.version)).tags
    assert tags[T.PLAN_HASH] == PLAN.hash
    assert tags[T.BASE_MODEL] == json.loads((folder / "falconer.json").read_text())["base_model"]
    assert tags[T.FLOW_RUN_ID] == "flow-64"
    assert log(registry, folder, flow_run_id=None).version == 2
    assert registry.client.get_model_version("tweets", "2").tags[T.FLOW_RUN_ID] == "none"


# ---------------------------------------------------------------------------------------------
# lineage
# ---------------------------------------------------------------------------------------------


def test_lineage_runs_from_the_version_through_its_parents_to_the_base_model(retuned):
    reg, refs = retuned
    chain = reg.lineage("tweets/3")
    assert [e["ref"] for e in chain] == ["tweets/3", "tweets/2", "tweets/1", "tiny-bert"]
    assert [e["kind"] for e in chain] == ["version", "version", "version", "base"]
    assert [e["version"] for e in chain] == [3, 2, 1, None]
    assert [e["metrics"].get("f1") for e in chain[:3]] == [0.75, 0.72, 0.61]
    assert [e["tags"][T.N_ANNOTATIONS] for e in chain[:3]] == ["256", "128", "64"]
    assert [e["run_id"] for e in chain[:3]] == [r.run_id for r in reversed(refs)]
    assert all(e["created_at"].endswith("+00:00") for e in chain[:3])
    assert chain[0]["created_at"] >= chain[1]["created_at"] >= chain[2]["created_at"]
    assert reg.lineage("tweets/1")[-1] == chain[-1]
    assert [e["ref"] for e in reg.lineage("tweets")] == [e["ref"] for e in chain]  # latest

    text = render_lineage(chain)
    lines = text.splitlines()
    order = [next(i for i, line in enumerate(lines) if key in line) for key in ("tweets/3", "tweets/2", "tweets/1", "base model tiny-bert")]
    assert order == sorted(order)
    assert "annotator=gpt-4o-mini" in text and "annotations=64" in text and "f1=0.75" in text
    assert f"plan={PLAN.hash}" in text and "prefect flow run flow-256" in text


def test_lineage_survives_a_missing_parent(registry, checkpoint):
    folder, _ = checkpoint
    log(registry, folder)
    log(registry, folder, parent="tweets/1")
    registry.client.delete_model_version("tweets", "1")
    chain = registry.lineage("tweets/2")
    assert [(e["kind"], e["ref"]) for e in chain] == [("version", "tweets/2"), ("missing", "tweets/1")]
    assert "not in the registry" in render_lineage(chain)


# ---------------------------------------------------------------------------------------------
# aliases, promotion, resolution
# ---------------------------------------------------------------------------------------------


def test_promotion_gate_sets_candidate_always_and_champion_only_on_pass(registry, checkpoint):
    folder, _ = checkpoint
    for f1 in (0.80, 0.50):
        log(registry, folder, f1=f1)
    gate = {"f1": 0.7, "accuracy": 0.85}
    task = PLAN.hash

    passed = registry.promote("tweets", 1, {"f1": 0.80, "accuracy": 0.9}, gate)
    assert passed.champion and passed.previous_champion is None and passed.task == task
    assert passed.reasons == ("f1 = 0.8 >= 0.7", "accuracy = 0.9 >= 0.85", "no champion for this task yet")
    assert registry.resolve(f"tweets@champion-{task}").version == 1
    assert registry.resolve(f"tweets@candidate-{task}").version == 1
    assert registry.champion_of("tweets", task).version == 1

    failed = registry.promote("tweets", 2, None, gate)  # metrics read from the run
    assert not failed.champion and failed.previous_champion == 1
    assert "f1 = 0.5 < 0.7" in failed.reasons
    assert registry.resolve(f"tweets@candidate-{task}").version == 2
    assert registry.resolve(f"tweets@champion-{task}").version == 1
    assert registry.resolve("tweets").version == 1  # bare name: the newest task champion
    tags = registry.client.get_model_version("tweets", "2").tags
    assert tags[T.PROMOTION] == "rejected" and "f1 = 0.5 < 0.7" in tags[T.PROMOTION_REASONS]
    assert json.loads(tags[T.PROMOTION_GATE]) == gate and tags[T.PROMOTION_TASK] == task
    assert registry.client.get_model_version("tweets", "1").tags[T.PROMOTION] == "champion"

    missing = registry.promote("tweets", 2, {"f1": 0.9}, gate)
    assert not missing.champion and "accuracy missing (gate >= 0.85)" in missing.reasons
    assert registry.resolve("tweets@champion").version == 1  # champion of the most tasks


def test_two_tasks_keep_two_champions(registry, checkpoint):
    folder, _ = checkpoint
    other = Plan.from_dict({"steps": [{"name": "person", "op": "span", "instruction": "Extract the people"}]})
    log(registry, folder)
    log(registry, folder, plan=other)
    for version in (1, 2):
        assert registry.promote("tweets", version, {"f1": 0.8}, {"f1": 0.5}).champion
    assert registry.champion_of("tweets", PLAN.hash).version == 1
    assert registry.champion_of("tweets", other.hash).version == 2
    assert registry.champion_of("tweets", "no-such-task") is None
    assert registry.champion_of("no-such-model", PLAN.hash) is None
    assert registry.resolve("tweets").version == 2
    assert registry.resolve("tweets@champion").version == 1  # one task each: `champion` stays where it was


def _scored(runner, n=40):
    """An evaluation of `runner` against the rule annotator on `n` talks (the same texts each call)."""
    texts = [f"Speaker: Ada Byron{i}. Ada Byron{i} is a mathematician who talks about science." for i in range(n)]
    annotations = annotate_sample(tk.TALKS, [f"t{i}" for i in range(n)], texts, tk.RuleRunner(), annotator="rules")
    return score_texts(runner, annotations)


class _Mute(tk.RuleRunner):
    def get_span(self, texts, instruction):
        return [[] for _ in texts]


def test_a_champion_is_replaced_only_by_a_candidate_not_worse_beyond_the_noise(registry, checkpoint):
    folder, _ = checkpoint
    for _ in range(4):
        log(registry, folder)
    good, bad = _scored(tk.RuleRunner()), _scored(_Mute())
    floor = {"f1": 0.0}
    assert registry.promote("tweets", 1, {"f1": 1.0}, floor).champion

    worse = registry.promote("tweets", 2, {"f1": 1.0}, floor, compare(bad, good, "tweets/1"))
    assert not worse.champion and "worse beyond the noise" in worse.reasons[-1]
    assert registry.champion_of("tweets", PLAN.hash).version == 1
    comparison = json.loads(registry.client.get_model_version("tweets", "2").tags[T.PROMOTION_COMPARISON])
    assert comparison["incumbent"] == "tweets/1" and comparison["hi"] < 0

    unchecked = registry.promote("tweets", 3, {"f1": 1.0}, floor)  # no comparison: the champion stays
    assert not unchecked.champion and "no paired comparison" in unchecked.reasons[-1]
    stale = registry.promote("tweets", 3, {"f1": 1.0}, floor, compare(good, good, "tweets/2"))
    assert not stale.champion and "run again" in stale.reasons[-1]

    as_good = registry.promote("tweets", 4, {"f1": 1.0}, floor, compare(good, good, "tweets/1"))
    assert as_good.champion and "not worse beyond the noise" in as_good.reasons[-1]
    assert registry.champion_of("tweets", PLAN.hash).version == 4
    shown = render_lineage(registry.lineage("tweets/2"))
    assert "promotion: not promoted" in shown and "worse beyond the noise" in shown


def test_check_gate_edge_cases():
    assert check_gate({"f1": 0.7}, {"f1": 0.7}) == (True, ["f1 = 0.7 >= 0.7"])
    assert check_gate({}, {}) == (True, ["no gate: nothing to check"])
    assert check_gate({"f1": float("nan")}, {"f1": 0.1})[0] is False
    with pytest.raises(ConfigError):
        check_gate({"f1": 0.7}, {"f1": "high"})


def test_resolve_accepts_alias_version_and_bare_name_refs(registry, checkpoint):
    folder, _ = checkpoint
    for _ in range(3):
        ref = log(registry, folder)
    assert registry.resolve("tweets") == ModelVersionRef("tweets", 3)  # no champion: latest
    assert registry.resolve("tweets/2") == ModelVersionRef("tweets", 2)
    assert registry.resolve("models:/tweets/2").version == 2
    assert registry.resolve(ref).run_id == ref.run_id
    assert registry.resolve("tweets@latest").version == 3

    aliased = registry.set_alias("tweets", "staging", 2)
    assert aliased.aliases == ("staging",)
    assert registry.resolve("tweets@staging").version == 2
    registry.set_alias("tweets", champion_alias(PLAN.hash), 1)
    assert registry.resolve("tweets").version == 1
    assert [r.version for r in registry.versions("tweets")] == [3, 2, 1]

    with pytest.raises(RegistryError, match="no alias 'prod'"):
        registry.resolve("tweets@prod")
    with pytest.raises(RegistryError, match="no version 9"):
        registry.resolve("tweets/9")
    with pytest.raises(RegistryError, match="no registered model named 'other'.*tweets"):
        registry.resolve("other")
    with pytest.raises(ConfigError, match="reserved"):
        registry.set_alias("tweets", "latest", 1)


def test_parse_ref():
    assert parse_ref("m") == ("m", None, None)
    assert parse_ref("m@champion") == ("m", None, "champion")
    assert parse_ref("m/12") == ("m", 12, None)
    assert parse_ref("models:/m@a") == ("m", None, "a")
    assert parse_ref(ModelVersionRef("m", 3)) == ("m", 3, None)
    for bad in ("", "m/x", "/3", "m@", "@a"):
        with pytest.raises(RegistryError):
            parse_ref(bad)
    assert str(ModelVersionRef("m", 3)) == "m/3" and ModelVersionRef("m", 3).uri == "models:/m/3"


# ---------------------------------------------------------------------------------------------
# download
# ---------------------------------------------------------------------------------------------


def test_download_gives_a_folder_metamodel_load_reads(registry, checkpoint, tmp_path):
    folder, _ = checkpoint
    log(registry, folder)
    registry.set_alias("tweets", "champion", 1)

    cached = registry.download("tweets@champion")
    assert cached.parent.parent == registry.cache_dir
    assert registry.download("tweets/1") == cached  # second call reuses the cache
    loaded = Metamodel.load(cached)
    original = Metamodel.load(folder)
    texts = ["Ada met Alan in Paris.", "Nothing here."]
    assert loaded.get_span(texts, "Extract the people") == original.get_span(texts, "Extract the people")
    assert loaded.config == original.config

    dst = registry.download("tweets", tmp_path / "exported")
    assert dst == tmp_path / "exported" and (dst / "falconer.json").is_file()
    Metamodel.load(dst)
    with pytest.raises(ConfigError, match="not an empty folder"):
        registry.download("tweets", dst)


# ---------------------------------------------------------------------------------------------
# secrets
# ---------------------------------------------------------------------------------------------


def test_an_api_key_never_reaches_the_database_or_the_artifacts(registry, checkpoint, annotations, monkeypatch):
    secret = "sk-proj-TESTSECRET0123456789abcdefXYZ"
    literal = "sk-ant-LITERALKEY0123456789abcdef"  # key-shaped, not in the environment
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    folder, summary = checkpoint
    settings = {
        **SETTINGS,
        "api_key": secret,
        "llm": {"model": "gpt-4o-mini", "openai_api_key": secret, "headers": {"Authorization": f"Bearer {secret}"}},
        "base_url": f"https://llm.example/v1?key={secret}",
        "note": f"copied {literal} by mistake",
    }
    ref = log(
        registry,
        folder,
        settings=settings,
        summary={**summary, "api_key": secret, "comment": f"key={secret}"},
        annotator=f"gpt-4o-mini ({secret})",
        annotations_path=annotations,
    )
    registry.promote("tweets", ref.version, None, {"f1": 0.5})
    registry.lineage(ref)

    params = registry.client.get_run(ref.run_id).data.params
    assert params["llm.model"] == "gpt-4o-mini"
    assert "api_key" not in params and "llm.openai_api_key" not in params
    assert params["base_url"] == "https://llm.example/v1?key=[redacted]"
    assert params["note"] == "copied [redacted] by mistake"

    state = Path(registry.tracking_uri.removeprefix("sqlite:///")).parent
    files = [p for p in state.rglob("*") if p.is_file()]
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "plan.yaml" for p in files)
    for path in files:
        data = path.read_bytes()
        assert secret.encode() not in data, path
        assert literal.encode() not in data, path


def test_a_checkpoint_holding_the_key_is_refused(registry, checkpoint, tmp_path, monkeypatch):
    secret = "sk-proj-TESTSECRET0123456789abcdefXYZ"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    leaky = shutil.copytree(checkpoint[0], tmp_path / "leaky")
    (leaky / "notes.txt").write_text(f"OPENAI_API_KEY={secret}\n")
    with pytest.raises(ConfigError, match=r"notes.txt contains the value of \$OPENAI_API_KEY"):
        log(registry, leaky)
    assert registry.client.search_runs([registry.experiment_id]) == []


def test_secret_names_and_values():
    for name in ("OPENAI_API_KEY", "api-key", "llm.auth_token", "HF_TOKEN", "aws_secret_access_key", "password"):
        assert is_secret_name(name), name
    for name in ("max_tokens", "tokenizer", "TOKENIZERS_PARALLELISM", "n_annotations", "learning_rate"):
        assert not is_secret_name(name), name
    assert redact("use hf_abcdefghijklmnopqrstuvwxyz please") == "use [redacted] please"
    assert redact("Authorization: Bearer abc.def-ghi123") == "Authorization: [redacted]"
    assert redact("plain text", ["secretvalue"]) == "plain text"


# ---------------------------------------------------------------------------------------------
# defaults and the package surface
# ---------------------------------------------------------------------------------------------


def test_default_registry_is_embedded_under_dot_falconer(tmp_path, migrated_db, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / ".falconer").mkdir()
    shutil.copy(migrated_db, tmp_path / ".falconer" / "mlflow.db")
    reg = Registry()
    assert reg.tracking_uri == f"sqlite:///{tmp_path / '.falconer' / 'mlflow.db'}"
    experiment = reg.client.get_experiment(reg.experiment_id)
    assert experiment.artifact_location == (tmp_path / ".falconer" / "mlartifacts").as_uri()
    assert reg.cache_dir == tmp_path / ".falconer" / "checkpoints"

    other = tmp_path / "elsewhere"
    other.mkdir()
    shutil.copy(migrated_db, other / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other / 'mlflow.db'}")
    assert Registry().tracking_uri == f"sqlite:///{other / 'mlflow.db'}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".falconer", "elsewhere"]  # no ./mlruns


def test_checkpoint_config_name_matches_the_metamodel():
    from falconer_core.metamodel.model import CONFIG_FILE
    from falconer_core.registry.artifacts import CHECKPOINT_CONFIG

    assert CHECKPOINT_CONFIG == CONFIG_FILE


def test_importing_the_registry_does_not_import_mlflow_or_torch():
    code = "import sys, falconer_core.registry; print('mlflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.split() == ["False", "False"]


def test_public_api_is_pinned():
    assert sorted(registry_pkg.__all__) == [
        "CANDIDATE",
        "CHAMPION",
        "DEFAULT_EXPERIMENT",
        "DEFAULT_GATE",
        "ModelVersionRef",
        "PLAN_ARTIFACT",
        "PromotionDecision",
        "Registration",
        "Registry",
        "RegistryError",
        "SUMMARY_ARTIFACT",
        "candidate_alias",
        "champion_alias",
        "check_gate",
        "parse_ref",
        "register_checkpoint",
        "render_lineage",
    ]


# ---------------------------------------------------------------------------------------------
# registering a checkpoint (what the `register` task does), retried
# ---------------------------------------------------------------------------------------------


def test_register_is_idempotent_when_promotion_fails_after_the_version_exists(
    tmp_path, migrated_db, checkpoint, monkeypatch
):
    from falconer_core.errors import TransientError
    from falconer_core.evaluation.scoring import Evaluation, StepScore
    from falconer_core.registry.registration import REGISTRATION_KEY
    from falconer_core.settings import Settings
    from falconer_core.training import Checkpoint
    from tests import talks as tk

    folder, summary = checkpoint
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(migrated_db, home / "mlflow.db")
    settings = Settings(home=home)
    annotations = tk.annotated_talks()
    ckpt = Checkpoint(
        path=str(folder), key="ckpt-key", base_model="tiny-bert", parent=None, plan_hash=annotations.plan.hash,
        annotation_set_hash=annotations.hash, annotator="rules", n_annotations=3, train_ids=["a", "b"],
        heldout_ids=["c"], n_examples=5, training=SETTINGS, summary=summary,
    )
    evaluation = Evaluation(scores=[StepScore(step="speaker", op="span", predictor="proxy", reference="rules",
                                              n=1, f1=0.9)], n_texts=1, seconds=0.1)
    real_promote = Registry.promote
    attempts = {"n": 0}

    def promote_fails_once(self, *args, **kwargs):
        attempts["n"] += 1
        if attempts["n"] == 1:
            raise TransientError("the tracking server went away after the version was created")
        return real_promote(self, *args, **kwargs)

    def register(checkpoint=ckpt):
        return registry_pkg.register_checkpoint(
            settings, checkpoint, annotations, evaluation, model_name="tweets", corpus_id="c1",
            gate={"mean_f1": 0.5}, flow_run_id=None,
        )

    monkeypatch.setattr(Registry, "promote", promote_fails_once)
    with pytest.raises(TransientError):
        register()
    registry = Registry.from_settings(settings)
    assert len(registry.versions("tweets")) == 1  # the version exists, unpromoted
    result = register()  # the retry
    (only,) = registry.versions("tweets")
    assert result.version == str(only) == "tweets/1" and result.champion and attempts["n"] == 2
    assert registry.client.get_model_version("tweets", "1").tags[REGISTRATION_KEY]
    assert len(registry.client.search_runs([registry.experiment_id])) == 1
    # another checkpoint is another version
    assert register(ckpt.model_copy(update={"key": "other-key"})).version == "tweets/2"


def test_a_run_ends_failed_when_logging_it_fails_and_finished_otherwise():
    from types import SimpleNamespace

    from falconer_core.registry.runlog import open_run

    class Client:
        ended: list[tuple[str, str]] = []

        def create_run(self, experiment_id, run_name, tags):
            return SimpleNamespace(info=SimpleNamespace(run_id=run_name))

        def set_terminated(self, run_id, status):
            self.ended.append((run_id, status))

    client = Client()
    with open_run(client, "0", "ok", {}) as run_id:
        assert run_id == "ok"
    with pytest.raises(RuntimeError), open_run(client, "0", "broken", {}):
        raise RuntimeError("artifact store down")
    assert client.ended == [("ok", "FINISHED"), ("broken", "FAILED")]
