"""The drift loop of issue 20, measured: a champion of the demo plan, a corpus whose topic shifts
under it, the drift check an execute runs, the `retune-on-drift` flow the trigger starts, and the
new champion's agreement on the shifted corpus beside the old one's before the shift.

    python benchmarks/drift_loop.py                   # about 15 CPU minutes
    python benchmarks/drift_loop.py --home /tmp/loop  # keeps the Falconer home (registry, store)

Everything goes through the code a deployment runs: the champion is mined by the `incubate`
flow (300 demo tweets annotated), the check is the execute's own (`check_texts` on the run's
seeded draw, then the audit and the declare rule), and the re-tune is the `retune-on-drift` flow
with the event's parameters (3 active rounds from the texts the champion is least sure of,
replay of its earlier set, the gate, promotion). BTC's human labels stand in for the LLM: they
annotate (the `gold` annotator reads them from the corpus's columns), audit, and score.

The shift (`--shift officials`): tweets of BTC's politicians' and officials' accounts, a source
the champion never saw, 75% of them mentioning a place, as during an event. (`drift_rates.py`'s
topic shift, half place tweets from the champion's own source, `--shift places`, moves a weak
champion's agreement by 0.28 but not a `mine`d one's: it finds places there as well as
elsewhere.) Agreement is the filter verdict's (what the audit compares) on 300 tweets each:
- `before`: the unchanged corpus (fresh BTC tweets, the champion's source);
- `shifted`: the drifted corpus the re-tune annotated from (100 of its texts were annotated);
- `shifted, fresh`: another seeded draw of the same shift, none of it seen by the re-tune.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import common  # noqa: F401  (sets the offline environment)
import pandas as pd
from common import benchmark_home, save
from drift import Gold, btc, other_tweets
from drift_rates import Truth, shifted
from throughput import cpu_features

from falconer_core.data import DEMO_CORPUS_PATH, DEMO_PLAN_PATH, demo_plan
from falconer_core.drift import DriftSettings
from falconer_core.drift.check import Auditor, check_texts, sample_positions
from falconer_core.metamodel import Metamodel
from falconer_core.readers import load_split
from falconer_core.registry import Registry
from falconer_core.registry.drift import read_reference
from falconer_core.settings import Settings

MODEL = "falconer-metamodel"


def write_corpus(path: Path, texts: list[str], place: dict, people: dict) -> dict:
    """A CSV corpus with the gold in the demo plan's step columns (what the `gold` annotator reads)."""
    spans = [json.dumps([{"text": s.text, "start": s.start, "end": s.end} for s in people[t]]) for t in texts]
    pd.DataFrame({"id": [f"{path.stem}-{i}" for i in range(len(texts))], "text": texts,
                  "mentions_place": [place[t] for t in texts], "people": spans}).to_csv(path, index=False)
    return {"path": str(path), "id_column": "id", "name": path.stem}


