"""`falconer drift` on a model of the demo plan: 2,000 other BTC tweets (the corpus it was
trained on: should say "no drift") and 2,000 BC2GM sentences (a domain its task never saw:
should say "drift detected"), with the per-step figures, the agreement estimated without
labels beside the gold agreement on BTC, and the CPU.

    python benchmarks/drift.py                      # fine-tunes on demo tweets first (a few minutes)
    python benchmarks/drift.py --model tweets@champion-<plan_hash>   # a registered demo champion

Without `--model` the reference is built as registration builds it: on held-out demo tweets
against their human labels (the "annotator" is the gold here, not an LLM). The other BTC
tweets are the BTC training split minus the demo's 1,200.
"""

from __future__ import annotations

import argparse
import random
import time

import common  # noqa: F401  (sets the offline environment)
import pandas as pd
from common import machine, save

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.data import DEMO_CORPUS_PATH, demo_plan
from falconer_core.drift import build_reference, drift_report, measure_confidences
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split
from falconer_core.training import TrainingSettings
from falconer_core.types import LabelExample, LabelResult, SpanExample, per_text_instructions


class Gold:
    """The demo plan answered from BTC's human labels (LOC present; PER spans), by text."""

    def __init__(self, place: dict[str, bool], people: dict[str, list]) -> None:
        self.place, self.people = place, people

    def get_label(self, texts, instruction):
        return [LabelResult(self.place[t], 1.0) for t in texts]

    def get_span(self, texts, instruction):
        return [list(self.people[t]) for t, _ in zip(texts, per_text_instructions(texts, instruction))]


def btc() -> tuple[dict[str, bool], dict[str, list]]:
    places, people = load_split("btc-loc", "train"), load_split("btc-per", "train")  # one file, same order
    return {p.text: bool(p.spans) for p in places}, {q.text: list(q.spans) for q in people}


def other_tweets(place: dict[str, bool], demo_texts: list[str]) -> list[str]:
    """BTC training tweets the demo does not hold (in file order): fresh texts of the same source."""
    seen = set(demo_texts)
    return [t for t in place if t not in seen]


def demo_champion(
    plan, place: dict[str, bool], people: dict[str, list], demo_texts: list[str], *, train: int, heldout: int, seed: int,
):
    """A champion of the demo plan: fine-tuned on `train` demo tweets against their gold, with its
    drift reference measured as registration measures it, on `heldout` other demo tweets (the
    annotator is the BTC gold, standing in for the LLM). Returns (model, reference)."""
    order = random.Random(seed).sample(range(len(demo_texts)), len(demo_texts))
    chosen = [demo_texts[i] for i in order[:train]]
    held = [demo_texts[i] for i in order[train: train + heldout]]
    label, span = plan.steps
    examples = [LabelExample(t, label.instruction, place[t]) for t in chosen]
    examples += [SpanExample(t, span.instruction, tuple(people[t])) for t in chosen if place[t]]
    model = Metamodel.from_base(seed=seed)
    model.fine_tune(examples, TrainingSettings(epochs=3, seed=seed))
    ids = [f"h{i}" for i in range(len(held))]
    annotations = annotate_sample(plan, ids, held, Gold(place, people), annotator="human (BTC gold)")
    return model, build_reference(model, annotations, ids)


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="A registered demo champion (its recorded reference is used).")
    parser.add_argument("--train", type=int, default=300, help="Demo tweets to fine-tune on (without --model).")
    parser.add_argument("--heldout", type=int, default=300, help="Demo tweets the reference is measured on.")
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    plan = demo_plan()
    place, people = btc()
    demo = pd.read_csv(DEMO_CORPUS_PATH)
    demo_texts = list(demo["text"])
    started = time.perf_counter()
    if args.model:
        from falconer_core.registry import Registry
        from falconer_core.registry.drift import read_reference

        registry = Registry.from_settings()
        model = Metamodel.load(registry.fetch(args.model).path)
        reference = read_reference(registry, args.model)
        if reference is None:
            raise SystemExit(f"{args.model} has no drift reference; re-register it")
        plan = registry.plan_of(args.model)
    else:
        model, reference = demo_champion(plan, place, people, demo_texts, train=args.train, heldout=args.heldout,
                                         seed=args.seed)
    prepared = time.perf_counter() - started

    rng = random.Random(args.seed)
    other = rng.sample(other_tweets(place, demo_texts), args.sample)
    genes = [e.text for e in load_split("bc2gm", "train")]
    genes = rng.sample(genes, min(args.sample, len(genes)))
    results = {}
    for name, texts in (("btc (other tweets)", other), ("bc2gm", genes)):
        t0 = time.perf_counter()
        measured, records = measure_confidences(model, plan, texts)
        report = drift_report(reference, measured)
        seconds = time.perf_counter() - t0
        print(f"\n== {name}: {len(texts)} texts, {seconds:.1f}s")
        for row in report.rows():
            print("  " + " | ".join(f"{k}: {v}" for k, v in row.items()))
        print(f"  filter pass rate {report.pass_rate_reference:.3f} (reference) -> {report.pass_rate:.3f}")
        result = {"report": report.model_dump(), "verdict": report.verdict, "seconds": round(seconds, 2)}
        if name.startswith("btc"):  # gold agreement of the label step, to check the estimate against
            step = plan.steps[0].name
            truth = sum(r.steps[step].result.value == place[t] for r, t in zip(records, texts)) / len(texts)
            estimate = next(s.agreement_estimate for s in report.steps if s.step == step)
            result["label_agreement_gold"], result["label_agreement_estimate"] = round(truth, 4), round(estimate, 4)
            print(f"  {step}: agreement with the gold {truth:.3f}, estimated without labels {estimate:.3f}")
        print(f"  verdict: {report.verdict}")
        results[name] = result
    payload = {"machine": {**machine(), "cpu": cpu_name()}, "reference": {"n_texts": reference.n_texts, "pass_rate": reference.pass_rate,
               "agreement": {s.step: s.agreement for s in reference.steps}}, "prepare_seconds": round(prepared, 1),
               "results": results, "args": vars(args)}
    print(f"\nmachine: {payload['machine']}")
    print(f"saved {save('drift', payload)}")


if __name__ == "__main__":
    main()
