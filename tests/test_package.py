"""The library as a whole: its public API, what importing it loads, and one instruction's route
through the core without Prefect."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import falconer_core
from falconer_core.annotators.annotation import annotate_sample, build_annotator
from falconer_core.annotators.choice import AnnotatorChoice
from falconer_core.execution.outputs import FILTER_FIELD
from falconer_core.execution.shards import execute_shard
from falconer_core.metamodel.source import ModelSource
from falconer_core.plan import Plan
from falconer_core.training.split import HoldoutSettings
from tests.mining_corpus import PLAN, tweets

ROOT = Path(__file__).resolve().parents[1]


def _loaded_after(statement: str, modules: list[str]) -> dict[str, bool]:
    """Which of `modules` a fresh interpreter has loaded after running `statement`."""
    probe = f"import sys; {statement}; print(' '.join(str(m in sys.modules) for m in {modules!r}))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return dict(zip(modules, (v == "True" for v in done.stdout.split())))


def test_public_api_is_pinned():
    assert sorted(falconer_core.__all__) == [
        "ConfigError", "CorpusError", "FalconerError", "LLMError", "LabelExample", "LabelResult", "Metamodel",
        "ModelError", "Plan", "PlanError", "Runner", "Settings", "Span", "SpanExample", "StoreBusyError",
        "StoreError", "TrainingSettings", "TransientError", "TransientLLMError", "execute_plan", "load_corpus",
    ]
    for name in falconer_core.__all__:  # every exported name resolves (lazy ones too)
        assert getattr(falconer_core, name) is not None


def test_one_package_per_stage_and_no_pipeline_grab_bag():
    packages = {m.name for m in pkgutil.iter_modules(falconer_core.__path__) if m.ispkg}
    assert {"plan", "corpus", "annotators", "llm", "metamodel", "training", "sampling", "evaluation", "registry",
            "execution", "cascade", "store", "reporting"} <= packages
    assert "pipeline" not in packages
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("falconer_core.pipeline")


def test_every_module_imports_on_its_own():
    names = [m.name for m in pkgutil.walk_packages(falconer_core.__path__, "falconer_core.")]
    code = "import importlib\n" + "\n".join(f"importlib.import_module({n!r})" for n in names)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def test_core_imports_no_prefect():
    loaded = _loaded_after("import falconer_core.annotators, falconer_core.execution, falconer_core.store, "
                           "falconer_core.registry, falconer_core.reporting, falconer_core.training", ["prefect"])
    assert loaded == {"prefect": False}


def test_orchestration_imports_no_torch_or_transformers():
    loaded = _loaded_after("import flows, tasks", ["torch", "transformers", "prefect"])
    assert loaded == {"torch": False, "transformers": False, "prefect": True}


def test_one_instruction_from_a_file_to_store_rows_without_prefect(tiny_encoder_path, tmp_path):
    """The route of `falconer mine` through the core alone: snapshot, sample rows, annotate,
    fine-tune, evaluate, execute a shard into a part, commit it to DuckDB."""
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.evaluation.scoring import evaluate_model
    from falconer_core.execution import make_shards, read_part
    from falconer_core.store import Store
    from falconer_core.training import TrainingSettings
    from falconer_core.training.checkpoint import fine_tune_checkpoint

    tweets(60).to_csv(tmp_path / "tweets.csv", index=False)
    corpus = snapshot_corpus(CorpusSource(path=str(tmp_path / "tweets.csv"), id_column="tweet_id"), tmp_path / "corpora")
    plan = Plan.from_dict(PLAN)
    ids = corpus.ids()
    rows = corpus.rows_by_id(ids[:40])
    runner, _ = build_annotator(AnnotatorChoice(), plan, rows)
    annotations = annotate_sample(plan, rows["id"], rows["text"], runner, annotator="human")
    start = ModelSource.base(str(tiny_encoder_path))
    checkpoint = fine_tune_checkpoint(
        annotations, start, TrainingSettings(epochs=1, progress=False), HoldoutSettings(), tmp_path / "ckpt"
    )
    assert (tmp_path / "ckpt" / checkpoint.key / "falconer.json").is_file()
    assert len(checkpoint.heldout_ids) == 10 and checkpoint.base_model == str(tiny_encoder_path)
    evaluation = evaluate_model(checkpoint.source, annotations, checkpoint.heldout_ids)
    assert evaluation.n_texts == 10 and {"mean_f1", "f1.people", "f1.mentions_place"} <= set(evaluation.metrics())
    shard = make_shards(corpus.n_texts, 25)[1]
    result = execute_shard(checkpoint.source, plan, corpus, shard, model_version="m/1", run_id="r1",
                           run_folder=str(tmp_path / "runs"))
    assert result.n_texts == 25 and result.part.endswith("part-000001.parquet")
    part = read_part(result.part)
    assert sorted(part.to_pandas().query(f"field == '{FILTER_FIELD}'")["text_id"]) == ids[25:50]
    with Store(tmp_path / "s.duckdb") as store:
        store.upsert_run("r1", "execute", model_version="m/1")
        assert store.commit_part("r1", 1, part) == result.n_rows == len(store.outputs("r1"))
        assert store.completed_shards("r1") == [1]
