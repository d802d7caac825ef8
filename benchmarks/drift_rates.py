"""The drift acceptance figures of issue 20 on a champion of the demo plan: how often drift is
declared on 20 seeded unchanged corpora and on 20 seeded shifted ones, how close the agreement
estimated without labels comes to the true agreement, and the LLM texts the loop spends beside
re-mining the corpus.

    python benchmarks/drift_rates.py                 # fine-tunes the champion first (a few minutes)
    python benchmarks/drift_rates.py --cache /tmp/c  # keeps (or reuses) the champion and its reference
    python benchmarks/drift_rates.py 2>/dev/null     # without the model's progress bars (stderr)

The champion is built as `benchmarks/drift.py` builds it (`demo_champion`: fine-tuned on demo
tweets, its drift reference measured on held-out demo tweets). The BTC human labels stand in
for the LLM everywhere: they built the reference, they are the "true agreement" a corpus is
scored on, and they are the auditor a fired signal is checked by (`drift.check.Auditor`), so
the audit goes through the same `check_texts` path and declare rule as an execute's.

Unchanged corpora: seeded samples of the BTC training tweets the demo does not hold (the same
source as the reference). Shifted corpora: the same draw with a share of its tweets from a new
source. The sweep (printed first) measures three, by the true agreement of the filter verdict
(what the audit compares) and of the span step, per share of the new source:
- `lowercase`: a client that lowercases what it forwards (offsets and gold spans stay valid).
  The filter hardly moves (a drop of 0.016 at 100%): the encoder's tokenizer is uncased, only
  the small shape embedding sees case. Not a drift for this model.
- `politicians`: tweets of BTC's test section (politicians' and officials' accounts) mixed in:
  a drop of at most 0.03. Not enough either.
- `places` (the default): a topic shift, as when an event makes a stream talk about places:
  tweets that mention a place (by the gold) replace a share of the draw, so the corpus's share
  of place tweets rises from about 23%. The champion finds few places (its recall is about
  0.3: it mostly answers "no place", and its reference agreement, 0.80, is near the 0.77 that
  "never" would score), so its agreement falls with the share: -0.13 at 25%, -0.29 at 50%.
The shifted corpora use 50% (`--shares`): the drop must be well past 0.05 because the declare
rule (the audit's Clopper-Pearson upper bound below the reference's agreement less
`max_drop`) cannot see a 0.05 drop on a 50-text audit; the power table printed last gives,
exactly, P(declared | a signal fired) per audit size at each measured true agreement.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment)
import pandas as pd
from common import machine, save
from drift import Gold, btc, demo_champion, other_tweets
from throughput import cpu_features

from falconer_core.cascade.bounds import binomial_interval
from falconer_core.cascade.scores import text_f1
from falconer_core.data import DEMO_CORPUS_PATH, demo_plan
from falconer_core.drift import DriftReference, DriftSettings
from falconer_core.drift.check import Auditor, check_texts, sample_positions
from falconer_core.drift.verdict import agreement_floor, declare
from falconer_core.execution import execute_plan
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split
from falconer_core.sampling.draw import SamplingSettings, sample_size
from falconer_core.types import Span

AUDITOR = "BTC gold labels (standing in for the LLM auditor)"
SHARES = (0.25, 0.5, 0.75, 1.0)
AUDIT_SIZES = (25, 50, 100, 200, 400)


class Truth:
    """The proxy's answers against the gold, per text, computed once per text (the model is
    deterministic): a corpus's true agreement is the mean over its texts."""

    def __init__(self, model, plan, place: dict[str, bool], people: dict[str, list]) -> None:
        self.model, self.plan, self.place, self.people = model, plan, place, people
        self.filter_ok: dict[str, bool] = {}
        self.span_f1: dict[str, float | None] = {}

    def ensure(self, texts: list[str]) -> None:
        todo = sorted({t for t in texts if t not in self.filter_ok})
        if not todo:
            return
        records = execute_plan(self.plan, todo, self.model, list(range(len(todo))), include_failed=True)
        span = self.plan.steps[1].name
        for text, record in zip(todo, records):
            self.filter_ok[text] = record.passed == self.place[text]
            both = record.passed and self.place[text] and record.steps.get(span) is not None
            self.span_f1[text] = text_f1(record.steps[span].result, self.people[text], text) if both else None

    def agreement(self, texts: list[str]) -> dict[str, float | None]:
        self.ensure(texts)
        f1 = [self.span_f1[t] for t in texts if self.span_f1[t] is not None]
        return {"filter": sum(self.filter_ok[t] for t in texts) / len(texts), "span": sum(f1) / len(f1) if f1 else None}


