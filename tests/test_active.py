"""Active sampling: the least sure texts first, near-copies passed over, deterministic."""

import pytest

from falconer_core import ConfigError
from falconer_core.active import overlap, select_uncertain, uncertainty, word_set
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.decoding import span_confidence
from falconer_core.plan import Plan
from tests.mining_corpus import PLAN, tweets


def test_the_most_uncertain_texts_are_chosen_and_near_copies_passed_over():
    texts = ["the cat sat on the mat", "the cat sat on the mat again", "a dog ran in the park",
             "stocks fell sharply today", "rain is expected tomorrow"]
    scores = [0.9, 0.85, 0.5, 0.7, 0.1]
    assert select_uncertain(texts, scores, 3, max_overlap=1.0) == [0, 1, 3]  # by uncertainty alone
    assert select_uncertain(texts, scores, 3) == [0, 3, 2]  # the near-copy of text 0 is passed over
    assert select_uncertain(texts, scores, 5) == [0, 3, 2, 4, 1]  # ...and fills in last when needed
    assert select_uncertain(texts, scores, 9) == [0, 3, 2, 4, 1]
    assert overlap(word_set("The cat"), word_set("the CAT")) == 1.0 and overlap(frozenset(), frozenset()) == 0.0
    with pytest.raises(ConfigError, match="one score per text"):
        select_uncertain(texts, scores[:2], 1)


def test_ties_are_broken_by_the_seed_and_the_same_seed_gives_the_same_batch():
    texts = [f"text number {i} about topic {i}" for i in range(30)]
    flat = [0.5] * 30
    assert select_uncertain(texts, flat, 5, seed=1) == select_uncertain(texts, flat, 5, seed=1)
    assert select_uncertain(texts, flat, 5, seed=1) != select_uncertain(texts, flat, 5, seed=2)


def test_uncertainty_is_the_least_sure_step_per_text(tiny_encoder_path):
    model = Metamodel.from_base(str(tiny_encoder_path))
    plan = Plan.from_dict(PLAN)
    texts = tweets(12)["text"].tolist() + [""]
    scores = uncertainty(model, plan, texts)
    assert len(scores) == 13 and all(0.0 <= s <= 1.0 for s in scores) and scores[-1] == 0.0
    labels = model.get_label(texts[:12], PLAN["steps"][0]["instruction"], progress=False)
    probs = model.span_word_probs(texts[:12], PLAN["steps"][1]["instruction"], progress=False)
    for i in range(12):
        expected = max(2 * (1 - labels[i].confidence), 2 * (1 - span_confidence(probs[i][1])))
        assert scores[i] == pytest.approx(min(expected, 1.0))
