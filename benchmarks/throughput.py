"""Executor throughput: the full `get_span` path (tokenise, window, forward, decode) beside the
raw encoder forward pass on the very same batches, and a torch matmul ceiling, all in one run.

    python benchmarks/throughput.py --n 5000

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
    """2 x non-embedding weights, plus attention scores and mixing (4 x layers x hidden x length)."""
    config = model.model.config
    weights = sum(p.numel() for n, p in model.model.named_parameters() if "embeddings" not in n)
    return 2 * weights + 4 * config.num_hidden_layers * config.hidden_size * mean_len


def raw_forward(model: Metamodel, texts: list[str], instruction: str, batch_size: int) -> tuple[float, int]:
    """Time only the encoder forward over the windows get_span would build, same bucketing."""
    encoded = model.encoder.encode_texts(texts)
    windows = [w for i, e in enumerate(encoded) if texts[i].strip() for w in model.encoder.windows(i, e, "span", instruction)]
    windows.sort(key=lambda w: len(w.input_ids))
    batches = [collate(windows[i : i + batch_size], model.tokenizer.pad_token_id, model.device) for i in range(0, len(windows), batch_size)]
    tokens = sum(len(w.input_ids) for w in windows)
    with torch.inference_mode():  # the encoder alone: no casing features, no decoding
        model.model(input_ids=batches[0]["input_ids"], attention_mask=batches[0]["attention_mask"])
        started = time.perf_counter()
        for batch in batches:
            model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.cpu()
        return time.perf_counter() - started, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="sentences from the BC2GM test split")
    parser.add_argument("--model", default=None, help="checkpoint folder (default: the packaged base)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="best of this many passes")
    args = parser.parse_args()

    model = Metamodel.load(args.model) if args.model else Metamodel.from_base()
    model.batch_size = args.batch_size
    examples = subset(load_split("bc2gm", "test"), args.n, seed=7)
    texts, instruction = [e.text for e in examples], examples[0].instruction
    model.get_span(texts[:64], instruction, progress=False)  # warm-up

    ceiling = matmul_ceiling()
    full_s, raw_s = float("inf"), float("inf")
    for _ in range(args.repeats):
        started = time.perf_counter()
        model.get_span(texts, instruction, progress=False)
        full_s = min(full_s, time.perf_counter() - started)
        seconds, tokens = raw_forward(model, texts, instruction, args.batch_size)
        raw_s = min(raw_s, seconds)
    flops = forward_flops_per_token(model, tokens / len(texts)) * tokens
    result = {
        "n_texts": len(texts), "tokens": tokens, "batch_size": args.batch_size,
        "full_texts_per_s": round(len(texts) / full_s, 1), "full_tokens_per_s": round(tokens / full_s),
        "raw_texts_per_s": round(len(texts) / raw_s, 1), "raw_tokens_per_s": round(tokens / raw_s),
        "full_vs_raw": round(raw_s / full_s, 3),
        "raw_gflops": round(flops / raw_s / 1e9, 1), "matmul_ceiling_gflops": round(ceiling, 1),
        "raw_vs_ceiling": round(flops / raw_s / 1e9 / ceiling, 3),
    }
    print(f"get_span, {len(texts)} BC2GM sentences, {tokens} tokens (prompt included), batch {args.batch_size}")
    print(f"  full path   : {result['full_texts_per_s']:8.1f} texts/s  {result['full_tokens_per_s']:8d} tokens/s")
    print(f"  raw forward : {result['raw_texts_per_s']:8.1f} texts/s  {result['raw_tokens_per_s']:8d} tokens/s"
          f"  ({result['raw_gflops']} GFLOP/s)")
    print(f"  matmul ceiling: {result['matmul_ceiling_gflops']} GFLOP/s")
    print(f"  full / raw = {result['full_vs_raw']:.2f}   raw / ceiling = {result['raw_vs_ceiling']:.2f}")
    print(f"results: {save('throughput', result)}")


if __name__ == "__main__":
    main()