def lowercased(place: dict[str, bool], people: dict[str, list], texts: list[str]) -> None:
    """Add the lowercased tweets' gold: the same answers, span texts lowercased (same offsets)."""
    for text in texts:
        low = text.lower()
        place.setdefault(low, place[text])
        people.setdefault(low, [Span(s.text.lower(), s.start, s.end) for s in people[text]])


def shifted(kind: str, share: float, base: list[str], sources: dict[str, list[str]], rng: random.Random) -> list[str]:
    """`base` with a seeded `share` of its tweets lowercased, or replaced by tweets of `sources[kind]`."""
    chosen = set(rng.sample(range(len(base)), round(share * len(base))))
    if kind == "lowercase":
        return [t.lower() if i in chosen else t for i, t in enumerate(base)]
    extra = iter(rng.sample(sources[kind], len(chosen)))
    return [next(extra) if i in chosen else t for i, t in enumerate(base)]


def declare_power(n: int, agreement: float, floor: float) -> float:
    """P(the declare rule fires | a signal fired) for an audit of `n` texts whose true agreement
    is `agreement`: the binomial mass of the counts whose Clopper-Pearson upper bound is below `floor`."""
    from scipy.stats import binom

    return float(sum(binom.pmf(k, n, agreement) for k in range(n + 1) if declare(binomial_interval(k, n)[1], floor)))


def champion(args, plan, place, people, demo_texts) -> tuple[Metamodel, DriftReference]:
    """`drift.demo_champion`, kept in (or read back from) `--cache`."""
    folder = Path(args.cache) if args.cache else None
    if folder is not None and (folder / "reference.json").is_file():
        print(f"champion read back from {folder}")
        return Metamodel.load(folder / "model"), DriftReference.model_validate_json((folder / "reference.json").read_text())
    t0 = time.perf_counter()
    model, reference = demo_champion(plan, place, people, demo_texts, train=args.train, heldout=args.heldout, seed=args.seed)
    print(f"champion fine-tuned and its reference measured in {time.perf_counter() - t0:.0f}s")
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        model.save(folder / "model")
        (folder / "reference.json").write_text(reference.model_dump_json())
    return model, reference


