"""Metrics on small cases whose counts were worked out by hand."""


import pytest

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.errors import ConfigError
from falconer_core.evaluation.comparison import compare
from falconer_core.evaluation.metrics import covered_words, exact_span_prf, label_metrics, prf, word_f1, word_offsets
from falconer_core.evaluation.scoring import score_texts
from falconer_core.plan import Plan
from falconer_core.sampling import sample_for_annotation
from falconer_core.types import (
    LabelResult,
    Span,
)
from tests import talks as tk


def span(text: str, part: str, occurrence: int = 0) -> Span:
    """The `occurrence`-th appearance of `part` in `text`, as a Span."""
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(part, start + 1)
    return Span(part, start, start + len(part))


TEXT = "the p53 tumor suppressor binds MDM2 protein"
#       words: the(0) p53(1) tumor(2) suppressor(3) binds(4) MDM2(5) protein(6)


def test_word_offsets_split_on_any_whitespace():
    assert word_offsets(" a  bc\td\n") == [(1, 2), (4, 6), (7, 8)]


def test_partial_overlap_covers_the_whole_word_and_empty_spans_cover_nothing():
    words = word_offsets(TEXT)
    assert covered_words([Span("53 tu", 5, 10)], words) == {1, 2}
    assert covered_words([Span("", 5, 5)], words) == set()
    # a span ending exactly where a word starts does not touch it
    assert covered_words([Span("the ", 0, 4)], words) == {0}


def test_word_f1_hand_computed():
    # text 1: gold {p53 tumor suppressor} = words {1,2,3}, {MDM2} = {5}
    #         predicted {p53}, {MDM2 protein} = {1,5,6}  -> tp 2 (1,5), fp 1 (6), fn 2 (2,3)
    # text 2: gold nothing, predicted "Ann" -> fp 1
    # text 3: both empty -> adds nothing
    text2, text3 = "Ann went home", "nothing here"
    gold = [[span(TEXT, "p53 tumor suppressor"), span(TEXT, "MDM2")], [], []]
    predicted = [[span(TEXT, "p53"), span(TEXT, "MDM2 protein")], [span(text2, "Ann")], []]
    scores = word_f1(predicted, gold, [TEXT, text2, text3])
    assert (scores["tp"], scores["fp"], scores["fn"]) == (2, 2, 2)
    assert scores["precision"] == pytest.approx(0.5)
    assert scores["recall"] == pytest.approx(0.5)
    assert scores["f1"] == pytest.approx(0.5)


def test_word_f1_is_micro_not_macro():
    # text A: 1 gold word found (tp 1); text B: 3 gold words, none found (fn 3).
    # micro recall = 1/4; a macro average would give (1 + 0) / 2 = 0.5.
    a, b = "x gene y", "alpha beta gamma"
    scores = word_f1([[span(a, "gene")], []], [[span(a, "gene")], [span(b, b)]], [a, b])
    assert scores["recall"] == pytest.approx(0.25)
    assert scores["precision"] == pytest.approx(1.0)
    assert scores["f1"] == pytest.approx(0.4)


def test_word_f1_overlapping_predictions_count_each_word_once():
    gold = [[span(TEXT, "tumor suppressor")]]
    predicted = [[span(TEXT, "tumor"), span(TEXT, "tumor suppressor"), span(TEXT, "suppressor")]]
    scores = word_f1(predicted, gold, [TEXT])
    assert (scores["tp"], scores["fp"], scores["fn"], scores["f1"]) == (2, 0, 0, 1.0)


def test_edge_cases_both_empty_is_perfect_one_side_empty_is_zero():
    assert word_f1([[], []], [[], []], ["a b", ""])["f1"] == 1.0
    assert word_f1([], [], [])["f1"] == 1.0
    only_gold = word_f1([[]], [[Span("a", 0, 1)]], ["a b"])
    assert (only_gold["precision"], only_gold["recall"], only_gold["f1"]) == (0.0, 0.0, 0.0)
    only_pred = word_f1([[Span("a", 0, 1)]], [[]], ["a b"])
    assert (only_pred["precision"], only_pred["recall"], only_pred["f1"]) == (0.0, 0.0, 0.0)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ConfigError, match="differ in length"):
        word_f1([[]], [[], []], ["a", "b"])
    with pytest.raises(ConfigError, match="differ in length"):
        exact_span_prf([[]], [])


def test_exact_span_prf_hand_computed():
    # text 1: gold (4,24) p53 tumor suppressor, (31,35) MDM2; predicted (4,7) p53, (31,35) MDM2
    #         -> tp 1, fp 1, fn 1.  text 2: predicted (0,3) twice = one fp, gold (4,8) = fn.
    other = "Ann went home"
    gold = [[span(TEXT, "p53 tumor suppressor"), span(TEXT, "MDM2")], [span(other, "went")]]
    predicted = [[span(TEXT, "p53"), span(TEXT, "MDM2")], [span(other, "Ann")] * 2]
    scores = exact_span_prf(predicted, gold)
    assert (scores["tp"], scores["fp"], scores["fn"]) == (1, 2, 2)
    assert scores["precision"] == pytest.approx(1 / 3)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(1 / 3)


