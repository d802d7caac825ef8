"""Where a fine-tuned checkpoint goes wrong on a span data set: word-level F1 across span
thresholds, and false positives/negatives split into boundary errors and wholly spurious or
missed spans, with examples.

    python fewshot.py --dataset bc2gm --sizes 512 --seeds 0 --save-dir ckpts
    python span_errors.py ckpts/bc2gm-512-seed0 --dataset bc2gm
"""

from __future__ import annotations

import argparse
from collections import Counter

import common  # noqa: F401  (sets the offline environment)
from common import subset

from falconer_core.evaluation import exact_span_prf, word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.decoding import spans_from_word_probs
from falconer_core.readers import load_split


def overlaps(span: tuple[int, int], others: set[tuple[int, int]]) -> bool:
    return any(start < span[1] and span[0] < end for start, end in others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--dataset", default="bc2gm")
    parser.add_argument("--test-size", type=int, default=2000, help="the same fixed subset as fewshot.py")
    parser.add_argument("--examples", type=int, default=15, help="examples of each error kind to print")
    args = parser.parse_args()

    model = Metamodel.load(args.checkpoint)
    test = subset(load_split(args.dataset, "test"), args.test_size or None, seed=12345)
    texts, gold = [e.text for e in test], [list(e.spans) for e in test]
    probs = model.span_word_probs(texts, test[0].instruction, progress=True)

    def predict(threshold: float) -> list:
        return [spans_from_word_probs(texts[i], *probs[i], threshold) if i in probs else [] for i in range(len(texts))]

    print(f"threshold   word F1   P      R      exact F1   (calibrated: {model.span_threshold})")
    for threshold in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8):
        predicted = predict(threshold)
        w = word_f1(predicted, gold, texts)
        print(f"  {threshold:.1f}       {w['f1']:.4f}   {w['precision']:.3f}  {w['recall']:.3f}  {exact_span_prf(predicted, gold)['f1']:.4f}")

    counts, shown = Counter(), {"spurious": [], "missed": []}
    for i, spans in enumerate(predict(model.span_threshold)):
        want = {(s.start, s.end) for s in gold[i]}
        got = {(s.start, s.end) for s in spans}
        for kind, extra, other in (("fp", got - want, want), ("fn", want - got, got)):
            for span in extra:
                near = overlaps(span, other)
                counts[f"{kind} {'boundary' if near else ('spurious' if kind == 'fp' else 'missed')}"] += 1
                bucket = shown["spurious" if kind == "fp" else "missed"]
                if not near and len(bucket) < args.examples:
                    bucket.append(f"{texts[i][span[0]:span[1]]!r:32} in {texts[i][:90]!r}")
    print("errors:", dict(counts))
    for kind, lines in shown.items():
        print(f"{kind}:")
        for line in lines:
            print("  ", line)


if __name__ == "__main__":
    main()
