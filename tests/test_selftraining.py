"""Self-training on unlabeled texts: a capped seeded pool, only sure pseudo-labels at the
annotations' share of positives, deterministic, and the teacher kept unless beaten on dev."""

import numpy as np
import pytest
import torch

from falconer_core import LabelExample, SpanExample
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.prompt import B, I
from falconer_core.training.selftraining import balance, pseudo_label, self_train, unlabeled_pool
from falconer_core.training.settings import TrainingSettings
from tests.test_metamodel import _toy_examples

FAST = {"epochs": 2, "learning_rate": 1e-3, "progress": False, "calibrate_threshold": False}


def _unlabeled(n: int, seed: int = 9) -> list[str]:
    return [e.text for e in _toy_examples(n, seed=seed) if isinstance(e, SpanExample)]


def _weights(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.model.parameters()]


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def teacher(tiny_encoder_path):
    model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
    model.fine_tune(_toy_examples(60, seed=1), **FAST)
    return model


def test_pool_is_capped_distinct_seeded_and_leaves_out_annotated_texts():
    examples = _toy_examples(10, seed=1)
    texts = [examples[0].text, "", "  ", "a", "b", "a"] + [f"text {i}" for i in range(50)]
    pool = unlabeled_pool(texts, examples, cap=20, seed=0)
    assert len(pool) == 20 and len(set(pool)) == 20
    assert examples[0].text not in pool and "" not in pool and "  " not in pool
    assert pool == unlabeled_pool(texts, examples, cap=20, seed=0) != unlabeled_pool(texts, examples, cap=20, seed=1)
    assert unlabeled_pool(texts, examples, cap=100, seed=0) == ["a", "b"] + [f"text {i}" for i in range(50)]


def test_balance_keeps_the_surest_answers_at_the_annotations_share_of_positives():
    def span(i, positive):
        return SpanExample(f"t{i}", "x", ((__import__("falconer_core").Span("t", 0, 1)),) if positive else ())

    sure = [(0.99, span(0, True)), (0.95, span(1, True)), (0.97, span(2, False)), (0.99, span(3, False)),
            (0.92, span(4, False)), (0.93, span(5, False)), (0.91, span(6, False))]
    kept = balance(sure, share=0.4)  # 2 positives allow 3 negatives: the three surest
    assert [e.text for e in kept] == ["t0", "t1", "t2", "t3", "t5"]
    assert [e.text for e in balance(sure, share=0.0)] == ["t2", "t3", "t4", "t5", "t6"]
    assert [e.text for e in balance(sure, share=1.0)] == ["t0", "t1"]


def test_text_level_pseudo_labels_are_only_the_teachers_sure_answers(teacher):
    gold = _toy_examples(60, seed=1)
    pool = _unlabeled(80)
    loose, loose_stats = pseudo_label(teacher, pool, gold, threshold=0.5 + 1e-9, unit="text")
    confidences = []
    for e in loose:
        if isinstance(e, SpanExample):
            _, probs = teacher.span_word_probs([e.text], e.instruction, progress=False)[0]
            inside = probs[:, B] + probs[:, I]
            confidences.append(float(np.min(np.maximum(inside, 1 - inside))))
    threshold = float(np.median(confidences))  # half the span answers are below it
    strict, stats = pseudo_label(teacher, pool, gold, threshold=threshold, unit="text")
    span_stats = stats["Extract the animal."]
    assert 0 < span_stats["sure"] < loose_stats["Extract the animal."]["sure"]
    for e in strict:
        if isinstance(e, SpanExample):
            _, probs = teacher.span_word_probs([e.text], e.instruction, progress=False)[0]
            inside = probs[:, B] + probs[:, I]
            assert np.min(np.maximum(inside, 1 - inside)) >= threshold
        else:
            assert teacher.get_label([e.text], e.instruction, progress=False)[0].confidence >= threshold
    assert {e.instruction for e in strict} <= {"Extract the animal.", "Does the text name an animal?"}


def test_instructions_asked_only_a_few_times_are_not_pseudo_labelled(teacher):
    gold = _toy_examples(20, seed=1) + [SpanExample("Ada wrote it.", "What is Ada's profession?", ())]
    _, stats = pseudo_label(teacher, _unlabeled(20), gold, threshold=0.51)
    assert "What is Ada's profession?" not in stats and "Extract the animal." in stats


