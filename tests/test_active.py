"""Active sampling: the least sure texts first, near-copies passed over, deterministic."""

import pytest

from falconer_core import ConfigError
from falconer_core.metamodel import Metamodel
from falconer_core.metamodel.decoding import span_confidence
from falconer_core.plan import Plan
from falconer_core.sampling.active import overlap, select_uncertain, uncertainty, word_set
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


def test_the_budget_splits_into_a_first_share_and_equal_later_batches():
    from falconer_core.sampling.active import ActiveSettings
    from falconer_core.sampling.rounds import batch_sizes

    assert batch_sizes(100, ActiveSettings()) == [100]
    assert batch_sizes(100, ActiveSettings(rounds=3)) == [50, 25, 25]
    assert batch_sizes(101, ActiveSettings(rounds=3, first_share=0.4)) == [40, 31, 30]
    assert batch_sizes(10, ActiveSettings(rounds=20, first_share=0.5)) == [5, 1, 1, 1, 1, 1]
    assert sum(batch_sizes(977, ActiveSettings(rounds=4, first_share=0.3))) == 977


def test_the_gate_is_cleared_by_the_lower_interval_end():
    from falconer_core.sampling.rounds import gate_cleared

    metrics = {"mean_f1": 0.8, "mean_f1_lo": 0.65, "mean_f1_hi": 0.9, "heldout_texts": 20.0}
    assert gate_cleared(metrics, {"mean_f1": 0.6}) and not gate_cleared(metrics, {"mean_f1": 0.7})
    assert gate_cleared({"accuracy.x": 0.9}, {"accuracy.x": 0.9})  # no interval: the value itself
    assert not gate_cleared(metrics, {"f1.missing": 0.1}) and not gate_cleared(metrics, {})


def test_a_grown_sample_keeps_corpus_order_and_only_drawn_texts_carry_their_probability():
    from falconer_core.sampling import sample_for_annotation
    from falconer_core.sampling.active import ActiveSettings, with_batch
    from falconer_core.sampling.rounds import first_round_holdout
    from falconer_core.training import HoldoutSettings

    ids = [f"t{i}" for i in range(50)]
    first = sample_for_annotation(ids, fraction=0.2, floor=0, cap=10, seed=3)
    grown = with_batch(first, ids, ["t49", "t0"])
    assert grown.ids == sorted(first.ids + ["t49", "t0"], key=ids.index) and grown.indices == [ids.index(i) for i in grown.ids]
    assert grown.weights(first.ids) == first.weights() and grown.weights(["t49"]) == {"t49": 1.0}
    assert grown.summary.sample_size == 12
    assert first_round_holdout(HoldoutSettings(fraction=0.2), ActiveSettings(rounds=3, first_share=0.5)).fraction == 0.4
    assert first_round_holdout(HoldoutSettings(fraction=0.2), ActiveSettings()).fraction == 0.2


def test_the_next_batch_is_unannotated_uncertain_and_from_the_pool(tiny_encoder_path, tmp_path):
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from falconer_core.metamodel import ModelSource
    from falconer_core.sampling.active import ActiveSettings, next_batch

    tweets(40).to_csv(tmp_path / "tweets.csv", index=False)
    corpus = snapshot_corpus(CorpusSource(path=str(tmp_path / "tweets.csv"), id_column="tweet_id"), tmp_path / "corpora")
    plan, model = Plan.from_dict(PLAN), ModelSource.base(str(tiny_encoder_path))
    annotated = corpus.ids()[:20]
    batch = next_batch(corpus, plan, model, annotated, 5, ActiveSettings(rounds=2, max_overlap=1.0))
    assert len(batch) == 5 and not set(batch) & set(annotated)
    rest = corpus.rows_by_id(corpus.ids()[20:])
    scores = dict(zip(rest["id"], uncertainty(Metamodel.from_base(str(tiny_encoder_path)), plan, rest["text"].tolist())))
    assert sorted(scores[i] for i in batch) == sorted(scores.values())[-5:]  # the five least sure
    assert next_batch(corpus, plan, model, annotated, 5, ActiveSettings(rounds=2, pool=3)) != batch  # pool of 3
    assert len(next_batch(corpus, plan, model, annotated, 5, ActiveSettings(rounds=2, pool=3))) == 3


