"""Executor throughput: the full `get_span` path (tokenise, window, forward, decode) beside the
raw encoder forward pass on the very same batches, and a torch matmul ceiling, all in one run,
in every precision this CPU runs (fp32, bf16 where it has bf16 units, int8), on all the cores
this process may use (its CPU affinity), naming the CPU (model and flags).

    python benchmarks/throughput.py --n 5000                 # every precision this machine runs
    python benchmarks/throughput.py --n 2000 --precisions fp32 int8 --threads 1

Passes are interleaved across precisions (best of --repeats), so drift on a shared machine hits
all alike; figures are ratios measured in the same process. The tokenise-only time (encode and
window, no forward) is what the executor's helper thread overlaps with the forward passes.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common  # noqa: F401
import torch
from common import save, subset

from falconer_core.errors import ConfigError
from falconer_core.execution.settings import usable_cores
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.precision import PRECISIONS, autocast, check_precision, resolve_precision
from falconer_core.readers import load_split

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


#: What a timing reads: wall seconds, or (`--clock cpu`) this process's CPU seconds over all its
#: threads: the cost of the work, which stays fair when other jobs share the machine.
clock = time.perf_counter


def use_clock(name: str) -> None:
    """Time with the wall clock ('wall') or this process's CPU time ('cpu')."""
    global clock
    clock = time.process_time if name == "cpu" else time.perf_counter


def cpu_features() -> dict:
    """What the cores offer int8 and bf16 kernels (from /proc/cpuinfo), and what torch uses."""
    flags: set[str] = set()
    model_name = "?"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
            elif line.startswith("model name") and model_name == "?":
                model_name = line.split(":", 1)[1].strip()
    present = [f for f in CPU_FLAGS if f in flags]
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni"))
    return {
        "cpu": model_name, "flags": present,
        "summary": "AVX-512 with VNNI" if vnni and "avx512f" in flags else "AVX-512, no VNNI" if "avx512f" in flags
        else "AVX2 with AVX-VNNI" if vnni else "AVX2 only" if "avx2" in flags else "no AVX2",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quantized_engine": torch.backends.quantized.engine,
        "auto_picks": resolve_precision("auto", "cpu"),
    }


def runnable_precisions() -> list[str]:
    """The precisions this CPU runs (bf16 only with bf16 units)."""
    found = []
    for name in PRECISIONS:
        try:
            found.append(check_precision(name, "cpu"))
        except ConfigError:
            pass
    return found


