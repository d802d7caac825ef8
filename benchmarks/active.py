"""Label efficiency of active sampling: annotate a random first batch, fine-tune, then add the
texts the fine-tuned model is least sure of (`falconer_core.active`), re-tune, and compare with
adding the same number of random texts (and with larger random samples).

    python benchmarks/active.py --dataset bc2gm --first 128 --batch 128 --random 256 512 --seeds 0

Every fine-tune starts from the base model with the same settings; gold tags stand in for the
annotator. Uncertainty is scored on a random pool of train sentences (`--pool`). The test set is
the fixed subset `fewshot.py` uses.
"""

from __future__ import annotations

import argparse
import time

import common  # noqa: F401  (sets the offline environment)
from common import save, subset

from falconer_core.active import select_uncertain, uncertainty
from falconer_core.evaluation import word_f1
from falconer_core.metamodel import Metamodel, TrainingSettings
from falconer_core.plan import Plan
from falconer_core.readers import load_split


def tuned(examples: list, seed: int, settings: TrainingSettings) -> tuple[Metamodel, float]:
    model = Metamodel.from_base(None, seed=seed)
    started = time.perf_counter()
    model.fine_tune(examples, settings)
    return model, round(time.perf_counter() - started, 1)


def test_f1(model: Metamodel, test: list) -> float:
    texts = [e.text for e in test]
    predicted = model.get_span(texts, test[0].instruction, progress=False)
    return round(word_f1(predicted, [list(e.spans) for e in test], texts)["f1"], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="bc2gm")
    parser.add_argument("--first", type=int, default=128, help="random first batch")
    parser.add_argument("--batch", type=int, default=128, help="texts added by uncertainty")
    parser.add_argument("--random", type=int, nargs="*", default=[256, 512], help="random sample sizes to compare")
    parser.add_argument("--pool", type=int, default=4000, help="train sentences scored for uncertainty")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--test-size", type=int, default=2000)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="TrainingSettings fields")
    args = parser.parse_args()
    train = load_split(args.dataset, "train")
    test = subset(load_split(args.dataset, "test"), args.test_size or None, seed=12345)
    plan = Plan.from_dict({"steps": [{"name": "span", "op": "span", "instruction": train[0].instruction}],
                           "outputs": [{"name": "span", "step": "span"}]})
    rows = []
    for seed in args.seeds:
        settings = TrainingSettings(seed=seed, progress=False, **dict(item.split("=", 1) for item in args.set))
        order = subset(train, len(train), seed=3000 + seed)  # one random order: random samples are its prefixes
        first = order[: args.first]
        model, seconds = tuned(first, seed, settings)
        rows.append({"seed": seed, "method": "random", "annotations": len(first), "word_f1": test_f1(model, test), "fine_tune_seconds": seconds})
        print(rows[-1], flush=True)

        pool = order[args.first : args.first + args.pool]
        started = time.perf_counter()
        scores = uncertainty(model, plan, [e.text for e in pool])
        chosen = select_uncertain([e.text for e in pool], scores, args.batch, seed=seed)
        select_s = round(time.perf_counter() - started, 1)
        grown = first + [pool[i] for i in chosen]
        model, seconds = tuned(grown, seed, settings)
        rows.append({"seed": seed, "method": "active", "annotations": len(grown), "word_f1": test_f1(model, test),
                     "fine_tune_seconds": seconds, "select_seconds": select_s,
                     "chosen_with_mentions": sum(bool(pool[i].spans) for i in chosen)})
        print(rows[-1], flush=True)
        for size in args.random:
            model, seconds = tuned(order[:size], seed, settings)
            rows.append({"seed": seed, "method": "random", "annotations": size, "word_f1": test_f1(model, test), "fine_tune_seconds": seconds})
            print(rows[-1], flush=True)
        save(f"active-{args.dataset}-{args.first}-{args.batch}", {"test_size": len(test), "rows": rows})
    for row in rows:
        print(f"  seed {row['seed']} {row['method']:>6} {row['annotations']:>5} annotations: word-F1 {row['word_f1']:.4f}")
    print(f"results: {save(f'active-{args.dataset}-{args.first}-{args.batch}', {'test_size': len(test), 'rows': rows})}")


if __name__ == "__main__":
    main()
