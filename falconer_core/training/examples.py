"""Turning annotations into training examples for the metamodel, step by step.

Every answer becomes one example: a label answer a `LabelExample`, a span answer a
`SpanExample` (an empty one is a negative: "nothing to extract here" is worth learning), and a
per-span answer an example whose instruction is the templated one that was asked ("What is
Ada Lovelace's profession?"). Examples stay grouped by step so evaluation can score each
step on its own. An LLM answer with a span that matched nowhere in its text is left out: its
grounded remainder would teach "nothing more here", and an answer whose spans were all
paraphrased would teach "nothing here" at all.
"""

from __future__ import annotations

from collections.abc import Collection

from falconer_core.annotators.annotation import AnnotationSet
from falconer_core.execution import LabelOutcome
from falconer_core.execution.traces import answers, context_name
from falconer_core.types import Example, LabelExample, SpanExample

ExamplesByStep = dict[str, list[Example]]


def step_examples(annotations: AnnotationSet, ids: Collection[str] | None = None) -> ExamplesByStep:
    """Examples per plan step from the annotated texts (only those in `ids`, when given), in
    plan order; a step nobody answered (its filter rejected every text) maps to []. Answers
    with an ungrounded span (`AnnotationSet.ungrounded`) are left out."""
    texts = annotations.text_of()
    wanted = None if ids is None else {str(i) for i in ids}
    examples: ExamplesByStep = {step.name: [] for step in annotations.plan.steps}
    left_out = {step.name: annotations.ungrounded_answers(step.name) for step in annotations.plan.steps}
    for record in annotations.records:
        if wanted is not None and str(record.id) not in wanted:
            continue
        text = texts[str(record.id)]
        for step, trace in record.steps.items():
            for answer in answers(trace):
                if (str(record.id), context_name(step, answer.parents)) in left_out[step]:
                    continue
                if isinstance(answer.outcome, LabelOutcome):
                    example: Example = LabelExample(text, answer.instruction, answer.outcome.value)
                else:
                    example = SpanExample(text, answer.instruction, tuple(answer.outcome))
                examples[step].append(example)
    return examples


def flatten(examples: ExamplesByStep) -> list[Example]:
    """All examples of all steps in one list, as `Metamodel.fine_tune` takes them."""
    return [example for group in examples.values() for example in group]


__all__ = ["ExamplesByStep", "flatten", "step_examples"]