def matmul_ceiling(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n fp32 matmul: what this machine's cores can do at best."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    started = clock()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (clock() - started) / 1e9


def forward_flops_per_token(model: Metamodel, mean_len: float) -> float:
    """2 x the weights of every linear layer (fp32 or int8 alike), plus attention scores and
    mixing (4 x layers x hidden x length). For int8 this counts integer operations as FLOPs."""
    config = model.model.config
    weights = sum(m.in_features * m.out_features for m in model.model.modules() if hasattr(m, "in_features"))
    return 2 * weights + 4 * config.num_hidden_layers * config.hidden_size * mean_len


def raw_forward(model: Metamodel, texts: list[str], instruction: str, batch_size: int) -> tuple[float, int]:
    """Time only the encoder forward over the windows get_span would build, same bucketing,
    at the model's precision."""
    encoded = model.encoder.encode_texts(texts)
    windows = [w for i, e in enumerate(encoded) if texts[i].strip() for w in model.encoder.windows(i, e, "span", instruction)]
    windows.sort(key=lambda w: len(w.input_ids))
    batches = [collate(windows[i : i + batch_size], model.tokenizer.pad_token_id, model.device) for i in range(0, len(windows), batch_size)]
    tokens = sum(len(w.input_ids) for w in windows)
    with torch.inference_mode(), autocast(model.precision, model.device):  # no casing features, no decoding
        encoder = model._inference_weights()[0]  # the weights get_span runs (bf16 copies in bf16 on a CPU)
        encoder(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
        started = clock()
        for batch in batches:
            encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.cpu()
        return clock() - started, tokens


def full_path(model: Metamodel, texts: list[str], instruction: str) -> float:
    """Seconds for `get_span` over the texts: tokenise, window, casing features, forward, decode."""
    started = clock()
    model.get_span(texts, instruction, progress=False)
    return clock() - started


def rates(model: Metamodel, n_texts: int, tokens: int, full_s: float, raw_s: float, ceiling: float) -> dict:
    """Texts and tokens per second of both paths, and their ratios to each other and the ceiling."""
    gflops = forward_flops_per_token(model, tokens / n_texts) * tokens / raw_s / 1e9
    return {
        "full_texts_per_s": round(n_texts / full_s, 1), "full_tokens_per_s": round(tokens / full_s),
        "raw_texts_per_s": round(n_texts / raw_s, 1), "raw_tokens_per_s": round(tokens / raw_s),
        "full_vs_raw": round(raw_s / full_s, 3),
        "raw_gflops": round(gflops, 1), "raw_vs_ceiling": round(gflops / ceiling, 3),
    }


def tokenize_only(model: Metamodel, texts: list[str], instruction: str) -> float:
    """Seconds to encode and window the texts (what the helper thread does, no forward)."""
    started = clock()
    encoded = model.encoder.encode_texts(texts)
    for i, e in enumerate(encoded):
        model.encoder.windows(i, e, "span", instruction)
    return clock() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="sentences from the BC2GM test split")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the packaged base)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many passes")
    parser.add_argument("--precisions", nargs="+", default=None, choices=PRECISIONS,
                        help="inference precisions (default: every one this CPU runs)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall seconds, or this process's CPU seconds (fair on a shared machine)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the cores this process may use)")
    args = parser.parse_args()
    use_clock(args.clock)

    threads = args.threads or usable_cores()
    torch.set_num_threads(threads)
    features = cpu_features()
    names = args.precisions or runnable_precisions()
    base = Metamodel.load(args.model) if args.model else Metamodel.from_base()
    models = {name: base if name == "fp32" else base.with_precision(name) for name in names}
    examples = subset(load_split("bc2gm", "test"), args.n, seed=7)
    texts, instruction = [e.text for e in examples], examples[0].instruction
    for model in models.values():
        model.batch_size = args.batch_size
        model.get_span(texts[:64], instruction, progress=False)  # warm-up

    best = {name: [float("inf"), float("inf")] for name in models}
    ceilings, tokens, tokenize_s = [], 0, float("inf")
    for _ in range(args.repeats):
        ceilings.append(matmul_ceiling())
        tokenize_s = min(tokenize_s, tokenize_only(base, texts, instruction))
        for name, model in models.items():
            best[name][0] = min(best[name][0], full_path(model, texts, instruction))
            seconds, tokens = raw_forward(model, texts, instruction, args.batch_size)
            best[name][1] = min(best[name][1], seconds)
    ceiling = max(ceilings)
    result = {
        "cpu_features": features, "threads": threads, "clock": args.clock, "n_texts": len(texts), "tokens": tokens,
        "batch_size": args.batch_size, "matmul_ceiling_gflops": round(ceiling, 1),
        "tokenize_texts_per_s": round(len(texts) / tokenize_s, 1),
        "precisions": {name: rates(models[name], len(texts), tokens, full_s, raw_s, ceiling)
                       for name, (full_s, raw_s) in best.items()},
    }
    if "fp32" in best:
        for name in best:
            result["precisions"][name]["full_vs_fp32"] = round(best["fp32"][0] / best[name][0], 3)
    print(f"CPU: {features['cpu']}: {features['summary']} ({' '.join(features['flags'])}); torch kernels "
          f"{features['torch_cpu_capability']}; {threads} thread(s); 'auto' picks {features['auto_picks']}")
    print(f"get_span, {len(texts)} BC2GM sentences, {tokens} tokens (prompt included), batch {args.batch_size}, "
          f"{args.clock} seconds; "
          f"matmul ceiling {result['matmul_ceiling_gflops']} GFLOP/s (2048² fp32); tokenise only "
          f"{result['tokenize_texts_per_s']} texts/s")
    for name, r in result["precisions"].items():
        print(f"  {name:>5}: full {r['full_texts_per_s']:7.1f} texts/s, raw {r['raw_texts_per_s']:7.1f} texts/s, "
              f"full/raw {r['full_vs_raw']:.2f}, raw {r['raw_gflops']} G(FL)OP/s = {r['raw_vs_ceiling']:.2f} of ceiling"
              + (f", full {r['full_vs_fp32']:.2f}x fp32" if "full_vs_fp32" in r else ""))
    print(f"results: {save('throughput', result)}")


if __name__ == "__main__":
    main()
