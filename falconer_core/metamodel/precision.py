"""Numeric precision for running the metamodel: fp32 anywhere, int8 on CPU, bf16 on CUDA and on
CPUs with bf16 units, and `auto`, the fastest of these that this machine runs well.

Precision is how inference computes, never what a checkpoint holds: checkpoints are fp32 on
disk, and an int8 or bf16 model is made from one when it is opened to run. That keeps one
checkpoint format and one training path; an int8 model cannot be fine-tuned or saved, because
its quantized weights have no gradients and would not load as a checkpoint. Plain data at the
top, torch imported inside the functions, so settings can name a `Precision` without torch.

`auto` is decided from the machine (`Capabilities`): bf16 autocast on CUDA and on a CPU with
bf16 units (AMX or AVX512-BF16); fp32 elsewhere, since an AVX2-only CPU emulates bf16, more
slowly than fp32. When a model version carries the verdicts
of the precision quality gate (`evaluation.precision_gate`), `auto` picks only a precision the
gate passed. It is resolved before anything is keyed on it: a run id names the precision that ran.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from falconer_core.errors import ConfigError

#: How the metamodel computes at inference; see `PRECISION_HELP`.
Precision = Literal["fp32", "int8", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: What settings and the CLI accept: a precision, or `auto` (resolved by `resolve_precision`).
PrecisionChoice = Literal["auto", "fp32", "int8", "bf16"]
AUTO = "auto"
PRECISION_CHOICES: tuple[str, ...] = get_args(PrecisionChoice)
#: What checkpoints hold, fine-tuning uses, the quality gate compares against, and run ids and
#: work keys leave unnamed (so fp32 runs keep the ids they always had).
REFERENCE_PRECISION: Precision = "fp32"
#: What execution settings and the CLI default to.
DEFAULT_PRECISION_CHOICE: PrecisionChoice = "auto"
#: The CPU flags (/proc/cpuinfo) that mean native bf16 arithmetic, by the unit they name.
BF16_FLAGS: dict[str, str] = {"amx_bf16": "AMX", "avx512_bf16": "AVX512-BF16"}

#: One line per choice, for settings fields, CLI help and docs.
PRECISION_HELP: dict[str, str] = {
    "auto": "the default: bf16 on CUDA and on CPUs with bf16 units (AMX, AVX512-BF16), fp32 elsewhere, "
    "and only a precision the model version's quality gate passed when it has been gated",
    "fp32": "full precision on any device; what fine-tuning always uses",
    "int8": "CPU only: the encoder's linear layers dynamically quantized to int8 (torch); "
    "the tagging head and casing embedding stay fp32; inference only",
    "bf16": "CUDA, or a CPU with bf16 units (AMX, AVX512-BF16): the forward pass under bfloat16 autocast; "
    "weights stay fp32",
}
#: The whole choice in one sentence, for a pydantic `Field(description=...)`.
PRECISION_DESCRIPTION = "Inference precision: " + "; ".join(f"'{p}' = {h}" for p, h in PRECISION_HELP.items()) + "."

#: Windows per forward pass: a CPU gains nothing past 64; a GPU needs more to be kept busy.
CPU_BATCH_SIZE = 64
CUDA_BATCH_SIZE = 256


@dataclass(frozen=True)
class Capabilities:
    """What this machine offers the precisions: a CUDA device, and the CPU's kernels and bf16 units."""

    cuda: bool
    cpu_capability: str = "DEFAULT"  # torch.backends.cpu.get_cpu_capability(): AVX2, AVX512, ...
    cpu_flags: frozenset[str] = frozenset()  # the BF16_FLAGS the CPU has
    cpu_model: str = "unknown CPU"

    @property
    def cpu_bf16_units(self) -> list[str]:
        """The CPU's native bf16 units (AMX, AVX512-BF16), best first; empty when it has none."""
        return [unit for flag, unit in BF16_FLAGS.items() if flag in self.cpu_flags]

    def refusal(self, precision: str, device_type: str) -> str | None:
        """Why `precision` cannot run on `device_type` here, or None when it can."""
        if precision == "int8" and device_type != "cpu":
            return f"int8 runs on CPU only (this model is on {device_type}); use 'bf16' or 'fp32' on a GPU"
        if precision == "bf16" and device_type == "cpu" and not self.cpu_bf16_units:
            return (
                f"bf16 needs a CUDA device or a CPU with bf16 units (AMX or AVX512-BF16); this CPU "
                f"({self.cpu_model}, torch kernels {self.cpu_capability}) has none and would emulate it, "
                "slower than fp32. Use 'fp32', 'int8' or 'auto' on it"
            )
        if precision == "bf16" and device_type not in ("cpu", "cuda"):
            return f"bf16 runs on CUDA or on a CPU with bf16 units, not on {device_type}; use 'fp32'"
        return None

    def fastest(self, device_type: str) -> Precision:
        """The precision `auto` starts from on `device_type`: bf16 where there are bf16 units, else fp32."""
        return "bf16" if self.refusal("bf16", device_type) is None else REFERENCE_PRECISION

    def describe(self) -> str:
        """One line for logs and benchmark reports."""
        units = ", ".join(self.cpu_bf16_units) or "no bf16 units"
        return f"{self.cpu_model} ({self.cpu_capability}, {units}); CUDA {'yes' if self.cuda else 'no'}"