def test_exact_is_stricter_than_word_level():
    gold, predicted = [[span(TEXT, "p53 tumor")]], [[span(TEXT, "p53")]]
    assert exact_span_prf(predicted, gold)["f1"] == 0.0
    assert word_f1(predicted, gold, [TEXT])["f1"] == pytest.approx(2 / 3)  # P 1, R 1/2


def test_label_metrics_hand_computed():
    # pairs (pred, gold): TT, TF, FT, FF, TT, FF  -> tp 2, fp 1, fn 1, tn 2
    predicted = [True, LabelResult(True, 0.6), False, LabelResult(False, 0.9), True, False]
    gold = [True, False, True, False, True, False]
    scores = label_metrics(predicted, gold)
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"], scores["n"]) == (2, 1, 1, 2, 6)
    assert scores["accuracy"] == pytest.approx(4 / 6)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(2 / 3)


def test_label_metrics_no_positives_anywhere():
    scores = label_metrics([False, False], [False, False])
    assert scores["accuracy"] == 1.0 and scores["f1"] == 1.0
    missed = label_metrics([False, False], [True, False])
    assert missed["accuracy"] == 0.5 and missed["f1"] == 0.0


@pytest.mark.parametrize("bad", [None, "no", 0.5, 2])
def test_label_metrics_refuses_values_that_are_not_labels(bad):
    with pytest.raises(ConfigError, match=r"predicted\[1\]"):
        label_metrics([True, bad], [True, False])


def test_label_metrics_refuses_empty_input():
    with pytest.raises(ConfigError, match="no items"):
        label_metrics([], [])


def test_prf_from_counts():
    assert prf(0, 0, 0)["f1"] == 1.0
    assert prf(3, 1, 2) == {
        "precision": 0.75,
        "recall": 0.6,
        "f1": pytest.approx(2 * 0.75 * 0.6 / 1.35),
        "tp": 3,
        "fp": 1,
        "fn": 2,
    }


@pytest.fixture
def talks():
    return tk.annotated_talks()



class Mute(tk.RuleRunner):
    """Finds no span anywhere."""

    def get_span(self, texts, instruction):
        return [[] for _ in texts]


class Sceptic(tk.RuleRunner):
    """Says no talk is about science, so the filter drops every text."""

    def get_label(self, texts, instruction):
        return [LabelResult(False, 0.9) for _ in texts]


def test_score_texts_per_step_and_end_to_end(talks):
    perfect = score_texts(tk.RuleRunner(), talks, predictor="rules")
    assert [(s.step, s.f1) for s in perfect.scores] == [("is_science", 1.0), ("speaker", 1.0), ("profession", 1.0)]
    assert perfect.end_to_end.f1 == 1.0 and perfect.weighting == "uniform"

    mute = score_texts(Mute(), talks, predictor="mute")
    steps = {s.step: s for s in mute.scores}
    assert steps["speaker"].f1 == 0.0 and steps["is_science"].accuracy == 1.0 and steps["profession"].n == 1
    # reference facts: a passes, "Ada Byron" (2 words), "mathematician"; c passes -> 5; mute finds
    # only the two filter verdicts: P 1, R 2/5, F1 4/7
    assert mute.end_to_end.f1 == pytest.approx(4 / 7)


def test_a_plan_without_a_filter_gives_no_free_filter_facts():
    # every text passes a plan with no filter: a verdict nobody made is no fact, so a model that
    # finds nothing scores 0 end to end, not a true positive per text
    plan = Plan.from_dict({"steps": [{"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"}],
                           "outputs": ["speaker"]})
    annotations = annotate_sample(plan, ["a", "b", "c"], tk.TEXTS, tk.RuleRunner(), annotator="rules")
    mute = score_texts(Mute(), annotations)
    assert mute.end_to_end.f1 == 0.0 and mute.end_to_end.recall == 0.0
    assert score_texts(tk.RuleRunner(), annotations).end_to_end.f1 == 1.0


def test_a_filter_error_reaches_only_the_end_to_end_score(talks):
    sceptic = score_texts(Sceptic(), talks)
    steps = {s.step: s for s in sceptic.scores}
    assert steps["speaker"].f1 == 1.0  # teacher-forced: asked only where the annotator's filter passed
    assert steps["is_science"].accuracy == pytest.approx(1 / 3)
    assert sceptic.end_to_end.f1 == 0.0 and sceptic.end_to_end.recall == 0.0


