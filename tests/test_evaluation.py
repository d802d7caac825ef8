"""Metrics on small cases whose counts were worked out by hand."""


import pytest

from falconer_core.errors import ConfigError
from falconer_core.evaluation.metrics import covered_words, exact_span_prf, label_metrics, prf, word_f1, word_offsets
from falconer_core.evaluation.scoring import score_runner
from falconer_core.finetune.examples import step_examples
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



def test_score_runner_per_step(talks):
    examples = step_examples(talks)
    ops = {s.name: s.op for s in tk.TALKS.steps}
    perfect = score_runner(tk.RuleRunner(), examples, ops, predictor="rules", reference="rules")
    assert [(s.step, s.f1) for s in perfect] == [("is_science", 1.0), ("speaker", 1.0), ("profession", 1.0)]

    class Mute(tk.RuleRunner):
        def get_span(self, texts, instruction):
            return [[] for _ in texts]

    mute = {s.step: s for s in score_runner(Mute(), examples, ops, predictor="mute", reference="rules")}
    assert mute["speaker"].f1 == 0.0 and mute["is_science"].accuracy == 1.0 and mute["profession"].n == 1