@functools.lru_cache(maxsize=1)
def detect_capabilities() -> Capabilities:
    """This machine's `Capabilities`: torch's CPU kernel level and CUDA, and the bf16 flags and
    model name from /proc/cpuinfo (where there is none, no bf16 units are assumed)."""
    import torch

    flags, model = read_cpuinfo()
    return Capabilities(
        cuda=torch.cuda.is_available(), cpu_capability=str(torch.backends.cpu.get_cpu_capability()),
        cpu_flags=frozenset(flags & set(BF16_FLAGS)), cpu_model=model,
    )


def read_cpuinfo(path: str | Path = "/proc/cpuinfo") -> tuple[set[str], str]:
    """The first processor's flags and model name ('unknown CPU' when the file is missing)."""
    flags: set[str] | None = None
    model = None
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return set(), "unknown CPU"
    for line in lines:
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("flags", "Features") and flags is None:
            flags = set(value.split())
        elif key == "model name" and model is None:
            model = value.strip()
    return flags or set(), model or "unknown CPU"


def check_precision(precision: str, device_type: str, capabilities: Capabilities | None = None) -> Precision:
    """The precision, if it exists and runs on this device; otherwise a `ConfigError` saying
    what would (int8 kernels are CPU-only in torch; bf16 needs CUDA or a CPU with bf16 units)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    if precision == "bf16" and device_type == "cpu" and capabilities is None:
        capabilities = detect_capabilities()
    reason = (capabilities or Capabilities(cuda=device_type == "cuda")).refusal(precision, device_type)
    if reason is not None:
        raise ConfigError(reason)
    return precision  # type: ignore[return-value]


def resolve_precision(
    precision: str, device_type: str | None = None, *, gated: Mapping[str, bool] | None = None,
    capabilities: Capabilities | None = None,
) -> Precision:
    """The precision to run: a named one once checked against the device, or for `auto` the
    fastest this machine runs well (`Capabilities.fastest`), kept only if `gated` (a model
    version's quality-gate verdicts, precision -> passed) passed it; with verdicts that do not
    pass it, fp32. No verdicts (an older version): the capability choice alone. `device_type`
    defaults to where the precision would run (the GPU if any)."""
    caps = capabilities or detect_capabilities()
    device_type = device_type or default_device_type(precision, caps.cuda)
    if precision != AUTO:
        return check_precision(precision, device_type, caps)
    chosen = caps.fastest(device_type)
    if gated and chosen != REFERENCE_PRECISION and not gated.get(chosen, False):
        return REFERENCE_PRECISION
    return chosen


def precision_key(precision: str) -> tuple[str, ...]:
    """What a run id or work key adds for `precision`: nothing for fp32 (ids stay as they were),
    the name otherwise. `auto` is refused: resolve it first, so ids name what ran."""
    if precision == AUTO:
        raise ConfigError("precision 'auto' must be resolved (resolve_precision) before a run id or work key is made")
    return () if precision == REFERENCE_PRECISION else (precision,)


def default_device_type(precision: str, cuda_available: bool) -> str:
    """Where a precision runs when no device is named: int8 on CPU, otherwise the GPU if any."""
    if precision == "int8":
        return "cpu"
    return "cuda" if cuda_available else "cpu"


def inference_batch_size(device_type: str) -> int:
    """Default windows per forward pass on this kind of device."""
    return CUDA_BATCH_SIZE if device_type == "cuda" else CPU_BATCH_SIZE


def quantize_int8(model):
    """Quantize the linear layers of the encoder body (`model.base_model`) to int8 in place:
    weights once, with one scale per output channel (per-tensor scales cost twice the word F1 on
    BTC persons: 0.033 against 0.016), activations per batch. The token-classification head is
    left in fp32: it is 3 x hidden weights, costs nothing, and holds the calibrated decisions."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch marks eager quantization deprecated in favour of torchao
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        quantize_dynamic(model.base_model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    return model


def is_quantized(model) -> bool:
    """Whether any layer of the model holds int8 weights."""
    return any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules())


class Bf16Copy:
    """bf16 copies of fp32 modules, for CPU inference under bf16 autocast. Autocast alone casts
    every weight to bf16 again on every forward, about 5% of a forward of this encoder on one
    core; the copy casts once. It is remade whenever a weight changed (a training step, a
    loaded state), which the tensors' version counters tell, so it never serves stale weights."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._copies: list = []

    def of(self, modules: list) -> list:
        """The bf16 copies of `modules` (None stays None), in order."""
        import torch

        key = tuple((id(p), p._version) for m in modules if m is not None for p in m.parameters())
        if key != self._key:
            self._copies = [None if m is None else copy.deepcopy(m).to(torch.bfloat16) for m in modules]
            self._key = key
        return self._copies


def autocast(precision: str, device):
    """The context a forward pass runs in: bf16 autocast (CUDA or CPU), nothing otherwise."""
    if precision == "bf16":
        import torch

        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


__all__ = [
    "AUTO",
    "BF16_FLAGS",
    "Bf16Copy",
    "CPU_BATCH_SIZE",
    "CUDA_BATCH_SIZE",
    "DEFAULT_PRECISION_CHOICE",
    "PRECISIONS",
    "PRECISION_CHOICES",
    "PRECISION_DESCRIPTION",
    "PRECISION_HELP",
    "REFERENCE_PRECISION",
    "Capabilities",
    "Precision",
    "PrecisionChoice",
    "autocast",
    "check_precision",
    "default_device_type",
    "detect_capabilities",
    "inference_batch_size",
    "is_quantized",
    "precision_key",
    "quantize_int8",
    "read_cpuinfo",
    "resolve_precision",
]