def officials(place: dict, people: dict, size: int, share: float, rng: random.Random) -> tuple[list[str], list[str]]:
    """Two disjoint draws of `size` tweets from BTC's politicians' and officials' accounts (its test
    section), `share` of each mentioning a place: a new source talking about places, as during an
    event (a `mine`d champion's filter agreed with the gold on 0.66 of their place tweets, 0.88 of
    the others, against 0.87 on its own source's tweets)."""
    tweets = load_split("btc-loc", "test")
    place |= {t.text: bool(t.spans) for t in tweets}
    people |= {t.text: list(t.spans) for t in load_split("btc-per", "test")}
    found = [t.text for t in tweets if t.spans]
    if len(found) < 2 * round(share * size):
        raise SystemExit(f"the officials' section has {len(found)} place tweets: too few for two draws of "
                         f"{round(share * size)}; lower --size or --share")
    with_place = rng.sample(found, 2 * round(share * size))
    without = rng.sample([t.text for t in tweets if not t.spans], 2 * (size - round(share * size)))
    half_p, half_n = len(with_place) // 2, len(without) // 2
    draws = [with_place[:half_p] + without[:half_n], with_place[half_p:] + without[half_n:]]
    for draw in draws:
        rng.shuffle(draw)
    return draws[0], draws[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--champion-size", type=int, default=300, help="Demo tweets the champion's `mine` annotates.")
    parser.add_argument("--size", type=int, default=300, help="Tweets per corpus.")
    parser.add_argument("--shift", choices=("officials", "places"), default="officials",
                        help="officials: tweets of BTC's politicians' and officials' accounts (its test section), "
                             "`--share` of them mentioning a place; places: other BTC tweets, `--share` mentioning one.")
    parser.add_argument("--share", type=float, default=0.75, help="Share of the shifted corpus that mentions a place.")
    parser.add_argument("--rounds", type=int, default=3, help="Active rounds of the re-tune (retune-on-drift's default).")
    parser.add_argument("--budget", type=int, default=None,
                        help="Texts the re-tune annotates (default: retune-on-drift's sampling, 5%% with a floor).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", help="Falconer home to keep (default: a temporary one).")
    args = parser.parse_args()
    home = benchmark_home(args.home, "falconer-drift-loop-")
    home.mkdir(parents=True, exist_ok=True)
    from flows.incubate import incubate
    from flows.parameters import IncubationSettings
    from flows.retune_on_drift import DRIFT_INCUBATION, retune_on_drift

    started, cpu0 = time.perf_counter(), time.process_time()
    plan = demo_plan()
    place, people = btc()
    demo = pd.read_csv(DEMO_CORPUS_PATH, dtype=str, keep_default_na=False)
    pool = other_tweets(place, list(demo["text"]))
    places = [t for t in pool if place[t]]
    rng = random.Random(f"loop:{args.seed}")
    before = rng.sample(pool, args.size)
    if args.shift == "places":
        drifted = shifted("places", args.share, rng.sample(pool, args.size), {"places": places}, rng)
        fresh = shifted("places", args.share, rng.sample(pool, args.size), {"places": places}, rng)
    else:
        drifted, fresh = officials(place, people, args.size, args.share, rng)
    corpora = {name: write_corpus(home / f"{name}.csv", texts, place, people)
               for name, texts in (("before", before), ("shifted", drifted), ("fresh", fresh))}

    # 1. the champion, as `mine` makes it (or the one `--home` already holds)
    registry = Registry.from_settings(Settings())
    held = registry.champion_of(MODEL, plan.hash)
    if held is None:
        mined = incubate(corpus={"path": str(DEMO_CORPUS_PATH), "id_column": "id", "name": "demo"},
                         task={"plan": str(DEMO_PLAN_PATH), "annotator": {"name": "gold"}},
                         incubation=IncubationSettings(sampling={"fraction": 1.0, "cap": args.champion_size}))
        print(f"champion {mined.model_version} ({mined.n_annotations} annotations): {mined.promotion}", flush=True)
    champion = str(held or mined.model_version)
    v1 = Metamodel.load(registry.download(champion))
    truth = {champion: Truth(v1, plan, place, people)}

    # 2. the drift check a nightly execute on the shifted corpus runs, audited by the gold
    settings = DriftSettings()
    reference = read_reference(registry, champion)
    verdicts = {}
    for name, texts in (("before", before), ("shifted", drifted)):
        drawn = [texts[i] for i in sample_positions(len(texts), settings.sample, settings.seed)]
        verdict = check_texts(run_id=f"nightly-{name}", version=champion, runner=v1, plan=plan, texts=drawn,
                              reference=reference, settings=settings,
                              auditor=lambda _plan: Auditor(annotator=Gold(place, people), identity="BTC gold"))
        verdicts[name] = verdict.model_dump(mode="json", include={"status", "declared", "reason", "audit"})
        print(f"nightly on {name}: {verdict.status}: {verdict.reason}", flush=True)

    # 3. what the trigger starts for a declared drift: retune-on-drift with the event's fields
    retuned = None
    if verdicts["shifted"]["declared"]:
        update = {"active": DRIFT_INCUBATION.active.model_copy(update={"rounds": args.rounds})}
        if args.budget:
            update["sampling"] = DRIFT_INCUBATION.sampling.model_copy(
                update={"fraction": 1.0, "floor": args.budget, "cap": args.budget})
        incubation = DRIFT_INCUBATION.model_copy(update=update)
        retuned = retune_on_drift(model=champion, plan_hash=plan.hash, corpus=corpora["shifted"],
                                  annotator={"name": "gold"}, incubation=incubation)
    new = str(registry.champion_of(MODEL, plan.hash))
    if new != champion:
        truth[new] = Truth(Metamodel.load(registry.download(new)), plan, place, people)

    # 4. agreement of each version on each corpus
    table = {v: {name: t.agreement(texts)["filter"] for name, texts in
                 (("before", before), ("shifted", drifted), ("shifted, fresh", fresh))} for v, t in truth.items()}
    pre = table[champion]["before"]
    print(f"\nfilter agreement with the gold ({args.size} tweets each; the shifted ones {args.share:.0%} place tweets)")
    print(f"  {'version':<22} {'before':>8} {'shifted':>8} {'shifted, fresh':>15}")
    for version, row in table.items():
        print(f"  {version:<22} {row['before']:>8.3f} {row['shifted']:>8.3f} {row['shifted, fresh']:>15.3f}")
    if new != champion:
        print(f"recovery: new champion on the shifted corpus {table[new]['shifted']:.3f} vs {pre:.3f} before the shift "
              f"(gap {pre - table[new]['shifted']:+.3f}; fresh draw {pre - table[new]['shifted, fresh']:+.3f}; "
              f"within 0.02: {pre - table[new]['shifted'] <= 0.02})")
    audit = (verdicts["shifted"].get("audit") or {}).get("n_texts", 0)
    annotated = retuned.n_annotations if retuned is not None else 0
    seconds = {"wall": round(time.perf_counter() - started), "cpu": round(time.process_time() - cpu0)}
    print(f"LLM texts: audit {audit} + re-annotation {annotated} vs {args.size} to re-mine the corpus; "
          f"{seconds['wall']} s wall, {seconds['cpu']} CPU s (this process)")
    print(f"saved {save('drift_loop', {'cpu': cpu_features()['cpu'], 'args': vars(args), 'home': str(home), 'champion': champion, 'new_champion': new, 'verdicts': verdicts, 'agreement': table, 'retuned': None if retuned is None else retuned.model_dump(mode='json'), 'seconds': seconds})}")


if __name__ == "__main__":
    main()