def check(model, plan, reference, settings, texts, auditor, run_id) -> dict:
    """One corpus through the execute's drift check (`check_texts`, after `check_drift`'s draw)."""
    drawn = [texts[i] for i in sample_positions(len(texts), settings.sample, settings.seed)]
    verdict = check_texts(run_id=run_id, version=None, runner=model, plan=plan,
                          texts=drawn, reference=reference, settings=settings, auditor=auditor)
    steps = {s.step: s for s in verdict.report.steps}
    return {"status": verdict.status, "fired": verdict.fired, "declared": verdict.declared,
            "min_p": min(s.p_value for s in verdict.report.steps if s.p_value is not None),
            "audit": None if verdict.audit is None else verdict.audit.model_dump(include={"n_texts", "agreement", "low", "high", "floor"}),
            "estimate": {"filter": steps[plan.filter_steps[0]].agreement_estimate,
                         "span": steps[plan.steps[1].name].agreement_estimate}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", type=int, default=300, help="Demo tweets the champion is fine-tuned on.")
    parser.add_argument("--heldout", type=int, default=300, help="Demo tweets its reference is measured on.")
    parser.add_argument("--corpora", type=int, default=20, help="Seeded corpora of each kind.")
    parser.add_argument("--size", type=int, default=500, help="Tweets per corpus.")
    parser.add_argument("--shift", choices=("lowercase", "politicians", "places"), default="places")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.5],
                        help="Shares of a shifted corpus from the new source: 20 corpora each.")
    parser.add_argument("--sweep", type=int, default=500, help="Tweets per corpus of the shift sweep.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="Folder keeping the champion between runs.")
    args = parser.parse_args()
    started = time.perf_counter()

    plan = demo_plan()
    place, people = btc()
    demo_texts = list(pd.read_csv(DEMO_CORPUS_PATH)["text"])
    pool = other_tweets(place, demo_texts)
    lowercased(place, people, pool)
    sources = {"politicians": [p.text for p in load_split("btc-loc", "test")],
               "places": [t for t in pool if place[t]]}
    place |= {p.text: bool(p.spans) for p in load_split("btc-loc", "test")}
    people |= {p.text: list(p.spans) for p in load_split("btc-per", "test")}
    model, reference = champion(args, plan, place, people, demo_texts)
    settings = DriftSettings()
    ref = {s.step: s.agreement for s in reference.steps}
    print(f"reference: {reference.n_texts} held-out demo tweets, agreement {json.dumps(ref)}; "
          f"audit floor = reference - max_drop {settings.max_drop} (no gate)")
    truth = Truth(model, plan, place, people)

    # 1. the shift sweep: true agreement per share of the new source, on one seeded draw
    rng = random.Random(f"sweep:{args.seed}")
    base = rng.sample(pool, args.sweep)
    sweep = {"unchanged": truth.agreement(base)}
    print(f"\nshift sweep on {args.sweep} tweets (true agreement with the gold; filter = the audited verdict)")
    print(f"  {'corpus':<22} {'filter':>7} {'drop':>7} {'span F1':>8}")
    print(f"  {'unchanged':<22} {sweep['unchanged']['filter']:>7.3f} {0:>7.3f} {sweep['unchanged']['span'] or 0:>8.3f}")
    for kind in ("lowercase", "politicians", "places"):
        for share in SHARES:
            found = truth.agreement(shifted(kind, share, base, sources, random.Random(f"{kind}:{share}")))
            sweep[f"{kind} {share:.0%}"] = found
            drop = sweep["unchanged"]["filter"] - found["filter"]
            print(f"  {kind + f' {share:.0%}':<22} {found['filter']:>7.3f} {drop:>7.3f} {found['span'] or 0:>8.3f}", flush=True)

    if not args.corpora:
        print(f"saved {save('drift_rates', {'cpu': cpu_features()['cpu'], 'args': vars(args), 'sweep': sweep})}")
        return

    # 2. 20 unchanged and 20 shifted corpora through the drift check, audited by the gold
    def gold_auditor(audited):
        return Auditor(annotator=Gold(place, people), identity=AUDITOR)

    rows = []
    kinds = {"unchanged": 0.0} | {f"shifted {share:.0%}": share for share in args.shares}
    for kind, share in kinds.items():
        for i in range(args.corpora):
            rng = random.Random(f"{kind}:{args.seed}:{i}")
            texts = rng.sample(pool, args.size)
            if share:
                texts = shifted(args.shift, share, texts, sources, rng)
            t0 = time.perf_counter()
            found = check(model, plan, reference, settings, texts, gold_auditor, f"{kind}-{i}")
            true = truth.agreement(texts)
            rows.append({"kind": kind, "corpus": i, **found, "true": true, "seconds": round(time.perf_counter() - t0, 1)})
            audit = found["audit"]
            print(f"  {kind} {i:>2}: {found['status']:<20} min p {found['min_p']:.2g}  true {true['filter']:.3f}  "
                  f"est {found['estimate']['filter']:.3f}"
                  + (f"  audit {audit['agreement']:.2f} [{audit['low']:.2f}, {audit['high']:.2f}] floor {audit['floor']:.3f}"
                     if audit else "") + f"  ({rows[-1]['seconds']}s)", flush=True)

    # 3. the table
    summary = {}
    for kind in kinds:
        mine = [r for r in rows if r["kind"] == kind]
        errors = [abs(r["estimate"]["filter"] - r["true"]["filter"]) for r in mine]
        span_errors = [abs(r["estimate"]["span"] - r["true"]["span"]) for r in mine if r["true"]["span"] is not None]
        audited = [r["audit"]["n_texts"] for r in mine if r["audit"]]
        summary[kind] = {
            "corpora": len(mine), "fired": sum(r["fired"] for r in mine), "declared": sum(r["declared"] for r in mine),
            "true_filter_agreement": sum(r["true"]["filter"] for r in mine) / len(mine),
            "estimated_filter_agreement": sum(r["estimate"]["filter"] for r in mine) / len(mine),
            "filter_estimate_mae": sum(errors) / len(errors), "filter_estimate_max_error": max(errors),
            "span_estimate_mae": sum(span_errors) / len(span_errors) if span_errors else None,
            "audit_texts_per_corpus": sum(audited) / len(mine),
        }
    retune = SamplingSettings(fraction=0.05)  # prefect.yaml's retune-on-drift (the SamplingSettings default too)
    costs = []
    for n in (args.size, len(pool), 100_000):
        audit = settings.audit_size  # per audited check; the loop audits only when a signal fires
        reannotate = sample_size(n, retune.fraction, retune.floor, retune.cap)
        costs.append({"corpus": n, "audit": audit, "reannotation": reannotate, "loop": audit + reannotate,
                      "re_mine": n, "ratio": round((audit + reannotate) / n, 4)})

    floor = agreement_floor(settings.gate, ref[plan.filter_steps[0]], settings.max_drop)
    truths = {f"{kind} (true {s['true_filter_agreement']:.3f})": s["true_filter_agreement"] for kind, s in summary.items()}
    truths |= {f"sweep {name} (true {found['filter']:.3f})": found["filter"] for name, found in sweep.items()
               if name.startswith(args.shift)}
    power = {name: {n: round(declare_power(n, agreement, floor), 3) for n in AUDIT_SIZES} for name, agreement in truths.items()}

    print(f"\nauditor and truth: {AUDITOR}")
    print(f"shift: {args.shift}; {args.corpora} corpora of {args.size} tweets per row")
    print(f"{'corpora':<14} {'fired':>6} {'declared':>9} {'true agr.':>10} {'est. agr.':>10} {'est. MAE':>9} "
          f"{'max err':>8} {'span MAE':>9} {'audit texts':>12}")
    for kind, s in summary.items():
        print(f"{kind:<14} {s['fired']:>3}/{s['corpora']:<2} {s['declared']:>6}/{s['corpora']:<2} "
              f"{s['true_filter_agreement']:>10.3f} {s['estimated_filter_agreement']:>10.3f} {s['filter_estimate_mae']:>9.3f} "
              f"{s['filter_estimate_max_error']:>8.3f} {s['span_estimate_mae'] or 0:>9.3f} {s['audit_texts_per_corpus']:>12.1f}")
    print("\nLLM texts per declared drift (audit + the retune-on-drift re-annotation budget: fraction 0.05, floor 100, "
          "cap 2000; its active rounds may stop before spending it) vs re-mining the corpus")
    for c in costs:
        print(f"  corpus {c['corpus']:>7,}: audit {c['audit']} + re-annotation {c['reannotation']:,} = {c['loop']:,} "
              f"vs {c['re_mine']:,} ({c['ratio']:.1%})")
    print(f"\nP(declared | a signal fired), exact binomial, floor {floor:.3f}, by audit size")
    print(f"  {'corpora':<36}" + "".join(f"{n:>7}" for n in AUDIT_SIZES))
    for kind, row in power.items():
        print(f"  {kind:<36}" + "".join(f"{p:>7.2f}" for p in row.values()))
    seconds = time.perf_counter() - started
    cpu = cpu_features()["cpu"]
    print(f"\ncpu: {cpu}; {seconds:.0f}s wall")
    payload = {"cpu": cpu, "machine": machine(), "args": vars(args), "auditor": AUDITOR,
               "settings": settings.model_dump(mode="json", exclude={"audit_llm"}),
               "reference": {"n_texts": reference.n_texts, "agreement": ref}, "sweep": sweep, "summary": summary, "declare_power": power, "floor": floor,
               "costs": costs, "corpora": rows, "seconds": round(seconds, 1)}
    print(f"saved {save('drift_rates', payload)}")


if __name__ == "__main__":
    main()
