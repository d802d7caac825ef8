"""The paper's Table 3 protocol on BC2GM and BTC: fine-tune from the base on 64, 512 and 2048
gold sentences and score word-level F1 on a fixed test subset; also zero-shot.

    python benchmarks/fewshot.py --dataset bc2gm --sizes 0 64 512 2048 --seeds 0 1 2

Seeds apply to 64 and 512; 2048 runs once (the first seed), as in the issue. Data: BC2GM
(cambridgeltl/MTL-Bioinformatics-2016, CC BY 4.0) and the Broad Twitter Corpus (Derczynski
et al., COLING 2016, CC BY 4.0), read in place from ../shared/data.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common  # noqa: F401  (sets the offline environment)
from common import save, subset

from falconer_core.evaluation import exact_span_prf, word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split


def run_one(
    dataset: str, train: list, test: list, size: int, seed: int, base: str | None, settings: dict, save_dir: str | None = None
) -> dict:
    model = Metamodel.from_base(base, seed=seed)
    started = time.perf_counter()
    summary = None
    if size:
        summary = model.fine_tune(subset(train, size, seed=1000 + seed), seed=seed, progress=False, **settings)
    train_s = time.perf_counter() - started
    if save_dir and size:
        model.save(f"{save_dir}/{dataset}-{size}-seed{seed}")
    texts = [e.text for e in test]
    started = time.perf_counter()
    predicted = model.get_span(texts, test[0].instruction, progress=False)
    infer_s = time.perf_counter() - started
    gold = [list(e.spans) for e in test]
    scores = word_f1(predicted, gold, texts)
    exact = exact_span_prf(predicted, gold)
    row = {
        "dataset": dataset, "size": size, "seed": seed, "word_f1": round(scores["f1"], 4),
        "word_p": round(scores["precision"], 4), "word_r": round(scores["recall"], 4),
        "exact_f1": round(exact["f1"], 4), "train_seconds": round(train_s, 1), "infer_seconds": round(infer_s, 1),
        "epochs_run": summary.epochs_run if summary else 0, "best_epoch": summary.best_epoch if summary else 0,
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="bc2gm", help="bc2gm, btc-per, btc-loc or btc-org")
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 64, 512, 2048])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-size", type=int, default=2000, help="fixed random test subset (0 = all)")
    parser.add_argument("--base", default=None, help="base encoder (default: packaged MiniLM)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--save-dir", default=None, help="keep each fine-tuned checkpoint under this folder")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="any other TrainingSettings field, e.g. --set batch_size=8 patience=5")
    args = parser.parse_args()
    settings = {k: v for k, v in {"learning_rate": args.lr, "epochs": args.epochs}.items() if v is not None}
    settings.update(dict(item.split("=", 1) for item in args.set))  # pydantic converts the strings

    train = load_split(args.dataset, "train")
    test = subset(load_split(args.dataset, "test"), args.test_size or None, seed=12345)
    rows = []
    for size in args.sizes:
        seeds = args.seeds if size in (64, 512) else args.seeds[:1]
        for seed in seeds:
            rows.append(run_one(args.dataset, train, test, size, seed, args.base, settings, args.save_dir))
    summary = {}
    for size in args.sizes:
        f1s = [r["word_f1"] for r in rows if r["size"] == size]
        secs = [r["train_seconds"] for r in rows if r["size"] == size]
        summary[size] = {
            "word_f1_mean": round(statistics.mean(f1s), 4),
            "word_f1_std": round(statistics.stdev(f1s), 4) if len(f1s) > 1 else 0.0,
            "runs": len(f1s), "train_seconds_mean": round(statistics.mean(secs), 1),
        }
    print(f"\n{args.dataset}: word-level F1 on {len(test)} test sentences")
    for size, s in summary.items():
        print(f"  {size:>5} samples: {s['word_f1_mean']:.3f} ± {s['word_f1_std']:.3f} "
              f"({s['runs']} run(s), fine-tune {s['train_seconds_mean']:.0f} s)")
    path = save(f"fewshot-{args.dataset}-" + "-".join(map(str, args.sizes)), {"test_size": len(test), "settings": settings, "rows": rows, "summary": summary})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
