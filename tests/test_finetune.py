"""Fine-tuning glue: annotations become examples per step; the sample splits by text."""

from __future__ import annotations

import pytest

from falconer_core.finetune.examples import step_examples
from falconer_core.finetune.split import HoldoutSettings, split_ids
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
