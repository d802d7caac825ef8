"""One reading of a yes/no answer, shared by gold labels and LLM labels."""

import numpy as np
import pytest

from falconer_core.annotators.gold import coerce_label
from falconer_core.errors import CorpusError
from falconer_core.parsing import parse_bool

TRUE = [True, 1, 1.0, "true", "TRUE", " t ", "T", "yes", "Yes", "y", "1", np.bool_(True), np.int64(1)]
FALSE = [False, 0, 0.0, "false", "False", "f", "F", "no", " NO", "n", "0", np.bool_(False), np.int64(0)]
NEITHER = [None, 2, -1, 0.5, "", "maybe", "truth", "nope", "10", [True], {"label": True}, np.array([1, 0])]


@pytest.mark.parametrize("value", TRUE)
def test_true_words(value):
    assert parse_bool(value) is True
    assert coerce_label(value) is True


@pytest.mark.parametrize("value", FALSE)
def test_false_words(value):
    assert parse_bool(value) is False
    assert coerce_label(value) is False


@pytest.mark.parametrize("value", NEITHER)
def test_anything_else_is_refused_not_guessed(value):
    with pytest.raises(ValueError, match="label .* is not a boolean"):
        parse_bool(value, "label")
    with pytest.raises(CorpusError, match="gold label"):
        coerce_label(value)


def test_the_llm_annotator_reads_labels_with_the_same_parser():
    from falconer_core.annotators.llm import _label_validator

    validate = _label_validator(4)
    answers = {"answers": [{"id": 1, "label": "t"}, {"id": 2, "label": "F"}, {"id": 3, "label": "yes"},
                           {"id": 4, "label": 0}]}
    assert [a["label"] for a in validate(answers)] == [True, False, True, False]
    with pytest.raises(ValueError, match="not a boolean"):
        validate({"answers": [{"id": i, "label": "maybe"} for i in range(1, 5)]})
