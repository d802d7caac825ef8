"""Does the unlabeled corpus help? Fine-tune on N gold sentences, score on test, then self-train
on M unlabeled train sentences (their gold tags unused) and score again: the same seed, the same
teacher, so the difference is self-training alone (`Metamodel.fine_tune(examples,
unlabeled_texts=...)` is exactly this fine-tune followed by `self_train`, tested).

    python benchmarks/unlabeled.py --dataset bc2gm --size 512 --unlabeled 4000 --seeds 0 1 2

The gold subset is the one `fewshot.py` draws for the same size and seed; the unlabeled texts
are drawn from the rest of the train split. Wall times are per phase, on however many threads
torch was given (set OMP_NUM_THREADS to compare machines).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment)
from common import save, subset

from falconer_core.evaluation import word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split
from falconer_core.training import TrainingSettings, TrainingSummary
from falconer_core.training.selftraining import self_train

#: Settings that only self-training reads: a saved teacher serves any values of them.
SELF_TRAINING = {"unlabeled", "max_unlabeled", "self_training_rounds", "pseudo_confidence", "self_training_epochs",
                 "self_training_lr_scale", "pseudo_unit"}


def test_f1(model: Metamodel, test: list) -> dict:
    texts = [e.text for e in test]
    predicted = model.get_span(texts, test[0].instruction, progress=False)
    scores = word_f1(predicted, [list(e.spans) for e in test], texts)
    return {k: round(scores[k], 4) for k in ("f1", "precision", "recall")}


def run_one(
    dataset: str, train: list, test: list, size: int, n_unlabeled: int, seed: int, settings: dict, teachers: str | None
) -> dict:
    gold = subset(train, size, seed=1000 + seed)
    gold_texts = {e.text for e in gold}
    rest = [e.text for e in train if e.text not in gold_texts]
    unlabeled = subset(rest, n_unlabeled, seed=2000 + seed)
    training = TrainingSettings(seed=seed, progress=False, max_unlabeled=n_unlabeled, **settings)
    folder = Path(teachers) / f"{dataset}-{size}-seed{seed}" if teachers else None
    if folder is not None and folder.is_dir():  # the teacher of an earlier run: same gold, seed, settings
        model = Metamodel.load(folder)
        if {k: v for k, v in model.config["history"][-1]["settings"].items() if k not in SELF_TRAINING} != \
                training.model_dump(exclude=SELF_TRAINING):
            raise SystemExit(f"{folder} was trained with other settings; use another --teachers folder")
        summary = TrainingSummary(**{k: v for k, v in model.config["history"][-1].items() if k != "settings"})
        gold_s = summary.seconds
    else:
        model = Metamodel.from_base(None, seed=seed)
        started = time.perf_counter()
        summary = model.fine_tune(gold, training)
        gold_s = time.perf_counter() - started
        if folder is not None:
            model.save(folder)
    before = test_f1(model, test)

    started = time.perf_counter()
    st = self_train(model, gold, unlabeled, training)
    self_s = time.perf_counter() - started
    after = test_f1(model, test)
    row = {
        "dataset": dataset, "size": size, "unlabeled": len(unlabeled), "seed": seed,
        "word_f1_gold_only": before["f1"], "word_f1_self_trained": after["f1"],
        "gold_only": before, "self_trained": after,
        "fine_tune_seconds": round(gold_s, 1), "self_training_seconds": round(self_s, 1),
        "epochs_run": summary.epochs_run, "best_epoch": summary.best_epoch, "dev_scores": summary.dev_scores,
        "span_threshold": summary.span_threshold, "self_training": st.rounds, "kept_rounds": st.kept_rounds,
        "span_threshold_after": model.span_threshold,
    }
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="bc2gm", help="bc2gm, btc-per, btc-loc or btc-org")
    parser.add_argument("--size", type=int, default=512, help="gold sentences")
    parser.add_argument("--unlabeled", type=int, default=4000, help="unlabeled train sentences (gold unused)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-size", type=int, default=2000, help="fixed random test subset (0 = all)")
    parser.add_argument("--teachers", default=None, help="keep each gold-only model here and reuse it when "
                        "there (compare self-training settings without re-training the teacher)")
    parser.add_argument("--tag", default="", help="added to the result file's name (e.g. the variant tried)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="any other TrainingSettings field, e.g. --set pseudo_confidence=0.95")
    args = parser.parse_args()
    settings = dict(item.split("=", 1) for item in args.set)  # pydantic converts the strings

    train = load_split(args.dataset, "train")
    test = subset(load_split(args.dataset, "test"), args.test_size or None, seed=12345)
    rows = []
    name = f"unlabeled-{args.dataset}-{args.size}-{args.unlabeled}" + (f"-{args.tag}" if args.tag else "")
    for seed in args.seeds:
        rows.append(run_one(args.dataset, train, test, args.size, args.unlabeled, seed, settings, args.teachers))
        save(name, {"test_size": len(test), "settings": settings, "rows": rows})  # partial results survive
    print(f"\n{args.dataset}: {args.size} gold + {args.unlabeled} unlabeled, word-level F1 on {len(test)} test sentences")
    for key in ("word_f1_gold_only", "word_f1_self_trained"):
        f1s = [r[key] for r in rows]
        spread = statistics.stdev(f1s) if len(f1s) > 1 else 0.0
        print(f"  {key}: {statistics.mean(f1s):.4f} ± {spread:.4f}  {f1s}")
    print(f"  fine-tune {statistics.mean(r['fine_tune_seconds'] for r in rows):.0f} s, "
          f"self-training +{statistics.mean(r['self_training_seconds'] for r in rows):.0f} s (mean)")
    print(f"results: {save(name, {'test_size': len(test), 'settings': settings, 'rows': rows})}")


if __name__ == "__main__":
    main()
