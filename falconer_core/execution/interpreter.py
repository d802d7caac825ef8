"""Run a `Plan` over a batch of texts with any `Runner` (the metamodel, an LLM annotator, gold
labels) and get one output record per text that passes the filter.

Each step is one runner call over every (text, instruction) that reaches it, so the runner can
batch and bucket by length however it likes; per-span steps send one instruction per pair.
Records keep provenance — which step filled each field, with confidences and span offsets — so
every value can be traced back to the plan and the model that produced it.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from falconer_core.errors import CorpusError, ModelError
from falconer_core.plan import Plan, Step, evaluate_condition
from falconer_core.types import LabelResult, Runner, Span

# Where a step runs: (text index, index of the span taken at each level of its for_each chain).
Context = tuple[int, tuple[int, ...]]
RecordId = Union[str, int]
ProgressCallback = Callable[[str, int, int], None]


class LabelOutcome(BaseModel):
    """A label step's answer for one text (or one span)."""

    model_config = ConfigDict(frozen=True)

    value: bool = Field(description="Whether the label holds.")
    confidence: float = Field(description="The runner's confidence in `value`.")


class PerSpanOutcome(BaseModel):
    """A per-span step's result for one span of its `for_each` step."""

    model_config = ConfigDict(frozen=True)

    span: Span = Field(description="The span this result is about, with its offsets.")
    instruction: str | None = Field(
        default=None, description="The templated instruction sent (None at outer nesting levels)."
    )
    result: Outcome = Field(description="The step's answer for this span.")


Outcome = Union[LabelOutcome, list[Span], list[PerSpanOutcome]]
PerSpanOutcome.model_rebuild()


class StepTrace(BaseModel):
    """Provenance of one step on one text: what was asked and what came back."""

    model_config = ConfigDict(frozen=True)

    op: Literal["label", "span"]
    instruction: str = Field(description="The step's instruction (template, for per-span steps).")
    for_each: str | None = None
    result: Outcome