def test_self_training_is_deterministic_and_is_fine_tune_then_self_train(tiny_encoder_path):
    examples, pool = _toy_examples(100, seed=1), _unlabeled(200)
    settings = TrainingSettings(**FAST, pseudo_confidence=0.51, max_unlabeled=60, self_training_lr_scale=0.1)
    runs = []
    for _ in range(2):
        model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
        summary = model.fine_tune(examples, settings, unlabeled_texts=pool)
        runs.append((_weights(model), summary))
    assert _same(runs[0][0], runs[1][0])
    st = runs[0][1].self_training
    assert st.rounds == runs[1][1].self_training.rounds and st.pool == 60 and st.rounds[0]["pseudo_labels"] > 0
    assert runs[0][1].seconds >= st.seconds

    # the same as a plain fine-tune followed by self_train: what benchmarks/unlabeled.py relies on
    model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
    model.fine_tune(examples, settings)
    again = self_train(model, examples, pool, settings)
    assert _same(_weights(model), runs[0][0]) and again.rounds == st.rounds


def test_without_unlabeled_texts_fine_tune_is_what_it_was(tiny_encoder_path):
    examples = _toy_examples(100, seed=1)
    weights, summaries = [], []
    for kwargs in ({}, {"unlabeled_texts": None}, {"unlabeled_texts": _unlabeled(50), "unlabeled": False}):
        model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
        summaries.append(model.fine_tune(examples, **FAST, **kwargs))
        weights.append(_weights(model))
    assert _same(weights[0], weights[1]) and _same(weights[0], weights[2])
    assert all(s.self_training is None for s in summaries)


def test_a_round_that_does_not_beat_the_teacher_on_dev_leaves_the_teacher(tiny_encoder_path):
    examples = _toy_examples(100, seed=1)
    model = Metamodel.from_base(str(tiny_encoder_path), seed=1)
    settings = TrainingSettings(**FAST, pseudo_confidence=0.51, max_unlabeled=60, self_training_rounds=2)
    model.fine_tune(examples, settings)
    before = _weights(model)
    wrecked = settings.model_copy(update={"self_training_lr_scale": 500.0})  # a rate that ruins the student
    summary = self_train(model, examples, _unlabeled(100), wrecked)
    assert summary.rounds[0]["kept"] is False and summary.kept_rounds == 0 and len(summary.rounds) == 1
    assert _same(_weights(model), before)
    assert isinstance(examples[1], LabelExample)


def test_word_level_pseudo_labels_ignore_only_the_unsure_words(teacher):
    from falconer_core.training.loop import encode_examples
    from falconer_core.training.selftraining import MIN_KEPT_WORDS, PseudoSpanExample

    gold = _toy_examples(60, seed=1)
    pool = _unlabeled(40)
    probs = teacher.span_word_probs(pool, "Extract the animal.", progress=False)
    words = np.concatenate([np.maximum(p[:, B] + p[:, I], 1 - p[:, B] - p[:, I]) for _, p in probs.values()])
    threshold = float(np.quantile(words, 0.3))  # about 30% of words unsure
    pseudo, stats = pseudo_label(teacher, pool, gold, threshold=threshold, unit="word")
    spans = [e for e in pseudo if isinstance(e, SpanExample)]
    assert spans and all(isinstance(e, PseudoSpanExample) for e in spans)
    for e in spans:
        _, probs = teacher.span_word_probs([e.text], e.instruction, progress=False)[0]
        inside = probs[:, B] + probs[:, I]
        sure = np.maximum(inside, 1 - inside) >= threshold
        assert set(e.ignored_words) == set(np.flatnonzero(~sure).tolist())
        assert sure.mean() >= MIN_KEPT_WORDS
    # the ignored words carry no label in training; the others are tagged as the teacher said
    example = next(e for e in spans if e.ignored_words)
    (window,) = encode_examples(teacher.encoder, [example])
    plain = encode_examples(teacher.encoder, [SpanExample(example.text, example.instruction, example.spans)])[0]
    text = teacher.encoder.encode_texts([example.text])[0]
    for t in range(window.token_start, window.token_end):
        word = text.first_token_word[t]
        position = window.text_offset + t - window.token_start
        if word in example.ignored_words:
            assert window.labels[position] == -100
        elif word >= 0:
            assert window.labels[position] == plain.labels[position] != -100
