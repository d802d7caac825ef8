"""A three-text "talks" task answered by rules, so every expected annotation, example and output
row is known: shared by the annotator, fine-tune, evaluation, execution and reporting tests."""

from __future__ import annotations

import re
from collections.abc import Sequence

from falconer_core.annotators.annotation import annotate_sample
from falconer_core.plan import Plan
from falconer_core.types import (
    Instructions,
    LabelResult,
    Span,
    per_text_instructions,
)

TALKS = Plan.from_dict({
    "steps": [
        {"name": "is_science", "op": "label", "instruction": "Is this talk about science?"},
        {"name": "speaker", "op": "span", "instruction": "Extract the speaker's name"},
        {"name": "profession", "op": "span", "for_each": "speaker", "instruction": "What is {speaker}'s profession?"},
    ],
    "filter": "is_science",
    "outputs": ["speaker", "profession"],
})
TEXTS = [
    "Speaker: Ada Byron. Ada Byron is a mathematician who talks about science.",
    "Speaker: Tom Hardy. A talk about music.",
    "A science talk with no named speaker.",
]


class RuleRunner:
    """Answers the TALKS plan by rules, so every expected answer is known."""

    def get_label(self, texts: Sequence[str], instruction: Instructions) -> list[LabelResult]:
        return [LabelResult("science" in t, 0.9) for t in texts]

    def get_span(self, texts: Sequence[str], instruction: Instructions) -> list[list[Span]]:
        out = []
        for text, ask in zip(texts, per_text_instructions(texts, instruction)):
            if ask == "Extract the speaker's name":
                pattern = r"Speaker: ([A-Z]\w+ [A-Z]\w+)"
            else:
                name = re.fullmatch(r"What is (.+)'s profession\?", ask).group(1)
                pattern = re.escape(name) + r" is an? (\w+)"
            out.append([Span(m.group(1), m.start(1), m.end(1), 0.8) for m in re.finditer(pattern, text)])
        return out


def annotated_talks():
    return annotate_sample(TALKS, ["a", "b", "c"], TEXTS, RuleRunner(), annotator="rules")