class OutputRecord(BaseModel):
    """One text's result: plain field values for tables, and the traces behind them."""

    model_config = ConfigDict(frozen=True)

    id: RecordId
    passed: bool = Field(description="Whether the text passed the plan's filter.")
    fields: dict[str, Any] = Field(
        description="Output field -> plain value: bool (label), list of span texts (span), or "
        "for per-span steps a list of {'span': text, 'value': ...} per span of the for_each step."
    )
    sources: dict[str, str] = Field(description="Output field -> the step that produced it.")
    steps: dict[str, StepTrace] = Field(description="Every step that ran on this text.")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (spans as {text, start, end, confidence})."""
        return self.model_dump(mode="json")


def execute_plan(
    plan: Plan | Mapping[str, Any],
    texts: Sequence[str],
    runner: Runner,
    ids: Sequence[Hashable] | None = None,
    *,
    include_failed: bool = False,
    progress: bool | ProgressCallback | None = None,
) -> list[OutputRecord]:
    """Execute `plan` on `texts` with `runner`, one runner call per step.

    The label steps the filter reads run on every text; the other steps run on passing texts
    only; per-span steps run once per (text, span) pair of their `for_each` step. Returns records
    in input order for passing texts, or for every text with `include_failed=True` (what an
    annotation stage needs: the filter's negatives are training data too). `progress` is a
    callback `(step_name, steps_done, steps_total)` or True for a tqdm bar.
    """
    if not isinstance(plan, Plan):
        plan = Plan.from_dict(plan)
    texts = list(texts)
    record_ids = _check_ids(ids, len(texts))
    report = _progress(progress, len(plan.steps))

    run = _PlanRun(plan, texts, runner)
    done = 0
    try:
        for step in plan.steps:
            if step.name in run.filter_names:
                run.run_step(step, [(i, ()) for i in range(len(texts))])
                done += 1
                report(step.name, done)
        passing = [run.passes(i) for i in range(len(texts))]
        for step in plan.steps:
            if step.name not in run.filter_names:
                run.run_step(step, run.contexts(step, [i for i, ok in enumerate(passing) if ok]))
                done += 1
                report(step.name, done)
    finally:
        report("", -1)

    return [
        run.record(i, record_ids[i], passing[i])
        for i in range(len(texts))
        if passing[i] or include_failed
    ]


class _PlanRun:
    """State of one execution: every step's raw results keyed by context."""

    def __init__(self, plan: Plan, texts: list[str], runner: Runner) -> None:
        self.plan = plan
        self.texts = texts
        self.runner = runner
        self.filter_names = set(plan.filter_steps)
        self.chains = {step.name: plan.chain(step.name) for step in plan.steps}
        self.results: dict[str, dict[Context, LabelOutcome | list[Span]]] = {}
        self.instructions: dict[str, dict[Context, str]] = {}

    def contexts(self, step: Step, passing: list[int]) -> list[Context]:
        """Where a non-filter step runs: each passing text, or each span of its for_each step."""
        if step.for_each is None:
            return [(i, ()) for i in passing]
        parent = self.results[step.for_each]
        return [(i, path + (k,)) for (i, path), spans in parent.items() for k in range(len(spans))]

    def bindings(self, step: Step, context: Context) -> dict[str, str]:
        """Span texts bound to the step's for_each chain at this context."""
        index, path = context
        chain = self.chains[step.name]
        return {
            ancestor.name: self.results[ancestor.name][(index, path[:depth])][path[depth]].text
            for depth, ancestor in enumerate(chain)
        }

    def run_step(self, step: Step, contexts: list[Context]) -> None:
        """One runner call for every context; identical (text, instruction) pairs asked once."""
        if step.for_each is None:
            instructions = [step.instruction] * len(contexts)
        else:
            instructions = [step.render_instruction(self.bindings(step, c)) for c in contexts]
        self.instructions[step.name] = dict(zip(contexts, instructions))
        keys = [(c[0], ins) for c, ins in zip(contexts, instructions)]
        unique = list(dict.fromkeys(keys))
        answers: list[Any] = []
        if unique:
            call_texts = [self.texts[i] for i, _ in unique]
            asked = [ins for _, ins in unique]
            instruction: str | list[str] = asked[0] if len(set(asked)) == 1 else asked
            call = self.runner.get_label if step.op == "label" else self.runner.get_span
            answers = list(call(call_texts, instruction))
            if len(answers) != len(unique):
                raise ModelError(
                    f"{type(self.runner).__name__}.get_{step.op} returned {len(answers)} results for "
                    f"{len(unique)} texts at step {step.name!r}; a runner must answer every text"
                )
        by_key = dict(zip(unique, (_outcome(step, a) for a in answers)))
        self.results[step.name] = {c: by_key[k] for c, k in zip(contexts, keys)}

    def passes(self, index: int) -> bool:
        """Whether text `index` passes the plan's filter (no filter: every text passes)."""
        if self.plan.filter is None:
            return True
        values = {name: self.results[name][(index, ())].value for name in self.filter_names}
        return evaluate_condition(self.plan.filter, values)

    def record(self, index: int, record_id: RecordId, passed: bool) -> OutputRecord:
        """Assemble the record of one text from the results of the steps that ran on it."""
        traces: dict[str, StepTrace] = {}
        for step in self.plan.steps:
            if passed or step.name in self.filter_names:
                traces[step.name] = StepTrace(
                    op=step.op,
                    instruction=step.instruction,
                    for_each=step.for_each,
                    result=self._tree(step, self.chains[step.name], (index, ())),
                )
        outputs = (self.plan.outputs or []) if passed else []
        return OutputRecord(
            id=record_id,
            passed=passed,
            fields={o.name: _plain(traces[o.step].result) for o in outputs},
            sources={o.name: o.step for o in outputs},
            steps=traces,
        )

    def _tree(self, step: Step, chain: list[Step], context: Context) -> Outcome:
        """A step's results on one text, nested by the spans of its for_each chain."""
        index, path = context
        depth = len(path)
        if depth == len(chain):
            return self.results[step.name][context]
        spans = self.results[chain[depth].name][context]
        items = []
        for k, span in enumerate(spans):
            child = (index, path + (k,))
            instruction = self.instructions[step.name][child] if depth + 1 == len(chain) else None
            items.append(
                PerSpanOutcome(span=span, instruction=instruction, result=self._tree(step, chain, child))
            )
        return items


def _outcome(step: Step, answer: Any) -> LabelOutcome | list[Span]:
    """Normalise one runner answer (a `LabelResult`, or a list of `Span`s)."""
    if step.op == "label":
        if isinstance(answer, LabelResult) or hasattr(answer, "confidence"):
            return LabelOutcome(value=bool(answer.value), confidence=float(answer.confidence))
        raise ModelError(f"step {step.name!r}: get_label must return LabelResult objects: {answer!r}")
    return list(answer)


def _plain(outcome: Outcome) -> Any:
    """The value a table wants: a bool, span texts, or per-span {'span', 'value'} items."""
    if isinstance(outcome, LabelOutcome):
        return outcome.value
    return [
        {"span": item.span.text, "value": _plain(item.result)}
        if isinstance(item, PerSpanOutcome)
        else item.text
        for item in outcome
    ]


def _check_ids(ids: Sequence[Hashable] | None, n: int) -> list[RecordId]:
    """Ids as records keep them: integers stay integers (numpy ones too), anything else a string."""
    if ids is None:
        return list(range(n))
    ids = [int(i) if isinstance(i, numbers.Integral) else str(i) for i in ids]
    if len(ids) != n:
        raise CorpusError(f"got {len(ids)} ids for {n} texts; pass one id per text")
    if len(set(ids)) != n:
        raise CorpusError("ids are not unique; each text needs its own id")
    return ids


def _progress(progress: bool | ProgressCallback | None, total: int) -> Callable[[str, int], None]:
    """Adapt the `progress` argument to one `report(step_name, done)` function (done=-1 closes)."""
    if callable(progress):
        return lambda name, done: progress(name, done, total) if done >= 0 else None
    if not progress:
        return lambda name, done: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc="execute plan", unit="step")

    def report(name: str, done: int) -> None:
        if done < 0:
            bar.close()
        else:
            bar.set_postfix_str(name)
            bar.update(1)

    return report


__all__ = ["LabelOutcome", "OutputRecord", "PerSpanOutcome", "StepTrace", "execute_plan"]