def test_every_figure_has_an_interval_that_holds_it(talks):
    mute = score_texts(Mute(), talks)
    for s in [*mute.scores, mute.end_to_end]:
        assert s.f1_lo <= s.f1 <= s.f1_hi
    assert mute.mean_f1_lo <= mute.mean_f1 <= mute.mean_f1_hi
    metrics = mute.metrics()
    assert {"mean_f1_lo", "mean_f1_hi", "f1.speaker_lo", "f1.speaker_hi", "end_to_end_f1_lo",
            "accuracy.is_science_hi"} <= set(metrics)
    again = score_texts(Mute(), talks)
    assert again.metrics() == metrics  # seeded: the same counts give the same intervals


def test_weights_must_cover_every_text_and_be_positive(talks):
    with pytest.raises(ConfigError, match="no sampling weight"):
        score_texts(tk.RuleRunner(), talks, weights={"a": 1.0})
    with pytest.raises(ConfigError, match="positive"):
        score_texts(tk.RuleRunner(), talks, weights={"a": 1.0, "b": 0.0, "c": 1.0})


def test_paired_comparison_flags_a_clearly_worse_candidate():
    texts = [f"Speaker: Ada Byron{i}. Ada Byron{i} is a mathematician who talks about science." for i in range(40)]
    annotations = annotate_sample(tk.TALKS, [f"t{i}" for i in range(40)], texts, tk.RuleRunner(), annotator="rules")
    good, bad = score_texts(tk.RuleRunner(), annotations), score_texts(Mute(), annotations)
    worse = compare(bad, good, "talks/1")
    assert worse.worse and worse.hi < 0 and worse.difference == pytest.approx(bad.mean_f1 - good.mean_f1)
    assert "worse beyond the noise" in worse.describe()
    assert not compare(good, good, "talks/1").worse  # the same model is never worse than itself
    with pytest.raises(ConfigError, match="same held-out texts"):
        compare(good, score_texts(tk.RuleRunner(), annotations, ids=["t1", "t2"]), "talks/1")


# -- a scorer that picks its own test set ---------------------------------------------------------

BIAS_PLAN = Plan.from_dict({
    "steps": [{"name": "relevant", "op": "label", "instruction": "Is this item relevant?"}],
    "outputs": ["relevant"],
})
N_ITEMS = 3000


def _item(text: str) -> int:
    return int(text.split()[1])


class Truth:
    """Item i is relevant when i % 5 == 0 (20% of the corpus)."""

    def get_label(self, texts, instruction):
        return [LabelResult(_item(t) % 5 == 0, 1.0) for t in texts]


class SelfAssured:
    """Finds 60% of the relevant items and calls 5% of the others relevant; the items it misses
    it is confidently wrong about, so they get the lowest scores, the ones a stratified sample
    by its own scores draws least."""

    def get_label(self, texts, instruction):
        out = []
        for t in texts:
            i = _item(t)
            jitter = (i * 7919 % 1000) / 10_000  # distinct scores, so ranks are not ties
            if i % 5 == 0:
                out.append(LabelResult(True, 0.85 + jitter) if i % 25 < 15 else LabelResult(False, 0.85 + jitter))
            else:
                out.append(LabelResult(True, 0.7 + jitter) if i % 20 == 1 else LabelResult(False, 0.6 + jitter))
        return out


def test_a_sample_stratified_by_the_scored_model_is_biased_unless_weighted():
    ids = [f"i{k}" for k in range(N_ITEMS)]
    texts = [f"item {k} of the corpus" for k in range(N_ITEMS)]
    truth = label_metrics(SelfAssured().get_label(texts, ""), [r.value for r in Truth().get_label(texts, "")])
    for seed in range(6):
        sample = sample_for_annotation(ids, BIAS_PLAN, texts=texts, scorer=SelfAssured(), fraction=0.1, seed=seed)
        assert sample.summary.method == "stratified"
        picked = [texts[i] for i in sample.indices]
        annotations = annotate_sample(BIAS_PLAN, sample.ids, picked, Truth(), annotator="truth")

        old = score_texts(SelfAssured(), annotations).scores[0]  # what Falconer reported before
        new = score_texts(SelfAssured(), annotations, weights=sample.weights()).scores[0]
        assert old.f1 > truth["f1"] + 0.1 and not old.f1_lo <= truth["f1"] <= old.f1_hi  # it flatters itself
        assert new.f1_lo <= truth["f1"] <= new.f1_hi, seed
        assert new.accuracy_lo <= truth["accuracy"] <= new.accuracy_hi, seed


def test_a_random_sample_weighs_every_text_alike():
    ids = [f"i{k}" for k in range(500)]
    sample = sample_for_annotation(ids, None, fraction=0.1, floor=10)
    assert set(sample.weights().values()) == {10.0}
