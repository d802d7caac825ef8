"""The same job gives the same model: two `falconer mine` runs of one configuration, in fresh
processes with different hash seeds (so set and dict orders differ) and in fresh homes, must
write bit-identical checkpoints and identical output rows. Also the pieces that keep a
fine-tune's torch thread count independent of what ran before it in the process."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import torch

from falconer_core.data import DEMO_CORPUS_PATH as DEMO_CORPUS
from falconer_core.data import DEMO_PLAN_PATH as DEMO_PLAN
from falconer_core.training import TrainingSettings
from falconer_core.training.threads import pinned_threads, training_threads

ROOT = Path(__file__).resolve().parents[1]


# -- the thread count of a fine-tune ---------------------------------------------------------------


def test_training_threads_come_from_the_settings_then_the_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert training_threads(5) == 5
    assert training_threads(None) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert training_threads(None) == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert training_threads(None) == (os.cpu_count() or 1)


def test_pinned_threads_restores_the_count_it_found():
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    with pinned_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before


def test_fine_tune_trains_with_the_settings_thread_count_whatever_the_process_had(tiny_encoder_path, monkeypatch):
    """An execution shard run earlier in this process (`use_threads`) must not change the count
    training runs with: the count decides the weights."""
    from falconer_core.metamodel import model as model_module
    from falconer_core.metamodel.model import Metamodel
    from falconer_core.types import LabelExample

    seen: list[int] = []
    real_train = model_module.train

    def spy(metamodel, examples, settings, replay=()):
        seen.append(torch.get_num_threads())
        return real_train(metamodel, examples, settings, replay)

    monkeypatch.setattr(model_module, "train", spy)
    examples = [LabelExample(f"tweet number {i} from Paris" if i % 2 else f"tweet {i}", "A place?", bool(i % 2))
                for i in range(8)]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # what an earlier stage left behind
        model = Metamodel.from_base(str(tiny_encoder_path))
        summary = model.fine_tune(examples, TrainingSettings(epochs=1, threads=1, progress=False))
        assert seen == [1] and summary.threads == 1
        assert torch.get_num_threads() == 2  # inference after it keeps the process's own count
    finally:
        torch.set_num_threads(before)


# -- two whole runs ----------------------------------------------------------------------------------


def _mine(home: Path, corpus: Path, encoder: Path, hash_seed: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONHASHSEED": hash_seed,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "PREFECT_HOME": str(home / "prefect"),  # a temporary server each, never one shared database
        "COLUMNS": "200",
    }
    env.pop("FALCONER_HOME", None)
    command = [
        sys.executable, "-c", "from falconer_cli.main import app; app()", "--home", str(home / "falconer"),
        "mine", "--plan", str(DEMO_PLAN), "--corpus", str(corpus), "--id-column", "id", "--annotator", "gold",
        "--base-model", str(encoder), "--sample-fraction", "0.5", "--epochs", "2", "--no-unlabeled",
        "--records", "0",
    ]
    return subprocess.Popen(command, env=env, cwd=home, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _checkpoint_hashes(home: Path) -> dict[str, str]:
    """sha256 of every weight file of the fine-tuned checkpoints (folders named by content key)."""
    files = sorted((home / "falconer" / "checkpoints").glob("*/*.safetensors"))
    return {f"{f.parent.name}/{f.name}": hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def _output_rows(home: Path) -> list[tuple]:
    import duckdb

    with duckdb.connect(str(home / "falconer" / "falconer.duckdb"), read_only=True) as con:
        columns = [c[0] for c in con.execute("DESCRIBE outputs").fetchall() if c[0] != "created_at"]
        return con.execute(f"SELECT {', '.join(columns)} FROM outputs ORDER BY ALL").fetchall()


def test_the_same_mine_job_in_two_processes_gives_the_same_checkpoint_and_outputs(tmp_path, tiny_encoder_path):
    corpus = tmp_path / "tweets.csv"
    pd.read_csv(DEMO_CORPUS).head(200).to_csv(corpus, index=False)
    homes = [tmp_path / "first", tmp_path / "second"]
    for home in homes:
        home.mkdir()
    runs = [_mine(home, corpus, tiny_encoder_path, seed) for home, seed in zip(homes, ("1", "2"))]
    outputs = [run.communicate(timeout=600)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, output[-3000:]

    first, second = (_checkpoint_hashes(home) for home in homes)
    assert first and any(name.endswith("/model.safetensors") for name in first), first
    assert first == second
    rows = _output_rows(homes[0])
    assert len(rows) >= 200  # one filter row per text at least
    assert rows == _output_rows(homes[1])
    scores = [re.search(r"proxy F1 against human: ([\d.]+)", output) for output in outputs]
    assert all(scores), outputs[0][-2000:]
    assert scores[0].group(1) == scores[1].group(1)
