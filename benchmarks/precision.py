"""int8 and bf16 (on a CPU with bf16 units) against fp32 on the same checkpoints and test
sentences: the word-F1 cost of each, and texts/s of each beside the raw encoder forward on the same batches and a matmul ceiling, one run.

    python benchmarks/precision.py --checkpoints /tmp/ckpt   # folders saved by fewshot.py --save-dir
    python benchmarks/precision.py                           # fine-tunes 512 sentences per dataset first

A checkpoint is `{dataset}-{size}-seed{seed}` under `--checkpoints` (what `fewshot.py --save-dir`
writes); a missing one is fine-tuned here as `fewshot.py` would (about 5 minutes on one thread)
and saved there. The test subsets are `fewshot.py`'s, so fp32 F1 matches its figure. Timings are
ratios within this run: absolute times drift on shared machines.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment)
import torch
from common import RESULTS, save, subset
from throughput import cpu_features, full_path, matmul_ceiling, rates, raw_forward, runnable_precisions, use_clock

from falconer_core.evaluation import exact_span_prf, word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split


def checkpoint(dataset: str, size: int, seed: int, folder: Path) -> Path:
    """The fine-tuned checkpoint for (dataset, size, seed), trained and saved here when missing."""
    path = folder / f"{dataset}-{size}-seed{seed}"
    if (path / "falconer.json").is_file():
        return path
    print(f"fine-tuning {dataset} on {size} sentences (seed {seed}) -> {path}", flush=True)
    model = Metamodel.from_base(seed=seed)
    model.fine_tune(subset(load_split(dataset, "train"), size, seed=1000 + seed), seed=seed, progress=False)
    return model.save(path)


def quality(model: Metamodel, test: list) -> tuple[dict, list]:
    """Word-level and exact-span scores of the model's spans on the test sentences."""
    texts, gold = [e.text for e in test], [list(e.spans) for e in test]
    predicted = model.get_span(texts, test[0].instruction, progress=False)
    words, exact = word_f1(predicted, gold, texts), exact_span_prf(predicted, gold)
    return {"word_f1": round(words["f1"], 4), "word_p": round(words["precision"], 4),
            "word_r": round(words["recall"], 4), "exact_f1": round(exact["f1"], 4)}, predicted


def offsets(spans: list) -> list[tuple[int, int]]:
    """Where the spans are, without their confidences."""
    return [(s.start, s.end) for s in spans]


