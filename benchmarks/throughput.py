"""Executor throughput: the full `get_span` path (tokenise, window, forward, decode) beside the
raw encoder forward pass on the very same batches, and a torch matmul ceiling, all in one run.

    python benchmarks/throughput.py --n 5000 [--precision int8]

Figures are ratios measured in the same process: absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401
import torch
from common import save, subset

from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.batching import collate
from falconer_core.metamodel.precision import PRECISIONS, autocast
from falconer_core.readers import load_split


def matmul_ceiling(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n fp32 matmul: what this machine's cores can do at best."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    started = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * n**3 * repeats / (time.perf_counter() - started) / 1e9


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
        model.model(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
        started = time.perf_counter()
        for batch in batches:
            model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.cpu()
        return time.perf_counter() - started, tokens


def full_path(model: Metamodel, texts: list[str], instruction: str) -> float:
    """Seconds for `get_span` over the texts: tokenise, window, casing features, forward, decode."""
    started = time.perf_counter()
    model.get_span(texts, instruction, progress=False)
    return time.perf_counter() - started


def rates(model: Metamodel, n_texts: int, tokens: int, full_s: float, raw_s: float, ceiling: float) -> dict:
    """Texts and tokens per second of both paths, and their ratios to each other and the ceiling."""
    gflops = forward_flops_per_token(model, tokens / n_texts) * tokens / raw_s / 1e9
    return {
        "full_texts_per_s": round(n_texts / full_s, 1), "full_tokens_per_s": round(tokens / full_s),
        "raw_texts_per_s": round(n_texts / raw_s, 1), "raw_tokens_per_s": round(tokens / raw_s),
        "full_vs_raw": round(raw_s / full_s, 3),
        "raw_gflops": round(gflops, 1), "raw_vs_ceiling": round(gflops / ceiling, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="sentences from the BC2GM test split")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the packaged base)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many passes")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS, help="inference precision")
    args = parser.parse_args()

    if args.model:
        model = Metamodel.load(args.model, precision=args.precision)
    else:
        model = Metamodel.from_base(precision=args.precision)
    model.batch_size = args.batch_size
    examples = subset(load_split("bc2gm", "test"), args.n, seed=7)
    texts, instruction = [e.text for e in examples], examples[0].instruction
    model.get_span(texts[:64], instruction, progress=False)  # warm-up

    ceiling = matmul_ceiling()
    full_s, raw_s = float("inf"), float("inf")
    for _ in range(args.repeats):
        full_s = min(full_s, full_path(model, texts, instruction))
        seconds, tokens = raw_forward(model, texts, instruction, args.batch_size)
        raw_s = min(raw_s, seconds)
    result = {
        "n_texts": len(texts), "tokens": tokens, "batch_size": args.batch_size, "precision": args.precision,
        **rates(model, len(texts), tokens, full_s, raw_s, ceiling), "matmul_ceiling_gflops": round(ceiling, 1),
    }
    print(f"get_span ({args.precision}), {len(texts)} BC2GM sentences, {tokens} tokens (prompt included), "
          f"batch {args.batch_size}")
    print(f"  full path   : {result['full_texts_per_s']:8.1f} texts/s  {result['full_tokens_per_s']:8d} tokens/s")
    print(f"  raw forward : {result['raw_texts_per_s']:8.1f} texts/s  {result['raw_tokens_per_s']:8d} tokens/s"
          f"  ({result['raw_gflops']} GFLOP/s)")
    print(f"  matmul ceiling: {result['matmul_ceiling_gflops']} GFLOP/s")
    print(f"  full / raw = {result['full_vs_raw']:.2f}   raw / ceiling = {result['raw_vs_ceiling']:.2f}")
    name = "throughput" if args.precision == "fp32" else f"throughput-{args.precision}"
    print(f"results: {save(name, result)}")


if __name__ == "__main__":
    main()
