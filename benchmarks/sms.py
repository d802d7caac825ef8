"""The label side: "Is this message spam?" on the UCI SMS Spam Collection (CC BY 4.0).
Fine-tune on a seeded sample of 512 messages, score accuracy and spam F1 on all the rest.

    python benchmarks/sms.py --train 512
"""

from __future__ import annotations

import argparse
import random
import time

import common  # noqa: F401
from common import save

from falconer_core.evaluation import label_metrics
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_sms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=None)
    args = parser.parse_args()

    examples = load_sms()
    order = list(range(len(examples)))
    random.Random(args.seed).shuffle(order)
    train = [examples[i] for i in order[: args.train]]
    test = [examples[i] for i in order[args.train :]]
    model = Metamodel.from_base(args.base, seed=args.seed)
    texts, gold = [e.text for e in test], [e.label for e in test]
    zero = label_metrics(model.get_label(texts, test[0].instruction, progress=False), gold)
    started = time.perf_counter()
    summary = model.fine_tune(train, seed=args.seed, progress=False)
    train_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.get_label(texts, test[0].instruction, progress=False)
    infer_s = time.perf_counter() - started
    scores = label_metrics(predicted, gold)
    print(f"SMS spam, trained on {len(train)} ({sum(e.label for e in train)} spam), tested on {len(test)}")
    print(f"  zero-shot : accuracy {zero['accuracy']:.3f}  spam F1 {zero['f1']:.3f}")
    print(f"  fine-tuned: accuracy {scores['accuracy']:.3f}  spam P {scores['precision']:.3f} "
          f"R {scores['recall']:.3f} F1 {scores['f1']:.3f}  (fine-tune {train_s:.0f} s, "
          f"{summary.epochs_run} epochs, best {summary.best_epoch}; inference {len(texts) / infer_s:.0f} texts/s)")
    path = save("sms", {"train": len(train), "test": len(test), "zero_shot": zero, "fine_tuned": scores,
                        "train_seconds": round(train_s, 1), "epochs_run": summary.epochs_run})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
