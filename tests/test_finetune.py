"""Fine-tuning glue: annotations become examples per step; the sample splits by text."""

from __future__ import annotations

import pytest

from falconer_core.training.examples import step_examples
from falconer_core.training.split import HoldoutSettings, split_ids
from falconer_core.types import (
    LabelExample,
    SpanExample,
)
from tests import talks as tk


@pytest.fixture
def talks():
    return tk.annotated_talks()


def test_examples_cover_every_step_with_negatives_and_templated_instructions(talks):
    examples = step_examples(talks)
    assert [e.label for e in examples["is_science"]] == [True, False, True]
    assert all(isinstance(e, LabelExample) for e in examples["is_science"])
    speakers = examples["speaker"]  # only texts passing the filter; the third has no speaker
    assert [[s.text for s in e.spans] for e in speakers] == [["Ada Byron"], []]
    (profession,) = examples["profession"]
    assert isinstance(profession, SpanExample)
    assert profession.instruction == "What is Ada Byron's profession?"
    assert [s.text for s in profession.spans] == ["mathematician"]
    assert step_examples(talks, ids=["b"]) == {"is_science": [examples["is_science"][1]], "speaker": [], "profession": []}


def test_split_is_by_text_deterministic_and_order_free():
    ids = [f"t{i}" for i in range(50)]
    train, heldout = split_ids(ids, HoldoutSettings(fraction=0.2, seed=3))
    assert len(heldout) == 10 and not set(train) & set(heldout) and set(train) | set(heldout) == set(ids)
    assert split_ids(list(reversed(ids)), HoldoutSettings(fraction=0.2, seed=3))[1] == list(reversed(heldout))
    assert split_ids(ids, HoldoutSettings(fraction=0.2, seed=4))[1] != heldout
    assert len(split_ids(ids[:12], HoldoutSettings(fraction=0.1, min_heldout=5))[1]) == 5
    assert split_ids(["only"], HoldoutSettings()) == (["only"], [])
    assert split_ids(ids, HoldoutSettings(fraction=0)) == (ids, [])


@pytest.fixture
def tweet_corpus(tmp_path):
    from falconer_core.corpus import CorpusSource, snapshot_corpus
    from tests.mining_corpus import tweets

    tweets(60).to_csv(tmp_path / "tweets.csv", index=False)
    return snapshot_corpus(CorpusSource(path=str(tmp_path / "tweets.csv"), id_column="tweet_id"), tmp_path / "corpora")


def test_unannotated_texts_leave_out_every_annotated_text_and_are_capped_and_seeded(tweet_corpus):
    from falconer_core.training import unannotated_texts

    ids, texts = tweet_corpus.ids(), tweet_corpus.texts()
    annotated = ids[:40]
    rest = unannotated_texts(tweet_corpus, annotated, cap=100, seed=0)
    assert rest == texts[40:]  # all of them, in corpus order
    few = unannotated_texts(tweet_corpus, annotated, cap=8, seed=0)
    assert len(few) == 8 and set(few) <= set(texts[40:]) and few == [t for t in texts if t in few]
    assert few == unannotated_texts(tweet_corpus, annotated, cap=8, seed=0) != unannotated_texts(tweet_corpus, annotated, cap=8, seed=1)
    assert unannotated_texts(tweet_corpus, annotated, cap=0, seed=0) == []
    assert unannotated_texts(tweet_corpus, ids, cap=10, seed=0) == []


def test_a_checkpoint_learns_from_the_corpus_unannotated_texts_unless_told_not_to(tweet_corpus, tiny_encoder_path, tmp_path):
    from falconer_core.annotators.annotation import annotate_sample, build_annotator
    from falconer_core.annotators.choice import AnnotatorChoice
    from falconer_core.metamodel import ModelSource
    from falconer_core.plan import Plan
    from falconer_core.training import TrainingSettings, fine_tune_checkpoint, fine_tune_key
    from tests.mining_corpus import PLAN

    plan = Plan.from_dict(PLAN)
    rows = tweet_corpus.rows_by_id(tweet_corpus.ids()[:40])
    runner, _ = build_annotator(AnnotatorChoice(), plan, rows)
    annotations = annotate_sample(plan, rows["id"], rows["text"], runner, annotator="human")
    start, holdout = ModelSource.base(str(tiny_encoder_path)), HoldoutSettings()
    training = TrainingSettings(epochs=1, progress=False, pseudo_confidence=0.51)
    used = fine_tune_checkpoint(annotations, start, training, holdout, tmp_path / "ckpt", tweet_corpus)
    assert used.n_unlabeled == 20 and used.summary["self_training"]["pool"] == 20
    assert used.key == fine_tune_key(annotations.hash, start, training, holdout, tweet_corpus.corpus_id)
    assert used.key != fine_tune_key(annotations.hash, start, training, holdout)

    off = training.model_copy(update={"unlabeled": False})
    plain = fine_tune_checkpoint(annotations, start, off, holdout, tmp_path / "ckpt", tweet_corpus)
    assert plain.n_unlabeled == 0 and plain.summary["self_training"] is None
    assert plain.key == fine_tune_key(annotations.hash, start, off, holdout)  # the corpus played no part
