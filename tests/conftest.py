"""Shared test setup: offline, no telemetry, every state folder in a temporary place."""

import os
import tempfile
from pathlib import Path

_HOME = Path(tempfile.mkdtemp(prefix="falconer-tests-"))
os.environ.update(
    {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "DO_NOT_TRACK": "true",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "300",
        "PREFECT_HOME": str(_HOME / "prefect"),
        "TOKENIZERS_PARALLELISM": "false",
    }
)
os.environ.pop("OPENAI_API_KEY", None)
os.environ.pop("OPENAI_BASE_URL", None)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


import pytest  # noqa: E402


def make_tiny_encoder(folder: Path, id2label: dict[int, str] | None = None) -> Path:
    """A 1-layer, 32-dim BERT with the packaged MiniLM tokenizer: fast, offline, real code path."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    from falconer_core.metamodel.source import default_base_path

    tokenizer = AutoTokenizer.from_pretrained(default_base_path())
    labels = id2label or {0: "LABEL_0", 1: "LABEL_1"}
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory) -> Path:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (API + sqlite) for every Prefect test of the session; each
    server process costs ~15 s to start, so only tests that ask for this fixture pay it, once."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=300):
        yield
