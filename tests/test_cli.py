"""The `falconer` command line through typer's CliRunner: help, one clean error line (exit 2,
no traceback) for every corpus and plan problem, `outputs` queries and exports, `lineage`, and
`mine` → `outputs` → `execute` → `evaluate` → `lineage` on the tiny encoder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from falconer_cli.app import USER_ERROR
from falconer_cli.main import app
from falconer_core.data import DEMO_PLAN_PATH as DEMO_PLAN
from tests.mining_corpus import INSTRUCTION, tweets

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_clean_error(result, *phrases: str) -> None:
    """Exit 2, one `error: …` line on stderr with each phrase, and no traceback anywhere."""
    assert result.exit_code == USER_ERROR, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, (phrase, result.stderr)
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A Falconer home of its own (the CLI reads FALCONER_HOME when a command runs)."""
    folder = tmp_path / "home"
    monkeypatch.setenv("FALCONER_HOME", str(folder))
    return folder


# -- help and startup ------------------------------------------------------------------------------


def test_help_lists_every_command():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("demo", "mine", "plan", "execute", "evaluate", "outputs", "lineage", "serve", "deploy"):
        assert command in result.output
    assert "metamodel-demo" not in result.output  # measuring the metamodel is benchmarks/fewshot.py's job


def test_importing_the_cli_loads_no_heavy_library():
    """`falconer --help` stays quick because no command module imports these at load time."""
    heavy = ["torch", "transformers", "prefect", "mlflow", "pandas", "duckdb"]
    code = f"import sys, falconer_cli.main; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- corpus and plan errors: one line, exit 2 ------------------------------------------------------


@pytest.fixture
def corpora(tmp_path) -> dict[str, Path]:
    """One broken corpus per problem `load_corpus` reports."""
    folder = tmp_path / "corpora"
    folder.mkdir()
    (folder / "ok.csv").write_text("id,text\na,first\nb,second\n", "utf-8")
    (folder / "empty.csv").write_text("id,text\n", "utf-8")
    (folder / "blank.csv").write_text("", "utf-8")
    (folder / "dupes.csv").write_text("id,text\na,one\na,two\nb,three\n", "utf-8")
    (folder / "latin1.csv").write_bytes("id,text\na,café\n".encode("latin-1"))
    (folder / "bad.jsonl").write_text('{"text": "fine"}\nnot json\n', "utf-8")
    (folder / "notes.docx").write_text("whatever", "utf-8")
    (folder / "no_txt").mkdir()
    (folder / "no_txt" / "readme.md").write_text("hi", "utf-8")
    (folder / "bad_txt").mkdir()
    (folder / "bad_txt" / "a.txt").write_bytes(b"ok \xff\xfe bytes")
    return {p.name: p for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("name", "extra", "phrases"),
    [
        ("missing.csv", [], ["corpus not found", "missing.csv"]),
        ("ok.csv", ["--text-column", "body", "--id-column", "id"], ["no text column 'body'", "['id', 'text']"]),
        ("ok.csv", ["--id-column", "key"], ["no id column 'key'"]),
        ("empty.csv", ["--id-column", "id"], ["is empty"]),
        ("blank.csv", [], ["is empty"]),
        ("dupes.csv", ["--id-column", "id"], ["occur more than once", "'a' ×2"]),
        ("latin1.csv", ["--id-column", "id"], ["not valid UTF-8", "0xe9"]),
        ("bad.jsonl", [], ["line 2: not valid JSON"]),
        ("notes.docx", [], ["unsupported suffix '.docx'"]),
        ("no_txt", [], ["holds no .txt files"]),
        ("bad_txt", [], ["not valid UTF-8", "0xff"]),
        ("no_txt", ["--id-column", "id"], ["folder of .txt files"]),
    ],
)
def test_mine_reports_each_corpus_problem_in_one_clean_line(corpora, tmp_path, name, extra, phrases):
    path = corpora.get(name, tmp_path / "corpora" / name)
    result = invoke("mine", INSTRUCTION, "--corpus", path, *extra)
    assert_clean_error(result, *phrases)


@pytest.mark.parametrize("command", ["execute", "evaluate"])
def test_execute_and_evaluate_check_the_corpus_before_anything_else(command, corpora):
    result = invoke(command, "falconer-metamodel", "--corpus", corpora["dupes.csv"], "--id-column", "id")
    assert_clean_error(result, "occur more than once")


