"""Build the demo corpus shipped in falconer_core/data from the Broad Twitter Corpus.

    python scripts/make_demo_corpus.py ../shared/data/btc/train.conll

Each tweet keeps human gold for the demo plan's two steps: `mentions_place` (true when the
tweet has a LOC annotation) and `people` (the PER spans, as JSON with character offsets).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pandas as pd

from falconer_core.readers import read_tagged, tagged_spans

OUT = Path(__file__).resolve().parents[1] / "falconer_core" / "data" / "demo_tweets.csv"


def main(path: str, n: int = 1200, seed: int = 0) -> None:
    rows = []
    for sentence in read_tagged(path):
        text, spans = tagged_spans(sentence.tokens, sentence.tags)
        if not text.strip():
            continue
        people = [{"text": s.text, "start": s.start, "end": s.end} for kind, s in spans if kind == "PER"]
        place = any(kind == "LOC" for kind, _ in spans)
        rows.append({"text": text, "mentions_place": place, "people": json.dumps(people)})
    rows = random.Random(seed).sample(rows, n)
    frame = pd.DataFrame(rows)
    frame.insert(0, "id", [f"btc-{i:05d}" for i in range(len(frame))])
    frame.to_csv(OUT, index=False)
    print(f"{OUT}: {len(frame)} tweets, {int(frame.mentions_place.sum())} mention a place, "
          f"{int((frame.people != '[]').sum())} name a person")


if __name__ == "__main__":
    main(sys.argv[1])
