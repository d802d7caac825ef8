"""Helpers shared by the benchmark scripts: offline environment, seeded subsets, result files."""

from __future__ import annotations

import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"


def subset(items: list, n: int | None, seed: int) -> list:
    """A fixed random subset (all items when n is None or too large)."""
    if n is None or n >= len(items):
        return list(items)
    return random.Random(seed).sample(items, n)


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def benchmark_home(folder: str | None, prefix: str) -> Path:
    """A Falconer home for a benchmark run (`folder`, else a new temporary one), with PREFECT_HOME
    inside it and telemetry off, set in this process's environment for it and its subprocesses."""
    home = Path(folder or tempfile.mkdtemp(prefix=prefix))
    os.environ["FALCONER_HOME"] = str(home)
    os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
    for key, value in {"DO_NOT_TRACK": "true", "MLFLOW_DISABLE_TELEMETRY": "true", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                       "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300", "TRANSFORMERS_OFFLINE": "1"}.items():
        os.environ.setdefault(key, value)
    return home


def save(name: str, payload: dict) -> Path:
    """Write results as JSON under benchmarks/results/ (not committed) and return the path."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=2))
    return path
