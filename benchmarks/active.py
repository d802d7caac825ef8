"""Label efficiency of active sampling: how many annotations active rounds need to reach the
held-out F1 that random sampling reaches, on the same budget grid.

    python benchmarks/active.py --dataset sms --grid 50 100 200 400 --seeds 0 1 2
    python benchmarks/active.py --dataset btc --grid 100 200 400 --seeds 0 1 2   # the demo plan

Per seed, one random order of the training pool: random sampling annotates its prefixes (one
fine-tune per grid size). Active rounds start from the same first prefix, then grow to each
next grid size with the texts the current metamodel is least sure of (`falconer_core.sampling.active`:
`uncertainty` on a random pool of unannotated texts, `select_uncertain` to keep a batch from
being near-copies), re-tuning from the base model each round, as `incubate` does. Gold labels
stand in for the annotator. Every fine-tune has the same default settings (no self-training).

The score is the plan's mean F1 over its steps on a fixed test set: spam F1 (SMS); for the demo
plan, "mentions a place" F1 on every test tweet and person word-F1 on the tweets that mention a
place (the span step only runs behind the filter, and is only annotated there). Label
efficiency at a grid size g: g over the annotations the mean active curve needs to reach the
mean random F1 at g (linear between grid points).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from dataclasses import dataclass

import common  # noqa: F401  (sets the offline environment)
from common import save, subset

from falconer_core.data import demo_plan
from falconer_core.evaluation import label_metrics, word_f1
from falconer_core.metamodel import Metamodel
from falconer_core.plan import Plan
from falconer_core.readers import load_sms, read_tagged, resolve_data_dir, tagged_spans
from falconer_core.sampling.active import select_uncertain, uncertainty
from falconer_core.training import TrainingSettings
from falconer_core.types import LabelExample, SpanExample

SPAM = "Is this message spam?"
PLANS = {
    "btc": demo_plan(),
    "sms": Plan.from_dict({"steps": [{"name": "is_spam", "op": "label", "instruction": SPAM}], "filter": "is_spam"}),
}
PLACE, PEOPLE = (step.instruction for step in PLANS["btc"].steps)


@dataclass(frozen=True)
class Item:
    """One text with its gold answers as training examples (what annotating it yields)."""

    text: str
    label: bool
    spans: tuple = ()

    def examples(self, dataset: str) -> list:
        if dataset == "sms":
            return [LabelExample(self.text, SPAM, self.label)]
        place = [LabelExample(self.text, PLACE, self.label)]
        return place + ([SpanExample(self.text, PEOPLE, self.spans)] if self.label else [])


def btc_items(split: str) -> list[Item]:
    items, seen = [], set()
    for sentence in read_tagged(resolve_data_dir() / "btc" / f"{split}.conll"):
        text, found = tagged_spans(sentence.tokens, sentence.tags)
        if text.strip() and text not in seen:
            seen.add(text)
            items.append(Item(text, any(kind == "LOC" for kind, _ in found),
                              tuple(s for kind, s in found if kind == "PER")))
    return items


def load(dataset: str, test_size: int) -> tuple[list[Item], list[Item]]:
    """The training pool and the fixed test set."""
    if dataset == "sms":
        unique = {e.text: Item(e.text, e.label) for e in load_sms()}
        items = list(unique.values())
        random.Random(12345).shuffle(items)
        return items[test_size:], items[:test_size]
    if dataset != "btc":
        raise SystemExit(f"unknown dataset {dataset!r}: sms or btc")
    return btc_items("train"), subset(btc_items("test"), test_size, seed=12345)


def score(model: Metamodel, dataset: str, test: list[Item]) -> dict:
    texts = [i.text for i in test]
    if dataset == "sms":
        f1 = label_metrics(model.get_label(texts, SPAM, progress=False), [i.label for i in test])["f1"]
        return {"mean_f1": round(f1, 4), "is_spam": round(f1, 4)}
    place = label_metrics(model.get_label(texts, PLACE, progress=False), [i.label for i in test])["f1"]
    behind = [i for i in test if i.label]
    people = word_f1(model.get_span([i.text for i in behind], PEOPLE, progress=False),
                     [list(i.spans) for i in behind], [i.text for i in behind])["f1"]
    return {"mean_f1": round((place + people) / 2, 4), "mentions_place": round(place, 4), "people": round(people, 4)}


def tuned(dataset: str, items: list[Item], seed: int, test: list[Item]) -> dict:
    model = Metamodel.from_base(None, seed=seed)
    started = time.perf_counter()
    model.fine_tune([e for i in items for e in i.examples(dataset)], TrainingSettings(seed=seed, progress=False))
    return {"model": model, "fine_tune_seconds": round(time.perf_counter() - started, 1), **score(model, dataset, test)}


def plain(row: dict) -> dict:
    """A result row without its model, as printed and saved."""
    return {k: v for k, v in row.items() if k != "model"}


def needed(grid: list[int], curve: list[float], target: float) -> float | None:
    """Annotations at which a curve (F1 per grid size) first reaches `target`, linear between
    grid points; None when it never does."""
    if curve[0] >= target:
        return float(grid[0])
    for (g0, f0), (g1, f1) in zip(zip(grid, curve), zip(grid[1:], curve[1:])):
        if f1 >= target:
            return g0 + (g1 - g0) * (target - f0) / (f1 - f0)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=sorted(PLANS), default="sms")
    parser.add_argument("--grid", type=int, nargs="+", default=[50, 100, 200, 400], help="annotation budgets")
    parser.add_argument("--pool", type=int, default=3000, help="unannotated texts scored for each active round")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-size", type=int, default=2000)
    args = parser.parse_args()
    grid = sorted(args.grid)
    train, test = load(args.dataset, args.test_size)
    plan, name = PLANS[args.dataset], f"active-{args.dataset}-" + "-".join(map(str, grid))
    rows: list[dict] = []

    def record(row: dict) -> None:
        rows.append(row)
        print(plain(row), flush=True)
        save(name, {"test_size": len(test), "grid": grid, "rows": [plain(r) for r in rows]})  # partial results survive

    for seed in args.seeds:
        order = random.Random(3000 + seed).sample(train, len(train))  # random samples: prefixes of one shuffle
        first = tuned(args.dataset, order[: grid[0]], seed, test)
        for method in ("random", "active"):
            record({"seed": seed, "method": method, "annotations": grid[0], **first})
        for size in grid[1:]:
            record({"seed": seed, "method": "random", "annotations": size, **tuned(args.dataset, order[:size], seed, test)})
        annotated, model = list(order[: grid[0]]), first["model"]
        for round_, size in enumerate(grid[1:], start=2):
            taken = {i.text for i in annotated}
            rest = [i for i in order if i.text not in taken]
            pool = subset(rest, args.pool, seed=seed * 100 + round_)
            started = time.perf_counter()
            scores = uncertainty(model, plan, [i.text for i in pool])
            chosen = [pool[k] for k in select_uncertain([i.text for i in pool], scores, size - len(annotated), seed=seed + round_)]
            select_s = round(time.perf_counter() - started, 1)
            annotated += chosen
            result = tuned(args.dataset, annotated, seed, test)
            model = result["model"]
            record({"seed": seed, "method": "active", "annotations": size, **result, "select_seconds": select_s,
                    "chosen_positive": sum(i.label for i in chosen), "chosen": len(chosen)})

    curves = {m: [statistics.mean(r["mean_f1"] for r in rows if r["method"] == m and r["annotations"] == g) for g in grid]
              for m in ("random", "active")}
    summary = []
    print(f"\n{args.dataset}: mean F1 over {len(args.seeds)} seeds on {len(test)} test texts")
    for k, g in enumerate(grid):
        spread = {m: statistics.pstdev([r["mean_f1"] for r in rows if r["method"] == m and r["annotations"] == g])
                  for m in curves}
        active_needs = needed(grid, curves["active"], curves["random"][k])
        ratio = round(g / active_needs, 2) if active_needs else None
        summary.append({"annotations": g, "random": round(curves["random"][k], 4), "active": round(curves["active"][k], 4),
                        "random_spread": round(spread["random"], 4), "active_spread": round(spread["active"], 4),
                        "active_needs_for_random_f1": None if active_needs is None else round(active_needs), "ratio": ratio})
        print(f"  {g:>5}: random {curves['random'][k]:.4f} ±{spread['random']:.4f}  active {curves['active'][k]:.4f} "
              f"±{spread['active']:.4f}  active reaches random's F1 at {active_needs and round(active_needs)} (ratio {ratio})")
    print(f"results: {save(name, {'test_size': len(test), 'grid': grid, 'summary': summary, 'rows': [plain(r) for r in rows]})}")


if __name__ == "__main__":
    main()
