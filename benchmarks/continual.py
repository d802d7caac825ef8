"""Continual re-tuning (paper 5.1): fine-tune on BC2GM genes, then on BTC persons starting
from that checkpoint. Compare BTC F1 with a BTC fine-tune from the base, and report how much
BC2GM F1 the re-tuned checkpoint keeps.

    python benchmarks/continual.py --size 512
"""

from __future__ import annotations

import argparse

import common  # noqa: F401
from common import save, subset

from falconer_core.evaluation import word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split


def f1(model: Metamodel, test: list) -> float:
    texts = [e.text for e in test]
    predicted = model.get_span(texts, test[0].instruction, progress=False)
    return round(word_f1(predicted, [list(e.spans) for e in test], texts)["f1"], 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512, help="training sentences per task")
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    genes_train = subset(load_split("bc2gm", "train"), args.size, seed=1000 + args.seed)
    genes_test = subset(load_split("bc2gm", "test"), args.test_size, seed=12345)
    people_train = subset(load_split("btc-per", "train"), args.size, seed=1000 + args.seed)
    people_test = subset(load_split("btc-per", "test"), args.test_size, seed=12345)

    first = Metamodel.from_base(seed=args.seed)
    first.fine_tune(genes_train, seed=args.seed, progress=False)
    genes_before = f1(first, genes_test)
    first.fine_tune(people_train, seed=args.seed, progress=False)  # continues from the gene checkpoint
    people_retuned, genes_after = f1(first, people_test), f1(first, genes_test)

    fresh = Metamodel.from_base(seed=args.seed)
    fresh.fine_tune(people_train, seed=args.seed, progress=False)
    people_fresh = f1(fresh, people_test)

    print(f"continual re-tuning, {args.size} sentences per task, {args.test_size} test sentences each")
    print(f"  BTC persons F1: re-tuned from BC2GM checkpoint {people_retuned:.3f} vs from base {people_fresh:.3f}")
    print(f"  BC2GM F1: after task 1 {genes_before:.3f}, after re-tuning on BTC {genes_after:.3f} "
          f"(kept {genes_after / genes_before:.0%})")
    path = save("continual", {"size": args.size, "btc_per_retuned": people_retuned, "btc_per_from_base": people_fresh,
                              "bc2gm_before": genes_before, "bc2gm_after": genes_after})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
