"""A small synthetic corpus of tweets with human labels in columns named after the plan steps,
for pipeline and flow tests: half mention a place, and the people named in each are known."""

from __future__ import annotations

import json
import random

import pandas as pd

PLACES = ["Paris", "London", "Berlin", "Madrid", "Rome", "Tokyo", "Lisbon", "Oslo"]
PEOPLE = ["Alice Smith", "Bob Jones", "Carla Diaz", "David Lee", "Emma Brown", "Frank Moore", "Grace Kim", "Hugo Silva"]
_WITH_PLACE = [
    "Had a great time in {place} with {person} today",
    "{person} just landed in {place}!",
    "Loving the weather in {place} this week",
    "{person} and {other} are touring {place}",
]
_WITHOUT_PLACE = [
    "{person} posted a new video",
    "Cannot wait for the weekend",
    "{person} and {other} are hilarious",
    "Coffee first, then emails",
]

INSTRUCTION = "Find tweets that mention a place and extract the people they mention"
PLAN = {
    "steps": [
        {"name": "mentions_place", "op": "label", "instruction": "Does this tweet mention a place?"},
        {"name": "people", "op": "span", "instruction": "Extract the names of people."},
    ],
    "filter": "mentions_place",
    "outputs": [{"name": "people", "step": "people"}],
}


def tweets(n: int = 150, seed: int = 0) -> pd.DataFrame:
    """`tweet_id`, `text`, and gold `mentions_place` (bool) and `people` (JSON list of names)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        place, person, other = rng.choice(PLACES), rng.choice(PEOPLE), rng.choice(PEOPLE)
        has_place = i % 2 == 0
        template = rng.choice(_WITH_PLACE if has_place else _WITHOUT_PLACE)
        text = template.format(place=place, person=person, other=other) + f" #{i}"
        people = sorted({p for p in (person, other) if p in text})
        rows.append({"tweet_id": f"t{i:03d}", "text": text, "mentions_place": has_place, "people": json.dumps(people)})
    return pd.DataFrame(rows)


def register_untrained(home, encoder_path, model_name: str) -> str:
    """Register a tiny metamodel with an untrained head for PLAN under `home` (its rows are what
    they are, the same everywhere, and it is unsure of nearly everything); returns its ref."""
    from falconer_core.metamodel import Metamodel
    from falconer_core.plan import Plan
    from falconer_core.registry import Registry
    from falconer_core.settings import Settings

    checkpoint = Metamodel.from_base(str(encoder_path)).save(home / "ckpt")
    ref = Registry.from_settings(Settings()).log_fine_tune(
        checkpoint, model_name=model_name, parent=None, base_model=str(encoder_path),
        plan=Plan.from_dict(PLAN), annotation_set_hash="none", n_annotations=0, annotator="human",
        corpus_id="none", settings={"epochs": 0}, metrics={"mean_f1": 0.0},
    )
    return str(ref)