def speed(models: dict[str, Metamodel], texts: list[str], instruction: str, batch_size: int, repeats: int) -> dict:
    """Best-of-`repeats` full and raw times per precision, interleaved so drift hits all alike,
    with a matmul ceiling measured between the passes."""
    for model in models.values():
        model.batch_size = batch_size
        model.get_span(texts[:batch_size], instruction, progress=False)  # warm-up
    best = {name: [float("inf"), float("inf")] for name in models}
    ceilings, tokens = [], 0
    for _ in range(repeats):
        ceilings.append(matmul_ceiling())
        for name, model in models.items():
            best[name][0] = min(best[name][0], full_path(model, texts, instruction))
            seconds, tokens = raw_forward(model, texts, instruction, batch_size)
            best[name][1] = min(best[name][1], seconds)
    ceiling = max(ceilings)
    out = {"n_texts": len(texts), "tokens": tokens, "matmul_ceiling_gflops": round(ceiling, 1)}
    for name, (full_s, raw_s) in best.items():
        out[name] = rates(models[name], len(texts), tokens, full_s, raw_s, ceiling)
    for name in best:
        if name != "fp32":
            out[f"{name}_vs_fp32_full"] = round(best["fp32"][0] / best[name][0], 3)
            out[f"{name}_vs_fp32_raw"] = round(best["fp32"][1] / best[name][1], 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=["btc-per", "bc2gm"])
    parser.add_argument("--checkpoints", default=str(RESULTS / "checkpoints"),
                        help="folder of fewshot.py --save-dir checkpoints; missing ones are trained into it")
    parser.add_argument("--size", type=int, default=512, help="gold sentences the checkpoint was tuned on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-size", type=int, default=1000, help="fixed random test subset (fewshot.py's)")
    parser.add_argument("--speed-size", type=int, default=0, help="time the first N test sentences (0 = all)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timed passes")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall seconds, or this process's CPU seconds (fair on a shared machine)")
    args = parser.parse_args()
    use_clock(args.clock)

    features = cpu_features()
    print(f"CPU: {features['cpu']}: {features['summary']} ({' '.join(features['flags'])}); "
          f"torch kernels {features['torch_cpu_capability']}, quantized engine {features['quantized_engine']}, "
          f"{torch.get_num_threads()} thread(s); precision 'auto' picks {features['auto_picks']} on this CPU",
          flush=True)
    rows = []
    for dataset in args.datasets:
        path = checkpoint(dataset, args.size, args.seed, Path(args.checkpoints))
        started = time.perf_counter()
        models = {"fp32": Metamodel.load(path)}
        for name in runnable_precisions():  # bf16 only on a CPU with bf16 units
            if name != "fp32":
                models[name] = models["fp32"].with_precision(name)
        quantize_s = time.perf_counter() - started
        test = subset(load_split(dataset, "test"), args.test_size or None, seed=12345)
        scores, predicted = {}, {}
        for name, model in models.items():
            scores[name], predicted[name] = quality(model, test)
        row = {"dataset": dataset, "checkpoint": str(path), "n_test": len(test), **scores}
        for name in models:
            if name == "fp32":
                continue
            same = sum(offsets(a) == offsets(b) for a, b in zip(predicted["fp32"], predicted[name]))
            row[f"word_f1_cost_{name}"] = round(scores["fp32"]["word_f1"] - scores[name]["word_f1"], 4)
            row[f"texts_with_identical_spans_{name}"] = round(same / len(test), 4)
        row |= {
            "load_and_quantize_s": round(quantize_s, 1),
            "speed": speed(models, [e.text for e in test[: args.speed_size or None]], test[0].instruction,
                           args.batch_size, args.repeats),
        }
        rows.append(row)
        print_row(row)
    worst = max(r["word_f1_cost_int8"] for r in rows)
    decision = "int8 could be the CPU default" if worst <= 0.005 else "fp32 stays the default"
    print(f"\nworst int8 word-F1 cost {worst:+.4f} (threshold 0.005): {decision}")
    payload = {"cpu_features": features, "args": vars(args), "rows": rows, "decision": decision}
    print(f"results: {save('precision-' + '-'.join(args.datasets), payload)}")


def print_row(row: dict) -> None:
    s = row["speed"]
    print(f"\n{row['dataset']}: F1 on {row['n_test']} test sentences; speed on {s['n_texts']}, {s['tokens']} tokens"
          " (prompt included)")
    for name in [n for n in ("fp32", "bf16", "int8") if n in s]:
        q, r = row[name], s[name]
        print(f"  {name}: word F1 {q['word_f1']:.4f} (P {q['word_p']:.3f} R {q['word_r']:.3f}, exact {q['exact_f1']:.3f})"
              f" | full {r['full_texts_per_s']:7.1f} texts/s, raw {r['raw_texts_per_s']:7.1f} texts/s,"
              f" full/raw {r['full_vs_raw']:.2f}, raw {r['raw_gflops']} G(FL)OP/s = {r['raw_vs_ceiling']:.2f} of ceiling")
    for name in [n for n in ("bf16", "int8") if n in s]:
        print(f"  {name} cost {row[f'word_f1_cost_{name}']:+.4f} word F1; identical spans on "
              f"{row[f'texts_with_identical_spans_{name}']:.1%} of texts; {name}/fp32 speed: full "
              f"{s[f'{name}_vs_fp32_full']:.2f}x, raw {s[f'{name}_vs_fp32_raw']:.2f}x")
    print(f"  matmul ceiling {s['matmul_ceiling_gflops']} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