def test_held_out_texts_come_only_from_the_drawn_first_round(tiny_encoder_path, tmp_path):
    from falconer_core.annotators.annotation import annotate_sample, build_annotator
    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.metamodel import ModelSource
    from falconer_core.training import HoldoutSettings, TrainingSettings, fine_tune_checkpoint

    frame = tweets(40).rename(columns={"tweet_id": "id"})
    plan = Plan.from_dict(PLAN)
    runner, _ = build_annotator(AnnotatorChoice(), plan, frame)
    annotations = annotate_sample(plan, frame["id"], frame["text"], runner, annotator="human")
    first = frame["id"].tolist()[:20]
    training = TrainingSettings(epochs=1, progress=False, unlabeled=False)
    start = ModelSource.base(str(tiny_encoder_path))
    checkpoint = fine_tune_checkpoint(annotations, start, training, HoldoutSettings(fraction=0.4, min_heldout=0), tmp_path, heldout_from=first)
    assert len(checkpoint.heldout_ids) == 8 and set(checkpoint.heldout_ids) <= set(first)
    assert sorted(checkpoint.train_ids + checkpoint.heldout_ids) == sorted(frame["id"])
    plain = fine_tune_checkpoint(annotations, start, training, HoldoutSettings(fraction=0.4, min_heldout=0), tmp_path)
    assert plain.key != checkpoint.key and len(plain.heldout_ids) == 16


def test_rounds_split_the_sample_budget_and_draw_exactly_the_first_round():
    from falconer_core.sampling import SamplingSettings
    from falconer_core.sampling.active import ActiveSettings
    from falconer_core.sampling.rounds import Rounds
    from falconer_core.training import HoldoutSettings

    sampling = SamplingSettings(fraction=0.1, floor=10, cap=500, seed=4)
    rounds = Rounds.plan(n_texts=1000, sampling=sampling, active=ActiveSettings(rounds=3))
    assert rounds.sizes == (50, 25, 25) and rounds.several and list(rounds.numbers) == [1, 2, 3]
    assert [rounds.next_size(r) for r in (1, 2)] == [25, 25]
    first = rounds.first_sampling(sampling)
    assert (first.floor, first.cap, first.fraction, first.seed) == (50, 50, 0.1, 4)
    assert rounds.holdout(HoldoutSettings(fraction=0.2)).fraction == 0.4

    single = Rounds.plan(n_texts=1000, sampling=sampling, active=ActiveSettings())
    assert single.sizes == (100,) and not single.several and list(single.numbers) == [1]
    assert single.first_sampling(sampling) is sampling
    assert single.holdout(HoldoutSettings(fraction=0.2)).fraction == 0.2
    assert Rounds.plan(n_texts=5, sampling=sampling, active=ActiveSettings(rounds=3)).sizes == (2, 2, 1)  # the corpus caps the budget


def test_rounds_hold_out_only_drawn_texts_and_stop_at_the_gate_the_budget_or_an_empty_batch():
    from falconer_core.sampling import sample_for_annotation
    from falconer_core.sampling.active import ActiveSettings, with_batch
    from falconer_core.sampling.rounds import Rounds

    ids = [f"t{i}" for i in range(40)]
    first = sample_for_annotation(ids, fraction=0.25, floor=0, cap=10, seed=1)
    rounds = Rounds(sizes=(10, 5, 5), active=ActiveSettings(rounds=3))
    assert rounds.heldout_from(first) == [str(i) for i in first.ids] and len(first.ids) == 10
    assert Rounds(sizes=(10,)).heldout_from(first) is None  # one round: any annotated text

    low = {"mean_f1": 0.5, "mean_f1_lo": 0.3}
    assert not rounds.stop_after(1, low, {"mean_f1": 0.4})  # the lower end is below the floor
    assert rounds.stop_after(1, low, {"mean_f1": 0.3})  # cleared with its interval
    assert not rounds.stop_after(2, low, {}) and rounds.stop_after(3, low, {})  # no gate: the budget ends it
    spend = Rounds(sizes=(10, 5, 5), active=ActiveSettings(rounds=3, stop_at_gate=False))  # a drift re-tune's
    assert not spend.stop_after(1, low, {"mean_f1": 0.3}) and spend.stop_after(3, low, {"mean_f1": 0.3})

    grown = with_batch(first, ids, [i for i in ids if i not in first.ids][:5])
    assert not Rounds.added_nothing(first, grown)
    assert Rounds.added_nothing(grown, with_batch(grown, ids, []))  # nothing left to annotate
    with pytest.raises(ValueError):
        Rounds(sizes=())
