"""Numeric precision for running the metamodel: fp32 anywhere, int8 on CPU, bf16 on CUDA.

Precision is how inference computes, never what a checkpoint holds: checkpoints are fp32 on
disk, and an int8 or bf16 model is made from one when it is opened to run. That keeps one
checkpoint format and one training path; an int8 model cannot be fine-tuned or saved, because
its quantized weights have no gradients and would not load as a checkpoint. Plain data at the
top, torch imported inside the functions, so settings can name a `Precision` without torch.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Literal, get_args

from falconer_core.errors import ConfigError

#: How the metamodel computes at inference; see `PRECISION_HELP`.
Precision = Literal["fp32", "int8", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
DEFAULT_PRECISION: Precision = "fp32"

#: One line per precision, for settings fields, CLI help and docs.
PRECISION_HELP: dict[str, str] = {
    "fp32": "full precision on any device; the default, and what fine-tuning always uses",
    "int8": "CPU only: the encoder's linear layers dynamically quantized to int8 (torch); "
    "the tagging head and casing embedding stay fp32; inference only",
    "bf16": "CUDA only: the forward pass under bfloat16 autocast, with larger batches; weights stay fp32",
}
#: The whole choice in one sentence, for a pydantic `Field(description=...)`.
PRECISION_DESCRIPTION = "Inference precision: " + "; ".join(f"'{p}' = {h}" for p, h in PRECISION_HELP.items()) + "."

#: Windows per forward pass: a CPU gains nothing past 64; a GPU needs more to be kept busy.
CPU_BATCH_SIZE = 64
CUDA_BATCH_SIZE = 256


def check_precision(precision: str, device_type: str) -> Precision:
    """The precision, if it exists and runs on this device; otherwise a `ConfigError` saying
    what would (int8 kernels are CPU-only in torch; bf16 autocast pays off only on CUDA)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "int8" and device_type != "cpu":
        raise ConfigError(f"int8 runs on CPU only (this model is on {device_type}); use 'bf16' or 'fp32' on a GPU")
    if precision == "bf16" and device_type != "cuda":
        raise ConfigError(
            f"bf16 needs a CUDA device (this model is on {device_type}); on CPU use 'int8' or 'fp32'"
        )
    return precision  # type: ignore[return-value]


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


def autocast(precision: str, device):
    """The context a forward pass runs in: bf16 autocast on CUDA, nothing otherwise."""
    if precision == "bf16":
        import torch

        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


__all__ = [
    "CPU_BATCH_SIZE",
    "CUDA_BATCH_SIZE",
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "PRECISION_DESCRIPTION",
    "PRECISION_HELP",
    "Precision",
    "autocast",
    "check_precision",
    "default_device_type",
    "inference_batch_size",
    "is_quantized",
    "quantize_int8",
]