def test_a_bad_plan_file_is_a_clean_error(corpora, tmp_path):
    missing = invoke("mine", "--plan", tmp_path / "nope.yaml", "--corpus", corpora["ok.csv"], "--id-column", "id")
    assert_clean_error(missing, "plan file not found")
    broken = tmp_path / "broken.yaml"
    broken.write_text("steps:\n- name: x\n  op: guess\n  instruction: Is it?\n", "utf-8")
    invalid = invoke("mine", "--plan", broken, "--corpus", corpora["ok.csv"], "--id-column", "id")
    assert_clean_error(invalid)


def test_mine_needs_an_instruction_or_a_plan(corpora):
    assert_clean_error(invoke("mine", "--corpus", corpora["ok.csv"]), "INSTRUCTION", "--plan")


# -- plan, serve, deploy ---------------------------------------------------------------------------


def test_plan_asks_the_endpoint_and_saves_the_plan(home, tmp_path, monkeypatch):
    from falconer_core.plan import Plan
    from tests.llm_server import ScriptedLLMServer, answer
    from tests.mining_corpus import PLAN

    target = tmp_path / "plan.yaml"
    with ScriptedLLMServer(handler=lambda body: answer(PLAN)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
        result = invoke("plan", INSTRUCTION, "--output-spec", "people", "-o", target)
        assert server.calls == 1
    assert result.exit_code == 0, (result.output, result.exception)
    assert "mentions_place" in result.stdout and "saved to" in result.stdout
    saved = Plan.load(target)
    assert [s.name for s in saved.steps] == ["mentions_place", "people"]
    assert saved.instruction == INSTRUCTION


def test_plan_reports_an_unreachable_endpoint_cleanly(home, monkeypatch):
    from deployments.server import free_port

    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    monkeypatch.setenv("FALCONER_LLM_MAX_RETRIES", "0")
    assert_clean_error(invoke("plan", INSTRUCTION, "--llm", "openai"))


def test_deploy_without_a_server_says_how_to_start_one():
    from deployments.server import free_port

    result = invoke("deploy", "--api-url", f"http://127.0.0.1:{free_port()}/api")
    assert_clean_error(result, "no Prefect server answers", "falconer serve")


def test_serve_on_a_busy_port_is_a_clean_error():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = invoke("serve", "--port", str(busy.getsockname()[1]))
    assert_clean_error(result, "already in use")


# -- outputs ---------------------------------------------------------------------------------------


@pytest.fixture
def store_path(home) -> Path:
    """A small store: one corpus, one completed run with two shards of outputs."""
    from falconer_core.corpus import corpus_from_frame
    from falconer_core.store import Store

    corpus = corpus_from_frame(pd.DataFrame({"id": ["t1", "t2", "t3"], "text": [
        "Ada Lovelace visited Paris", "nothing here", "Alan Turing in London"]}), id_column="id")
    path = home / "falconer.duckdb"
    with Store(path) as db:
        cid = db.upsert_corpus(corpus, name="small")
        db.upsert_run("run-a", "execute", status="completed", plan_hash="p1", model_version="m/1", corpus_id=cid)
        db.write_outputs("run-a", 0, pd.DataFrame([
            {"text_id": "t1", "field": "_filter", "value": True},
            {"text_id": "t1", "field": "people", "value": "Ada Lovelace", "span_start": 0, "span_end": 12, "confidence": 0.9},
            {"text_id": "t2", "field": "_filter", "value": False},
        ]))
        db.write_outputs("run-a", 1, pd.DataFrame([
            {"text_id": "t3", "field": "_filter", "value": True},
            {"text_id": "t3", "field": "people", "value": "Alan Turing", "span_start": 0, "span_end": 11, "confidence": 0.8},
        ]))
    return path


def test_outputs_prints_the_newest_run_with_its_texts(store_path):
    result = invoke("outputs")
    assert result.exit_code == 0, result.output
    assert "Ada Lovelace" in result.stdout and "Alan Turing" in result.stdout
    assert "visited" in result.stdout  # the source text, joined from the corpus
    assert "texts passing the filter" in result.stdout
    assert "run-a" in result.stderr


def test_outputs_join_texts_from_a_snapshot(store_path, tmp_path):
    """A snapshotted corpus keeps its texts in its Parquet file; outputs still show them."""
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.store import Store

    source = tmp_path / "snap.csv"
    pd.DataFrame({"id": ["s1"], "text": ["Grace Hopper wrote a compiler"]}).to_csv(source, index=False)
    snapshot = snapshot_corpus(CorpusSource(path=str(source), id_column="id"), tmp_path / "corpora")
    with Store(store_path) as db:
        db.register_corpus(snapshot)
        db.upsert_run("run-snap", "execute", status="completed", corpus_id=snapshot.corpus_id)
        db.write_outputs("run-snap", 0, pd.DataFrame([{"text_id": "s1", "field": "people", "value": "Grace Hopper"}]))
        assert db.query("SELECT count(*) AS n FROM corpus_texts WHERE corpus_id = ?", [snapshot.corpus_id])["n"][0] == 0
    result = invoke("outputs", "--run-id", "run-snap")
    assert result.exit_code == 0, result.output
    assert "compiler" in result.stdout


def test_runs_lists_status_and_progress(store_path):
    from falconer_core.store import Store

    with Store(store_path) as db:
        db.upsert_run("run-b", "execute", status="running", model_version="m/2")
        db.set_run_size("run-b", n_shards=4, n_texts=4000)
    result = invoke("runs", "--stale-after", "3600")
    assert result.exit_code == 0, result.output
    assert "run-b" in result.stdout and "running" in result.stdout and "0/4" in result.stdout
    assert "run-a" in result.stdout and "completed" in result.stdout
    time.sleep(1.1)
    stale = invoke("runs", "--stale-after", "1")
    assert "stale" in stale.stdout


@pytest.mark.parametrize("suffix", ["csv", "parquet", "jsonl"])
def test_outputs_export_round_trips(store_path, tmp_path, suffix):
    from falconer_core.store import Store

    target = tmp_path / f"out.{suffix}"
    result = invoke("outputs", "--run-id", "run-a", "--export", target)
    assert result.exit_code == 0, result.output
    assert "wrote 5 output rows" in result.stdout
    read = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[suffix]
    exported = read(target)
    with Store(store_path) as db:
        stored = db.outputs("run-a")
    assert list(exported.columns) == list(stored.columns)
    key = ["text_id", "field", "value"]
    assert exported[key].astype(str).values.tolist() == stored[key].astype(str).values.tolist()


def test_outputs_errors_are_clean(store_path, tmp_path):
    assert_clean_error(invoke("outputs", "--run-id", "nope"), "no outputs for run 'nope'", "run-a")
    assert_clean_error(invoke("outputs", "--store", tmp_path / "none.duckdb"), "no Falconer store")
    assert_clean_error(invoke("outputs", "--export", tmp_path / "out.xlsx"), "unknown format")


# -- lineage ---------------------------------------------------------------------------------------


def test_lineage_without_a_registry_is_a_clean_error(home):
    assert_clean_error(invoke("lineage", "falconer-metamodel"), "no MLflow registry")


@pytest.fixture(scope="module")
def mined(prefect_harness, tmp_path_factory, tiny_encoder_path):
    """One real `mine` through the CLI on the tiny encoder: (home, corpus path, CliRunner result)."""
    from prefect.logging.configuration import ensure_logging_setup

    ensure_logging_setup()  # bind Prefect's terminal handler to pytest's stderr, not a CliRunner stream
    home = tmp_path_factory.mktemp("cli-home")
    corpus = home / "tweets.csv"
    tweets(60).to_csv(corpus, index=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FALCONER_HOME", str(home))
        patch.delenv("OPENAI_API_KEY", raising=False)
        patch.delenv("OPENAI_BASE_URL", raising=False)
        result = invoke(
            "mine", INSTRUCTION, "--corpus", corpus, "--id-column", "tweet_id", "--plan", DEMO_PLAN,
            "--annotator", "gold", "--base-model", tiny_encoder_path, "--epochs", "2",
            "--sample-fraction", "0.5", "--shard-size", "25", "--records", "3",
        )
        yield home, corpus, result


class TestMinedEndToEnd:
    """Every command that reads what a real `mine` left: outputs, lineage, execute, evaluate."""

    def test_mine_prints_records_scores_and_where_to_look(self, mined):
        home, _, result = mined
        assert result.exit_code == 0, (result.output, result.exception)
        out = result.stdout
        assert "mined records" in out and "proxy vs its supervision" in out
        assert "proxy F1 against human" in out and "95% interval" in out and "(end to end)" in out
        assert re.search(r"proxy F1 against human: [\d.]+ \[[\d.]+, [\d.]+\]", out), out
        for place in ("DuckDB", "MLflow", "Prefect", "falconer-metamodel/1", "mlflow ui"):
            assert place in out
        assert (home / "falconer.duckdb").is_file()

    def test_outputs_and_lineage_read_the_mined_run(self, mined, monkeypatch):
        home, _, _ = mined
        monkeypatch.setenv("FALCONER_HOME", str(home))
        shown = invoke("outputs", "--field", "_filter", "--limit", "100")
        assert shown.exit_code == 0, shown.output
        assert "texts" in shown.stdout and "60" in shown.stdout
        chain = invoke("lineage", "falconer-metamodel/1")
        assert chain.exit_code == 0, chain.output
        assert "falconer-metamodel/1" in chain.stdout and "annotator=human" in chain.stdout
        assert "└── base model" in chain.stdout
        assert re.search(r"mean_f1=[\d.]+ \[[\d.]+, [\d.]+\]", chain.stdout), chain.stdout
        assert re.search(r"end_to_end_f1=[\d.]+ \[[\d.]+, [\d.]+\]", chain.stdout), chain.stdout
        assert "promotion: " in chain.stdout and "no champion for this task yet" in chain.stdout

    def test_lineage_prints_a_retuned_chain(self, mined, monkeypatch, tmp_path, tiny_encoder_path):
        """A child version registered on top of the mined one prints above it, then the base."""
        from falconer_core.metamodel import Metamodel
        from falconer_core.plan import Plan
        from falconer_core.registry import Registry
        from falconer_core.settings import Settings

        home, _, _ = mined
        monkeypatch.setenv("FALCONER_HOME", str(home))
        checkpoint = Metamodel.from_base(str(tiny_encoder_path)).save(tmp_path / "child")
        child = Registry.from_settings(Settings()).log_fine_tune(
            checkpoint, model_name="falconer-metamodel", parent="falconer-metamodel/1", base_model=None,
            plan=Plan.load(DEMO_PLAN), annotation_set_hash="child-set", n_annotations=7, annotator="human",
            corpus_id="c-child", settings={"epochs": 1}, metrics={"mean_f1": 0.5},
        )
        result = invoke("lineage", str(child))
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        first = next(i for i, line in enumerate(lines) if line.startswith("falconer-metamodel/2"))
        parent = next(i for i, line in enumerate(lines) if "└── falconer-metamodel/1" in line)
        base = next(i for i, line in enumerate(lines) if "└── base model" in line)
        assert first < parent < base
        as_json = json.loads(invoke("lineage", str(child), "--json").stdout)
        assert [entry["kind"] for entry in as_json] == ["version", "version", "base"]

    def test_execute_and_evaluate_use_the_registered_model(self, mined, monkeypatch):
        home, corpus, _ = mined
        monkeypatch.setenv("FALCONER_HOME", str(home))
        executed = invoke("execute", "falconer-metamodel/1", "--corpus", corpus, "--id-column", "tweet_id",
                          "--run-id", "cli-exec", "--shard-size", "30")
        assert executed.exit_code == 0, (executed.output, executed.exception)
        assert "run cli-exec" in executed.stdout
        assert "running here without a Prefect server" in executed.stderr  # a small job: the short path
        assert "no flow run: a small job ran in this process" in executed.stdout
        as_flow = invoke("execute", "falconer-metamodel/1", "--corpus", corpus, "--id-column", "tweet_id",
                         "--run-id", "cli-exec-flow", "--shard-size", "30", "--flow")
        assert as_flow.exit_code == 0, (as_flow.output, as_flow.exception)
        assert "run cli-exec-flow" in as_flow.stdout and "without a Prefect server" not in as_flow.output
        assert "flow run " in as_flow.stdout
        evaluated = invoke("evaluate", "falconer-metamodel/1", "--corpus", corpus, "--id-column", "tweet_id",
                           "--annotator", "gold", "--sample-fraction", "0.5")
        assert evaluated.exit_code == 0, (evaluated.output, evaluated.exception)
        assert "vs human" in evaluated.stdout
        missing = invoke("execute", "no-such-model", "--corpus", corpus, "--id-column", "tweet_id")
        assert_clean_error(missing, "no-such-model")


def test_home_option_sets_falconer_home(store_path, monkeypatch):
    monkeypatch.setenv("FALCONER_HOME", "/nonexistent-falconer-home")
    result = invoke("--home", store_path.parent, "outputs")
    assert result.exit_code == 0, result.output
    assert "Ada Lovelace" in result.stdout

